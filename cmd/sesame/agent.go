package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sesame-ssh/sesame/agent"
	"github.com/sesame-ssh/sesame/internal/atomicfile"
)

// Hooks through which the keychain, pin and lock parts of sesame plug into
// `sesame agent` from their own files' init functions, so this file need
// not know them. Each is optional.
var (
	// agentKeyLoader supplies stored keys at start and on unlock.
	agentKeyLoader agent.KeyLoader
	// agentPolicy builds the per-host policy; nil offers every key.
	agentPolicy func() (agent.Policy, error)
	// agentLocker builds the lock; nil uses agent.NewPassphraseLocker.
	agentLocker func(logger *slog.Logger) (agent.Locker, error)
	// agentStatusExtra adds to what `sesame status` reports.
	agentStatusExtra func(*agent.Status)
	// agentCompanions run beside the server until it stops (the
	// Kerberos ticket keeper).
	agentCompanions []func(ctx context.Context)
)

// envAgentChild marks the re-executed background process: Go cannot fork,
// so the parent starts itself again and waits for the child to report
// that its socket is listening.
const envAgentChild = "SESAME_AGENT_CHILD"

type agentFlags struct {
	socket     string
	foreground bool // -D
	debug      bool // -d
	sh, csh    bool // -s, -c
	kill       bool // -k
	lifetime   string
}

// agentCmd is `sesame agent`. Other files add their own flags to it from
// init functions (file order puts them after this one); every flag they add
// is passed on to the background child by agentChildArgs.
var agentCmd *cobra.Command

// agentParentOnly are the flags that concern the starting process only.
var agentParentOnly = map[string]bool{"socket": true, "foreground": true, "debug-foreground": true, "sh": true, "csh": true, "kill": true, "debug": true}

func init() {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent [-a SOCKET] [-D | -d] [-s | -c] [-k] [-t LIFE]",
		Short: "Run the SSH agent (like ssh-agent)",
		Long: `Run sesame's SSH agent. Without -D or -d it goes to the background and
prints shell commands that point SSH_AUTH_SOCK at it:

    eval "$(sesame agent -s)"

-k stops the agent named by SESAME_AGENT_PID (or SSH_AGENT_PID).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAgent(cmd.Context(), f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.socket, "socket", "a", "", "listen on this unix socket (default $XDG_RUNTIME_DIR/sesame/agent.sock)")
	fl.BoolVarP(&f.foreground, "foreground", "D", false, "stay in the foreground")
	fl.BoolVarP(&f.debug, "debug-foreground", "d", false, "stay in the foreground and log requests to standard error")
	fl.BoolVarP(&f.sh, "sh", "s", false, "print Bourne shell commands")
	fl.BoolVarP(&f.csh, "csh", "c", false, "print C shell commands")
	fl.BoolVarP(&f.kill, "kill", "k", false, "stop the running agent")
	fl.StringVarP(&f.lifetime, "lifetime", "t", "", "default lifetime of added keys (e.g. 90, 30m, 1h30m, 2d)")
	agentCmd = cmd
	rootCmd.AddCommand(cmd)
}

// agentShell prints variable assignments for sh or csh.
type agentShell struct{ csh bool }

func (s agentShell) set(w io.Writer, name, value string) {
	if s.csh {
		fmt.Fprintf(w, "setenv %s %s;\n", name, value)
	} else {
		fmt.Fprintf(w, "%s=%s; export %s;\n", name, value, name)
	}
}

func (s agentShell) unset(w io.Writer, name string) {
	if s.csh {
		fmt.Fprintf(w, "unsetenv %s;\n", name)
	} else {
		fmt.Fprintf(w, "unset %s;\n", name)
	}
}

func runAgent(ctx context.Context, f agentFlags, stdout, stderr io.Writer) error {
	if f.sh && f.csh {
		return errors.New("-s and -c cannot be combined")
	}
	if f.foreground && f.debug {
		return errors.New("-D and -d cannot be combined")
	}
	sh := agentShell{csh: f.csh}
	if !f.sh && !f.csh {
		// Like ssh-agent: a csh-style $SHELL gets csh syntax.
		sh.csh = strings.HasSuffix(os.Getenv("SHELL"), "csh")
	}
	if f.kill {
		return killAgent(sh, stdout)
	}
	var life time.Duration
	if f.lifetime != "" {
		var err error
		if life, err = agent.ParseLifetime(f.lifetime); err != nil {
			return err
		}
	}
	socket := f.socket
	if socket == "" {
		socket = agent.DefaultSocket()
	}
	socket, err := filepath.Abs(socket)
	if err != nil {
		return err
	}
	if os.Getenv(envAgentChild) != "" {
		return serveAgentChild(socket, life)
	}
	if !f.foreground && !f.debug {
		if f.socket == "" {
			// `eval "$(sesame agent -s)"` in every new shell: join the agent
			// already serving the default socket instead of failing.
			if pid, ok := runningAgentPid(socket); ok {
				printAgentEnv(sh, stdout, socket, strconv.Itoa(pid))
				return nil
			}
		}
		return startBackgroundAgent(sh, socket, stdout)
	}

	level := slog.LevelWarn
	if f.debug || debugFlag {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	srv, err := newAgentServer(socket, life, logger)
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	// ssh-agent -D/-d prints the socket and its pid as well.
	sh.set(stdout, "SSH_AUTH_SOCK", socket)
	fmt.Fprintf(stdout, "echo Agent pid %d;\n", os.Getpid())
	return serveUntilSignal(ctx, srv)
}

// newAgentServer builds the server with whatever the other parts of sesame
// registered.
func newAgentServer(socket string, life time.Duration, logger *slog.Logger) (*agent.Server, error) {
	if err := agent.Harden(); err != nil {
		return nil, err
	}
	// x/crypto's agent server reports request errors through the standard
	// log package; keep them out of the terminal unless debugging.
	if logger.Enabled(context.Background(), slog.LevelDebug) {
		log.SetOutput(os.Stderr)
	} else {
		log.SetOutput(io.Discard)
	}
	opts := agent.Options{Socket: socket, DefaultLifetime: life, Logger: logger, KeyLoader: agentKeyLoader}
	ln, err := agentSystemdListener()
	if err != nil {
		return nil, err
	}
	opts.Listener = ln
	if agentPolicy != nil {
		p, err := agentPolicy()
		if err != nil {
			return nil, err
		}
		opts.Policy = p
	}
	if agentLocker != nil {
		l, err := agentLocker(logger)
		if err != nil {
			return nil, err
		}
		opts.Locker = l
	}
	opts.StatusExtra = agentStatusExtra
	return agent.New(opts), nil
}

// serveUntilSignal serves until SIGTERM, SIGINT or SIGHUP, then stops
// cleanly: the socket is removed. A second signal after the first one
// gets the default action, so a stuck shutdown can still be interrupted.
func serveUntilSignal(ctx context.Context, srv *agent.Server) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	var wg sync.WaitGroup
	for _, run := range agentCompanions {
		wg.Add(1)
		go func() { defer wg.Done(); run(ctx) }()
	}
	defer wg.Wait()
	return srv.Serve(ctx)
}

// startBackgroundAgent starts the agent as a detached child and prints the
// shell lines once its socket is listening.
func startBackgroundAgent(sh agentShell, socket string, stdout io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	args := append([]string{"agent", "-D", "-a", socket}, agentChildArgs()...)
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), envAgentChild+"=1")
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{pw} // fd 3: readiness report
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return fmt.Errorf("start agent: %w", err)
	}
	pw.Close()
	line, _ := bufio.NewReader(pr).ReadString('\n')
	line = strings.TrimSpace(line)
	if line != "ok" {
		cmd.Wait()
		if msg, ok := strings.CutPrefix(line, "error: "); ok {
			return errors.New(msg)
		}
		return errors.New("agent exited before it was ready")
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	cmd.Process.Release()
	printAgentEnv(sh, stdout, socket, pid)
	return nil
}

func printAgentEnv(sh agentShell, stdout io.Writer, socket, pid string) {
	sh.set(stdout, "SSH_AUTH_SOCK", socket)
	sh.set(stdout, "SSH_AGENT_PID", pid)
	sh.set(stdout, "SESAME_AGENT_PID", pid)
	fmt.Fprintf(stdout, "echo Agent pid %s;\n", pid)
}

// agentPidFile is where a background agent records its pid, next to its socket.
func agentPidFile(socket string) string { return socket + ".pid" }

// runningAgentPid returns the pid of a live background agent answering on
// socket, as recorded in its pid file.
func runningAgentPid(socket string) (int, bool) {
	b, err := os.ReadFile(agentPidFile(socket))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid < 2 || syscall.Kill(pid, 0) != nil {
		return 0, false
	}
	c, err := net.DialTimeout("unix", socket, time.Second)
	if err != nil {
		return 0, false
	}
	c.Close()
	return pid, true
}

// agentChildArgs passes the flags that matter to the background process.
func agentChildArgs() []string {
	var out []string
	agentCmd.Flags().Visit(func(fl *pflag.Flag) {
		if !agentParentOnly[fl.Name] {
			out = append(out, "--"+fl.Name+"="+fl.Value.String())
		}
	})
	if debugFlag {
		out = append(out, "--debug")
	}
	return out
}

// serveAgentChild runs in the background process: it listens, reports
// readiness on fd 3, and serves until a signal.
func serveAgentChild(socket string, life time.Duration) error {
	os.Unsetenv(envAgentChild)
	report := os.NewFile(3, "ready")
	fail := func(err error) error {
		if report != nil {
			fmt.Fprintf(report, "error: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
			report.Close()
		}
		return err
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if debugFlag {
		logger = slog.Default()
	}
	srv, err := newAgentServer(socket, life, logger)
	if err != nil {
		return fail(err)
	}
	if err := srv.Listen(); err != nil {
		return fail(err)
	}
	pf := agentPidFile(socket)
	if err := atomicfile.Write(pf, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return fail(err)
	}
	defer os.Remove(pf)
	if report != nil {
		fmt.Fprintln(report, "ok")
		report.Close()
	}
	// The background agent should not die with the terminal's session.
	signal.Ignore(syscall.SIGPIPE)
	return serveUntilSignal(context.Background(), srv)
}

// killAgent stops the agent named in the environment and prints the lines
// that unset its variables.
func killAgent(sh agentShell, stdout io.Writer) error {
	name := "SESAME_AGENT_PID"
	pidStr := os.Getenv(name)
	if pidStr == "" {
		name = "SSH_AGENT_PID"
		pidStr = os.Getenv(name)
	}
	if pidStr == "" {
		return agentHintError{errors.New("SESAME_AGENT_PID and SSH_AGENT_PID are not set, cannot stop the agent"),
			`start the agent with eval "$(sesame agent -s)" so they are set`}
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid < 2 {
		return fmt.Errorf("%s=%q is not a usable pid", name, pidStr)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop agent pid %d: %w", pid, err)
	}
	sh.unset(stdout, "SSH_AUTH_SOCK")
	sh.unset(stdout, "SSH_AGENT_PID")
	sh.unset(stdout, "SESAME_AGENT_PID")
	fmt.Fprintf(stdout, "echo Agent pid %d killed;\n", pid)
	return nil
}

// agentHintError is an error with a hint line for the user.
type agentHintError struct {
	err  error
	hint string
}

func (e agentHintError) Error() string { return e.err.Error() }
func (e agentHintError) Unwrap() error { return e.err }
func (e agentHintError) Hint() string  { return e.hint }

// agentSystemdListener returns the socket passed by systemd socket activation
// (LISTEN_PID is us, LISTEN_FDS ≥ 1: the first is fd 3), or nil when the
// agent was started some other way. Without this, the agent would find
// systemd answering on its socket path and refuse to start.
func agentSystemdListener() (net.Listener, error) {
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return nil, nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 1 {
		return nil, nil
	}
	// Not for the children we might start.
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	syscall.CloseOnExec(3)
	f := os.NewFile(3, "systemd-socket")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("socket from systemd: %w", err)
	}
	if _, ok := ln.(*net.UnixListener); !ok {
		ln.Close()
		return nil, fmt.Errorf("socket from systemd is not a unix socket")
	}
	return ln, nil
}

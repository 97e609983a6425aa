package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
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
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	xagent "golang.org/x/crypto/ssh/agent"

	"github.com/sesame-ssh/sesame/agent"
	"github.com/sesame-ssh/sesame/internal/atomicfile"
	"github.com/sesame-ssh/sesame/internal/paths"
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
// that its socket is listening. envAgentRemoveDir names the private
// directory the child's socket is in when the parent created it for this
// agent (-T): the child removes it when it stops. envAgentWatch is the pid
// of the process that runs COMMAND: the agent stops when it is gone.
const (
	envAgentChild     = "SESAME_AGENT_CHILD"
	envAgentRemoveDir = "SESAME_AGENT_REMOVE_DIR"
	envAgentWatch     = "SESAME_AGENT_WATCH"
)

type agentFlags struct {
	socket     string   // -a
	foreground bool     // -D
	debug      bool     // -d
	sh, csh    bool     // -s, -c
	kill       bool     // -k
	lifetime   string   // -t
	hash       string   // -E
	options    []string // -O
	providers  onceFlag // -P
	tmpSocket  bool     // -T
	cleanStale int      // -u
	noClean    bool     // -U
	version    bool     // -V
	shared     bool     // --shared
}

// onceFlag is a string flag that may be given once (ssh-agent: "-P option
// already specified").
type onceFlag struct {
	name  string
	value string
	set   bool
}

func (o *onceFlag) String() string { return o.value }
func (o *onceFlag) Type() string   { return "string" }
func (o *onceFlag) Set(v string) error {
	if o.set {
		return fmt.Errorf("-%s option already specified", o.name)
	}
	o.value, o.set = v, true
	return nil
}

// agentCmd is `sesame agent`. Other files add their own flags to it from
// init functions (file order puts them after this one); every flag they add
// is passed on to the background child by agentChildArgs.
var agentCmd *cobra.Command

// agentParentOnly are the flags that concern the starting process only.
var agentParentOnly = map[string]bool{"socket": true, "foreground": true, "debug-foreground": true,
	"sh": true, "csh": true, "kill": true, "debug": true, "tmp-socket": true, "clean-stale": true,
	"no-clean-stale": true, "version": true, "shared": true}

// agentOptions are the -O options ssh-agent knows. They concern
// security-key and PKCS#11 keys, which sesame's agent does not hold yet:
// accepted, recorded, and without effect.
var agentOptions = []string{"allow-remote-pkcs11", "no-restrict-websafe", "websafe-allow="}

func init() {
	f := agentFlags{providers: onceFlag{name: "P"}}
	cmd := &cobra.Command{
		Use:   "agent [-a SOCKET] [-c | -s] [-Dd] [-E HASH] [-k] [-O OPTION] [-P PROVIDERS] [-t LIFE] [-TUu] [--shared] [COMMAND [ARG...]]",
		Short: "Run the SSH agent (like ssh-agent)",
		Long: `Run sesame's SSH agent, with ssh-agent's flags. Without -D or -d it goes
to the background and prints shell commands that point SSH_AUTH_SOCK at it:

    eval "$(sesame agent -s)"

Each such call starts a new agent on a fresh private socket, as ssh-agent
does; -k stops the agent named by SSH_AGENT_PID. With COMMAND, the agent
runs as long as COMMAND does, which gets SSH_AUTH_SOCK and SSH_AGENT_PID.

--shared uses the one agent per user at $XDG_RUNTIME_DIR/sesame/agent.sock
instead: it joins that agent when it runs (and says so), and starts it when
not. That is the line for a shell rc file:

    eval "$(sesame agent --shared -s)"`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAgent(cmd.Context(), f, args, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	// COMMAND's own flags are its own: `sesame agent sh -c 'ssh-add -l'`.
	fl.SetInterspersed(false)
	fl.StringVarP(&f.socket, "socket", "a", "", "listen on this unix socket, exactly there (its directory must exist)")
	fl.BoolVarP(&f.foreground, "foreground", "D", false, "stay in the foreground")
	fl.BoolVarP(&f.debug, "debug-foreground", "d", false, "stay in the foreground and log requests to standard error")
	fl.BoolVarP(&f.sh, "sh", "s", false, "print Bourne shell commands")
	fl.BoolVarP(&f.csh, "csh", "c", false, "print C shell commands")
	fl.BoolVarP(&f.kill, "kill", "k", false, "stop the agent named by SSH_AGENT_PID")
	fl.StringVarP(&f.lifetime, "lifetime", "t", "", "default lifetime of added keys (e.g. 90, 30m, 1h30m, 2d)")
	fl.StringVarP(&f.hash, "fingerprint-hash", "E", "sha256", "fingerprint hash in confirmation prompts and logs: md5, sha1, sha256, sha384 or sha512")
	fl.StringArrayVarP(&f.options, "option", "O", nil, "ssh-agent option: "+strings.Join(agentOptions, ", ")+" (security-key and PKCS#11 keys; no effect yet)")
	fl.VarP(&f.providers, "providers", "P", "allowed PKCS#11/FIDO provider paths (patterns; no effect yet: sesame loads no providers)")
	fl.BoolVarP(&f.tmpSocket, "tmp-socket", "T", false, "put the new agent's socket in a private directory under $TMPDIR")
	fl.CountVarP(&f.cleanStale, "clean-stale", "u", "remove stale agent sockets from the runtime directory, then exit")
	fl.BoolVarP(&f.noClean, "no-clean-stale", "U", false, "do not remove stale agent sockets when starting")
	fl.BoolVarP(&f.version, "version", "V", false, "print the version and exit")
	fl.BoolVar(&f.shared, "shared", false, "use (join or start) the one shared agent of this user at the default socket")
	agentCmd = cmd
	rootCmd.AddCommand(cmd)
}

// agentShell prints variable assignments for sh or csh.
type agentShell struct{ csh bool }

func (s agentShell) set(w io.Writer, name, value string) {
	if s.csh {
		fmt.Fprintf(w, "setenv %s %s;\n", name, shellQuote(value))
	} else {
		fmt.Fprintf(w, "%s=%s; export %s;\n", name, shellQuote(value), name)
	}
}

func (s agentShell) unset(w io.Writer, name string) {
	if s.csh {
		fmt.Fprintf(w, "unsetenv %s;\n", name)
	} else {
		fmt.Fprintf(w, "unset %s;\n", name)
	}
}

// shellQuote quotes a value for the eval'ed lines when it needs it (a
// socket path given with -a may hold spaces), as ssh-agent does.
func shellQuote(v string) string {
	if v != "" && strings.IndexFunc(v, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:,@%", r))
	}) < 0 {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// agentUsageError is a flag combination ssh-agent refuses too.
func agentUsageError(msg string) error {
	return agentHintError{errors.New(msg), "see sesame agent --help"}
}

// checkAgentFlags refuses what ssh-agent refuses, with its reasons.
func checkAgentFlags(f agentFlags, args []string) error {
	if f.sh && f.csh {
		return agentUsageError("-s and -c cannot be combined")
	}
	if f.foreground && f.debug {
		return agentUsageError("-D and -d cannot be combined")
	}
	if len(args) > 0 && (f.sh || f.csh || f.kill || f.foreground || f.debug || f.cleanStale > 0) {
		return agentUsageError("a COMMAND cannot be combined with -c, -s, -k, -d, -D or -u")
	}
	if len(args) > 0 && f.shared {
		return agentUsageError("a COMMAND gets an agent of its own; it cannot be combined with --shared")
	}
	if f.shared && (f.socket != "" || f.tmpSocket) {
		return agentUsageError("--shared uses the default socket; it cannot be combined with -a or -T")
	}
	if f.socket != "" && f.tmpSocket {
		return agentUsageError("-a and -T cannot be combined")
	}
	if _, err := fingerprintHash(f.hash); err != nil {
		return err
	}
	for _, o := range f.options {
		if !knownAgentOption(o) {
			return agentHintError{fmt.Errorf("unknown -O option %q", o), "ssh-agent's -O options are " + strings.Join(agentOptions, ", ")}
		}
	}
	return nil
}

func knownAgentOption(o string) bool {
	for _, k := range agentOptions {
		if o == k || strings.HasSuffix(k, "=") && strings.HasPrefix(o, k) {
			return true
		}
	}
	return false
}

// fingerprintHash checks -E: the digests ssh-agent accepts.
func fingerprintHash(name string) (agent.FingerprintHash, error) {
	h, ok := agent.ParseFingerprintHash(name)
	if !ok {
		return h, fmt.Errorf("invalid hash algorithm %q", name)
	}
	return h, nil
}

func runAgent(ctx context.Context, f agentFlags, args []string, stdout, stderr io.Writer) error {
	if err := checkAgentFlags(f, args); err != nil {
		return err
	}
	if f.version {
		fmt.Fprintln(stderr, "sesame", version)
		return nil
	}
	sh := agentShell{csh: f.csh}
	if len(args) == 0 && !f.sh && !f.csh {
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
	if f.cleanStale > 0 {
		dir := paths.Runtime()
		n := cleanStaleSockets(dir)
		fmt.Fprintf(stdout, "Deleted %d stale agent sockets in %s\n", n, dir)
		return nil
	}
	if os.Getenv(envAgentChild) != "" {
		socket, err := filepath.Abs(f.socket)
		if err != nil {
			return err
		}
		return serveAgentChild(socket, life, f)
	}
	background := !f.foreground && !f.debug

	// Where to listen. A socket handed over by systemd comes first.
	var socket, removeDir string
	systemd := false
	switch {
	case !background && agentSystemdActivated():
		// The unit's socket (its -a or --shared, if any, names the same).
		systemd = true
	case f.socket != "":
		var err error
		if socket, err = filepath.Abs(f.socket); err != nil {
			return err
		}
		if err := agent.CheckSocketPath(socket); err != nil {
			return err
		}
	case f.shared:
		socket = agent.DefaultSocket()
		if background {
			if st, ok := sharedAgentStatus(socket); ok {
				return joinSharedAgent(sh, socket, st, f, stdout, stderr)
			}
		}
		if err := paths.PrivateDir(filepath.Dir(socket)); err != nil {
			return err
		}
	case f.tmpSocket:
		dir, err := os.MkdirTemp("", "sesame-")
		if err != nil {
			return fmt.Errorf("private socket directory: %w", err)
		}
		socket, removeDir = filepath.Join(dir, "agent."+strconv.Itoa(os.Getppid())), dir
	default:
		dir := paths.Runtime()
		if err := paths.PrivateDir(dir); err != nil {
			return agentHintError{err, "give a socket path with -a, or use -T for one under $TMPDIR"}
		}
		if !f.noClean {
			cleanStaleSockets(dir)
		}
		socket = filepath.Join(dir, "agent."+randomName())
	}

	if background {
		pid, err := startBackgroundAgent(socket, removeDir, len(args) > 0)
		if err != nil {
			if removeDir != "" {
				os.Remove(removeDir)
			}
			return err
		}
		if len(args) > 0 {
			return execWithAgent(args, socket, pid)
		}
		printAgentEnv(sh, stdout, socket, strconv.Itoa(pid))
		return nil
	}

	level := slog.LevelWarn
	if f.debug || debugFlag {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	srv, err := newAgentServer(socket, systemd, life, f, logger)
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	// ssh-agent -D/-d prints the socket and its pid as well.
	if !systemd {
		sh.set(stdout, "SSH_AUTH_SOCK", srv.Socket())
	}
	fmt.Fprintf(stdout, "echo Agent pid %d;\n", os.Getpid())
	if removeDir != "" {
		defer os.Remove(removeDir)
	}
	return serveUntilSignal(ctx, srv, true)
}

// randomName is the unguessable part of a new agent's socket name.
func randomName() string {
	var b [6]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// cleanStaleSockets removes the agent sockets in dir that nobody answers
// on (left by an agent that was killed), with their pid files, and says
// how many. ssh-agent does the same in its socket directory.
func cleanStaleSockets(dir string) int {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if e.Type() != os.ModeSocket || !strings.HasPrefix(e.Name(), "agent.") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if c, err := net.DialTimeout("unix", p, time.Second); err == nil {
			c.Close()
			continue
		}
		if os.Remove(p) == nil {
			os.Remove(agentPidFile(p))
			n++
		}
	}
	return n
}

// agentSettings are the settings this call asks of an agent, in the form
// the agent reports them: the flags passed on to a background agent.
func agentSettings() []string {
	out := agentChildArgs()
	sort.Strings(out)
	return out
}

// sharedAgentStatus asks the agent on the shared socket for its status;
// false when none answers there.
func sharedAgentStatus(socket string) (agent.Status, bool) {
	c, err := net.DialTimeout("unix", socket, time.Second)
	if err != nil {
		return agent.Status{}, false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	st, err := agentStatus(xagent.NewClient(c))
	return st, err == nil
}

// joinSharedAgent prints the shared agent's variables after checking that
// it runs with the settings this call asks for: a flag that the running
// agent does not have would otherwise be silently dropped.
func joinSharedAgent(sh agentShell, socket string, st agent.Status, f agentFlags, stdout, stderr io.Writer) error {
	want := agentSettings()
	if !slices.Equal(want, st.Settings) {
		has := strings.Join(st.Settings, " ")
		if has == "" {
			has = "no flags"
		}
		asked := strings.Join(want, " ")
		if asked == "" {
			asked = "no flags"
		}
		return agentHintError{fmt.Errorf("the shared agent (pid %d) runs with %s; this call asks for %s", st.PID, has, asked),
			fmt.Sprintf("give the same flags, or stop it first (SSH_AGENT_PID=%d sesame agent -k)", st.PID)}
	}
	fmt.Fprintf(stderr, "sesame: joining the shared agent (pid %d) on %s\n", st.PID, socket)
	printAgentEnv(sh, stdout, socket, strconv.Itoa(st.PID))
	return nil
}

// execWithAgent runs COMMAND in place of this process with the agent's
// variables set; the agent watches this pid and stops when it exits.
func execWithAgent(args []string, socket string, pid int) error {
	path, err := exec.LookPath(args[0])
	if err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	// execve keeps duplicates and getenv takes the first: drop the old
	// values rather than append after them.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "SSH_AUTH_SOCK=") || strings.HasPrefix(kv, "SSH_AGENT_PID=")
	})
	env = append(env, "SSH_AUTH_SOCK="+socket, "SSH_AGENT_PID="+strconv.Itoa(pid))
	if err := syscall.Exec(path, args, env); err != nil {
		return fmt.Errorf("run %s: %w", args[0], err)
	}
	return nil
}

// newAgentServer builds the server with whatever the other parts of sesame
// registered; systemd says to serve the socket systemd handed over.
func newAgentServer(socket string, systemd bool, life time.Duration, f agentFlags, logger *slog.Logger) (*agent.Server, error) {
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
	hash, err := fingerprintHash(f.hash)
	if err != nil {
		return nil, err
	}
	opts := agent.Options{Socket: socket, DefaultLifetime: life, Logger: logger, KeyLoader: agentKeyLoader,
		FingerprintHash: hash, Settings: agentSettings()}
	if systemd {
		ln, err := agentSystemdListener()
		if err != nil {
			return nil, err
		}
		opts.Listener = ln
	}
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

// serveUntilSignal serves until SIGTERM or SIGHUP (and SIGINT in the
// foreground; a background agent ignores the terminal's interrupt, as
// ssh-agent does), then stops cleanly: the socket is removed. SIGUSR1
// removes every key. A second stop signal after the first one gets the
// default action, so a stuck shutdown can still be interrupted.
func serveUntilSignal(ctx context.Context, srv *agent.Server, foreground bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	stopSignals := []os.Signal{syscall.SIGTERM, syscall.SIGHUP}
	if foreground {
		stopSignals = append(stopSignals, syscall.SIGINT)
	} else {
		signal.Ignore(syscall.SIGINT)
	}
	ctx, stop := signal.NotifyContext(ctx, stopSignals...)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	go func() {
		for {
			select {
			case <-usr1:
				srv.DropAllKeys()
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for _, run := range agentCompanions {
		wg.Add(1)
		go func() { defer wg.Done(); run(ctx) }()
	}
	defer wg.Wait()
	return srv.Serve(ctx)
}

// startBackgroundAgent starts the agent as a detached child listening on
// socket and returns its pid once the socket is listening. removeDir is a
// directory made for this agent's socket, which the agent removes when it
// stops; watch makes it stop when this process (soon COMMAND) exits.
func startBackgroundAgent(socket, removeDir string, watch bool) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("find own executable: %w", err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer pr.Close()
	args := append([]string{"agent", "-D", "-a", socket}, agentChildArgs()...)
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), envAgentChild+"=1")
	if removeDir != "" {
		cmd.Env = append(cmd.Env, envAgentRemoveDir+"="+removeDir)
	}
	if watch {
		cmd.Env = append(cmd.Env, envAgentWatch+"="+strconv.Itoa(os.Getpid()))
	}
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{pw} // fd 3: readiness report
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return 0, fmt.Errorf("start agent: %w", err)
	}
	pw.Close()
	line, _ := bufio.NewReader(pr).ReadString('\n')
	line = strings.TrimSpace(line)
	if line != "ok" {
		cmd.Wait()
		if msg, ok := strings.CutPrefix(line, "error: "); ok {
			msg, hint, _ := strings.Cut(msg, "\x00")
			return 0, agentHintError{errors.New(msg), hint}
		}
		return 0, errors.New("agent exited before it was ready")
	}
	pid := cmd.Process.Pid
	cmd.Process.Release()
	return pid, nil
}

func printAgentEnv(sh agentShell, stdout io.Writer, socket, pid string) {
	sh.set(stdout, "SSH_AUTH_SOCK", socket)
	sh.set(stdout, "SSH_AGENT_PID", pid)
	fmt.Fprintf(stdout, "echo Agent pid %s;\n", pid)
}

// agentPidFile is where a background agent records its pid, next to its socket.
func agentPidFile(socket string) string { return socket + ".pid" }

// agentChildArgs passes the flags that matter to the background process.
func agentChildArgs() []string {
	var out []string
	agentCmd.Flags().Visit(func(fl *pflag.Flag) {
		if agentParentOnly[fl.Name] {
			return
		}
		if sv, ok := fl.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				out = append(out, "--"+fl.Name+"="+v)
			}
			return
		}
		v := fl.Value.String()
		if fl.Name == "lifetime" {
			// -t 3600 and -t 1h are the same setting.
			if d, err := agent.ParseLifetime(v); err == nil {
				v = d.String()
			}
		}
		out = append(out, "--"+fl.Name+"="+v)
	})
	if debugFlag {
		out = append(out, "--debug")
	}
	return out
}

// serveAgentChild runs in the background process: it listens, reports
// readiness on fd 3, and serves until a signal, or until the process that
// runs COMMAND is gone.
func serveAgentChild(socket string, life time.Duration, f agentFlags) error {
	removeDir := os.Getenv(envAgentRemoveDir)
	watch, _ := strconv.Atoi(os.Getenv(envAgentWatch))
	os.Unsetenv(envAgentChild)
	os.Unsetenv(envAgentRemoveDir)
	os.Unsetenv(envAgentWatch)
	if removeDir != "" {
		defer os.Remove(removeDir)
	}
	report := os.NewFile(3, "ready")
	fail := func(err error) error {
		if report != nil {
			msg := strings.ReplaceAll(err.Error(), "\n", " ")
			var h hinter
			if errors.As(err, &h) && h.Hint() != "" {
				msg += "\x00" + h.Hint()
			}
			fmt.Fprintf(report, "error: %s\n", msg)
			report.Close()
		}
		return err
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if debugFlag {
		logger = slog.Default()
	}
	srv, err := newAgentServer(socket, false, life, f, logger)
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
	ctx := context.Background()
	if watch > 1 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go watchParent(ctx, watch, cancel)
	}
	return serveUntilSignal(ctx, srv, false)
}

// watchParent calls stop once pid, this process's parent (running
// COMMAND), has exited: the agent is then no longer its child.
func watchParent(ctx context.Context, pid int, stop func()) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		if os.Getppid() != pid {
			stop()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// killAgent stops the agent named by SSH_AGENT_PID, as ssh-agent -k does,
// and prints the lines that unset its variables.
func killAgent(sh agentShell, stdout io.Writer) error {
	pidStr := os.Getenv("SSH_AGENT_PID")
	if pidStr == "" {
		return agentHintError{errors.New("SSH_AGENT_PID not set, cannot kill agent"),
			`start the agent with eval "$(sesame agent -s)" so that it is set`}
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid < 2 {
		return fmt.Errorf("SSH_AGENT_PID=%q is not a good pid", pidStr)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop agent pid %d: %w", pid, err)
	}
	sh.unset(stdout, "SSH_AUTH_SOCK")
	sh.unset(stdout, "SSH_AGENT_PID")
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

// agentSystemdActivated reports whether systemd handed this process a
// socket (socket activation: LISTEN_PID is us, LISTEN_FDS ≥ 1).
func agentSystemdActivated() bool {
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return false
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	return err == nil && n >= 1
}

// agentSystemdListener returns the socket passed by systemd socket activation
// (the first is fd 3), or nil when the agent was started some other way.
// Without this, the agent would find systemd answering on its socket path
// and refuse to start.
func agentSystemdListener() (net.Listener, error) {
	if !agentSystemdActivated() {
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

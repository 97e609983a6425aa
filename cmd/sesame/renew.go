package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/spf13/cobra"

	"github.com/sesame-ssh/sesame/keychain"
	"github.com/sesame-ssh/sesame/krb"
)

// renewParams are the flags of `sesame renew`.
type renewParams struct {
	ccache     string
	background bool
	useKeytab  bool
	keytabName string
}

// envRenewChild marks the re-executed background renewer (-b).
const envRenewChild = "SESAME_RENEW_CHILD"

func init() {
	var p renewParams
	cmd := &cobra.Command{
		Use:   "renew [-c CCACHE] [-b] [-k [-t KEYTAB]] [-- COMMAND [ARG...]]",
		Short: "Keep a Kerberos ticket alive (like krenew -K / k5start -K)",
		Long: `Keep the ticket-granting ticket of a credentials cache alive: renew it at
half its lifetime, retry with back-off while the KDC is unreachable, and when
it can no longer be renewed, get a fresh one from a keytab (-k [-t]) or from a
password stored with 'sesame kinit --remember'. A password or key that the KDC
rejects is tried exactly once; renewal then stops and 'sesame klist' shows why.

Without a command it runs until stopped (-b: in the background). With a
command, the command runs with a private copy of the cache (KRB5CCNAME) that
is kept alive until the command exits, then destroyed; sesame renew exits
with the command's status.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRenew(cmd.Context(), p, args, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	cacheFlag(f, &p.ccache)
	f.BoolVarP(&p.background, "background", "b", false, "run in the background")
	f.BoolVarP(&p.useKeytab, "keytab", "k", false, "re-acquire from a keytab when the ticket cannot be renewed")
	f.StringVarP(&p.keytabName, "keytab-file", "t", "", "keytab for -k (default KRB5_CLIENT_KTNAME, else KRB5_KTNAME or default_keytab_name)")
	rootCmd.AddCommand(cmd)
}

func runRenew(ctx context.Context, p renewParams, command []string, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if p.keytabName != "" {
		p.useKeytab = true
	}
	if p.background && len(command) > 0 {
		return errors.New("-b and a command contradict each other: the command already runs in the foreground")
	}
	cfg, name, err := loadCache(p.ccache)
	if err != nil {
		return err
	}
	// Fail now, not in the background, when there is nothing to keep or
	// the renewed ticket could not be written.
	cc, err := name.Read()
	if err != nil {
		return err
	}
	// (A file's directory or mode can forbid it; KCM and KEYRING caches
	// are written through the daemon or the kernel.)
	if path := name.Path(); len(command) == 0 && path != "" {
		if err := krb.CheckReplaceable(path); err != nil {
			return err
		}
	}
	if _, ok := cc.TGT(); !ok {
		return fmt.Errorf("%s holds no ticket-granting ticket; get one with sesame kinit", name)
	}
	var kt *keytab.Keytab
	if p.useKeytab {
		if kt, err = loadKeytab(cfg, p.keytabName, false); err != nil {
			return err
		}
	}
	if p.background && os.Getenv(envRenewChild) == "" {
		return startBackgroundRenewer(stderr)
	}
	os.Unsetenv(envRenewChild)

	if len(command) > 0 {
		ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
		defer stop()
		return renewAround(ctx, cfg, name.String(), cc, kt, command)
	}
	ctx, stop := signalContext(ctx)
	defer stop()
	k := newKeeper(cfg, name, kt)
	return renewExit(k.Run(ctx), stderr)
}

// exitRenewStopped is sesame renew's exit status when renewal stopped for
// good (a rejected secret, an expired ticket, a cache it cannot write):
// contrib/systemd's unit lists it in RestartPreventExitStatus, so that a
// restart does not run into the same wall every few minutes.
const exitRenewStopped = 3

// renewExit prints a final stop the way main does any error, and exits
// with exitRenewStopped.
func renewExit(err error, stderr io.Writer) error {
	var se *krb.StopError
	if errors.As(err, &se) {
		fmt.Fprintf(stderr, "sesame: %v\n", err)
		return exitError{exitRenewStopped}
	}
	return err
}

// renewAround runs command with a private copy of the cache kept alive
// until it exits, and returns its exit status.
func renewAround(ctx context.Context, cfg *krb.Config, scope string, cc *krb.CCache, kt *keytab.Keytab, command []string) error {
	dir, err := os.MkdirTemp("", "sesame-renew-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "krb5cc")
	if err := krb.WriteCCache(path, cc); err != nil {
		return err
	}
	defer krb.DestroyCCache(path)

	private, err := krb.ParseCacheName("FILE:"+path, krb.SourceFlag)
	if err != nil {
		return err
	}
	kctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	k := newKeeper(cfg, private, kt)
	k.SecretScope = scope
	go func() { done <- k.Run(kctx) }()

	c := exec.Command(command[0], command[1:]...)
	c.Env = append(os.Environ(), "KRB5CCNAME=FILE:"+path)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := c.Start(); err != nil {
		cancel()
		<-done
		return fmt.Errorf("run %s: %w", command[0], err)
	}
	// Pass termination signals on, like a shell would.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		for s := range sigs {
			c.Process.Signal(s)
		}
	}()
	werr := c.Wait()
	cancel()
	if kerr := <-done; kerr != nil {
		slog.Warn("ticket renewal for the command stopped", "err", kerr)
	}
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		code := ee.ExitCode()
		if code < 0 {
			code = 128 + int(ee.Sys().(syscall.WaitStatus).Signal())
		}
		return exitError{code}
	}
	return werr
}

// newKeeper builds the keeper for one cache: renewal through the KDC, and
// re-acquisition from the keytab when given, else from a password stored
// in the keychain for the principal (sesame kinit --remember), if any.
func newKeeper(cfg *krb.Config, name krb.CacheName, kt *keytab.Keytab) *krb.Keeper {
	client := func(realm string) *krb.Client { return krb.NewClient(cfg.Gokrb5(realm)) }
	k := &krb.Keeper{
		Cache:  name.String(),
		Load:   name.Read,
		Store:  name.Replace,
		Update: name.Update,
		Renew: func(ctx context.Context, cc *krb.CCache) (*krb.CCache, error) {
			return client(cc.DefaultPrincipal.Realm).Renew(ctx, cc)
		},
		Report: func(s krb.KeeperState) { saveKeeperState(s) },
		Warn: func(msg string) {
			fmt.Fprintf(os.Stderr, "sesame: %s\n", msg)
			notifyDesktop("Kerberos ticket ends soon", msg)
		},
	}
	acquire := func(ctx context.Context, princ krb.Principal, set func(*krb.LoginOptions) (func(), error)) (*krb.CCache, error) {
		cl := client(princ.Realm)
		opt := cl.DefaultLoginOptions()
		opt.Principal = princ.String()
		// Ask for what the expiring ticket had, so a keytab or stored
		// password gives the same kind of ticket kinit did.
		if old, err := name.Read(); err == nil {
			if t, ok := old.TGT(); ok {
				start := t.StartTime
				if start.IsZero() {
					start = t.AuthTime
				}
				opt.Lifetime = t.EndTime.Sub(start)
				if t.Flags&krb.TktFlagRenewable != 0 {
					opt.RenewLife = t.RenewTill.Sub(start)
				}
				opt.Forwardable = t.Flags&krb.TktFlagForwardable != 0
			}
			if old.HasKDCOffset {
				opt.KDCOffset = old.KDCOffset
			}
		}
		done, err := set(&opt)
		if err != nil {
			return nil, err
		}
		defer done()
		return cl.Login(ctx, opt)
	}
	switch {
	case kt != nil:
		k.Acquire = func(ctx context.Context, princ krb.Principal) (*krb.CCache, error) {
			return acquire(ctx, princ, func(o *krb.LoginOptions) (func(), error) { o.Keytab = kt; return func() {}, nil })
		}
		k.Secret = func(princ krb.Principal) (string, string, error) {
			fp, kvno, err := krb.KeytabFingerprint(kt, princ)
			return fmt.Sprintf("keytab key (version %d)", kvno), fp, err
		}
	default:
		if hasStoredPasswords() {
			k.Acquire = func(ctx context.Context, princ krb.Principal) (*krb.CCache, error) {
				return acquire(ctx, princ, func(o *krb.LoginOptions) (func(), error) {
					pw, err := storedPassword(princ.String())
					if err != nil {
						return nil, fmt.Errorf("no stored password for %s: %w", princ, errors.Join(krb.ErrRejected, err))
					}
					o.Password = pw
					return func() { clear(pw) }, nil
				})
			}
			k.Secret = func(princ krb.Principal) (string, string, error) {
				pw, err := storedPassword(princ.String())
				if err != nil {
					return "stored password", "", err
				}
				defer clear(pw)
				fp, err := krb.PasswordFingerprint(princ.String(), pw)
				return "stored password", fp, err
			}
		}
	}
	return k
}

// openKeychainQuietly opens the keychain without asking anybody: the vault
// passphrase can only come from SESAME_PASSPHRASE_FILE here.
func openKeychainQuietly() (*keychain.Keychain, error) {
	return keychain.Open(keychain.Options{Passphrase: keychain.PassphraseFromEnv()})
}

// hasStoredPasswords reports whether the keychain holds any Kerberos
// password (sesame kinit --remember). The keychain is not kept open: a
// keeper may run for weeks and needs it only when it re-acquires.
func hasStoredPasswords() bool {
	kc, err := openKeychainQuietly()
	if err != nil {
		slog.Debug("no keychain for stored passwords", "err", err)
		return false
	}
	defer kc.Close()
	princs, err := kc.KrbPrincipals()
	return err == nil && len(princs) > 0
}

// storedPassword reads principal's stored password; the caller wipes it.
func storedPassword(principal string) ([]byte, error) {
	kc, err := openKeychainQuietly()
	if err != nil {
		return nil, err
	}
	defer kc.Close()
	return kc.KrbPassword(principal)
}

func saveKeeperState(s krb.KeeperState) {
	if err := krb.SaveKeeperState(s); err != nil {
		slog.Debug("cannot record renewal state", "err", err)
	}
	if !s.Running && s.Reason != "" {
		notifyDesktop("Kerberos ticket renewal stopped", s.Reason)
	}
}

// notifyDesktop shows a notification when a desktop session is there;
// silently nothing otherwise.
func notifyDesktop(summary, body string) {
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return
	}
	if p, err := exec.LookPath("notify-send"); err == nil {
		exec.Command(p, "--app-name=sesame", summary, body).Run()
	}
}

// startBackgroundRenewer re-executes sesame renew detached from the
// terminal (Go cannot fork) and reports its pid.
func startBackgroundRenewer(stderr io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	c := exec.Command(exe, os.Args[1:]...)
	c.Env = append(os.Environ(), envRenewChild+"=1")
	c.Stdin, c.Stdout, c.Stderr = devnull, devnull, devnull
	c.Dir = "/"
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return fmt.Errorf("start background renewer: %w", err)
	}
	fmt.Fprintf(stderr, "sesame renew: running in the background as pid %d\n", c.Process.Pid)
	return c.Process.Release()
}

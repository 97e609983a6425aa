package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/sesame-ssh/sesame/internal/osuser"
	"github.com/sesame-ssh/sesame/keychain"
	"github.com/sesame-ssh/sesame/krb"
)

// kinitParams are the parsed flags of `sesame kinit`.
type kinitParams struct {
	principal      string
	passwordStdin  bool
	useKeytab      bool
	clientKeytab   bool
	keytabName     string
	lifetime       string
	renewable      string
	forwardable    bool
	notForwardable bool
	ccache         string
	renew          bool
	remember       bool
	enterprise     bool
	canonicalize   bool
	service        string
	armor          string
	verbose        bool
	proxiable      bool
	notProxiable   bool
	addresses      bool
	noAddresses    bool
}

func init() {
	var p kinitParams
	cmd := &cobra.Command{
		Use:   "kinit [principal]",
		Short: "Get a Kerberos ticket-granting ticket (like MIT kinit)",
		Long: `Get a Kerberos ticket-granting ticket and store it in the credentials cache
(-c, KRB5CCNAME, default_ccache_name, or FILE:/tmp/krb5cc_UID), where MIT
tools and OpenSSH's GSSAPI find it.

The password is read from the terminal without echo, or as one line from
standard input with --password-stdin. It is sent once: a rejected password
is never retried, so account lockout policies see a single failure.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				p.principal = args[0]
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return runKinit(ctx, p, cmd.InOrStdin())
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.BoolVar(&p.passwordStdin, "password-stdin", false, "read the password as one line from standard input")
	f.BoolVarP(&p.useKeytab, "keytab", "k", false, "use a key from a keytab instead of a password")
	f.StringVarP(&p.keytabName, "keytab-file", "t", "", "keytab to use with -k (default KRB5_CLIENT_KTNAME, else KRB5_KTNAME or default_keytab_name)")
	f.BoolVarP(&p.clientKeytab, "client-keytab", "i", false, "use the default client keytab (KRB5_CLIENT_KTNAME, default_client_keytab_name)")
	f.StringVarP(&p.lifetime, "lifetime", "l", "", "requested ticket lifetime, e.g. 10h, 90m, 1d")
	f.StringVarP(&p.renewable, "renewable", "r", "", "requested renewable life, e.g. 7d")
	f.BoolVarP(&p.forwardable, "forwardable", "f", false, "request a forwardable ticket")
	f.BoolVarP(&p.notForwardable, "not-forwardable", "F", false, "request a non-forwardable ticket")
	cacheFlag(f, &p.ccache)
	f.BoolVarP(&p.renew, "renew", "R", false, "renew the ticket-granting ticket in the cache")
	f.BoolVarP(&p.enterprise, "enterprise", "E", false, "the principal is an enterprise name (user@upn.suffix, as Active Directory logins are)")
	f.BoolVarP(&p.canonicalize, "canonicalize", "C", false, "ask the KDC for the canonical principal name and store it (aliases)")
	f.StringVarP(&p.service, "service", "S", "", "get the initial ticket for this service instead of krbtgt/REALM (e.g. kadmin/changepw)")
	f.BoolVarP(&p.proxiable, "proxiable", "p", false, "request a proxiable ticket")
	f.BoolVarP(&p.notProxiable, "not-proxiable", "P", false, "request a non-proxiable ticket")
	f.BoolVarP(&p.addresses, "addresses", "a", false, "put this host's addresses into the ticket")
	f.BoolVarP(&p.noAddresses, "no-addresses", "A", false, "request an address-less ticket (the default)")
	f.BoolVarP(&p.verbose, "verbose", "V", false, "say which cache and principal are used, and when the login succeeded")
	f.StringVarP(&p.armor, "armor", "T", "", "armor the login with FAST (RFC 6113) using the TGT in this cache (e.g. one from a host keytab)")
	f.BoolVar(&p.remember, "remember", false, "store the password in the keychain so that 'sesame renew' and the agent can get a new ticket when this one can no longer be renewed")
	rootCmd.AddCommand(cmd)
}

// runKinit is `sesame kinit` without cobra: it loads krb5.conf, resolves
// the cache, obtains or renews the TGT and stores it atomically.
func runKinit(ctx context.Context, p kinitParams, stdin io.Reader) error {
	if p.forwardable && p.notForwardable {
		return newUsageError(subcommand("kinit"), "-f and -F contradict each other")
	}
	if p.proxiable && p.notProxiable {
		return newUsageError(subcommand("kinit"), "-p and -P contradict each other")
	}
	if p.addresses && p.noAddresses {
		return newUsageError(subcommand("kinit"), "-a and -A contradict each other")
	}
	if p.armor != "" && p.renew {
		return errors.New("-T armors a login and -R renews the ticket in the cache: use one of them")
	}
	if p.armor != "" && p.remember {
		// The agent and sesame renew would later log in with the stored
		// password but without the armor, where the site expects FAST.
		return errors.New("--remember cannot go with -T: later logins with the stored password would not be armored")
	}
	if p.service != "" && p.renew {
		return errors.New("-S and -R contradict each other: -R renews the ticket-granting ticket")
	}
	if p.keytabName != "" || p.clientKeytab {
		p.useKeytab = true // MIT: -t and -i imply -k
	}
	if p.keytabName != "" && p.clientKeytab {
		return newUsageError(subcommand("kinit"), "-t and -i contradict each other")
	}
	if p.useKeytab && p.passwordStdin {
		return errors.New("--password-stdin and a keytab (-k, -t, -i) contradict each other")
	}
	if p.remember && (p.useKeytab || p.renew) {
		return errors.New("--remember stores a password and goes with a password login only")
	}
	if p.renew && (p.useKeytab || p.passwordStdin) {
		return errors.New("-R renews the ticket in the cache and takes no password or keytab")
	}
	cfg, name, err := loadCache(p.ccache)
	if err != nil {
		return err
	}
	if p.verbose {
		// MIT's wording and its cache name without the type.
		which := "default"
		if p.ccache != "" {
			which = "specified"
		}
		fmt.Fprintf(os.Stdout, "Using %s cache: %s\n", which, name.Residual)
	}
	if p.renew {
		if err := renewCache(ctx, cfg, name, p.principal); err != nil {
			return err
		}
		if p.verbose {
			fmt.Fprintln(os.Stdout, "Authenticated to Kerberos v5")
		}
		return nil
	}

	opt, cl, err := loginOptions(cfg, name, p)
	if err != nil {
		return err
	}
	var asker *secretAsker
	if p.armor != "" {
		// Read before any password prompt: a missing armor fails at once.
		if opt.Armor, err = readArmor(p.armor); err != nil {
			return err
		}
	}
	if p.useKeytab {
		opt.Keytab, err = loadKeytab(cfg, p.keytabName, p.clientKeytab)
		if err != nil {
			return err
		}
	} else {
		if _, err := krb.ParseLoginPrincipal(opt.Principal, cfg.DefaultRealm, opt.Enterprise); err != nil {
			return err
		}
		// Asked when the KDC says what it needs (a password, or a
		// one-time password under FAST), as MIT kinit asks.
		ask, err := newSecretAsker(p.passwordStdin, stdin)
		if err != nil {
			return err
		}
		defer ask.close()
		opt.Prompt = ask.prompt
		asker = ask
	}
	if p.verbose {
		if princ, err := krb.ParseLoginPrincipal(opt.Principal, cfg.DefaultRealm, opt.Enterprise); err == nil {
			fmt.Fprintf(os.Stdout, "Using principal: %s\n", princ)
		}
	}
	target, fresh, err := collectionTarget(name, p, cfg, opt.Principal)
	if err != nil {
		return err
	}
	cc, err := cl.Login(ctx, opt)
	if err != nil {
		return err
	}
	if asker != nil {
		opt.Password = asker.password
	}
	if fresh {
		if target, err = name.NewSubsidiary(); err != nil {
			return err
		}
	}
	if err := target.Replace(cc); err != nil {
		if fresh {
			target.Destroy()
		}
		return err
	}
	// A new ticket: whatever stopped an earlier renewer no longer applies.
	// For a DIR: collection the renewer may be keyed by the collection's
	// name as well as by the file the ticket went to.
	krb.ClearKeeperState(target.String())
	if name.String() != target.String() {
		krb.ClearKeeperState(name.String())
	}
	// The KDC has just accepted this secret: a rejection recorded for it
	// (it was changed back, or the account was unlocked) no longer holds.
	forgetRejection(cc.DefaultPrincipal, opt)
	krb.ClearDamagedRejection(target.String(), cc.DefaultPrincipal.String())
	if name.String() != target.String() {
		krb.ClearDamagedRejection(name.String(), cc.DefaultPrincipal.String())
	}
	if p.verbose {
		fmt.Fprintln(os.Stdout, "Authenticated to Kerberos v5")
	}
	if p.remember && opt.Password == nil {
		return errors.New("ticket obtained, but nothing was stored: --remember stores a password, and this login used none")
	}
	if p.remember {
		// Only a password the KDC has just accepted is stored.
		if err := rememberPassword(cc.DefaultPrincipal.String(), opt.Password); err != nil {
			return fmt.Errorf("ticket obtained, but the password was not stored: %w", err)
		}
	}
	if fresh || target.String() != name.String() {
		return target.SetPrimary()
	}
	return nil
}

// forgetRejection clears the records of the secret in opt (password or
// keytab key) having been rejected for principal.
func forgetRejection(princ krb.Principal, opt krb.LoginOptions) {
	var fp string
	var err error
	if opt.Keytab != nil {
		fp, _, err = krb.KeytabFingerprint(opt.Keytab, princ)
	} else if opt.Password == nil {
		return
	} else {
		fp, err = krb.PasswordFingerprint(princ.String(), opt.Password)
	}
	if err == nil {
		krb.ClearRejectedSecret(princ.String(), fp)
	}
}

// rememberPassword stores the password for principal in the keychain
// (backend from SESAME_BACKEND; vault passphrase from
// SESAME_PASSPHRASE_FILE, else asked on the terminal).
func rememberPassword(principal string, password []byte) error {
	src := keychain.PassphraseFromEnv()
	if src == nil {
		src = ttyVaultPassphrase
	}
	kc, err := keychain.Open(keychain.Options{Passphrase: src})
	if err != nil {
		return err
	}
	defer kc.Close()
	return kc.SetKrbPassword(principal, password)
}

// collectionTarget picks the cache of a DIR collection for the principal
// the way MIT kinit does when the default cache is a collection and a
// principal is named: the cache that already holds that principal's
// tickets, else the primary cache if it is empty, else a new cache (fresh)
// that becomes the primary. Anything else writes to name itself.
func collectionTarget(name krb.CacheName, p kinitParams, cfg *krb.Config, princ string) (krb.CacheName, bool, error) {
	if !name.IsCollection() || p.principal == "" || p.ccache != "" {
		return name, false, nil
	}
	want, err := krb.ParseLoginPrincipal(princ, cfg.DefaultRealm, p.enterprise)
	if err != nil {
		return name, false, err
	}
	members, err := name.Collection()
	if err != nil {
		return name, false, err
	}
	for _, m := range members {
		if cc, err := m.Read(); err == nil && cc.DefaultPrincipal.Equal(want) {
			return m, false, nil
		}
	}
	if cc, err := name.Read(); err != nil || len(cc.DefaultPrincipal.Components) == 0 {
		return name, false, nil
	}
	return name, true, nil
}

// loginOptions turns the flags into krb.LoginOptions, with krb5.conf's
// defaults for whatever was not given.
func loginOptions(cfg *krb.Config, name krb.CacheName, p kinitParams) (krb.LoginOptions, *krb.Client, error) {
	princ := p.principal
	var existing *krb.CCache
	if old, err := name.Read(); err == nil {
		existing = old
	}
	if princ == "" {
		switch {
		case p.useKeytab:
			// MIT kinit -k without a name uses the host principal.
			host, err := os.Hostname()
			if err != nil {
				return krb.LoginOptions{}, nil, fmt.Errorf("no principal given and no host name: %w", err)
			}
			princ = "host/" + strings.ToLower(host)
		case existing != nil && len(existing.DefaultPrincipal.Components) > 0:
			princ = existing.DefaultPrincipal.String()
		default:
			// MIT kinit: the name of the real uid, from NSS.
			name, err := osuser.Name(os.Getuid())
			if err != nil {
				return krb.LoginOptions{}, nil, fmt.Errorf("no principal given and no user name: %w", err)
			}
			princ = name
		}
	}
	parsed, err := krb.ParseLoginPrincipal(princ, cfg.DefaultRealm, p.enterprise)
	if err != nil {
		return krb.LoginOptions{}, nil, err
	}
	cl := krb.NewClient(cfg.Gokrb5(parsed.Realm))
	opt := cl.DefaultLoginOptions()
	opt.Principal = princ
	opt.Enterprise = p.enterprise
	if p.canonicalize {
		opt.Canonicalize = true
	}
	if p.lifetime != "" {
		if opt.Lifetime, err = parseLife("-l", p.lifetime); err != nil {
			return opt, nil, err
		}
	}
	if p.renewable != "" {
		if opt.RenewLife, err = parseLife("-r", p.renewable); err != nil {
			return opt, nil, err
		}
	}
	if p.forwardable {
		opt.Forwardable = true
	}
	if p.notForwardable {
		opt.Forwardable = false
	}
	if p.proxiable {
		opt.Proxiable = true
	}
	if p.notProxiable {
		opt.Proxiable = false
	}
	opt.Addresses = p.addresses
	opt.Service = p.service
	// Start from the offset MIT or sesame recorded against the same KDCs.
	if existing != nil && existing.HasKDCOffset && strings.EqualFold(existing.DefaultPrincipal.Realm, parsed.Realm) {
		opt.KDCOffset = existing.KDCOffset
	}
	return opt, cl, nil
}

func parseLife(flag, s string) (time.Duration, error) {
	d, err := krb.ParseDeltat(s)
	if err != nil || d <= 0 {
		return 0, newUsageError(subcommand("kinit"), "bad value %q for %s: want a duration such as 10h, 7d, 90m or 30s", s, flag)
	}
	return d, nil
}

// renewCache is kinit -R: a TGS RENEW of the cached TGT, keeping the
// other entries of the cache.
func renewCache(ctx context.Context, cfg *krb.Config, name krb.CacheName, princ string) error {
	cc, err := name.Read()
	if err != nil {
		return err
	}
	if princ != "" {
		want, err := krb.ParsePrincipal(princ, cfg.DefaultRealm)
		if err != nil {
			return err
		}
		if !want.Equal(cc.DefaultPrincipal) {
			return fmt.Errorf("the cache %s holds tickets of %s, not %s", name, cc.DefaultPrincipal, want)
		}
	}
	cl := krb.NewClient(cfg.Gokrb5(cc.DefaultPrincipal.Realm))
	old, _ := cc.TGT()
	nc, err := cl.Renew(ctx, cc)
	if err != nil {
		return err
	}
	fresh, ok := nc.TGT()
	if !ok {
		return errors.New("the KDC reply held no ticket-granting ticket")
	}
	// Under the cache's lock, and only if it still holds the ticket that
	// was renewed: a kinit or kdestroy meanwhile wins.
	err = name.Update(ctx, func(cur *krb.CCache) (*krb.CCache, error) {
		t, ok := cur.TGT()
		if !ok || !cur.DefaultPrincipal.Equal(cc.DefaultPrincipal) || !bytes.Equal(t.Ticket, old.Ticket) {
			return nil, krb.ErrCacheChanged
		}
		cur.Upsert(*fresh)
		if nc.HasKDCOffset {
			cur.SetKDCOffset(nc.KDCOffset)
		}
		return cur, nil
	})
	if errors.Is(err, krb.ErrCacheChanged) {
		return fmt.Errorf("the cache %s was replaced while its ticket was being renewed; the new one is kept", name)
	}
	return err
}

// loadKeytab opens the keytab named by -t; with -i the default client
// keytab; otherwise KRB5_CLIENT_KTNAME when set (a keytab meant for
// clients), else the default keytab as MIT kinit -k uses it.
func loadKeytab(cfg *krb.Config, name string, client bool) (*keytab.Keytab, error) {
	if name == "" {
		var err error
		switch {
		case client:
			name, err = cfg.ClientKeytabName()
		case os.Getenv("KRB5_CLIENT_KTNAME") != "":
			name = os.Getenv("KRB5_CLIENT_KTNAME")
		default:
			name, err = cfg.KeytabName()
		}
		if err != nil {
			return nil, err
		}
	}
	path := name
	if i := strings.IndexByte(name, ':'); i > 0 && !strings.Contains(name[:i], "/") {
		switch strings.ToUpper(name[:i]) {
		case "FILE", "WRFILE":
			path = name[i+1:]
		default:
			return nil, fmt.Errorf("keytab %s: only FILE keytabs are supported", name)
		}
	}
	return readKeytab(path)
}

// maxPassword bounds what --password-stdin reads; no real password comes
// near it.
const maxPassword = 4096

// readPassword reads the password from stdin (one line) or from the
// controlling terminal without echo. Never from argv or the environment.
func readPassword(prompt string, fromStdin bool, stdin io.Reader) ([]byte, error) {
	if fromStdin {
		r := bufio.NewReaderSize(io.LimitReader(stdin, maxPassword+2), maxPassword+2)
		line, err := r.ReadSlice('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			if errors.Is(err, bufio.ErrBufferFull) {
				return nil, errors.New("password on standard input is too long")
			}
			return nil, fmt.Errorf("read password from standard input: %w", err)
		}
		pw := bytes.TrimRight(line, "\r\n")
		out := append([]byte(nil), pw...)
		clear(line)
		if len(out) == 0 {
			return nil, errors.New("no password on standard input")
		}
		return out, nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, &hintedError{errors.New("cannot prompt for the password: no terminal"), "pipe it in with --password-stdin, or use a keytab with -k"}
	}
	defer tty.Close()
	return readNoEcho(tty, prompt)
}

// readNoEcho switches echo off before it prints the prompt (so that
// typed-ahead characters are not shown either), reads one line, and puts
// the terminal back, also when the user interrupts.
func readNoEcho(tty *os.File, prompt string) ([]byte, error) {
	fd := int(tty.Fd())
	old, err := unix.IoctlGetTermios(fd, ioctlGetTermios)
	if err != nil {
		return nil, &hintedError{errors.New("cannot prompt for the password: /dev/tty is not a terminal"), "pipe it in with --password-stdin"}
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	noEcho.Lflag |= unix.ICANON | unix.ISIG
	noEcho.Iflag |= unix.ICRNL
	if err := unix.IoctlSetTermios(fd, ioctlSetTermios, &noEcho); err != nil {
		return nil, fmt.Errorf("cannot switch terminal echo off: %w", err)
	}
	restore := func() { unix.IoctlSetTermios(fd, ioctlSetTermios, old) }
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	defer func() { signal.Stop(sig); close(done) }()
	go func() {
		select {
		case <-sig:
			restore()
			fmt.Fprintln(tty)
			os.Exit(130)
		case <-done:
		}
	}()
	defer restore()
	fmt.Fprint(tty, prompt)
	defer fmt.Fprintln(tty)
	// Preallocated so that appending never leaves copies behind.
	pw := make([]byte, 0, maxPassword)
	var b [1]byte
	for {
		n, err := tty.Read(b[:])
		if n == 1 {
			if b[0] == '\n' || b[0] == '\r' {
				break
			}
			if len(pw) >= maxPassword {
				clear(pw)
				return nil, errors.New("password too long")
			}
			pw = append(pw, b[0])
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			clear(pw)
			return nil, fmt.Errorf("read password: %w", err)
		}
	}
	if len(pw) == 0 {
		return nil, errors.New("empty password")
	}
	return pw, nil
}

// readArmor reads the FAST armor cache named by -T (FILE: or DIR::
// names, as for -c).
func readArmor(flag string) (*krb.CCache, error) {
	hint := "create it with a keytab login, e.g. sesame kinit -k -c ARMOR_CACHE host/$(hostname -f)"
	// Resolving a DIR: name creates the directory and its primary file
	// when missing, as for -c; reading an armor cache must create nothing.
	if typ, res, ok := strings.Cut(flag, ":"); ok && strings.EqualFold(typ, "DIR") {
		must := filepath.Join(res, "primary")
		if rest, member := strings.CutPrefix(res, ":"); member {
			must = filepath.Dir(rest)
		}
		if _, err := os.Stat(must); err != nil {
			return nil, &hintedError{fmt.Errorf("armor cache %s: %s does not exist", flag, must), hint}
		}
	}
	n, err := krb.ParseCacheName(flag, "-T")
	if err != nil {
		return nil, err
	}
	cc, err := krb.ReadCCache(n.Path())
	if err != nil {
		return nil, &hintedError{fmt.Errorf("armor cache %s: %w", n, err), hint}
	}
	return cc, nil
}

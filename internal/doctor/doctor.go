// Package doctor explains what would happen on `ssh HOST`: whether a
// Kerberos ticket would be used, which agent answers and which keys it
// would offer and why, and what to change. It gathers facts and
// suggestions; `sesame doctor` prints them.
package doctor

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"

	"github.com/sesame-ssh/sesame/agent"
	"github.com/sesame-ssh/sesame/agent/pin"
	"github.com/sesame-ssh/sesame/keychain"
	"github.com/sesame-ssh/sesame/krb"
)

// Options say what to examine. The zero value examines the general health
// with the user's environment.
type Options struct {
	// Host is the destination as given to ssh ("host", "user@host",
	// "[host]:port"); empty for the general checks only.
	Host string
	// Port overrides the port (ssh -p); 0: from Host or ssh's config.
	Port int
	// SSHConfig is passed to ssh -G as -F; empty: the user's config.
	SSHConfig string
	// AgentSocket is the agent to ask; empty: $SSH_AUTH_SOCK.
	AgentSocket string
	// MaxOffer is what the agent offers an unpinned server; 0: read from
	// the running sesame agent's command line, else pin.DefaultMaxOffer.
	MaxOffer int
	// Files are the pin files; zero: pin.DefaultFiles().
	Files pin.Files
	// KnownHosts are the files the agent identifies servers with; nil:
	// pin.DefaultKnownHostsFiles().
	KnownHosts []string
	// SkipKeychain leaves out the keychain check (it may probe D-Bus).
	SkipKeychain bool
	Now          func() time.Time
}

// Report is everything doctor found. Times are zero when unknown.
type Report struct {
	Host        string         `json:"host,omitempty"`
	SSH         *SSHClient     `json:"ssh,omitempty"`
	Kerberos    Kerberos       `json:"kerberos"`
	Agent       Agent          `json:"agent"`
	Pins        Pins           `json:"pins"`
	Keychain    *Keychain      `json:"keychain,omitempty"`
	Offer       []HostOffer    `json:"offer,omitempty"`
	Suggestions []string       `json:"suggestions"`
	problems    map[string]int // dedup of suggestions
}

// SSHClient is what `ssh -G HOST` says the client would do.
type SSHClient struct {
	Version       string `json:"version,omitempty"`
	SessionBind   bool   `json:"session_bind"` // OpenSSH ≥ 8.9 tells the agent the host
	Hostname      string `json:"hostname"`
	Port          int    `json:"port"`
	User          string `json:"user"`
	GSSAPI        bool   `json:"gssapi_authentication"`
	Pubkey        bool   `json:"pubkey_authentication"`
	IdentityAgent string `json:"identity_agent,omitempty"`
	// ServerMethods are the authentication methods the server offers,
	// from a connection that sends only the "none" request; empty when
	// not reached.
	ServerMethods []string `json:"server_methods,omitempty"`
	Error         string   `json:"error,omitempty"`
}

// Kerberos is the state of the default credentials cache and, for a
// host, its realm.
type Kerberos struct {
	ConfigFiles  []string  `json:"config_files"`
	ConfigError  string    `json:"config_error,omitempty"`
	DefaultRealm string    `json:"default_realm,omitempty"`
	Cache        string    `json:"cache,omitempty"`
	CacheError   string    `json:"cache_error,omitempty"`
	Principal    string    `json:"principal,omitempty"`
	TGTValid     bool      `json:"tgt_valid"`
	TGTExpires   time.Time `json:"tgt_expires,omitzero"`
	RenewUntil   time.Time `json:"renew_until,omitzero"`
	HostRealm    string    `json:"host_realm,omitempty"`
	RealmSource  string    `json:"host_realm_source,omitempty"` // "domain_realm" or "default_realm"
	RealmCovered bool      `json:"realm_covered"`               // the TGT (or a cross-realm TGT) is for the host's realm
	ServiceValid bool      `json:"service_ticket_valid"`        // host/HOST@REALM already in the cache
	WouldUse     bool      `json:"gssapi_would_be_used"`
	// Renewal is what the last sesame renew or agent keeper of this
	// cache recorded, if any.
	Renewal *krb.KeeperState `json:"renewal,omitempty"`
	// TwoFactor: the ticket came from a one-time password, and
	// TwoFactorNote says until when it lasts.
	TwoFactor     bool   `json:"two_factor,omitempty"`
	TwoFactorNote string `json:"two_factor_note,omitempty"`
	// Preauth is what the KDC asks of the principal (probed without
	// any secret), or PreauthError why that could not be learned.
	Preauth      *krb.Preauth `json:"preauth,omitempty"`
	PreauthError string       `json:"preauth_error,omitempty"`
}

// Agent is what answers at SSH_AUTH_SOCK.
type Agent struct {
	Socket     string   `json:"socket,omitempty"`
	Reachable  bool     `json:"reachable"`
	Error      string   `json:"error,omitempty"`
	Sesame     bool     `json:"sesame"`
	Extensions []string `json:"extensions,omitempty"`
	PID        int      `json:"pid,omitempty"`
	Program    string   `json:"program,omitempty"`
	Keys       []Key    `json:"keys"`
	MaxOffer   int      `json:"max_offer"`
	// Locked cannot be asked over the agent protocol: an agent that is
	// locked lists no keys, like an empty one.
	MaybeLocked bool `json:"maybe_locked"`
}

// Key is one identity the agent holds.
type Key struct {
	Fingerprint string `json:"fingerprint"`
	Type        string `json:"type"`
	Comment     string `json:"comment"`
	// Destinations are the key's destination constraints in the agent
	// (ssh-add -h), as -h spells them.
	Destinations []string `json:"destinations,omitempty"`
	// Kind is how sesame's agent holds the key: software, sk (a FIDO
	// authenticator) or pkcs11 (a token), the last two through its
	// backend ssh-agent. Empty for another agent.
	Kind string `json:"kind,omitempty"`
}

// Pins summarises the pin files.
type Pins struct {
	File     string `json:"file"`
	Declared int    `json:"declared"`
	Learned  int    `json:"learned"`
	Error    string `json:"error,omitempty"`
}

// Keychain names the backend the agent would load keys from.
type Keychain struct {
	Backend     string `json:"backend"`
	Detail      string `json:"detail,omitempty"`
	VaultExists bool   `json:"vault_exists,omitempty"`
	NeedsUnlock bool   `json:"needs_passphrase,omitempty"`
	Error       string `json:"error,omitempty"`
}

// HostOffer is, for one host key known_hosts lists for the host, what the
// agent would offer and why.
type HostOffer struct {
	HostKey  string   `json:"host_key,omitempty"` // fingerprint; empty when not in known_hosts
	CA       bool     `json:"cert_authority,omitempty"`
	Source   string   `json:"known_hosts,omitempty"`
	Names    []string `json:"names,omitempty"`
	Revoked  bool     `json:"revoked,omitempty"`
	Declared []string `json:"declared,omitempty"` // "target key" lines
	Learned  []string `json:"learned,omitempty"`  // "user key" lines
	Offered  []Key    `json:"offered"`
	Reason   string   `json:"reason"`
	// Rotation is the agent's search for the key this server accepts.
	Rotation *pin.Rotation `json:"rotation,omitempty"`
}

func (r *Report) suggest(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if r.problems == nil {
		r.problems = map[string]int{}
	}
	if _, dup := r.problems[s]; dup {
		return
	}
	r.problems[s] = len(r.Suggestions)
	r.Suggestions = append(r.Suggestions, s)
}

// Check examines the machine and, when opt.Host is set, that host.
func Check(ctx context.Context, opt Options) (*Report, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Files == (pin.Files{}) {
		opt.Files = pin.DefaultFiles()
	}
	if opt.AgentSocket == "" {
		opt.AgentSocket = os.Getenv("SSH_AUTH_SOCK")
	}
	r := &Report{Suggestions: []string{}}
	var dest pin.Name
	user := ""
	if opt.Host != "" {
		host := opt.Host
		if i := strings.LastIndexByte(host, '@'); i >= 0 {
			user, host = host[:i], host[i+1:]
		}
		n, err := pin.ParseName(host)
		if err != nil {
			return nil, fmt.Errorf("host %q: %w", opt.Host, err)
		}
		if opt.Port != 0 {
			n.Port = opt.Port
		}
		dest = n
		r.Host = n.String()
		port := 0
		if opt.Port != 0 || strings.Contains(host, ":") {
			port = n.Port
		}
		r.SSH = sshClient(ctx, n.Host, port, user, opt.SSHConfig)
		if r.SSH.Error != "" {
			r.suggest("ssh -G %s fails (%s): fix ~/.ssh/config", n.Host, r.SSH.Error)
		} else {
			// ssh's config may rename the host or change the port.
			dest = pin.Name{Host: strings.ToLower(r.SSH.Hostname), Port: r.SSH.Port}
			r.Host = dest.String()
		}
	}

	checkKerberos(ctx, r, opt, dest)
	ids := checkAgent(ctx, r, opt)
	policy := checkPins(r, opt)
	if policy != nil && opt.Host != "" {
		if r.SSH != nil && r.SSH.User != "" {
			user = r.SSH.User
		}
		checkOffer(r, policy, dest, user, ids)
		if r.SSH != nil && slices.Contains(r.SSH.ServerMethods, "keyboard-interactive") && !policy.TwoFactor(dest.String(), user) {
			target := dest.String()
			if user != "" {
				target = user + "@" + target
			}
			r.suggest("%s offers keyboard-interactive (a password or one-time code at every login): if it asks for a code, sesame pin --2fa %s, then add the output of sesame ssh-config to ~/.ssh/config, so that one code serves a day's connections",
				dest, pin.ShellWord(target))
		}
	}
	if !opt.SkipKeychain {
		checkKeychain(r)
	}
	if r.SSH != nil && r.SSH.Error == "" {
		adviseSSH(r)
	}
	return r, nil
}

var sshVersionRE = regexp.MustCompile(`OpenSSH_(\d+)\.(\d+)`)

// sshClient asks `ssh -G` for the effective client configuration.
func sshClient(ctx context.Context, host string, port int, user, config string) *SSHClient {
	c := &SSHClient{}
	path, err := exec.LookPath("ssh")
	if err != nil {
		c.Error = "ssh not found"
		return c
	}
	if out, err := exec.CommandContext(ctx, path, "-V").CombinedOutput(); err == nil {
		c.Version = strings.TrimSpace(string(out))
		if m := sshVersionRE.FindStringSubmatch(c.Version); m != nil {
			major, _ := strconv.Atoi(m[1])
			minor, _ := strconv.Atoi(m[2])
			c.SessionBind = major > 8 || major == 8 && minor >= 9
		}
	}
	args := []string{"-G"}
	if config != "" {
		args = append(args, "-F", config)
	}
	if port != 0 {
		args = append(args, "-p", strconv.Itoa(port))
	}
	if user != "" {
		args = append(args, "-l", user)
	}
	args = append(args, "--", host)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		c.Error = strings.TrimSpace(firstLine(stderr.String()))
		if c.Error == "" {
			c.Error = err.Error()
		}
		return c
	}
	alias := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		switch k {
		case "hostname":
			c.Hostname = v
		case "port":
			c.Port, _ = strconv.Atoi(v)
		case "user":
			c.User = v
		case "gssapiauthentication":
			c.GSSAPI = v == "yes"
		case "pubkeyauthentication":
			c.Pubkey = v != "no"
		case "identityagent":
			c.IdentityAgent = v
		case "hostkeyalias":
			alias = v
		}
	}
	if alias != "" {
		// known_hosts, and so the pins by name, use the alias.
		c.Hostname = alias
	}
	c.ServerMethods = serverMethods(ctx, path, args[1:len(args)-2], host)
	return c
}

// serverMethods connects with ssh and sends only the "none" userauth
// request, which every client sends first and sshd does not count against
// MaxAuthTries: its answer lists the methods the server offers. The host
// key must already be known (StrictHostKeyChecking yes) and nothing is
// prompted (BatchMode); no key is offered and no agent is asked.
func serverMethods(ctx context.Context, sshPath string, opts []string, host string) []string {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	args := append([]string{"-v", "-T", "-o", "BatchMode=yes", "-o", "PreferredAuthentications=none",
		"-o", "StrictHostKeyChecking=yes", "-o", "ControlMaster=no", "-o", "ControlPath=none",
		"-o", "IdentityAgent=none", "-o", "ConnectTimeout=10"}, opts...)
	args = append(args, "--", host, "true")
	cmd := exec.CommandContext(ctx, sshPath, args...)
	cmd.Stdin = nil
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Run() // fails: no method is allowed to succeed
	const marker = "Authentications that can continue: "
	for _, line := range strings.Split(stderr.String(), "\n") {
		if _, list, ok := strings.Cut(line, marker); ok {
			return strings.Split(strings.TrimSpace(list), ",")
		}
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func checkKerberos(ctx context.Context, r *Report, opt Options, dest pin.Name) {
	k := &r.Kerberos
	cfg, err := krb.LoadConfig()
	if err != nil {
		k.ConfigError = err.Error()
		r.suggest("fix krb5.conf: %v", err)
		cfg = nil
	} else {
		k.ConfigFiles = cfg.Files
		k.DefaultRealm = cfg.DefaultRealm
	}
	if k.ConfigFiles == nil {
		k.ConfigFiles = []string{}
	}
	name, err := krb.ResolveCacheName("", cfg)
	var cc *krb.CCache
	// A cache type sesame cannot use, or one whose daemon or kernel
	// support is missing (no sssd-kcm, keyrings disabled), comes with a
	// hint naming the way out.
	var unusable interface{ Hint() string }
	if err != nil {
		k.CacheError = err.Error()
		if errors.As(err, &unusable) && unusable.Hint() != "" {
			r.suggest("%s", unusable.Hint())
		} else {
			unusable = nil
		}
	} else {
		k.Cache = name.String()
		cc, err = name.Read()
		if err != nil {
			k.CacheError = err.Error()
			if errors.As(err, &unusable) && unusable.Hint() != "" && !errors.Is(err, krb.ErrNoCache) {
				r.suggest("%s", unusable.Hint())
			} else if unusable = nil; !errors.Is(err, krb.ErrNoCache) {
				r.suggest("the credentials cache is unreadable: sesame kdestroy, then sesame kinit")
			}
		}
	}
	now := opt.Now()
	var tgt *krb.Credential
	if cc != nil {
		now = cc.KDCNow()
		k.Principal = cc.DefaultPrincipal.String()
		if t, ok := cc.TGT(); ok {
			tgt = t
			k.TGTValid = t.Valid(now)
			k.TGTExpires = t.EndTime
			k.RenewUntil = t.RenewTill
		}
	}
	if cc != nil && cfg != nil && len(cc.DefaultPrincipal.Components) > 0 {
		checkPreauth(ctx, k, cfg, cc)
	}
	if s, ok := krb.LoadKeeperState(name.String()); ok {
		k.Renewal = &s
		if !s.Running && !s.Stopped.IsZero() {
			r.suggest("background renewal stopped %s (%s): run sesame kinit, then sesame renew", s.Stopped.Local().Format(time.DateTime), s.Reason)
		}
	}
	switch {
	case cc == nil && (cfg == nil || len(cfg.Files) == 0):
		// No Kerberos here at all: nothing to suggest.
	case unusable != nil:
	case cc == nil || tgt == nil:
		r.suggest("get a Kerberos ticket: sesame kinit")
	case !k.TGTValid && now.Before(k.RenewUntil) && now.Before(k.TGTExpires):
		r.suggest("the ticket is not valid yet; check the clock")
	case !k.TGTValid:
		r.suggest("the Kerberos ticket expired at %s: sesame kinit", k.TGTExpires.Local().Format(time.DateTime))
	case !k.RenewUntil.IsZero() && k.RenewUntil.After(k.TGTExpires):
		if k.TGTExpires.Sub(now) < time.Hour {
			r.suggest("the ticket expires within the hour: sesame kinit -R renews it until %s", k.RenewUntil.Local().Format(time.DateTime))
		}
	}
	if dest.Host == "" {
		return
	}
	if cfg != nil {
		if realm := cfg.RealmOfHost(dest.Host); realm != "" {
			k.HostRealm, k.RealmSource = realm, "domain_realm"
		} else if cfg.DefaultRealm != "" {
			k.HostRealm, k.RealmSource = cfg.DefaultRealm, "default_realm"
		}
	}
	if cc != nil && k.TGTValid && k.HostRealm != "" {
		k.RealmCovered = realmCovered(cc, k.HostRealm, now)
		for _, c := range cc.Tickets() {
			if len(c.Server.Components) == 2 && c.Server.Components[0] == "host" &&
				strings.EqualFold(c.Server.Components[1], dest.Host) && c.Valid(now) {
				k.ServiceValid = true
			}
		}
	}
	gssapi := r.SSH != nil && r.SSH.Error == "" && r.SSH.GSSAPI
	k.WouldUse = gssapi && k.TGTValid && (k.RealmCovered || k.HostRealm == "")
	switch {
	case k.TGTValid && k.HostRealm != "" && !k.RealmCovered:
		r.suggest("%s is in realm %s (%s) but the ticket is for %s: kinit as a %s principal, or map the host in [domain_realm]",
			dest.Host, k.HostRealm, k.RealmSource, cc.DefaultPrincipal.Realm, k.HostRealm)
	case k.TGTValid && k.HostRealm == "":
		r.suggest("no realm for %s: add \"%s = REALM\" under [domain_realm] in krb5.conf", dest.Host, dest.Host)
	}
	if r.SSH != nil && r.SSH.Error == "" && !r.SSH.GSSAPI && k.TGTValid && k.RealmCovered {
		r.suggest("ssh will not use your Kerberos ticket: add \"GSSAPIAuthentication yes\" under \"Host %s\" in ~/.ssh/config (or run sesame ssh-config)", dest.Host)
	}
}

// checkAgent asks the agent at the socket who it is and what it holds.
func checkAgent(ctx context.Context, r *Report, opt Options) []agent.Identity {
	a := &r.Agent
	a.Socket = opt.AgentSocket
	a.Keys = []Key{}
	a.MaxOffer = opt.MaxOffer
	defer func() {
		if a.MaxOffer == 0 {
			a.MaxOffer = pin.DefaultMaxOffer
		}
	}()
	if a.Socket == "" {
		a.Error = "SSH_AUTH_SOCK is not set"
		r.suggest(`start sesame's agent: eval "$(sesame agent --shared -s)"`)
		return nil
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "unix", a.Socket)
	if err != nil {
		a.Error = err.Error()
		r.suggest(`nothing answers at SSH_AUTH_SOCK=%s: start the agent with eval "$(sesame agent --shared -s)"`, a.Socket)
		return nil
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	a.Reachable = true
	if uc, ok := conn.(*net.UnixConn); ok {
		if pid := peerPID(uc); pid > 0 {
			a.PID = pid
			if exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err == nil {
				a.Program = exe
			}
		}
	}
	client := xagent.NewClient(conn)
	if reply, err := client.Extension(agent.ExtQuery, nil); err == nil {
		a.Extensions = parseQuery(reply)
	}
	for _, e := range a.Extensions {
		if e == agent.ExtSessionBind {
			a.Sesame = true
		}
	}
	if a.Sesame && a.MaxOffer == 0 && a.PID > 0 {
		a.MaxOffer = maxOfferOf(a.PID)
	}
	keys, err := client.List()
	if err != nil {
		a.Error = "list keys: " + err.Error()
		return nil
	}
	var ids []agent.Identity
	for _, k := range keys {
		pub, err := ssh.ParsePublicKey(k.Blob)
		if err != nil {
			continue
		}
		ids = append(ids, agent.Identity{Key: pub, Comment: k.Comment})
		a.Keys = append(a.Keys, Key{Fingerprint: agent.KeyFingerprint(pub), Type: pub.Type(), Comment: k.Comment})
	}
	if a.Sesame {
		st := agentStatus(client)
		for i := range a.Keys {
			k := &a.Keys[i]
			k.Destinations = st.Destinations[k.Fingerprint]
			if k.Kind = st.Kinds[k.Fingerprint]; k.Kind == "" {
				k.Kind = "software"
			}
		}
	}
	if !a.Sesame {
		r.suggest(`SSH_AUTH_SOCK is another agent (%s), which offers every key to every server: use sesame's with eval "$(sesame agent --shared -s)"`, programName(a.Program))
	}
	if len(ids) == 0 {
		a.MaybeLocked = true
		r.suggest("the agent lists no keys: load them with sesame add FILE, or unlock it with sesame unlock")
	}
	return ids
}

func programName(p string) string {
	if p == "" {
		return "not sesame"
	}
	return filepath.Base(p)
}

// agentStatus asks sesame's agent for its status: the destination
// constraints (ssh-add -h) and the kinds of its keys.
func agentStatus(client xagent.ExtendedAgent) agent.Status {
	var st agent.Status
	reply, err := client.Extension(agent.ExtStatus, nil)
	if err != nil || len(reply) < 1 {
		return st
	}
	json.Unmarshal(reply[1:], &st)
	return st
}

// parseQuery reads the reply to the query extension: the reply code, then
// (SSH_AGENT_EXTENSION_RESPONSE, as OpenSSH answers) the string "query",
// then the names of the supported extensions.
func parseQuery(reply []byte) []string {
	if len(reply) == 0 {
		return nil
	}
	rest := reply[1:]
	if reply[0] == 29 && len(rest) >= 4+len(agent.ExtQuery) && string(rest[4:4+len(agent.ExtQuery)]) == agent.ExtQuery {
		rest = rest[4+len(agent.ExtQuery):]
	}
	var out []string
	for len(rest) >= 4 {
		n := int(uint32(rest[0])<<24 | uint32(rest[1])<<16 | uint32(rest[2])<<8 | uint32(rest[3]))
		if n > len(rest)-4 {
			break
		}
		out = append(out, string(rest[4:4+n]))
		rest = rest[4+n:]
	}
	return out
}

// maxOfferOf reads --max-offer from the agent's command line; the flag is
// passed on to a background agent, so it is there whenever it was given.
func maxOfferOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return 0
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	for i, a := range args {
		v, ok := strings.CutPrefix(a, "--max-offer=")
		if !ok && a == "--max-offer" && i+1 < len(args) {
			v, ok = args[i+1], true
		}
		if ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

func checkPins(r *Report, opt Options) *pin.Policy {
	p := &r.Pins
	p.File = opt.Files.Pins
	maxOffer := r.Agent.MaxOffer
	if maxOffer == 0 {
		maxOffer = pin.DefaultMaxOffer
	}
	policy := pin.New(pin.Options{
		PinsFile: opt.Files.Pins, LearnedFile: opt.Files.Learned, KnownHostsFiles: opt.KnownHosts,
		MaxOffer: maxOffer, NoLearn: true,
		PeerNames:    func(int) []pin.Name { return nil },
		Probe:        func(int) *pin.PeerConfig { return nil },
		RotationFile: opt.Files.RotationFile(),
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := policy.Err(); err != nil {
		p.Error = err.Error()
		r.suggest("fix the pins file (%v); until then the agent keeps the pins it had", err)
	}
	p.Declared = len(policy.Declared())
	p.Learned = len(policy.Learned())
	return policy
}

func keyOf(id agent.Identity) Key {
	return Key{Fingerprint: agent.KeyFingerprint(id.Key), Type: id.Key.Type(), Comment: id.Comment}
}

func checkOffer(r *Report, policy *pin.Policy, dest pin.Name, user string, ids []agent.Identity) {
	reports, err := policy.Explain(dest.String(), user, ids)
	if err != nil {
		r.suggest("cannot explain %s: %v", dest, err)
		return
	}
	loaded := map[string]bool{}
	for _, id := range ids {
		loaded[agent.KeyFingerprint(id.Key)] = true
	}
	for _, h := range reports {
		o := HostOffer{CA: h.CA, Source: h.Source, Revoked: h.Revoked, Reason: h.Reason, Offered: []Key{}}
		if h.HostKey != nil {
			o.HostKey = ssh.FingerprintSHA256(h.HostKey)
		}
		for _, n := range h.Names {
			o.Names = append(o.Names, n.String())
		}
		for _, d := range h.Declared {
			o.Declared = append(o.Declared, d.String())
			if !loaded[d.Key] && len(ids) > 0 {
				r.suggest("%s is pinned to %s (pins line %d) but not loaded: sesame add its private key file", d.Key, d.Target(), d.Line)
			}
		}
		for _, l := range h.Learned {
			o.Learned = append(o.Learned, fmt.Sprintf("%s %s (%d×, last %s)", l.User, l.Key, l.Count, l.LastUsed.Local().Format(time.DateTime)))
		}
		if h.Rotation != nil {
			o.Rotation = h.Rotation
			target := h.Rotation.Target()
			if h.Rotation.Exhausted {
				r.suggest("%s accepted none of the %d keys sesame offered and is offered none any more: if it takes a key, sesame pin %s KEY; to try them all again, sesame unpin %s", target, len(h.Rotation.Tried), pin.ShellWord(target), pin.ShellWord(target))
			} else {
				r.suggest("sesame is still looking for the key %s accepts (%d tried): end it with sesame pin %s KEY", target, len(h.Rotation.Tried), pin.ShellWord(target))
			}
		}
		offered := h.Offered
		if h.NotListed {
			// The agent will see a host key that has no names: what it
			// offers then is what it offers any unknown host key.
			offered = policy.Offer(&agent.ConnInfo{Binds: []agent.Bind{{HostKey: unknownHostKey()}}}, ids)
		}
		for _, id := range offered {
			o.Offered = append(o.Offered, keyOf(id))
		}
		r.Offer = append(r.Offer, o)
		switch {
		case h.NotListed:
			r.suggest("%s is not in known_hosts: ssh to it once and check the host key fingerprint; then pins by name apply (or pin by host key: sesame pin hostkey SHA256:… KEY)", dest)
		case h.Revoked:
			r.suggest("the host key of %s is @revoked in known_hosts: ask its administrators", dest)
		case h.CA:
		case len(h.Declared) > 0 && len(h.Offered) == 0 && len(ids) > 0:
			r.suggest("none of the keys pinned to %s is loaded: sesame add the pinned key, or sesame unpin %s", dest, dest)
		}
		if h.Unpinned && len(ids) > len(offered) {
			r.suggest("%s has no pin and the agent holds %d keys, of which it offers %d: pin the right one with sesame pin %s KEY", dest, len(ids), len(offered), dest)
		}
	}
}

// unknownHostKey is a host key no known_hosts file lists.
func unknownHostKey() ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	k, _ := ssh.NewPublicKey(pub)
	return k
}

func checkKeychain(r *Report) {
	k := &Keychain{}
	r.Keychain = k
	kc, err := keychain.Open(keychain.Options{})
	if err != nil {
		k.Error = err.Error()
		r.suggest("the keychain cannot be opened: %v", err)
		return
	}
	defer kc.Close()
	k.Backend = kc.Backend()
	k.Detail = strings.TrimSpace(strings.TrimPrefix(kc.Describe(), kc.Backend()))
	if k.Backend == keychain.BackendVault {
		if _, err := os.Stat(k.Detail); err == nil {
			k.VaultExists = true
			k.NeedsUnlock = kc.NeedsPassphrase()
		}
	}
}

// adviseSSH adds the suggestions about the ssh client itself.
func adviseSSH(r *Report) {
	s := r.SSH
	if s.Version != "" && !s.SessionBind {
		r.suggest("%s does not tell the agent which host it connects to (OpenSSH 8.9 does): add the output of sesame ssh-config to ~/.ssh/config", firstField(s.Version))
	}
	if s.IdentityAgent != "" && s.IdentityAgent != "SSH_AUTH_SOCK" && s.IdentityAgent != "none" &&
		os.ExpandEnv(strings.ReplaceAll(s.IdentityAgent, "$SSH_AUTH_SOCK", r.Agent.Socket)) != r.Agent.Socket {
		r.suggest("ssh's IdentityAgent for this host is %s, not SSH_AUTH_SOCK: the agent checked here is not the one ssh uses", s.IdentityAgent)
	}
	if !s.Pubkey {
		r.suggest("PubkeyAuthentication is off for this host in ssh's config: no key will be offered")
	}
}

func firstField(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return s
	}
	return strings.TrimSuffix(f[0], ",")
}

// realmCovered reports whether cc holds a valid TGT for realm: the
// client's own realm, or a cross-realm krbtgt/REALM@CLIENTREALM.
func realmCovered(cc *krb.CCache, realm string, now time.Time) bool {
	if tgt, ok := cc.TGT(); !ok || !tgt.Valid(now) {
		return false
	}
	if strings.EqualFold(cc.DefaultPrincipal.Realm, realm) {
		return true
	}
	for _, c := range cc.Tickets() {
		if len(c.Server.Components) == 2 && c.Server.Components[0] == "krbtgt" &&
			strings.EqualFold(c.Server.Components[1], realm) && c.Valid(now) {
			return true
		}
	}
	return false
}

// GSSAPICovers returns the test `sesame ssh-config` uses for
// GSSAPIAuthentication: whether every positive ssh_config host pattern
// maps (through [domain_realm], else the default realm) to a realm the
// default credentials cache holds a valid TGT for. It reads krb5.conf and
// the cache once; with no usable ticket it always answers false.
func GSSAPICovers() func(patterns []string) bool {
	no := func([]string) bool { return false }
	cfg, err := krb.LoadConfig()
	if err != nil {
		return no
	}
	name, err := krb.ResolveCacheName("", cfg)
	if err != nil {
		return no
	}
	cc, err := name.Read()
	if err != nil {
		return no
	}
	now := cc.KDCNow()
	return func(patterns []string) bool {
		n := 0
		for _, p := range patterns {
			if strings.HasPrefix(p, "!") {
				continue
			}
			n++
			// A wildcard stands for some host under it: "*.example.org"
			// is looked up as "x.example.org".
			host := strings.NewReplacer("*", "x", "?", "x").Replace(p)
			realm := cfg.RealmOfHost(host)
			if realm == "" {
				realm = cfg.DefaultRealm
			}
			if realm == "" || !realmCovered(cc, realm, now) {
				return false
			}
		}
		return n > 0
	}
}

// checkPreauth asks the KDC what it wants of the cache's principal (no
// secret is sent: the requests carry no pre-authentication) and notes a
// two-factor ticket. The cache's own TGT, when valid, is the armor for
// the look inside FAST.
func checkPreauth(ctx context.Context, k *Kerberos, cfg *krb.Config, cc *krb.CCache) {
	if k.TwoFactor = krb.TwoFactor(cc); k.TwoFactor {
		k.TwoFactorNote = krb.TwoFactorNote(cc)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	princ := cc.DefaultPrincipal
	cl := krb.NewClient(cfg.Gokrb5(princ.Realm))
	cl.Timeout = 3 * time.Second
	var armor *krb.CCache
	if k.TGTValid {
		armor = cc
	}
	p, err := cl.ProbePreauth(ctx, princ, armor)
	if err != nil {
		k.PreauthError = err.Error()
		return
	}
	k.Preauth = &p
}

package pin

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sesame-ssh/sesame/agent"
)

// DefaultMaxOffer is how many keys an unpinned server is offered. Each key
// a server rejects costs one of its MaxAuthTries (OpenSSH's default is 6,
// but clusters commonly set 3) and is a "Failed publickey" that fail2ban
// and account lockout policies count; a GSSAPI attempt before the keys
// costs one more. Two keys stay under a MaxAuthTries of 3 even after
// GSSAPI, and still leave an attempt for password or keyboard-interactive.
const DefaultMaxOffer = 2

// Options configure a Policy. The zero value uses the default files.
type Options struct {
	PinsFile        string   // declared pins; default DefaultPinsFile()
	LearnedFile     string   // learned pins; default DefaultLearnedFile()
	KnownHostsFiles []string // default DefaultKnownHostsFiles()
	MaxOffer        int      // keys offered to an unpinned server; default DefaultMaxOffer
	NoLearn         bool     // never record learned pins
	// PeerNames gives candidate names for the first bind from the client
	// process (ConnInfo.PID); default PeerNames, which reads an ssh
	// command line from /proc. Candidates count only when known_hosts
	// confirms them.
	PeerNames func(pid int) []Name
	// Probe inspects the client process of a connection bound for
	// authentication (ConnInfo.PID), at most once per process; default
	// ProbeSSH. Return nil when nothing is known.
	Probe func(pid int) *PeerConfig
	// RotationFile keeps the keys unpinned servers were offered without
	// success; default RotationFileName next to LearnedFile.
	RotationFile string
	// Notify, when set, is told when a login ended without any key being
	// accepted while the agent kept keys back (a desktop notification).
	Notify func(summary, body string)
	// PeerBinds tells whether the client process always binds its agent
	// connections, so that an unbound one comes from the far side of a
	// forwarding; default agent.OpenSSHBinds.
	PeerBinds func(pid int) bool
	Logger    *slog.Logger
	Now       func() time.Time
}

// Policy is the per-host pin policy; it implements agent.Policy. It
// re-reads its files when they change (a stat per call), so `sesame pin`
// and hand edits take effect at once in a running agent. Safe for
// concurrent use.
type Policy struct {
	opt Options
	log *slog.Logger

	mu sync.Mutex // guards everything below; methods named …Locked expect it held

	pinsSig    fileSig
	pins       *pinSet
	pinsErr    error
	pinsLoaded bool // a good pins file has been read

	learnedSig fileSig
	learned    []Learned    // the file's content plus pending events
	pending    []learnEvent // learned but not yet written
	lidx       learnedIndex
	learnedErr error
	writing    bool
	closed     bool
	flushers   int           // Flush calls waiting: the writer does not delay
	wake       chan struct{} // cuts the writer's delay short
	wg         sync.WaitGroup

	khSigs []fileSig
	kh     *KnownHosts

	hosts map[string]*hostInfo // host key fingerprint → identity, reset on any file change
	fps   map[string]keyFP     // key blob or raw ed25519 key → fingerprint

	lastRefresh time.Time // when the files were last checked
	peers       map[int]*peerEntry

	conns      map[*agent.ConnInfo]*connState
	rot        map[rotKey]*Rotation
	rotSig     fileSig
	rotWriteMu sync.Mutex
	notified   map[rotKey]time.Time

	procMu sync.Mutex // guards procs
	procs  map[procKey]*procEntry
}

// connState is what the policy remembers about one connection.
type connState struct {
	probed bool
	peer   *PeerConfig
	// A listing from the rotation: the server and user, and the keys
	// offered; recorded as tried when the connection ends unsigned.
	rk       rotKey
	names    []string
	offered  []string
	withheld int // keys the server may be offered that were kept back
	signed   bool
}

// keyFP caches a key's wire form and fingerprint.
type keyFP struct {
	blob []byte
	fp   string
}

var (
	_ agent.Policy         = (*Policy)(nil)
	_ agent.AllWhenUnbound = (*Policy)(nil)
	_ agent.ConnObserver   = (*Policy)(nil)
	_ agent.Reporter       = (*Policy)(nil)
)

// New returns a policy reading the files in opt. A bad pins file is not an
// error here: the policy starts with no declared pins and Err reports it.
func New(opt Options) *Policy {
	if opt.PinsFile == "" {
		opt.PinsFile = DefaultPinsFile()
	}
	if opt.LearnedFile == "" {
		opt.LearnedFile = DefaultLearnedFile()
	}
	if opt.KnownHostsFiles == nil {
		opt.KnownHostsFiles = DefaultKnownHostsFiles()
	}
	if opt.MaxOffer <= 0 {
		opt.MaxOffer = DefaultMaxOffer
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.PeerNames == nil {
		opt.PeerNames = PeerNames
	}
	if opt.Probe == nil {
		opt.Probe = ProbeSSH
	}
	if opt.RotationFile == "" {
		opt.RotationFile = filepath.Join(filepath.Dir(opt.LearnedFile), RotationFileName)
	}
	if opt.PeerBinds == nil {
		opt.PeerBinds = agent.OpenSSHBinds
	}
	p := &Policy{opt: opt, log: opt.Logger, pins: newPinSet(nil), kh: ParseKnownHosts(nil, ""),
		hosts: map[string]*hostInfo{}, fps: map[string]keyFP{}, peers: map[int]*peerEntry{},
		wake: make(chan struct{}, 1), conns: map[*agent.ConnInfo]*connState{}, rot: map[rotKey]*Rotation{},
		notified: map[rotKey]time.Time{}, procs: map[procKey]*procEntry{}}
	if p.log == nil {
		p.log = slog.Default()
	}
	p.khSigs = make([]fileSig, len(opt.KnownHostsFiles))
	p.mu.Lock()
	p.refreshLocked()
	p.mu.Unlock()
	return p
}

// Err returns the error of the last attempt to read the pins files, or
// nil. While it is set, the policy uses the pins it had before.
func (p *Policy) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshLocked()
	return errors.Join(p.pinsErr, p.learnedErr)
}

// Declared returns the declared pins in effect.
func (p *Policy) Declared() []Pin {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshLocked()
	return append([]Pin(nil), p.pins.pins...)
}

// Learned returns the learned pins, including those not yet written.
func (p *Policy) Learned() []Learned {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshLocked()
	return append([]Learned(nil), p.learned...)
}

// refreshLocked re-reads whichever file changed since the last call.
//
// A stat per file per call is how edits take effect at once without a
// watcher goroutine: it also catches editors that rename a new file over
// the old one and files on network home directories, where inotify is
// unreliable. It costs a few microseconds.
func (p *Policy) refreshLocked() {
	p.lastRefresh = time.Now()
	p.refreshPinsLocked()
	p.refreshOthersLocked()
}

// refreshSignLocked is the check before a signature: the pins file, which
// decides refusals, every time (a stat), so that an edit applies to the
// next signature; learned pins and known_hosts, which ssh's listing just
// before has checked, at most once a second.
func (p *Policy) refreshSignLocked() {
	p.refreshPinsLocked()
	if time.Since(p.lastRefresh) > signRefreshAfter {
		p.lastRefresh = time.Now()
		p.refreshOthersLocked()
	}
}

// refreshPinsLocked re-reads the declared pins when the file changed.
func (p *Policy) refreshPinsLocked() {
	if sig := statSig(p.opt.PinsFile); sig != p.pinsSig {
		p.pinsSig = sig
		data, pins, err := readPinsFile(p.opt.PinsFile)
		if err != nil {
			// Keep the old set: a half-typed line must not unpin every host.
			// With no old set (an agent starting on a broken file), the
			// good lines are better than none.
			p.pinsErr = err
			p.log.Warn("pins file not reloaded, keeping the previous pins", "err", err)
			if !p.pinsLoaded && data != nil {
				p.pins = newPinSet(parsePinsLenient(data))
				p.hosts = map[string]*hostInfo{}
			}
		} else {
			p.pinsLoaded = true
			p.pinsErr = nil
			p.pins = newPinSet(pins)
			p.hosts = map[string]*hostInfo{}
		}
	}
}

// refreshOthersLocked re-reads learned pins and known_hosts when changed.
func (p *Policy) refreshOthersLocked() {
	if sig := statSig(p.opt.LearnedFile); sig != p.learnedSig {
		p.learnedSig = sig
		l, err := ReadLearned(p.opt.LearnedFile)
		if err != nil {
			p.learnedErr = err
			p.log.Warn("learned pins not reloaded", "err", err)
		} else {
			p.learnedErr = nil
			for _, ev := range p.pending {
				l = ev.apply(l)
			}
			p.learned = l
			p.lidx = indexLearned(l)
		}
	}
	if sig := statSig(p.opt.RotationFile); sig != p.rotSig {
		p.rotSig = sig
		p.loadRotationLocked()
	}
	changed := false
	for i, f := range p.opt.KnownHostsFiles {
		if sig := statSig(f); sig != p.khSigs[i] {
			p.khSigs[i] = sig
			changed = true
		}
	}
	if changed {
		kh, err := LoadKnownHosts(p.opt.KnownHostsFiles)
		if err != nil {
			p.log.Warn("known_hosts not reloaded", "err", err)
		} else {
			p.kh = kh
			p.hosts = map[string]*hostInfo{}
		}
	}
}

// pinSet indexes declared pins for lookups by host name, host key and key.
type pinSet struct {
	pins       []Pin
	byHostKey  map[string][]int
	byHost     map[string][]int // literal host → pins naming it (no wildcards)
	wild       []int            // pins with a wildcard pattern
	byKey      map[string][]int
	candidates []Name // literal names to test against hashed known_hosts entries
}

func newPinSet(pins []Pin) *pinSet {
	s := &pinSet{pins: pins, byHostKey: map[string][]int{}, byHost: map[string][]int{}, byKey: map[string][]int{}}
	seen := map[Name]bool{}
	for i := range pins {
		p := &pins[i]
		if p.Key == "" {
			continue // a 2fa line pins no key
		}
		s.byKey[p.Key] = append(s.byKey[p.Key], i)
		if p.HostKey != "" {
			s.byHostKey[p.HostKey] = append(s.byHostKey[p.HostKey], i)
			continue
		}
		if p.Hosts.hasWildcard() {
			s.wild = append(s.wild, i)
		}
		for _, n := range p.Hosts.literals() {
			if !p.Hosts.hasWildcard() {
				s.byHost[n.Host] = append(s.byHost[n.Host], i)
			}
			if !seen[n] {
				seen[n] = true
				s.candidates = append(s.candidates, n)
			}
		}
	}
	return s
}

// match returns the indexes of the pins whose host part matches a server
// with host key fingerprint fp and the given names, in file order.
func (s *pinSet) match(fp string, names []Name) []int {
	hit := map[int]bool{}
	for _, i := range s.byHostKey[fp] {
		hit[i] = true
	}
	for _, n := range names {
		for _, i := range s.byHost[n.Host] {
			if !hit[i] && s.pins[i].Hosts.Match(n) {
				hit[i] = true
			}
		}
	}
	for _, i := range s.wild {
		for _, n := range names {
			if s.pins[i].Hosts.Match(n) {
				hit[i] = true
				break
			}
		}
	}
	out := make([]int, 0, len(hit))
	for i := range hit {
		out = append(out, i)
	}
	sort.Ints(out)
	return out
}

// learnedIndex answers the policy's questions about learned pins.
type learnedIndex struct {
	byHost  map[string][]int     // host key fp → entries
	lastUse map[string]time.Time // key fp → last successful use anywhere
}

func indexLearned(l []Learned) learnedIndex {
	x := learnedIndex{byHost: map[string][]int{}, lastUse: map[string]time.Time{}}
	for i := range l {
		x.byHost[l[i].HostKey] = append(x.byHost[l[i].HostKey], i)
		if l[i].LastUsed.After(x.lastUse[l[i].Key]) {
			x.lastUse[l[i].Key] = l[i].LastUsed
		}
	}
	return x
}

// hostInfo is what the policy knows about one server host key.
type hostInfo struct {
	fp       string
	names    []Name
	revoked  bool
	declared []int // declared pins for this host, any user
}

const maxCache = 4096

// hostLocked identifies a host key (cached until a file changes). Extra
// candidate names that known_hosts confirms are added to what is known
// about the key, so a hashed entry found once stays found.
func (p *Policy) hostLocked(key ssh.PublicKey, extra []Name) *hostInfo {
	fp := p.fpLocked(key)
	h := p.hosts[fp]
	if h == nil {
		h = &hostInfo{fp: fp, revoked: p.kh.isRevoked(key)}
		if !h.revoked {
			h.names = p.kh.Names(key, p.pins.candidates)
			h.declared = p.pins.match(fp, h.names)
		}
		if len(p.hosts) >= maxCache {
			p.hosts = map[string]*hostInfo{}
		}
		p.hosts[fp] = h
	}
	if h.revoked {
		return h
	}
	added := false
	for _, n := range extra {
		if !containsName(h.names, n) && p.kh.HasKey(n, key) {
			h.names = append(h.names, n)
			added = true
		}
	}
	if added {
		h.declared = p.pins.match(fp, h.names)
	}
	return h
}

// peerLocked returns what is cached about client process pid. A
// connection lists and then signs, and reading /proc on each would cost a
// good part of a signature, so facts are kept briefly. A reused pid within
// the window could only offer a wrong candidate name, which known_hosts
// would not confirm, or judge a new process by the old one's program.
func (p *Policy) peerLocked(pid int) *peerEntry {
	now := time.Now()
	if e, ok := p.peers[pid]; ok && now.Sub(e.at) < peerTTL {
		return e
	}
	if len(p.peers) >= maxCache {
		p.peers = map[int]*peerEntry{}
	}
	e := &peerEntry{at: now}
	p.peers[pid] = e
	return e
}

// peerNamesLocked is PeerNames of pid, cached.
func (p *Policy) peerNamesLocked(pid int) []Name {
	e := p.peerLocked(pid)
	if !e.namesKnown {
		e.names, e.namesKnown = p.opt.PeerNames(pid), true
	}
	return e.names
}

// peerBindsLocked is PeerBinds of pid, cached.
func (p *Policy) peerBindsLocked(pid int) bool {
	e := p.peerLocked(pid)
	if !e.bindsKnown {
		e.binds, e.bindsKnown = p.opt.PeerBinds(pid), true
	}
	return e.binds
}

const peerTTL = 10 * time.Second

type peerEntry struct {
	at                     time.Time
	names                  []Name
	binds                  bool
	namesKnown, bindsKnown bool
}

func containsName(names []Name, n Name) bool {
	for _, x := range names {
		if x == n {
			return true
		}
	}
	return false
}

// hopsLocked identifies every bind of the connection; the client process
// names the first one, the server it connected to itself.
func (p *Policy) hopsLocked(c *agent.ConnInfo) []*hostInfo {
	hops := make([]*hostInfo, len(c.Binds))
	for i := range c.Binds {
		var extra []Name
		if i == 0 && c.PID > 0 {
			extra = p.peerNamesLocked(c.PID)
		}
		hops[i] = p.hostLocked(c.Binds[i].HostKey, extra)
	}
	return hops
}

// fpLocked returns the SHA256 fingerprint of key, cached. Ed25519 keys,
// by far the most common, are looked up by their raw bytes: marshalling
// every loaded key on every listing would dominate the cost of Offer.
func (p *Policy) fpLocked(key ssh.PublicKey) string { return p.keyLocked(key).fp }

// keyLocked returns the wire form and fingerprint of the key an identity
// stands for: a certificate is judged as its key (agent.PlainKey), so
// pins, refusals and learned pins of the key hold for its certificates.
func (p *Policy) keyLocked(key ssh.PublicKey) keyFP {
	key = agent.PlainKey(key)
	var buf [64]byte
	var id []byte
	if key.Type() == ssh.KeyAlgoED25519 {
		if cp, ok := key.(ssh.CryptoPublicKey); ok {
			if ed, ok := cp.CryptoPublicKey().(ed25519.PublicKey); ok {
				id = append(append(buf[:0], 'E'), ed...)
			}
		}
	}
	var blob []byte
	if id == nil {
		blob = key.Marshal()
		id = blob
	}
	if k, ok := p.fps[string(id)]; ok {
		return k
	}
	if blob == nil {
		blob = key.Marshal()
	}
	sum := sha256.Sum256(blob)
	k := keyFP{blob: blob, fp: "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])}
	if len(p.fps) >= maxCache {
		p.fps = map[string]keyFP{}
	}
	p.fps[string(id)] = k
	return k
}

// Why a key is not permitted for a host.
type refusal int

const (
	permitted refusal = iota
	hostRevoked
	notPinnedHere   // the host has declared pins, not this key
	pinnedElsewhere // the key has declared pins, none for this host
)

// permitsLocked decides whether key fp may authenticate as user ("" when
// unknown) to host h: a host with declared pins takes only its pinned
// keys; a key with declared pins goes only to the hosts it is pinned to.
func (p *Policy) permitsLocked(h *hostInfo, user, fp string) refusal {
	if h.revoked {
		return hostRevoked
	}
	hostPinned := false
	for _, i := range h.declared {
		pin := &p.pins.pins[i]
		if !pin.matchUser(user) {
			continue
		}
		hostPinned = true
		if pin.Key == fp {
			return permitted
		}
	}
	if hostPinned {
		return notPinnedHere
	}
	if len(p.pins.byKey[fp]) > 0 {
		return pinnedElsewhere
	}
	return permitted
}

// refusedError explains a refusal.
func refusedError(r refusal, h *hostInfo, fp string) *RefusedError {
	var why string
	switch r {
	case hostRevoked:
		why = "the server's host key " + h.fp + " is @revoked in known_hosts"
	case notPinnedHere:
		why = fmt.Sprintf("key %s is not pinned to the server with host key %s (%s)", fp, h.fp, namesString(h.names))
	default:
		why = fmt.Sprintf("key %s is pinned to other hosts, not to the server with host key %s (%s)", fp, h.fp, namesString(h.names))
	}
	return &RefusedError{Reason: why}
}

// RefusedError says why the policy refused a signature.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "sign refused: " + e.Reason }

func namesString(names []Name) string {
	if len(names) == 0 {
		return "not in known_hosts"
	}
	var b bytes.Buffer
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(n.String())
	}
	return b.String()
}

// OffersAllWhenUnbound says that Offer passes every key through, in order,
// on a connection without session-bind, so the agent may answer those from
// its prepared reply.
func (p *Policy) OffersAllWhenUnbound() bool { return true }

// Offer implements agent.Policy.
func (p *Policy) Offer(c *agent.ConnInfo, ids []agent.Identity) []agent.Identity {
	if c == nil || len(c.Binds) == 0 {
		return ids // ssh-add -l and clients without session-bind see every key
	}
	if !chainForwards(c) {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.connLocked(c)
	if st != nil && !st.probed {
		// ssh's configuration for this connection, learned once per
		// process and never under the lock: the probe may take a while.
		p.mu.Unlock()
		peer := p.probe(c.PID)
		p.mu.Lock()
		st.probed, st.peer = true, peer
	}
	p.refreshLocked()
	return p.offerLocked(c, st, ids)
}

// connLocked returns the state of a bound connection, creating it. Only a
// client's own authentication (one bind, not forwarding, a known pid) has
// a process worth inspecting: a forwarded agent's client is elsewhere.
func (p *Policy) connLocked(c *agent.ConnInfo) *connState {
	st := p.conns[c]
	if st == nil {
		if len(p.conns) >= maxCache {
			p.conns = map[*agent.ConnInfo]*connState{}
		}
		st = &connState{}
		p.conns[c] = st
		if len(c.Binds) != 1 || c.Binds[0].Forwarding || c.PID <= 0 {
			st.probed = true
		}
	}
	return st
}

type cand struct {
	id agent.Identity
	fp string
}

func pick(cs []cand) []agent.Identity {
	out := make([]agent.Identity, len(cs))
	for i, k := range cs {
		out[i] = k.id
	}
	return out
}

func (p *Policy) offerLocked(c *agent.ConnInfo, st *connState, ids []agent.Identity) []agent.Identity {
	hops := p.hopsLocked(c)
	user := ""
	var peer *PeerConfig
	if st != nil && st.peer != nil {
		peer = st.peer
		user = peer.User
	}
	// Only keys every hop of the chain permits: anything else would be
	// refused at signing and only cost the user an attempt.
	var ok []cand
	for _, id := range ids {
		fp := p.fpLocked(id.Key)
		allowed := true
		for i, h := range hops {
			u := ""
			if i == len(hops)-1 {
				u = user
			}
			if p.permitsLocked(h, u, fp) != permitted {
				allowed = false
				break
			}
		}
		if allowed {
			ok = append(ok, cand{id, fp})
		}
	}
	dest := c.Binds[len(c.Binds)-1]
	if dest.Forwarding {
		// Listing on a host the agent was forwarded to: not an
		// authentication, so no cap, in the agent's order.
		return pick(ok)
	}
	h := hops[len(hops)-1]

	// The client's explicit choice: with IdentitiesOnly ssh tries only
	// its identity files' keys, so those are listed (ssh itself limits
	// the attempts); identity files named without it come first.
	var named []cand
	if peer != nil && (peer.IdentitiesOnly || peer.Explicit) {
		want := map[string]bool{}
		for _, k := range peer.Keys {
			want[k] = true
		}
		for _, k := range ok {
			if want[k.fp] {
				named = append(named, k)
			}
		}
		if peer.IdentitiesOnly {
			return pick(named)
		}
	}
	rest := p.chooseLocked(st, h, user, ok, named)
	if len(named) == 0 {
		return rest
	}
	return append(pick(named), rest...)
}

// chooseLocked picks the keys for a server by its pins, or from the
// rotation for an unpinned one; keys in skip are already listed.
func (p *Policy) chooseLocked(st *connState, h *hostInfo, user string, ok, skip []cand) []agent.Identity {
	if len(skip) > 0 {
		drop := map[string]bool{}
		for _, k := range skip {
			drop[k.fp] = true
		}
		var left []cand
		for _, k := range ok {
			if !drop[k.fp] {
				left = append(left, k)
			}
		}
		ok = left
	}
	byRecency := func(cs []cand, last func(string) time.Time) {
		sort.SliceStable(cs, func(i, j int) bool { return last(cs[i].fp).After(last(cs[j].fp)) })
	}
	globalLast := func(fp string) time.Time { return p.lidx.lastUse[fp] }

	// Declared pins for this user (every user's when the user is not
	// known before the sign request).
	pinned := map[string]bool{}
	for _, i := range h.declared {
		if pin := &p.pins.pins[i]; pin.matchUser(user) {
			pinned[pin.Key] = true
		}
	}
	if len(pinned) > 0 {
		var cs []cand
		for _, k := range ok {
			if pinned[k.fp] {
				cs = append(cs, k)
			}
		}
		byRecency(cs, globalLast)
		return pick(cs)
	}
	if idx := p.lidx.byHost[h.fp]; len(idx) > 0 {
		here := map[string]time.Time{}
		for _, i := range idx {
			l := &p.learned[i]
			if user != "" && l.User != user {
				continue // another account's key
			}
			if l.LastUsed.After(here[l.Key]) || here[l.Key].IsZero() {
				here[l.Key] = l.LastUsed
			}
		}
		var cs []cand
		for _, k := range ok {
			if _, found := here[k.fp]; found {
				cs = append(cs, k)
			}
		}
		if len(cs) > 0 {
			byRecency(cs, func(fp string) time.Time { return here[fp] })
			return pick(cs)
		}
	}
	// Unpinned host (or a new account on it): keys that worked elsewhere,
	// most recently successful first, then the others in the agent's
	// order, and last the keys of other accounts on this server (a second
	// account seldom shares the first one's key); keys this server was
	// offered before without success are skipped; at most MaxOffer.
	otherAccount := map[string]bool{}
	for _, i := range p.lidx.byHost[h.fp] {
		otherAccount[p.learned[i].Key] = true
	}
	var used, fresh, others []cand
	for _, k := range ok {
		if _, found := p.lidx.lastUse[k.fp]; otherAccount[k.fp] {
			others = append(others, k)
		} else if found {
			used = append(used, k)
		} else {
			fresh = append(fresh, k)
		}
	}
	byRecency(used, globalLast)
	all := append(append(used, fresh...), others...)
	rk := rotKey{h.fp, user}
	if r := p.rotationLocked(rk); r != nil {
		tried := map[string]bool{}
		for _, k := range r.Tried {
			tried[k] = true
		}
		var untried []cand
		for _, k := range all {
			if !tried[k.fp] {
				untried = append(untried, k)
			}
		}
		if len(untried) == 0 && len(all) > 0 && !r.Exhausted {
			r.Exhausted = true
			p.saveRotationAsyncLocked()
		}
		all = untried
	}
	limit := p.opt.MaxOffer - len(skip)
	if limit < 0 {
		limit = 0
	}
	out := all
	if len(out) > limit {
		out = out[:limit]
	}
	if st != nil && len(skip) == 0 {
		st.rk = rk
		st.names = namesStrings(h.names)
		st.offered = st.offered[:0]
		for _, k := range out {
			st.offered = append(st.offered, k.fp)
		}
		st.withheld = len(all) - len(out)
	}
	return pick(out)
}

func namesStrings(ns []Name) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.String()
	}
	return out
}

// chainForwards checks that every bind before the last one forwards the
// agent: after a bind for authentication the connection may not be used
// as a hop (OpenSSH: "tried to forward though signing bind").
func chainForwards(c *agent.ConnInfo) bool {
	for i := 0; i < len(c.Binds)-1; i++ {
		if !c.Binds[i].Forwarding {
			return false
		}
	}
	return true
}

// signRefreshAfter is how old the last check of the learned pins and
// known_hosts may be at a signature.
const signRefreshAfter = time.Second

// Errors for sign requests that do not fit the connection's binds.
var (
	ErrSessionMismatch = errors.New("sign refused: the userauth request is for another session than the one this connection is bound to")
	ErrKeyMismatch     = errors.New("sign refused: the userauth request names another key than the one asked to sign")
	ErrHostKeyMismatch = errors.New("sign refused: the hostbound userauth request names another host key than the bound one")
	ErrForwardingHop   = errors.New("sign refused: userauth on a connection whose last bind forwards the agent")
	ErrBrokenChain     = errors.New("sign refused: an earlier bind on this connection was for authentication, not forwarding")
	ErrNotHostbound    = errors.New("sign refused: a pinned key signs through a forwarded agent only a hostbound userauth request (publickey-hostbound-v00@openssh.com)")
	ErrUnidentified    = errors.New("sign refused: a pinned key signs only authentication requests on a bound connection")
	ErrUnboundRelay    = errors.New("sign refused: a pinned key does not sign on an unbound connection of an ssh that binds its own (the request comes through a forwarded socket)")
)

// CheckSign implements agent.Policy.
func (p *Policy) CheckSign(c *agent.ConnInfo, key ssh.PublicKey, data []byte) error {
	if c == nil {
		return nil
	}
	if len(c.Binds) == 0 {
		return p.checkUnbound(c, key)
	}
	req, perr := ParseUserauthRequest(data)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshSignLocked()
	k := p.keyLocked(key)
	fp := k.fp
	if perr != nil {
		// Not an authentication: OpenSSH refuses this for
		// destination-constrained keys; pinned keys are ours.
		if len(p.pins.byKey[fp]) > 0 {
			return ErrUnidentified
		}
		return nil
	}
	dest := &c.Binds[len(c.Binds)-1]
	if !req.NamesKey(k.blob) {
		return ErrKeyMismatch
	}
	if subtle.ConstantTimeCompare(req.SessionID, dest.SessionID) != 1 {
		return ErrSessionMismatch
	}
	if dest.Forwarding {
		return ErrForwardingHop
	}
	if !chainForwards(c) {
		return ErrBrokenChain
	}
	if req.HostKey != nil && !bytes.Equal(req.HostKey, dest.HostKey.Marshal()) {
		return ErrHostKeyMismatch
	}
	// Through a forwarded agent, the binds were made by the hops; only a
	// hostbound request ties the signature to the bound server. OpenSSH
	// refuses the others for destination-constrained keys; pinned keys
	// are ours.
	if req.HostKey == nil && len(c.Binds) > 1 && len(p.pins.byKey[fp]) > 0 {
		return ErrNotHostbound
	}
	// Every hop of the chain must permit the key, as OpenSSH's
	// destination constraints require; only the last hop knows the user.
	hops := p.hopsLocked(c)
	for i := range c.Binds {
		user := ""
		if i == len(c.Binds)-1 {
			user = req.User
		}
		h := hops[i]
		if r := p.permitsLocked(h, user, fp); r != permitted {
			err := refusedError(r, h, fp)
			if i < len(c.Binds)-1 {
				err.Reason = fmt.Sprintf("forwarded through hop %d: %s", i+1, err.Reason)
			}
			return err
		}
	}
	return nil
}

// checkUnbound decides a signature on a connection without session-bind:
// signed like ssh-agent (ssh-keygen -Y sign, clients that cannot bind)
// unless the key is pinned and the peer is a client that binds every
// connection of its own, which makes this one a relay for the far side.
func (p *Policy) checkUnbound(c *agent.ConnInfo, key ssh.PublicKey) error {
	if c.PID <= 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshSignLocked()
	if len(p.pins.byKey[p.fpLocked(key)]) == 0 {
		return nil
	}
	if p.peerBindsLocked(c.PID) {
		return ErrUnboundRelay
	}
	return nil
}

// Signed implements agent.Policy: a signed userauth request on a bound
// connection means the server accepted the key for that user, so the pair
// is learned. The file is written in the background.
func (p *Policy) Signed(c *agent.ConnInfo, key ssh.PublicKey, data []byte) {
	if p.opt.NoLearn || c == nil || len(c.Binds) == 0 {
		return
	}
	req, err := ParseUserauthRequest(data)
	if err != nil {
		return
	}
	dest := &c.Binds[len(c.Binds)-1]
	if dest.Forwarding || subtle.ConstantTimeCompare(req.SessionID, dest.SessionID) != 1 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if st := p.conns[c]; st != nil {
		st.signed = true
	}
	hops := p.hopsLocked(c)
	h := hops[len(hops)-1]
	if h.revoked {
		return
	}
	// The server accepted a key: its rotation is over.
	dropped := false
	for _, u := range []string{req.User, ""} {
		if _, found := p.rot[rotKey{h.fp, u}]; found {
			delete(p.rot, rotKey{h.fp, u})
			dropped = true
		}
	}
	if dropped {
		p.saveRotationAsyncLocked()
	}
	names := make([]string, len(h.names))
	for i, n := range h.names {
		names[i] = n.String()
	}
	ev := learnEvent{hostKey: h.fp, user: req.User, key: p.fpLocked(key), names: names, at: p.opt.Now().UTC()}
	p.learned = ev.apply(p.learned)
	p.lidx = indexLearned(p.learned)
	p.pending = append(p.pending, ev)
	if !p.writing && !p.closed {
		p.writing = true
		p.wg.Add(1)
		go p.writeLoop()
	}
}

// learnWriteDelay is how long learned pins wait in memory before they are
// written: the agent uses them at once, and a burst of logins (a script
// running ssh in a loop) costs one file write, not one per signature.
// Flush and Close write without waiting.
const learnWriteDelay = time.Second

// writeLoop writes pending learned pins until none are left.
func (p *Policy) writeLoop() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		wait := !p.closed && p.flushers == 0
		p.mu.Unlock()
		if wait {
			t := time.NewTimer(learnWriteDelay)
			select {
			case <-t.C:
			case <-p.wake:
			}
			t.Stop()
		}
		p.mu.Lock()
		if len(p.pending) == 0 {
			p.writing = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		if err := p.writeLearned(); err != nil {
			p.log.Warn("learned pins not written", "err", err)
			p.mu.Lock()
			p.writing = false
			p.mu.Unlock()
			return
		}
	}
}

// writeLearned folds pending events into the file under its lock, re-read
// first so that a concurrent `sesame unpin` is not undone.
func (p *Policy) writeLearned() error {
	var evs []learnEvent
	err := UpdateLearned(p.opt.LearnedFile, func(disk []Learned) []Learned {
		p.mu.Lock()
		evs = p.pending
		p.pending = nil
		p.mu.Unlock()
		for _, ev := range evs {
			disk = ev.apply(disk)
		}
		return disk
	})
	if err != nil && len(evs) > 0 {
		// Not written: keep them for the next attempt.
		p.mu.Lock()
		p.pending = append(evs, p.pending...)
		p.mu.Unlock()
	}
	return err
}

// Flush writes learned pins that are still pending and waits for it.
func (p *Policy) Flush() error {
	p.mu.Lock()
	p.flushers++
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	p.wg.Wait()
	p.mu.Lock()
	p.flushers--
	p.mu.Unlock()
	p.mu.Lock()
	n := len(p.pending)
	p.mu.Unlock()
	if n == 0 {
		return nil
	}
	return p.writeLearned()
}

// Close flushes learned pins and stops background writes.
func (p *Policy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	return p.Flush()
}

// saveRotationAsyncLocked writes the rotation state in the background.
func (p *Policy) saveRotationAsyncLocked() {
	if p.closed || p.opt.NoLearn {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.saveRotation()
	}()
}

// ConnClosed implements agent.ConnObserver: a connection that listed keys
// from an unpinned server's rotation and ends without a signature means
// the server accepted none of them, so they count as tried and the next
// login offers the next ones.
func (p *Policy) ConnClosed(c *agent.ConnInfo) {
	p.mu.Lock()
	st := p.conns[c]
	delete(p.conns, c)
	if st == nil || st.signed || len(st.offered) == 0 || p.opt.NoLearn || p.closed {
		p.mu.Unlock()
		return
	}
	if st.peer != nil && st.peer.GSSAPIFirst && c.PID > 0 {
		// ssh lists keys before it tries anything; with Kerberos first,
		// a login may have succeeded without offering any key. A failed
		// ssh exits at once; one still running a moment later logged in
		// some other way, and its keys were not necessarily tried.
		start, ok := procStart(c.PID)
		p.wg.Add(1)
		p.mu.Unlock()
		time.AfterFunc(gssapiGrace, func() {
			defer p.wg.Done()
			if now, alive := procStart(c.PID); ok && alive && now == start {
				return
			}
			p.mu.Lock()
			p.recordTriedLocked(st)
		})
		return
	}
	p.recordTriedLocked(st)
}

// gssapiGrace is how long ssh has to exit after a failed login before the
// keys it was offered count as tried (when it tries Kerberos first).
const gssapiGrace = 2 * time.Second

// recordTriedLocked adds the keys a connection listed to its server's
// rotation and writes the state; it unlocks p.mu.
func (p *Policy) recordTriedLocked(st *connState) {
	r := p.rotationLocked(st.rk)
	if r == nil {
		r = &Rotation{HostKey: st.rk.hostKey, User: st.rk.user}
		p.rot[st.rk] = r
	}
	for _, k := range st.offered {
		if !slices.Contains(r.Tried, k) {
			r.Tried = append(r.Tried, k)
		}
	}
	if len(st.names) > 0 {
		r.Names = st.names
	}
	r.Updated = p.opt.Now().UTC()
	var note string
	if st.withheld > 0 && p.opt.Notify != nil && time.Since(p.notified[st.rk]) > notifyEvery {
		p.notified[st.rk] = time.Now()
		note = fmt.Sprintf("%s accepted none of the %d keys offered; %d more were kept back to stay under the server's limit, and the next login offers them. To end this: sesame pin %s KEY",
			r.Target(), len(st.offered), st.withheld, ShellWord(r.Target()))
	}
	p.wg.Add(1)
	p.mu.Unlock()
	p.saveRotation()
	p.wg.Done()
	if note != "" {
		p.opt.Notify("sesame: login without a key", note)
	}
}

// notifyEvery limits desktop notifications to one per server and user.
const notifyEvery = 10 * time.Minute

// ShellWord quotes s for a shell when it needs it (host names in
// brackets, patterns), so that a command printed for the user can be
// pasted as it is.
func ShellWord(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`*?[]{}()<>|&;!#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// procKey names a process for good: a pid and its start time.
type procKey struct {
	pid   int
	start uint64
}

type procEntry struct {
	done chan struct{}
	cfg  *PeerConfig
	at   time.Time
}

// probe returns what Options.Probe learns about process pid, running it
// at most once per process; it waits at most ProbeTimeout (and a little)
// for the answer, and nil means nothing is known.
func (p *Policy) probe(pid int) *PeerConfig {
	start, ok := procStart(pid)
	if !ok {
		return nil
	}
	k := procKey{pid, start}
	p.procMu.Lock()
	e := p.procs[k]
	if e == nil {
		if len(p.procs) >= maxCache {
			for k, old := range p.procs {
				if time.Since(old.at) > time.Minute {
					delete(p.procs, k)
				}
			}
			if len(p.procs) >= maxCache {
				p.procs = map[procKey]*procEntry{}
			}
		}
		e = &procEntry{done: make(chan struct{}), at: time.Now()}
		p.procs[k] = e
		go func() {
			e.cfg = p.opt.Probe(pid)
			close(e.done)
		}()
	}
	p.procMu.Unlock()
	t := time.NewTimer(ProbeTimeout + 500*time.Millisecond)
	defer t.Stop()
	select {
	case <-e.done:
		return e.cfg
	case <-t.C:
		return nil
	}
}

// procStart reads the start time of process pid (field 22 of
// /proc/PID/stat, after the command name in parentheses).
func procStart(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, false
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	return v, err == nil
}

// Report is what the policy knows now, for `sesame pins`.
type Report struct {
	Learned  []Learned  `json:"learned"`
	Rotation []Rotation `json:"rotation"`
	MaxOffer int        `json:"max_offer"`
	Error    string     `json:"error,omitempty"`
}

// Report implements agent.Reporter: the learned pins including those not
// yet written, and the rotation state.
func (p *Policy) Report() ([]byte, error) {
	p.mu.Lock()
	p.refreshLocked()
	r := Report{Learned: append([]Learned{}, p.learned...), Rotation: p.rotationsLocked(), MaxOffer: p.opt.MaxOffer}
	if err := errors.Join(p.pinsErr, p.learnedErr); err != nil {
		r.Error = err.Error()
	}
	p.mu.Unlock()
	return json.Marshal(r)
}

// Rotations returns the live rotation states, newest first.
func (p *Policy) Rotations() []Rotation {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshLocked()
	return p.rotationsLocked()
}

func (p *Policy) rotationsLocked() []Rotation {
	out := []Rotation{}
	for k := range p.rot {
		if r := p.rotationLocked(k); r != nil {
			c := *r
			c.Tried = append([]string(nil), r.Tried...)
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Updated.After(out[j].Updated) })
	return out
}

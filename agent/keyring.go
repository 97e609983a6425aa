package agent

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"
)

// Errors a client can be told about (as SSH_AGENT_FAILURE) and the command
// layer can inspect with errors.Is.
var (
	ErrLocked        = errors.New("agent is locked")
	ErrNotLocked     = errors.New("agent is not locked")
	ErrKeyNotFound   = errors.New("key not found")
	ErrRefused       = errors.New("refused")
	ErrUnsupported   = errors.New("unsupported constraint")
	ErrBadPassphrase = errors.New("incorrect passphrase")
)

// entry is one loaded identity: the signer and what the protocol shows of
// it. A certificate and its plain key are separate entries, as in OpenSSH,
// but a certificate inherits its key's constraints while the key is loaded
// (see PlainKey): it signs only with the key's confirmation too and goes
// when the key expires.
type entry struct {
	signer  ssh.Signer
	pub     ssh.PublicKey
	blob    string // pub.Marshal(), the lookup key
	pubBlob []byte // the same as bytes
	keyBlob string // PlainKey(pub).Marshal(): blob for a plain key
	comment string
	expire  time.Time // zero: never
	confirm bool
	timer   *time.Timer
	priv    any              // the private key as added, for sealing
	cert    *ssh.Certificate // nil for a plain key
	// dest are the key's destination constraints (ssh-add -h); exts the
	// constraint extensions as added, kept to add the key again after a
	// lock.
	dest []DestConstraint
	exts []xagent.ConstraintExtension

	// use guards the key material (priv, signer): a signature holds it
	// for reading from its first read of the key to its last, and the
	// keyring takes it for writing to retire the entry, so that key bytes
	// never change under a signature in flight. A signature made from a
	// half-wiped Ed25519 key next to a good one of the same message gives
	// the private scalar away; a half-wiped RSA key gives a faulty CRT
	// signature, which factors the modulus. ssh-agent avoids this by
	// serving one request at a time.
	use  sync.RWMutex
	gone bool // retired: no signature may start with it (guarded by use)
}

// retire waits for every signature in flight with the keys of es, marks
// the entries so that none starts afterwards, and runs f, which may then
// wipe their key material: no signer can still read it. Entries are taken
// together because a certificate and its plain key may share one private
// key value. Signers never hold more than one entry, nor wait for k.mu
// while holding one, so this cannot deadlock under k.mu.
func retire(es []*entry, f func()) {
	for _, e := range es {
		e.use.Lock()
	}
	for _, e := range es {
		e.gone = true
	}
	if f != nil {
		f()
	}
	for _, e := range es {
		e.use.Unlock()
	}
}

// keyring holds every private key of the agent. All key material lives here
// and is reached only with mu held (helpers named …Locked expect it held),
// so that sealing keys while the agent is locked can be added in one place.
type keyring struct {
	mu      sync.RWMutex
	order   []*entry          // in the order added, as ssh-add -l shows
	byBlob  map[string]*entry // public key blob → entry
	locked  bool
	sealed  []sealedKey // while locked by a SealingLocker
	nowFunc func() time.Time

	// answer is the IDENTITIES_ANSWER for a connection without a policy,
	// built at the first listing after a change (stale) so that listing
	// costs a copy, and adding many keys costs no rebuild each; it is not
	// used once firstExpiry has passed and the expiry timer is due.
	answer      []byte
	stale       bool
	firstExpiry time.Time
	builds      int // answers built, for tests
}

func newKeyring() *keyring {
	return &keyring{byBlob: make(map[string]*entry), nowFunc: time.Now, stale: true}
}

// SSH_AGENT_IDENTITIES_ANSWER (draft-ietf-sshm-ssh-agent, section 4.4).
const msgIdentitiesAnswer = 12

// rebuildLocked marks the cached identities answer out of date after a
// change; the next listing builds it.
func (k *keyring) rebuildLocked() { k.stale = true }

// buildLocked builds the cached identities answer: the keys in order, as
// many as fit in one agent message (see fitIdentities).
func (k *keyring) buildLocked() {
	k.firstExpiry = time.Time{}
	var order []*entry
	if !k.locked {
		order = k.order
	}
	b := []byte{msgIdentitiesAnswer, 0, 0, 0, 0}
	n := 0
	for _, e := range order {
		if len(b)+identitySize(len(e.pubBlob), len(e.comment)) > MaxMessage {
			break
		}
		b = appendString(b, e.pubBlob)
		b = appendString(b, []byte(e.comment))
		n++
	}
	for _, e := range order {
		if !e.expire.IsZero() && (k.firstExpiry.IsZero() || e.expire.Before(k.firstExpiry)) {
			k.firstExpiry = e.expire
		}
	}
	binary.BigEndian.PutUint32(b[1:5], uint32(n))
	k.answer, k.stale = b, false
	k.builds++
}

// identitySize is the size of one key in an IDENTITIES_ANSWER.
func identitySize(blob, comment int) int { return 8 + blob + comment }

// fitIdentities returns the longest prefix of ids whose IDENTITIES_ANSWER
// fits in one agent message. OpenSSH's clients refuse a reply over 256 KiB
// (ssh-add -l would list nothing, ssh would offer nothing); with thousands
// of keys loaded, the first ones are listed, and every one still signs.
func fitIdentities(ids []Identity) []Identity {
	size := 5
	for i, id := range ids {
		if size += identitySize(len(id.Key.Marshal()), len(id.Comment)); size > MaxMessage {
			return ids[:i]
		}
	}
	return ids
}

func appendString(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// identitiesAnswer returns the cached answer, or false when it may list a
// key that has just expired (then the caller takes the slow path).
func (k *keyring) identitiesAnswer() ([]byte, bool) {
	k.mu.RLock()
	if k.stale {
		k.mu.RUnlock()
		k.mu.Lock()
		if k.stale {
			k.buildLocked()
		}
		k.mu.Unlock()
		k.mu.RLock()
	}
	defer k.mu.RUnlock()
	if k.stale || !k.firstExpiry.IsZero() && !k.nowFunc().Before(k.firstExpiry) {
		return nil, false
	}
	return k.answer, true
}

// add stores key with the given lifetime (0: forever). Adding a key that is
// already there replaces its comment and constraints, like ssh-agent.
func (k *keyring) add(key xagent.AddedKey, lifetime time.Duration) error {
	e, err := newEntry(key)
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.locked {
		return ErrLocked
	}
	k.insertLocked(e, lifetime)
	return nil
}

// newEntry checks key and makes the entry that holds it.
func newEntry(key xagent.AddedKey) (*entry, error) {
	// x/crypto's parser leaves ed25519 keys and certificates pointing into
	// the request buffer, which frameConn wipes after the request: keep
	// copies of our own.
	switch pk := key.PrivateKey.(type) {
	case ed25519.PrivateKey:
		key.PrivateKey = ed25519.PrivateKey(bytes.Clone(pk))
	case *ed25519.PrivateKey:
		key.PrivateKey = ed25519.PrivateKey(bytes.Clone(*pk))
	}
	if key.Certificate != nil {
		pub, err := ssh.ParsePublicKey(key.Certificate.Marshal())
		if err != nil {
			return nil, fmt.Errorf("certificate: %w", err)
		}
		key.Certificate = pub.(*ssh.Certificate)
	}
	signer, err := ssh.NewSignerFromKey(key.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("unusable private key: %w", err)
	}
	if key.Certificate != nil {
		if !bytes.Equal(key.Certificate.Key.Marshal(), signer.PublicKey().Marshal()) {
			return nil, errors.New("certificate does not match the private key")
		}
		if signer, err = ssh.NewCertSigner(key.Certificate, signer); err != nil {
			return nil, fmt.Errorf("certificate: %w", err)
		}
	}
	// The constraints point into the request buffer as well.
	exts := make([]xagent.ConstraintExtension, len(key.ConstraintExtensions))
	for i, x := range key.ConstraintExtensions {
		exts[i] = xagent.ConstraintExtension{ExtensionName: x.ExtensionName, ExtensionDetails: bytes.Clone(x.ExtensionDetails)}
	}
	dest, err := parseConstraintExtensions(exts)
	if err != nil {
		return nil, err
	}
	e := &entry{signer: signer, pub: signer.PublicKey(), comment: key.Comment, confirm: key.ConfirmBeforeUse,
		priv: key.PrivateKey, cert: key.Certificate, dest: dest, exts: exts}
	e.pubBlob = e.pub.Marshal()
	e.blob = string(e.pubBlob)
	e.keyBlob = e.blob
	if key.Certificate != nil {
		e.keyBlob = string(key.Certificate.Key.Marshal())
	}
	return e, nil
}

// insertLocked stores e, replacing an entry for the same key where it
// stands, as ssh-agent does.
func (k *keyring) insertLocked(e *entry, lifetime time.Duration) {
	if lifetime > 0 {
		e.expire = k.nowFunc().Add(lifetime)
		// Remove the key when it expires rather than only hiding it, so the
		// private key does not linger in memory.
		e.timer = time.AfterFunc(lifetime, func() { k.expire(e) })
	}
	if old := k.byBlob[e.blob]; old != nil {
		if old.timer != nil {
			old.timer.Stop()
		}
		for i, o := range k.order {
			if o == old {
				k.order[i] = e
			}
		}
	} else {
		k.order = append(k.order, e)
	}
	k.byBlob[e.blob] = e
	k.rebuildLocked()
}

// expire removes e if it is still the entry stored under its blob, and
// with a plain key the certificates of that key.
func (k *keyring) expire(e *entry) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.byBlob[e.blob] != e {
		return
	}
	k.removeLocked(e)
	if e.cert == nil {
		for _, c := range slices.Clone(k.order) {
			if c.cert != nil && c.keyBlob == e.blob {
				k.removeLocked(c)
			}
		}
	}
}

// keyEntryLocked is the entry of e's plain key when it is loaded: e
// itself for a plain key, else nil or another entry.
func (k *keyring) keyEntryLocked(e *entry) *entry {
	if e.cert == nil {
		return e
	}
	return k.byBlob[e.keyBlob]
}

// liveLocked reports whether e may still be used: neither it nor the
// key it certifies has expired.
func (k *keyring) liveLocked(e *entry) bool {
	now := k.nowFunc()
	if !e.expire.IsZero() && !now.Before(e.expire) {
		return false
	}
	ke := k.keyEntryLocked(e)
	return ke == nil || ke.expire.IsZero() || now.Before(ke.expire)
}

// keyDestLocked is the destination constraints e inherits from its key:
// those of the plain key's entry when e is a certificate of a loaded key.
// A certificate must satisfy both its own and its key's.
func (k *keyring) keyDestLocked(e *entry) []DestConstraint {
	if ke := k.keyEntryLocked(e); ke != nil && ke != e {
		return ke.dest
	}
	return nil
}

// keyDest is keyDestLocked for a caller without k.mu.
func (k *keyring) keyDest(e *entry) []DestConstraint {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.keyDestLocked(e)
}

// confirmLocked reports whether a signature with e needs the user's
// confirmation: e's own, or its key's.
func (k *keyring) confirmLocked(e *entry) bool {
	if e.confirm {
		return true
	}
	ke := k.keyEntryLocked(e)
	return ke != nil && ke.confirm
}

func (k *keyring) removeLocked(e *entry) {
	if e.timer != nil {
		e.timer.Stop()
	}
	delete(k.byBlob, e.blob)
	for i, o := range k.order {
		if o == e {
			k.order = append(k.order[:i:i], k.order[i+1:]...)
			break
		}
	}
	k.rebuildLocked()
}

func (k *keyring) remove(blob []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.locked {
		return ErrLocked
	}
	e := k.byBlob[string(blob)]
	if e == nil {
		return ErrKeyNotFound
	}
	k.removeLocked(e)
	return nil
}

func (k *keyring) removeAll() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.locked {
		return ErrLocked
	}
	k.clearLocked()
	return nil
}

// identities lists the usable keys; none while locked.
func (k *keyring) identities() []Identity { return k.identitiesFor(nil) }

// identitiesFor lists the usable keys that a connection with these binds
// may see under the keys' destination constraints.
func (k *keyring) identitiesFor(binds []Bind) []Identity {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.locked {
		return nil
	}
	ids := make([]Identity, 0, len(k.order))
	for _, e := range k.order {
		if k.liveLocked(e) && destPermitted(e.dest, binds, nil) == nil &&
			destPermitted(k.keyDestLocked(e), binds, nil) == nil {
			ids = append(ids, Identity{Key: e.pub, Comment: e.comment, Destinations: e.dest})
		}
	}
	return ids
}

// hasConstrained reports whether some key has destination constraints.
func (k *keyring) hasConstrained() bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	for _, e := range k.order {
		if len(e.dest) > 0 {
			return true
		}
	}
	return false
}

// lookup returns the entry for a public key blob and whether signing
// with it needs confirmation.
func (k *keyring) lookup(blob []byte) (e *entry, confirm bool, err error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.locked {
		return nil, false, ErrLocked
	}
	e = k.byBlob[string(blob)]
	if e == nil || !k.liveLocked(e) {
		return nil, false, ErrKeyNotFound
	}
	return e, k.confirmLocked(e), nil
}

// has reports whether a key with this blob is loaded.
func (k *keyring) has(blob []byte) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	_, ok := k.byBlob[string(blob)]
	return ok
}

func (k *keyring) setLocked(v bool) {
	k.mu.Lock()
	k.locked = v
	k.rebuildLocked()
	k.mu.Unlock()
}

func (k *keyring) isLocked() bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.locked
}

// sign signs data with e, honouring the rsa-sha2 flags of the request
// (draft-ietf-sshm-ssh-agent, "Signature flags").
// The key is held (entry.use) for the whole signature; an entry retired
// meanwhile by a lock is ErrLocked.
func sign(e *entry, data []byte, flags xagent.SignatureFlags) (*ssh.Signature, error) {
	e.use.RLock()
	defer e.use.RUnlock()
	if e.gone {
		return nil, ErrLocked
	}
	if testHookSign != nil {
		testHookSign()
	}
	algo := ""
	switch {
	case flags&xagent.SignatureFlagRsaSha512 != 0:
		algo = ssh.KeyAlgoRSASHA512
	case flags&xagent.SignatureFlagRsaSha256 != 0:
		algo = ssh.KeyAlgoRSASHA256
	}
	if algo != "" && underlyingType(e.pub) == ssh.KeyAlgoRSA {
		as, ok := e.signer.(ssh.AlgorithmSigner)
		if !ok {
			return nil, errors.New("signer cannot choose an algorithm")
		}
		return as.SignWithAlgorithm(rand.Reader, data, algo)
	}
	if k := ed25519Key(e.priv); len(k) == ed25519.PrivateKeySize {
		return signEd25519(k, data), nil
	}
	return e.signer.Sign(rand.Reader, data)
}

// testHookSign, when set by a test, runs in every signature at the point
// where the private key is about to be read.
var testHookSign func()

// underlyingType is the key type, looking through a certificate.
func underlyingType(k ssh.PublicKey) string {
	if c, ok := k.(*ssh.Certificate); ok {
		return c.Key.Type()
	}
	return k.Type()
}

// lockAndExport locks the keyring and returns its live keys as they were
// added, with their remaining lifetimes, for a KeySealer. The entries are
// retired first, so the sealer may wipe what it is given; unlockRetired
// brings them back if sealing fails.
func (k *keyring) lockAndExport() []xagent.AddedKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.locked = true
	retire(k.order, nil)
	now := k.nowFunc()
	var out []xagent.AddedKey
	for _, e := range k.order {
		if !k.liveLocked(e) {
			continue
		}
		ak := xagent.AddedKey{PrivateKey: e.priv, Certificate: e.cert, Comment: e.comment, ConfirmBeforeUse: e.confirm,
			ConstraintExtensions: e.exts}
		if !e.expire.IsZero() {
			ak.LifetimeSecs = uint32(max(1, (e.expire.Sub(now)+time.Second-1)/time.Second))
		}
		out = append(out, ak)
	}
	k.rebuildLocked()
	return out
}

// unlockRetired undoes lockAndExport when the keys could not be sealed.
func (k *keyring) unlockRetired() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, e := range k.order {
		e.use.Lock()
		e.gone = false
		e.use.Unlock()
	}
	k.locked = false
	k.rebuildLocked()
}

// dropAll forgets every key, locked or not.
func (k *keyring) dropAll() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.clearLocked()
}

// clearLocked forgets every key and stops their expiry timers.
func (k *keyring) clearLocked() {
	for _, e := range k.order {
		if e.timer != nil {
			e.timer.Stop()
		}
	}
	k.order = nil
	k.byBlob = make(map[string]*entry)
	k.rebuildLocked()
}

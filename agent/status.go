package agent

import (
	"encoding/json"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// ExtStatus is sesame's private extension that reports the lock state
// (`sesame status`). The socket admits only the agent's own user and
// root, so the answer goes to no one else. While locked, when it matters
// most, it is answered to local clients only: a forwarded peer gets a
// failure, as for every request but unlock.
const ExtStatus = "status@sesame"

// Status is the agent's state as `sesame status` shows it, sent as JSON
// after SSH_AGENT_SUCCESS in the reply to ExtStatus.
type Status struct {
	Locked bool `json:"locked"`
	// Since is when the current state began (the agent's start for the
	// first unlocked period); zero when the Locker cannot tell.
	Since time.Time `json:"since,omitzero"`
	// Reason is why the agent is locked: command, idle, suspend or
	// screen-lock.
	Reason string `json:"reason,omitempty"`
	// Keys counts the identities loaded, or sealed while locked.
	Keys int `json:"keys"`
	// Failures counts wrong unlock passphrases since the last unlock.
	Failures int `json:"failures"`
	// Armed: a lock passphrase is known, so the automatic locks (idle,
	// suspend, screen lock) can fire.
	Armed bool `json:"armed"`
	// Sealing: keys are sealed while locked (not merely hidden).
	Sealing bool `json:"sealing"`
	// StoredKeysPending: the key store needs a passphrase the agent was
	// not given; an unlock with it loads the stored keys.
	StoredKeysPending bool `json:"stored_keys_pending"`
	// StoredKeysError says why the stored keys failed to load when the
	// agent started (a wrong passphrase file, an unreadable vault);
	// empty when they merely wait for a passphrase.
	StoredKeysError string `json:"stored_keys_error,omitempty"`
	// LockAfter is the idle period that locks (zero: never).
	LockAfter Duration `json:"lock_after"`
	// KerberosOnLock is what a lock does to the ticket cache.
	KerberosOnLock string `json:"kerberos_on_lock,omitempty"`
	// Backend describes the key store.
	Backend string `json:"backend,omitempty"`
	// PID is the agent's process id.
	PID int `json:"pid,omitempty"`
	// Settings are the flags the agent was started with that change
	// its behaviour (Options.Settings), so that a command joining it can
	// tell whether it asks for the same.
	Settings []string `json:"settings,omitempty"`
	// Destinations lists, by SHA256 fingerprint, the destination
	// constraints of the keys added with ssh-add -h, each as -h spells
	// it ([from>][user@]host).
	Destinations map[string][]string `json:"destinations,omitempty"`
	// Kinds gives, by SHA256 fingerprint, the kind (KeyKind: sk, pkcs11)
	// of each key the backend ssh-agent holds; keys not listed are
	// sesame's own software keys. Keys counts them too.
	Kinds map[string]string `json:"kinds,omitempty"`
}

// Duration is a time.Duration that reads and writes as "1h30m0s".
type Duration time.Duration

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Status reports the agent's lock state and keys.
func (s *Server) Status() Status {
	pending, why := s.pendingState()
	st := Status{Locked: s.opts.Locker.Locked(), StoredKeysPending: pending, StoredKeysError: why,
		PID: os.Getpid(), Settings: s.opts.Settings}
	if s.sealer != nil {
		ls := s.sealer.l.Status()
		st.Locked, st.Since, st.Reason, st.Failures, st.Armed = ls.Locked, ls.Since, string(ls.Reason), ls.Failures, ls.Armed
		st.Sealing = true
	}
	for _, id := range s.keys.identities() {
		if len(id.Destinations) == 0 {
			continue
		}
		if st.Destinations == nil {
			st.Destinations = map[string][]string{}
		}
		rules := make([]string, len(id.Destinations))
		for i, c := range id.Destinations {
			rules[i] = c.String()
		}
		st.Destinations[ssh.FingerprintSHA256(id.Key)] = rules
	}
	if st.Locked && s.sealer != nil {
		st.Keys = s.keys.sealedCount()
	} else {
		st.Keys = s.keys.count()
	}
	if !st.Locked && s.backend.running() {
		st.Kinds = s.backend.kinds()
		st.Keys += len(st.Kinds)
	}
	if s.opts.StatusExtra != nil {
		s.opts.StatusExtra(&st)
	}
	return st
}

// statusReply is the ExtStatus answer: SSH_AGENT_SUCCESS, then JSON.
func (s *Server) statusReply() ([]byte, error) {
	b, err := json.Marshal(s.Status())
	if err != nil {
		return nil, err
	}
	return append([]byte{replySuccess}, b...), nil
}

// oneLine is err's message on one line, for status output.
func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

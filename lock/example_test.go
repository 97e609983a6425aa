package lock_test

import (
	"context"
	"log/slog"
	"time"

	"github.com/sesame-ssh/sesame/lock"
)

// keyring stands for the agent's key store: it implements lock.Holder.
type keyring struct{ keys map[string][]byte }

// Seal hands every key (serialised as OpenSSH PEM with
// ssh.MarshalPrivateKey, here already bytes) to the vault, which zeroes
// the buffer; the parsed keys are then wiped and dropped.
func (k *keyring) Seal(v *lock.Vault) error {
	for id, pem := range k.keys {
		if err := v.Put(id, pem); err != nil {
			return err
		}
		// with parsed keys: lock.Wipe(key); drop the ssh.Signer too
	}
	clear(k.keys)
	return nil
}

// Unseal parses the keys back (ssh.ParseRawPrivateKey); it runs inside
// lock.Do, and the plaintexts are zeroed when it returns.
func (k *keyring) Unseal(m map[string][]byte) error {
	for id, pem := range m {
		k.keys[id] = append([]byte(nil), pem...)
	}
	return nil
}

// The agent's side of the lock, in order.
func Example() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()

	// At start: one Locker for the agent, the holders, the triggers.
	l := lock.New(lock.Options{
		IdleAfter: 15 * time.Minute, // --lock-after
		OnError:   func(err error) { slog.Warn("lock", "err", err) },
	})
	defer l.Close()
	l.AddHolder(&keyring{keys: map[string][]byte{}})
	l.AddHolder(&lock.Kerberos{Mode: lock.KerberosStash, Path: "/tmp/krb5cc_1000"})
	l.OnUnlock(func(lock.Status) { go func() { /* renew the TGT */ }() })
	if err := l.WatchSuspend(ctx); err != nil {
		slog.Debug("no suspend lock", "err", err)
	}
	if err := l.WatchScreenLock(ctx); err != nil {
		slog.Debug("no screen lock", "err", err)
	}

	// Per request: serve it inside lock.Do; while l.Locked(), list no
	// identities and refuse everything but unlock; on a signature,
	// l.Touch(); around a confirmation prompt, defer l.Hold()().

	// SSH_AGENTC_LOCK (ssh-add -x) and `sesame lock`:
	pass := []byte("passphrase from the request")
	err := l.Lock(pass)
	clear(pass)
	_ = err // lock.ErrLocked when already locked: reply failure

	// SSH_AGENTC_UNLOCK (ssh-add -X) and `sesame unlock`:
	pass = []byte("passphrase from the request")
	err = l.Unlock(ctx, pass) // waits out the back-off; ctx ends with the connection
	clear(pass)
	_ = err // lock.ErrBadPassphrase, lock.ErrNotLocked: reply failure

	// sesame status:
	st := l.Status()
	_ = st // st.Locked, st.Since, st.Reason, st.Failures
}

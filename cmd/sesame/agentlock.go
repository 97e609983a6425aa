package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	xagent "golang.org/x/crypto/ssh/agent"

	"github.com/sesame-ssh/sesame/agent"
	"github.com/sesame-ssh/sesame/keychain"
	"github.com/sesame-ssh/sesame/krb"
	"github.com/sesame-ssh/sesame/lock"
)

// agentLockSettings are the agent's flags for locking and for the keychain
// it loads keys from.
var agentLockSettings struct {
	lockAfter time.Duration
	kerberos  string
	backend   string
}

func init() {
	fl := agentCmd.Flags()
	fl.DurationVar(&agentLockSettings.lockAfter, "lock-after", 0,
		"lock after this long without a signature (e.g. 15m; needs a lock passphrase: sesame lock, or the vault's)")
	fl.StringVar(&agentLockSettings.kerberos, "kerberos-on-lock", string(lock.KerberosKeep),
		"what a lock does to the Kerberos ticket cache: keep, destroy, or stash (sealed, back on unlock)")
	fl.StringVar(&agentLockSettings.backend, "backend", "",
		"keychain backend to load stored keys from: "+strings.Join(keychain.Backends(), ", ")+" (default: $"+keychain.EnvBackend+", else automatic)")
	agentLocker = newAgentLock
	agentKeyLoader = agentLoadKeys
	agentStatusExtra = agentLockStatus
}

// newAgentLock builds the agent's lock: keys sealed while locked, the
// idle timer, the Kerberos holder, and the suspend and screen-lock
// watchers where a bus offers them.
//
// Automatic locks need a lock passphrase to seal under: the vault
// passphrase when the agent was started with $SESAME_PASSPHRASE_FILE or
// the `sesame unlock` that loaded the vault, else the first local lock's
// (ssh-add -x, sesame lock). No later lock replaces it.
func newAgentLock(logger *slog.Logger) (agent.Locker, error) {
	s := agentLockSettings
	if s.lockAfter < 0 {
		return nil, fmt.Errorf("--lock-after %s: must not be negative", s.lockAfter)
	}
	mode, err := lock.ParseKerberosMode(s.kerberos)
	if err != nil {
		return nil, fmt.Errorf("--kerberos-on-lock: %w", err)
	}
	l := lock.New(lock.Options{
		IdleAfter: s.lockAfter,
		OnError:   func(err error) { logger.Warn("lock", "err", err) },
	})
	if mode != lock.KerberosKeep {
		_, name, err := loadCache("")
		if err != nil {
			return nil, err
		}
		h := &lock.Kerberos{Mode: mode, Valid: ccacheValid}
		if name.Type == "FILE" {
			h.Path = name.Path()
		} else {
			h.Cache = cacheStash{name}
		}
		if err := l.AddHolder(h); err != nil {
			return nil, err
		}
		logger.Debug("kerberos on lock", "mode", mode, "cache", name.String())
		agentKeeperMayWrite = func() bool { return !l.Locked() }
	}
	// A stashed ticket is back after an unlock: keep it alive again.
	l.OnUnlock(func(lock.Status) { wakeAgentKeeper() })
	ctx := context.Background()
	if err := l.WatchSuspend(ctx); err != nil {
		logger.Debug("no lock on suspend", "err", err)
	}
	if err := l.WatchScreenLock(ctx); err != nil {
		logger.Debug("no lock on screen lock", "err", err)
	}
	if src := keychain.PassphraseFromEnv(); src != nil {
		if p, err := src(false); err == nil {
			if err := l.SetPassphrase(p); err != nil {
				logger.Debug("arming the automatic lock", "err", err)
			}
			clear(p)
		}
	}
	return agent.NewSealingLocker(ctx, l), nil
}

// cacheStash moves a DIR, KCM or KEYRING cache in and out of the lock's
// stash, through the krb package's cache types.
type cacheStash struct{ name krb.CacheName }

func (c cacheStash) Take(put func([]byte) error) error {
	cc, err := c.name.Read()
	if errors.Is(err, krb.ErrNoCache) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := put(cc.Marshal()); err != nil {
		return err
	}
	return c.Destroy()
}

func (c cacheStash) Restore(data []byte) error {
	if cur, err := c.name.Read(); err == nil && len(cur.DefaultPrincipal.Components) > 0 {
		return nil
	}
	cc, err := krb.ParseCCache(data)
	if err != nil {
		return err
	}
	return c.name.Replace(cc)
}

func (c cacheStash) Destroy() error {
	if err := c.name.Destroy(); err != nil && !errors.Is(err, krb.ErrNoCache) {
		return err
	}
	return nil
}

// ccacheValid tells whether a stashed ticket cache still holds a usable
// TGT, so that unlock writes back only a cache worth having.
func ccacheValid(b []byte) bool {
	cc, err := krb.ParseCCache(b)
	if err != nil {
		return false
	}
	tgt, ok := cc.TGT()
	return ok && tgt.Valid(time.Now())
}

// agentLoadKeys reads the keychain for the agent: at start with the vault
// passphrase from $SESAME_PASSPHRASE_FILE when set (never a prompt: the
// agent has no terminal), on unlock with the unlock passphrase.
func agentLoadKeys(pass []byte) ([]xagent.AddedKey, error) {
	var src keychain.PassphraseFunc
	if pass != nil {
		src = keychain.StaticPassphrase(pass)
	} else {
		src = keychain.PassphraseFromEnv()
	}
	if src == nil {
		src = func(bool) ([]byte, error) { return nil, keychain.ErrNoPassphrase }
	}
	keys, err := keychain.LoadKeys(keychain.Options{Backend: agentLockSettings.backend, Passphrase: src})
	switch {
	case errors.Is(err, keychain.ErrNoPassphrase):
		err = fmt.Errorf("%w: %w", agent.ErrNeedPassphrase, err)
	case errors.Is(err, keychain.ErrWrongPassphrase):
		err = fmt.Errorf("%w: %w", agent.ErrBadPassphrase, err)
	}
	return keys, err
}

var agentBackendOnce = sync.OnceValue(func() string {
	kc, err := keychain.Open(keychain.Options{Backend: agentLockSettings.backend})
	if err != nil {
		return "unavailable: " + err.Error()
	}
	defer kc.Close()
	return kc.Describe()
})

// agentLockStatus adds the settings to `sesame status`.
func agentLockStatus(st *agent.Status) {
	st.LockAfter = agent.Duration(agentLockSettings.lockAfter)
	st.KerberosOnLock = agentLockSettings.kerberos
	st.Backend = agentBackendOnce()
}

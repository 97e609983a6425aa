package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/jcmturner/gokrb5/v8/keytab"

	"github.com/sesame-ssh/sesame/krb"
)

// The running agent keeps the default credentials cache's TGT alive, the
// way `sesame renew` does, unless --no-renew is given.

var agentNoRenew bool

// agentKeeperWake makes an idle keeper look for a ticket at once (after an
// unlock has written a stashed cache back).
var agentKeeperWake = make(chan struct{}, 1)

// agentKeeperMayWrite, when set, tells whether the keeper may write the
// cache now: not while the agent is locked with --kerberos-on-lock stash or
// destroy, which would bring back the ticket the lock just took away.
var agentKeeperMayWrite func() bool

func wakeAgentKeeper() {
	select {
	case agentKeeperWake <- struct{}{}:
	default:
	}
}

// agentRenewIdle is how often the agent looks for a new ticket when it has
// none to keep (no cache yet, or renewal stopped). A stat of one file every
// few minutes; the keeper itself sleeps on timers.
const agentRenewIdle = 5 * time.Minute

func init() {
	agentCmd.Flags().BoolVar(&agentNoRenew, "no-renew", false, "do not keep the default Kerberos ticket alive")
	agentCompanions = append(agentCompanions, func(ctx context.Context) {
		if !agentNoRenew {
			keepDefaultCacheAlive(ctx)
		}
	})
}

// keepDefaultCacheAlive runs a keeper on the default cache whenever it
// holds a TGT. After renewal stops (a rejected secret, an expired ticket)
// it is not restarted on the same ticket — that could retry a rejected
// password — only when a new ticket appears (the user ran kinit).
func keepDefaultCacheAlive(ctx context.Context) {
	var stoppedOn []byte // ticket renewal gave up on
	for {
		if kept := keepOnce(ctx, &stoppedOn); !kept {
			t := time.NewTimer(agentRenewIdle)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			case <-agentKeeperWake:
				t.Stop()
			}
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// keepOnce runs the keeper if there is a ticket to keep; it reports
// whether it did.
func keepOnce(ctx context.Context, stoppedOn *[]byte) bool {
	cfg, name, err := loadCache("")
	if err != nil {
		slog.Debug("ticket keeper: no usable krb5.conf or default cache", "err", err)
		return false
	}
	cc, err := name.Read()
	if err != nil {
		return false
	}
	tgt, ok := cc.TGT()
	if !ok || string(tgt.Ticket) == string(*stoppedOn) {
		return false
	}
	var kt *keytab.Keytab
	if os.Getenv("KRB5_CLIENT_KTNAME") != "" {
		if kt, err = loadKeytab(cfg, "", true); err != nil {
			slog.Debug("ticket keeper: client keytab unusable", "err", err)
			kt = nil
		}
	}
	k := newKeeper(cfg, name, kt)
	if agentKeeperMayWrite != nil {
		store := k.Store
		k.Store = func(cc *krb.CCache) error {
			if !agentKeeperMayWrite() {
				return errors.New("the agent is locked and has put the ticket away")
			}
			return store(cc)
		}
		update := k.Update
		k.Update = func(ctx context.Context, modify func(*krb.CCache) (*krb.CCache, error)) error {
			if !agentKeeperMayWrite() {
				return errors.New("the agent is locked and has put the ticket away")
			}
			return update(ctx, modify)
		}
	}
	if err := k.Run(ctx); errors.Is(err, krb.ErrNoCache) {
		// Destroyed, or stashed by a lock: wait for it to come back.
		return false
	} else if err != nil {
		slog.Warn("ticket keeper", "cache", name.String(), "err", err)
		if cc, err := name.Read(); err == nil {
			if t, ok := cc.TGT(); ok {
				*stoppedOn = append([]byte(nil), t.Ticket...)
			}
		}
	}
	return true
}

package krb

import (
	"fmt"
	"strconv"
	"time"
)

// Two-factor tickets: a TGT got with a one-time password (pa_type 141 in
// the cache, as MIT's kinit records it) can be renewed as usual, but once
// its renewable life is over only the user can get another one — with a
// new code. A renewer therefore never sends a stored password or a
// keytab key for it (that would mint a ticket the site meant to need a
// second factor, and for an OTP-only account it would be a failed
// attempt), tells the user ahead of time, and stops when it ends.

// TwoFactor reports whether the cache's TGT was obtained with a second
// factor: its pa_type config entry (for the TGT's server, or cache-wide)
// says OTP.
func TwoFactor(cc *CCache) bool {
	tgt, ok := cc.TGT()
	if !ok {
		return false
	}
	for i := range cc.Credentials {
		c := &cc.Credentials[i]
		if c.ConfigKey() != "pa_type" {
			continue
		}
		if len(c.Server.Components) >= 3 && c.Server.Components[2] != tgt.Server.String() {
			continue
		}
		if n, err := strconv.Atoi(string(c.Ticket)); err == nil && n == PAOTPChallenge {
			return true
		}
	}
	return false
}

// FinalEnd is when a ticket ends for good: the end of its renewable life
// when renewal can extend it, else its end time.
func FinalEnd(tgt *Credential) time.Time {
	if tgt.Flags&TktFlagRenewable != 0 && tgt.RenewTill.After(tgt.EndTime) {
		return tgt.RenewTill
	}
	return tgt.EndTime
}

// TwoFactorNotice is how long before a two-factor ticket's final end the
// user is told: an hour, or a quarter of the ticket's whole life when
// that is shorter.
func TwoFactorNotice(tgt *Credential) time.Duration {
	start := tgt.StartTime
	if start.IsZero() {
		start = tgt.AuthTime
	}
	return min(time.Hour, FinalEnd(tgt).Sub(start)/4)
}

// TwoFactorNote is the line klist, status and doctor show for a
// two-factor ticket: until when it lasts, and what to do then.
func TwoFactorNote(cc *CCache) string {
	if !TwoFactor(cc) {
		return ""
	}
	tgt, _ := cc.TGT()
	end := FinalEnd(tgt)
	verb := "ends"
	if !end.After(cc.KDCNow()) {
		verb = "ended"
	}
	return fmt.Sprintf("Two-factor (OTP) ticket: it %s at %s and cannot be renewed past that without you; then run sesame kinit with a new code",
		verb, end.Local().Format("01/02/06 15:04:05"))
}

package krb

import (
	"fmt"
	"time"
)

// Clock skew.
//
// A KDC rejects requests whose timestamps are more than its clockskew
// (300 s by default) away from its own clock. Like MIT with kdc_timesync
// (the default), sesame keeps an offset "KDC clock minus local clock",
// learns it from the KDC, uses it for every timestamp it sends, and stores
// it in the ccache header (tag 1) so that later operations, and MIT tools
// reading the cache, start from it.
//
// Learning happens in two places:
//   - A KRB_AP_ERR_SKEW error carries the KDC's time (stime, susec): the
//     offset is computed from it and the request is sent once more.
//   - A successful AS-REP carries authtime, which becomes the reference (as
//     MIT's krb5_set_real_time does, to whole seconds).
//
// Why the skew retry is not a second password attempt: MIT's KDC (and
// Active Directory) decrypt the encrypted timestamp with the client's key
// before they compare its time; a wrong password fails the decryption and
// yields KDC_ERR_PREAUTH_FAILED, never KRB_AP_ERR_SKEW. So a skew error
// proves that the password was right, and the retry carries the same,
// correct password with a corrected time. At most one skew retry is made
// per exchange, and never after a PREAUTH_FAILED.

// skewClock is the local clock corrected by the learned KDC offset.
type skewClock struct {
	local  func() time.Time
	offset time.Duration
}

// now is the estimated KDC time.
func (s *skewClock) now() time.Time { return s.local().Add(s.offset) }

// learn sets the offset from the KDC's clock reading kdcTime, taken just now.
func (s *skewClock) learn(kdcTime time.Time) {
	s.offset = kdcTime.Sub(s.local()).Round(time.Microsecond)
}

// learnSeconds is learn at whole-second precision, for times that carry no
// microseconds (authtime).
func (s *skewClock) learnSeconds(kdcTime time.Time) {
	s.offset = time.Duration(kdcTime.Unix()-s.local().Unix()) * time.Second
}

// skewError reports a skew the exchange could not (or may not) correct.
func skewError(ke *KDCError, clock skewClock) error {
	d := ke.STime.Sub(clock.now()).Round(time.Second)
	return &Error{Kind: ErrClockSkew, Err: ke,
		Msg:  fmt.Sprintf("clock skew too great: the clock of kdc %s differs from this machine's by about %v", ke.KDC, d),
		hint: "synchronise this machine's clock (NTP); sesame corrects an offset once, with kdc_timesync = 1"}
}

// kdcTime is the KDC's estimated time for a cache: the local clock plus
// the offset recorded in its header.
func kdcTime(cc *CCache, local time.Time) time.Time {
	if cc != nil && cc.HasKDCOffset {
		return local.Add(cc.KDCOffset)
	}
	return local
}

package krb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/iana/patype"
)

// otpWait bounds the wait for the KDC's answer to a one-time password:
// the KDC asks its OTP server (RADIUS, FreeIPA's ipa-otpd) first, and
// MIT's KDC gives up on a silent one after its [otp] timeout (5 s by
// default), so a login with a dead OTP backend ends well within 20 s.
const otpWait = 15 * time.Second

// otpAnswer is what the user gave for an OTP challenge, to be sent with
// the next (armored) request.
type otpAnswer struct {
	challenge  *OTPChallenge
	value, pin []byte
}

func (a *otpAnswer) clear() { clear(a.value); clear(a.pin) }

// askOTP asks the user for the token value (and its PIN when the token
// says so) that answers ch.
func askOTP(opt LoginOptions, ch *OTPChallenge, client Principal) (*otpAnswer, error) {
	if opt.Prompt == nil {
		return nil, &Error{Kind: ErrOTP, Msg: fmt.Sprintf("%s logs in with a one-time password, and this login cannot ask for one", client),
			hint: "run sesame kinit on a terminal (or with --password-stdin) to enter the token value"}
	}
	a := &otpAnswer{challenge: ch}
	banner, text := ch.Prompt()
	if ch.NeedsPIN() {
		pin, err := opt.Prompt(SecretPrompt{Kind: SecretOTPPIN, Banner: banner, Text: "Enter OTP Token PIN: "})
		if err != nil {
			return nil, err
		}
		a.pin, banner = pin, ""
	}
	v, err := opt.Prompt(SecretPrompt{Kind: SecretOTP, Banner: banner, Text: text})
	if err != nil {
		a.clear()
		return nil, err
	}
	if len(v) == 0 {
		a.clear()
		return nil, &Error{Kind: ErrOTP, Msg: "no token value given", hint: "enter the code your token shows"}
	}
	a.value = v
	return a, nil
}

// askPassword fills opt.Password from opt.Prompt when the login has
// neither a password nor a keytab yet.
func askPassword(opt *LoginOptions, client Principal) error {
	if opt.Keytab != nil || opt.Password != nil {
		return nil
	}
	if opt.Prompt == nil {
		return errors.New("login needs either a password or a keytab")
	}
	pw, err := opt.Prompt(SecretPrompt{Kind: SecretPassword, Text: fmt.Sprintf("Password for %s: ", client)})
	if err != nil {
		return err
	}
	opt.Password = pw
	return nil
}

// needsArmor is the error for a KDC that, without FAST, offers an
// account none of the pre-authentication a password could answer, but
// offers FAST: the account logs in with a second factor (MIT's KDC with
// its otp plugin answers this way for an OTP-only account). Nothing has
// been asked of the user yet, so no token is spent as a password.
func needsArmor(ke *KDCError, client Principal) error {
	md := methodData(ke.EData)
	if !hasPAType(md, patype.PA_FX_FAST) || hasPAType(md, patype.PA_ENC_TIMESTAMP) {
		return nil
	}
	return &Error{Kind: ErrNeedsArmor, Err: ke,
		Msg:  fmt.Sprintf("kdc %s asks %s for pre-authentication that only works inside FAST armor (a two-factor account)", ke.KDC, client),
		hint: "log in with armor: sesame kinit -T ARMOR_CACHE " + client.String() + " (make ARMOR_CACHE with a host keytab: sesame kinit -k -c ARMOR_CACHE)"}
}

// otpError turns the answer to a request that carried a one-time
// password into one line. It never speaks of a password: the token was
// the only secret sent, and it was sent once.
func (c *Client) otpError(err error, client Principal) error {
	var ke *KDCError
	if errors.As(err, &ke) {
		switch ke.Code {
		case errorcode.KDC_ERR_PREAUTH_FAILED, errorcode.KDC_ERR_PREAUTH_REQUIRED, errorcode.KRB_AP_ERR_BAD_INTEGRITY:
			return &Error{Kind: ErrOTP, Err: ke, Msg: fmt.Sprintf("kdc %s did not accept the one-time password for %s", ke.KDC, client),
				hint: "the code was wrong, already used or expired, or the kdc's OTP server did not answer; sesame sent it once; run kinit again with a new code"}
		case errorcode.KRB_AP_ERR_SKEW:
			return &Error{Kind: ErrClockSkew, Err: ke, Msg: fmt.Sprintf("kdc %s refused the one-time password for %s: clock skew too great", ke.KDC, client),
				hint: "synchronise this machine's clock (NTP), then run kinit again with a new code"}
		}
		return c.loginError(ke, client, false)
	}
	var ne *otpNoAnswer
	if errors.As(err, &ne) {
		return &Error{Kind: ErrOTP, Err: err, Msg: fmt.Sprintf("no answer from kdc %s to the one-time password for %s within %v (%s)", ne.kdc, client, otpWait, ne.reason),
			hint: "the kdc's OTP server may be down; sesame did not send the code again; try later with a new code"}
	}
	return err
}

// otpNoAnswer is a request carrying a one-time password that got no
// answer. It was not resent.
type otpNoAnswer struct {
	kdc, reason string
	err         error
}

func (e *otpNoAnswer) Error() string { return "no answer from kdc " + e.kdc + ": " + e.reason }
func (e *otpNoAnswer) Unwrap() error { return e.err }

// sendOnce delivers a request that carries a one-time password so that
// it reaches at most one KDC at most once: over TCP (a reliable stream,
// so no retransmission), first to the KDC that sent the challenge, to
// another only when a KDC refuses the connection (then nothing was
// sent), and as a single UDP datagram when no KDC takes TCP. The wait
// for the answer is otpWait; a slow answer is never resent.
func (c *Client) sendOnce(ctx context.Context, realm, first string, msg []byte) ([]byte, error) {
	addrs, err := c.kdcAddrs(realm)
	if err != nil {
		return nil, err
	}
	order := []string{}
	if first != "" {
		order = append(order, first)
	}
	for _, a := range addrs {
		if a != first {
			order = append(order, a)
		}
	}
	once := *c
	once.Timeout, once.fullUDPWait = otpWait, true
	answer := func(addr string, reply []byte) ([]byte, error) {
		var ke *KDCError
		if parseKRBError(reply, addr, &ke) == nil {
			return nil, ke
		}
		return reply, nil
	}
	for _, addr := range order {
		reply, err := once.exchangeOne(ctx, "tcp", addr, msg)
		if err == nil {
			return answer(addr, reply)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" {
			continue
		}
		return nil, &otpNoAnswer{kdc: addr, reason: netReason(err), err: err}
	}
	reply, err := once.exchangeOne(ctx, "udp", order[0], msg)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &otpNoAnswer{kdc: order[0], reason: netReason(err), err: err}
	}
	return answer(order[0], reply)
}

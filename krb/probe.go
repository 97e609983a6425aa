package krb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/iana/patype"
	"github.com/jcmturner/gokrb5/v8/types"
)

// Preauth is what a KDC asks of a principal before it issues a TGT, as
// seen by AS-REQs without any pre-authentication (which no KDC counts as
// a failed attempt, and which make no OTP server check anything): once
// plain, and once inside FAST when an armor ticket is at hand.
type Preauth struct {
	Password     bool   `json:"password"`      // encrypted timestamp, or encrypted challenge under FAST
	OTP          bool   `json:"otp"`           // a one-time password (RFC 6560), offered under FAST
	PKINIT       bool   `json:"pkinit"`        // a certificate (PA-PK-AS-REQ)
	None         bool   `json:"none"`          // the KDC issues tickets without pre-authentication
	FAST         bool   `json:"fast"`          // the KDC offers FAST
	FASTRequired bool   `json:"fast_required"` // outside FAST nothing a password answers is offered
	Armored      bool   `json:"armored"`       // the FAST probe ran (an armor ticket was at hand)
	OTPService   string `json:"otp_service,omitempty"`
}

// String says it in a few words: "one-time password (OTP) inside FAST
// armor (required)".
func (p Preauth) String() string {
	var ways []string
	if p.OTP {
		w := "a one-time password (OTP)"
		if p.OTPService != "" {
			w += " for " + p.OTPService
		}
		ways = append(ways, w)
	}
	if p.Password {
		ways = append(ways, "the password")
	}
	if p.PKINIT {
		ways = append(ways, "a certificate (PKINIT)")
	}
	if p.None {
		ways = append(ways, "nothing (no pre-authentication)")
	}
	s := strings.Join(ways, " or ")
	switch {
	case p.FASTRequired && !p.Armored && !p.OTP:
		if s == "" {
			s = "something only FAST armor carries (likely a one-time password: a two-factor account)"
		}
		s += "; FAST armor required (sesame kinit -T ARMOR_CACHE)"
	case p.FASTRequired:
		s += "; FAST armor required"
	case p.FAST:
		s += "; FAST offered"
	}
	if s == "" {
		s = "nothing sesame recognises"
	}
	return s
}

// ProbePreauth asks the KDC what it wants of client: an AS-REQ without
// pre-authentication, and when armor holds a TGT of the realm, the same
// inside FAST (where MIT's KDC offers OTP and the encrypted challenge).
func (c *Client) ProbePreauth(ctx context.Context, client Principal, armor *CCache) (Preauth, error) {
	var p Preauth
	realm := c.configuredRealm(client.Realm)
	client.Realm = realm
	etypes := supportedEtypes(c.Config.LibDefaults.DefaultTktEnctypeIDs)
	opt := c.DefaultLoginOptions()
	if opt.Lifetime <= 0 {
		opt.Lifetime = time.Hour
	}
	probe := func(fa *fastArmor) (types.PADataSequence, bool, error) {
		req, err := c.asReq(realm, client.Gokrb5(), TGTPrincipal(realm).Gokrb5(), etypes, opt, c.now())
		if err != nil {
			return nil, false, err
		}
		if fa != nil {
			if err := fa.wrap(&req, nil); err != nil {
				return nil, false, err
			}
		}
		b, err := req.Marshal()
		if err != nil {
			return nil, false, err
		}
		_, err = c.send(ctx, realm, b)
		if err == nil {
			return nil, true, nil // a ticket without pre-authentication
		}
		var ke *KDCError
		if !errors.As(err, &ke) {
			return nil, false, err
		}
		pas := methodData(ke.EData)
		if fa != nil {
			inner, pas2, err := fa.unwrapError(ke, req.ReqBody.Nonce)
			if err != nil {
				return nil, false, err
			}
			ke, pas = inner, pas2
		}
		switch ke.Code {
		case errorcode.KDC_ERR_PREAUTH_REQUIRED:
			return pas, false, nil
		case errorcode.KDC_ERR_C_PRINCIPAL_UNKNOWN:
			return nil, false, c.loginError(ke, client, false)
		}
		return nil, false, fmt.Errorf("kdc %s: %s", ke.KDC, kdcErrorText(ke.Code))
	}
	pas, none, err := probe(nil)
	if err != nil {
		return p, err
	}
	p.None = none
	p.FAST = hasPAType(pas, patype.PA_FX_FAST)
	p.Password = hasPAType(pas, patype.PA_ENC_TIMESTAMP)
	p.PKINIT = hasPAType(pas, patype.PA_PK_AS_REQ)
	p.FASTRequired = p.FAST && !p.Password && !p.None && !p.PKINIT
	if armor == nil || none || !p.FAST {
		return p, nil
	}
	tgt, err := armorTGT(armor, realm, c.now())
	if err != nil {
		return p, nil
	}
	fa, err := newFastArmor(tgt, c.now())
	if err != nil {
		return p, nil
	}
	inner, _, err := probe(fa)
	if err != nil {
		return p, fmt.Errorf("probe inside FAST: %w", err)
	}
	p.Armored = true
	p.Password = p.Password || hasPAType(inner, patype.PA_ENCRYPTED_CHALLENGE)
	p.PKINIT = p.PKINIT || hasPAType(inner, patype.PA_PK_AS_REQ)
	if ch, ok, err := otpChallengeIn(inner); ok {
		p.OTP = true
		if err == nil {
			p.OTPService = ch.Service
		}
	}
	return p, nil
}

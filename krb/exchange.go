package krb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana/asnAppTag"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// The KDC exchanges are built from gokrb5's message types, but sent by this
// file rather than by gokrb5's Client: its AS exchange re-sends a fresh
// encrypted timestamp after KDC_ERR_PREAUTH_FAILED (a second password
// attempt against lockout counters), takes the timestamp from the local
// clock with no KDC offset, shuffles the KDC list, and does not say which
// KDCs it tried. Not using its Client also means no PA-REQ-ENC-PA-REP is
// sent, so the FAST-negotiation check that fails against Active Directory
// (gokrb5's DisablePAFXFAST) never comes into play.

// DefaultKDCTimeout bounds one attempt at one KDC when Client.Timeout is zero.
const DefaultKDCTimeout = 5 * time.Second

// maxReply caps a KDC reply read over TCP. Tickets with large PACs (Active
// Directory) reach tens of KiB; nothing legitimate comes near this.
const maxReply = 1 << 20

// Client performs AS and TGS exchanges with the KDCs of a realm as
// described by a krb5.conf. It holds no credentials; a zero Timeout and nil
// Clock mean DefaultKDCTimeout and time.Now.
type Client struct {
	Config  *config.Config
	Timeout time.Duration
	// Clock is the local clock. Tests set it to simulate a client whose
	// clock is off; the KDC offset learned from a skew error corrects it.
	Clock func() time.Time
	// fullUDPWait lets a UDP exchange wait the whole Timeout (a request
	// that must not be resent over TCP).
	fullUDPWait bool
}

// NewClient returns a Client for cfg.
func NewClient(cfg *config.Config) *Client { return &Client{Config: cfg} }

func (c *Client) now() time.Time {
	if c.Clock != nil {
		return c.Clock()
	}
	return time.Now()
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultKDCTimeout
}

// KDCError is a KRB-ERROR message returned by a KDC.
type KDCError struct {
	Code  int32
	EText string
	KDC   string    // address of the KDC that answered
	STime time.Time // the KDC's clock when it answered (stime + susec)
	EData []byte
}

func (e *KDCError) Error() string {
	s := "kdc " + e.KDC + " answered " + kdcErrorText(e.Code)
	if e.EText != "" {
		s += ": " + e.EText
	}
	return s
}

// kdcErrorText names a KRB-ERROR code: "KDC_ERR_X (some text, error N)".
// gokrb5's errorcode.Lookup gives "(N) KDC_ERR_X Some text", or
// "Unknown ErrorCode N".
func kdcErrorText(code int32) string {
	l := errorcode.Lookup(code)
	rest, ok := strings.CutPrefix(l, fmt.Sprintf("(%d) ", code))
	if !ok {
		return fmt.Sprintf("error %d", code)
	}
	name, text, _ := strings.Cut(rest, " ")
	if text == "" {
		return fmt.Sprintf("%s (error %d)", name, code)
	}
	return fmt.Sprintf("%s (%s, error %d)", name, strings.ToLower(text), code)
}

// UnreachableError says that no KDC of a realm answered.
type UnreachableError struct {
	Realm string
	Tried []string // "host:port/tcp: reason"
}

func (e *UnreachableError) Error() string {
	if len(e.Tried) == 0 {
		return fmt.Sprintf("no KDC known for realm %s", e.Realm)
	}
	return fmt.Sprintf("cannot reach any KDC for realm %s (tried %s)", e.Realm, strings.Join(e.Tried, "; "))
}

// Hint tells the user where KDCs come from.
func (e *UnreachableError) Hint() string {
	return fmt.Sprintf("check the kdc lines of [realms] %s in krb5.conf (KRB5_CONFIG) and that the network path to them is open", e.Realm)
}

// Is makes errors.Is(err, ErrKDCUnreachable) true.
func (e *UnreachableError) Is(target error) bool { return target == ErrKDCUnreachable }

// Sentinel errors for the failures a caller may want to tell apart. The
// returned errors wrap these and carry a Hint.
var (
	ErrWrongPassword    = errors.New("password incorrect")
	ErrPrincipalUnknown = errors.New("client principal unknown")
	ErrKDCUnreachable   = errors.New("kdc unreachable")
	ErrClockSkew        = errors.New("clock skew too great")
	ErrNotRenewable     = errors.New("ticket not renewable")
	ErrTicketExpired    = errors.New("ticket expired")
	ErrNoTGT            = errors.New("no ticket-granting ticket")
	ErrKeytab           = errors.New("no usable key in keytab")
	ErrPasswordExpired  = errors.New("password expired")
	ErrAccountLocked    = errors.New("account locked or disabled")
	ErrOTP              = errors.New("one-time password not accepted")
	ErrNeedsArmor       = errors.New("the kdc requires fast armor")
)

// Error is a failure with a kind (one of the Err* sentinels), a message and
// an optional hint for the user; it wraps the underlying cause.
type Error struct {
	Kind error
	Msg  string
	hint string
	Err  error
}

func (e *Error) Error() string { return e.Msg }

// Hint is what the user can do about it.
func (e *Error) Hint() string { return e.hint }

// Unwrap returns the cause (often a *KDCError).
func (e *Error) Unwrap() error { return e.Err }

// Is matches the kind.
func (e *Error) Is(target error) bool { return target == e.Kind }

// kdcAddrs lists the KDCs of realm in krb5.conf order (gokrb5's GetKDCs
// shuffles them; MIT tries them in order), falling back to a
// case-insensitive realm match and then to DNS SRV when dns_lookup_kdc is on.
func (c *Client) kdcAddrs(realm string) ([]string, error) {
	var ks []string
	for _, r := range c.Config.Realms {
		if r.Realm == realm {
			ks = r.KDC
			break
		}
	}
	if ks == nil {
		for _, r := range c.Config.Realms {
			if strings.EqualFold(r.Realm, realm) {
				ks = r.KDC
				break
			}
		}
	}
	if len(ks) == 0 && c.Config.LibDefaults.DNSLookupKDC {
		n, m, err := c.Config.GetKDCs(realm, true)
		if err == nil {
			for i := 1; i <= n; i++ {
				if a, ok := m[i]; ok {
					ks = append(ks, a)
				}
			}
		}
	}
	out := make([]string, 0, len(ks))
	for _, k := range ks {
		k = strings.TrimSuffix(strings.TrimSpace(k), "*")
		if _, _, err := net.SplitHostPort(k); err != nil {
			k = net.JoinHostPort(strings.Trim(k, "[]"), "88")
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, &UnreachableError{Realm: realm}
	}
	return out, nil
}

// send delivers msg to the KDCs of realm in order until one answers, and
// returns its reply. A KRB-ERROR reply is returned as a *KDCError. Like MIT,
// UDP is used for messages up to udp_preference_limit bytes; TCP is tried
// on the same KDC when UDP gets no answer (firewalls often drop it) or the
// KDC says the reply is too big for UDP.
func (c *Client) send(ctx context.Context, realm string, msg []byte) ([]byte, error) {
	addrs, err := c.kdcAddrs(realm)
	if err != nil {
		return nil, err
	}
	limit := c.Config.LibDefaults.UDPPreferenceLimit
	if limit == 0 {
		limit = 1465
	}
	protos := []string{"udp", "tcp"}
	if len(msg) > limit {
		protos = protos[1:]
	}
	unreachable := &UnreachableError{Realm: realm}
	for _, addr := range addrs {
	protocols:
		for _, proto := range protos {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			reply, err := c.exchangeOne(ctx, proto, addr, msg)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				unreachable.Tried = append(unreachable.Tried, addr+"/"+proto+": "+netReason(err))
				continue
			}
			var ke *KDCError
			if parseKRBError(reply, addr, &ke) != nil {
				return reply, nil
			}
			switch {
			case ke.Code == errorcode.KRB_ERR_RESPONSE_TOO_BIG && proto == "udp":
				slog.Debug("kdc reply too big for udp, retrying over tcp", "kdc", addr)
				continue
			case ke.Code == errorcode.KDC_ERR_SVC_UNAVAILABLE:
				unreachable.Tried = append(unreachable.Tried, addr+"/"+proto+": service unavailable")
				break protocols
			}
			return nil, ke
		}
	}
	return nil, unreachable
}

// netReason shortens a network error to what a user needs to read.
func netReason(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "no answer (timeout)"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return strings.TrimPrefix(oe.Err.Error(), "connect: ")
	}
	return err.Error()
}

// udpWait bounds the wait for a UDP answer before TCP is tried on the
// same KDC, as MIT moves on after about a second.
const udpWait = 2 * time.Second

func (c *Client) exchangeOne(ctx context.Context, proto, addr string, msg []byte) (reply []byte, err error) {
	start := time.Now()
	defer func() {
		slog.Debug("kdc exchange", "kdc", addr, "proto", proto, "sent", len(msg), "received", len(reply), "took", time.Since(start), "err", err)
	}()
	wait := c.timeout()
	if proto == "udp" && wait > udpWait && !c.fullUDPWait {
		wait = udpWait
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, proto, addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// Close the connection when the caller cancels, so that a blocked
	// read returns at once.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if proto == "udp" {
		if _, err := conn.Write(msg); err != nil {
			return nil, err
		}
		buf := make([]byte, 65536)
		n, err := conn.Read(buf)
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
	// RFC 4120 7.2.2: each message over TCP is preceded by its length as
	// four octets in network byte order.
	out := make([]byte, 4+len(msg))
	binary.BigEndian.PutUint32(out, uint32(len(msg)))
	copy(out[4:], msg)
	if _, err := conn.Write(out); err != nil {
		return nil, err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > maxReply {
		return nil, fmt.Errorf("bad reply length %d", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// parseKRBError sets *out and returns nil when b is a KRB-ERROR.
func parseKRBError(b []byte, kdc string, out **KDCError) error {
	if len(b) == 0 || b[0] != 0x60|asnAppTag.KRBError {
		return errors.New("not a KRB-ERROR")
	}
	var m messages.KRBError
	if err := m.Unmarshal(b); err != nil {
		return err
	}
	st := m.STime
	if m.Susec > 0 && m.Susec < 1e6 {
		st = st.Add(time.Duration(m.Susec) * time.Microsecond)
	}
	*out = &KDCError{Code: m.ErrorCode, EText: m.EText, KDC: kdc, STime: st, EData: m.EData}
	return nil
}

// rawKDCRep mirrors gokrb5's unexported KDC-REP layout but keeps the
// ticket as the exact bytes the KDC sent, which are what a ccache stores.
type rawKDCRep struct {
	PVNO    int                  `asn1:"explicit,tag:0"`
	MsgType int                  `asn1:"explicit,tag:1"`
	PAData  types.PADataSequence `asn1:"explicit,optional,tag:2"`
	CRealm  string               `asn1:"generalstring,explicit,tag:3"`
	CName   types.PrincipalName  `asn1:"explicit,tag:4"`
	Ticket  asn1.RawValue        `asn1:"explicit,tag:5"`
	EncPart types.EncryptedData  `asn1:"explicit,tag:6"`
}

// parseKDCRep decodes an AS-REP (appTag 11) or TGS-REP (13) and returns it
// with the DER of its ticket.
func parseKDCRep(b []byte, appTag int) (rawKDCRep, messages.Ticket, []byte, error) {
	var m rawKDCRep
	if _, err := asn1.UnmarshalWithParams(b, &m, fmt.Sprintf("application,explicit,tag:%d", appTag)); err != nil {
		return m, messages.Ticket{}, nil, fmt.Errorf("malformed reply from kdc: %w", err)
	}
	der := m.Ticket.FullBytes
	if len(der) == 0 || der[0] != 0x60|asnAppTag.Ticket {
		der = m.Ticket.Bytes
	}
	var tkt messages.Ticket
	if err := tkt.Unmarshal(der); err != nil {
		return m, tkt, nil, fmt.Errorf("malformed ticket in reply from kdc: %w", err)
	}
	return m, tkt, append([]byte(nil), der...), nil
}

// decryptRepPart decrypts and decodes the enc-part of a KDC-REP.
func decryptRepPart(ed types.EncryptedData, key types.EncryptionKey, usage uint32) (messages.EncKDCRepPart, error) {
	var part messages.EncKDCRepPart
	b, err := decryptEncPart(ed, key, usage)
	if err != nil {
		return part, err
	}
	if err := part.Unmarshal(b); err != nil {
		return part, fmt.Errorf("malformed encrypted part in reply from kdc: %w", err)
	}
	return part, nil
}

// credentialFrom builds the ccache entry for a KDC reply, keeping the
// ticket exactly as the KDC encoded it rather than re-encoded by gokrb5.
func credentialFrom(rep rawKDCRep, tkt messages.Ticket, part messages.EncKDCRepPart, ticketDER []byte) (Credential, error) {
	cr, err := CredentialFromKDCRep(rep.CRealm, rep.CName, tkt, part)
	if err != nil {
		return cr, err
	}
	cr.Ticket = ticketDER
	return cr, nil
}

// supportedEtypes keeps the enctypes gokrb5 can compute with, in order.
func supportedEtypes(ids []int32) []int32 {
	var out []int32
	for _, id := range ids {
		if _, err := crypto.GetEtype(id); err == nil {
			out = append(out, id)
		}
	}
	return out
}

package krb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"syscall"
	"time"
)

// The KCM protocol, as MIT libkrb5 (src/lib/krb5/ccache/cc_kcm.c and
// src/include/kcm.h) speaks it to sssd-kcm or Heimdal's kcm over a Unix
// stream socket. No Go library speaks it, so it is written out here.
//
//	request = u32 length, then: u8 major (2), u8 minor (0), u16 opcode,
//	          parameters
//	reply   = u32 length L, u32 transport code, then L bytes:
//	          u32 status, results
//
// All integers are big-endian. A transport code other than zero comes
// with L = 0. Cache names are zero-terminated strings; principals and
// credentials are in the FILE cache version 4 encoding; UUIDs are 16
// bytes and a UUID list runs to the end of the reply. Status codes are
// com_err codes of the krb5 error table.

const (
	kcmVersionMajor = 2
	kcmVersionMinor = 0
	kcmUUIDLen      = 16
	// MIT refuses replies above 10 MiB; so do we, before allocating.
	kcmMaxReply = 10 << 20

	// DefaultKCMSocket is where MIT and Heimdal look for the daemon when
	// krb5.conf has no kcm_socket (sssd-kcm listens there too; /var/run
	// is /run on every current system).
	DefaultKCMSocket = "/var/run/.heim_org.h5l.kcm-socket"
)

// KCM opcodes (kcm.h). Only those sesame sends are listed.
const (
	kcmOpGenNew           uint16 = 3
	kcmOpInitialize       uint16 = 4
	kcmOpDestroy          uint16 = 5
	kcmOpStore            uint16 = 6
	kcmOpGetPrincipal     uint16 = 8
	kcmOpGetCredUUIDList  uint16 = 9
	kcmOpGetCredByUUID    uint16 = 10
	kcmOpGetCacheUUIDList uint16 = 18
	kcmOpGetCacheByUUID   uint16 = 19
	kcmOpGetDefaultCache  uint16 = 20
	kcmOpSetDefaultCache  uint16 = 21
	kcmOpGetKDCOffset     uint16 = 22
	kcmOpSetKDCOffset     uint16 = 23
	// MIT extensions (13000 + n).
	kcmOpGetCredList uint16 = 13001
	kcmOpReplace     uint16 = 13002
)

// Status codes from the krb5 com_err table (base -1765328384) that the
// daemons return.
const (
	kcmErrCCBadName   int32 = -1765328245
	kcmErrCCNotFound  int32 = -1765328243
	kcmErrCCEnd       int32 = -1765328242
	kcmErrCCIO        int32 = -1765328191
	kcmErrFCCPerm     int32 = -1765328190
	kcmErrFCCNoFile   int32 = -1765328189
	kcmErrFCCInternal int32 = -1765328188
	kcmErrCCWrite     int32 = -1765328187
	kcmErrCCNoMem     int32 = -1765328186
	kcmErrCCFormat    int32 = -1765328185
	kcmErrCCNoSupp    int32 = -1765328137
)

// kcmTimeout bounds one request and its reply, so that a hung daemon
// costs a command seconds, not forever.
var kcmTimeout = 10 * time.Second

// KCMError is a failure status returned by the KCM daemon.
type KCMError struct {
	Op   string // what sesame asked, e.g. "store credentials"
	Name string // the cache name, "" for collection-wide requests
	Code int32
}

func (e *KCMError) Error() string {
	var what string
	switch e.Code {
	case kcmErrFCCNoFile:
		what = "no such credentials cache"
	case kcmErrFCCPerm:
		what = "permission denied (the cache belongs to another user)"
	case kcmErrCCBadName:
		what = "malformed cache name"
	case kcmErrCCNotFound, kcmErrCCEnd:
		what = "no matching credential"
	case kcmErrCCNoMem:
		what = "the daemon is out of memory or over its quota"
	case kcmErrFCCInternal, kcmErrCCNoSupp:
		what = "the daemon does not support this request"
	case kcmErrCCIO:
		what = "the daemon reported an I/O error"
	case kcmErrCCWrite:
		what = "the daemon could not write the cache"
	case kcmErrCCFormat:
		what = "the daemon rejected the data as malformed"
	default:
		what = fmt.Sprintf("error code %d", e.Code)
	}
	if e.Name != "" {
		return fmt.Sprintf("KCM:%s: %s: %s", e.Name, e.Op, what)
	}
	return fmt.Sprintf("KCM: %s: %s", e.Op, what)
}

// Is makes errors.Is(err, ErrNoCache) true for a missing cache.
func (e *KCMError) Is(target error) bool {
	return target == ErrNoCache && e.Code == kcmErrFCCNoFile
}

// Hint suggests the way out for the errors a user can act on.
func (e *KCMError) Hint() string {
	switch e.Code {
	case kcmErrFCCNoFile:
		return "get a ticket with: sesame kinit"
	case kcmErrFCCPerm:
		return "KCM caches are private to their user; use KCM: for your own default cache"
	}
	return ""
}

// unsupported reports a status that may mean "operation not implemented":
// Heimdal answers KRB5_FCC_INTERNAL, sssd KRB5_CC_NOSUPP or (for opcodes
// it does not know) KRB5_CC_IO.
func (e *KCMError) unsupported() bool {
	return e.Code == kcmErrFCCInternal || e.Code == kcmErrCCNoSupp || e.Code == kcmErrCCIO
}

func kcmUnsupported(err error) bool {
	var ke *KCMError
	return errors.As(err, &ke) && ke.unsupported()
}

// KCMUnavailableError says that no KCM daemon answers on the socket.
type KCMUnavailableError struct {
	Socket string
	Err    error
}

func (e *KCMUnavailableError) Error() string {
	return fmt.Sprintf("KCM credentials cache: no KCM daemon (sssd-kcm) is listening on %s", e.Socket)
}

func (e *KCMUnavailableError) Unwrap() error { return e.Err }

// Hint says how to start the daemon, or how to leave KCM.
func (e *KCMUnavailableError) Hint() string {
	return "start it with `systemctl start sssd-kcm.socket` (package sssd-kcm), or use a file cache: export KRB5CCNAME=FILE:/tmp/krb5cc_$(id -u)"
}

// KCMProtocolError reports a reply that does not follow the protocol.
type KCMProtocolError struct {
	Op  string
	Msg string
}

func (e *KCMProtocolError) Error() string {
	return fmt.Sprintf("KCM: %s: malformed reply from the daemon: %s", e.Op, e.Msg)
}

// kcmConn is one connection to the daemon. Requests on it are sequential.
type kcmConn struct {
	c      net.Conn
	socket string
}

// kcmDial connects to the daemon's socket. A missing socket or a refused
// connection is a *KCMUnavailableError.
func kcmDial(socket string) (*kcmConn, error) {
	if socket == "-" {
		return nil, &KCMUnavailableError{Socket: socket, Err: errors.New("kcm_socket is set to - in krb5.conf")}
	}
	c, err := net.DialTimeout("unix", socket, kcmTimeout)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOTDIR) {
			return nil, &KCMUnavailableError{Socket: socket, Err: err}
		}
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			err = oe.Err
		}
		return nil, fmt.Errorf("KCM credentials cache: cannot connect to %s: %w", socket, err)
	}
	return &kcmConn{c: c, socket: socket}, nil
}

func (k *kcmConn) Close() error { return k.c.Close() }

// kcmRequest builds a request: header, then the cache name when name is
// not nil, then args.
func kcmRequest(op uint16, name *string, args []byte) []byte {
	b := make([]byte, 4, 8+len(args)+64)
	b = append(b, kcmVersionMajor, kcmVersionMinor)
	b = binary.BigEndian.AppendUint16(b, op)
	if name != nil {
		b = append(b, *name...)
		b = append(b, 0)
	}
	b = append(b, args...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// call sends one request and returns the reply's results (after the
// status). A non-zero status is a *KCMError.
func (k *kcmConn) call(what string, op uint16, name *string, args []byte) ([]byte, error) {
	if name != nil && bytes.IndexByte([]byte(*name), 0) >= 0 {
		return nil, fmt.Errorf("KCM: invalid cache name %q", *name)
	}
	k.c.SetDeadline(time.Now().Add(kcmTimeout))
	if _, err := k.c.Write(kcmRequest(op, name, args)); err != nil {
		return nil, k.ioError(what, err)
	}
	body, err := kcmReadReply(k.c, what)
	if err != nil {
		var ke *KCMError
		if errors.As(err, &ke) && name != nil {
			ke.Name = *name
		}
		if _, ok := err.(*KCMProtocolError); ok || errors.As(err, &ke) {
			return nil, err
		}
		return nil, k.ioError(what, err)
	}
	return body, nil
}

func (k *kcmConn) ioError(what string, err error) error {
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("KCM: %s: the daemon on %s closed the connection", what, k.socket)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("KCM: %s: the daemon on %s did not answer within %v", what, k.socket, kcmTimeout)
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		err = oe.Err
	}
	return fmt.Errorf("KCM: %s: %w", what, err)
}

// kcmReadReply reads one framed reply from r and returns the results
// after the status word. It never allocates more than kcmMaxReply.
func kcmReadReply(r io.Reader, what string) ([]byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	code := int32(binary.BigEndian.Uint32(hdr[4:]))
	if n > kcmMaxReply {
		return nil, &KCMProtocolError{Op: what, Msg: fmt.Sprintf("reply of %d bytes is larger than %d", n, kcmMaxReply)}
	}
	if code != 0 {
		return nil, &KCMError{Op: what, Code: code}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return kcmStatus(body, what)
}

// kcmStatus splits a reply payload into status and results.
func kcmStatus(body []byte, what string) ([]byte, error) {
	if len(body) < 4 {
		return nil, &KCMProtocolError{Op: what, Msg: fmt.Sprintf("%d-byte reply has no status", len(body))}
	}
	if st := int32(binary.BigEndian.Uint32(body)); st != 0 {
		return nil, &KCMError{Op: what, Code: st}
	}
	return body[4:], nil
}

// ---- reply parsers: every one bounds-checked, none panics ----

// kcmParseName returns the zero-terminated name at the start of b.
func kcmParseName(b []byte, what string) (string, error) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", &KCMProtocolError{Op: what, Msg: "cache name is not terminated"}
	}
	if i == 0 {
		return "", &KCMProtocolError{Op: what, Msg: "empty cache name"}
	}
	return string(b[:i]), nil
}

// kcmParseUUIDs splits a UUID list (the rest of the reply).
func kcmParseUUIDs(b []byte, what string) ([][kcmUUIDLen]byte, error) {
	if len(b)%kcmUUIDLen != 0 {
		return nil, &KCMProtocolError{Op: what, Msg: fmt.Sprintf("UUID list of %d bytes", len(b))}
	}
	out := make([][kcmUUIDLen]byte, len(b)/kcmUUIDLen)
	for i := range out {
		copy(out[i][:], b[i*kcmUUIDLen:])
	}
	return out, nil
}

// kcmParsePrincipal decodes a principal in the FILE v4 encoding.
func kcmParsePrincipal(b []byte, what string) (Principal, error) {
	r := &ccReader{b: b}
	p, err := r.principal("principal")
	if err != nil {
		return Principal{}, kcmFormat(what, err)
	}
	return p, nil
}

// kcmParseCred decodes one credential in the FILE v4 encoding. Trailing
// bytes are ignored, as MIT does.
func kcmParseCred(b []byte, what string) (Credential, error) {
	r := &ccReader{b: b}
	c, err := r.credential(4)
	if err != nil {
		return Credential{}, kcmFormat(what, err)
	}
	return c, nil
}

// kcmParseCredList decodes GET_CRED_LIST's reply: u32 count, then count
// times (u32 length, credential).
func kcmParseCredList(b []byte, what string) ([]Credential, error) {
	r := &ccReader{b: b}
	n, err := r.count("credential", 4)
	if err != nil {
		return nil, kcmFormat(what, err)
	}
	out := make([]Credential, 0, n)
	for i := 0; i < n; i++ {
		d, err := r.data("credential")
		if err != nil {
			return nil, kcmFormat(what, err)
		}
		c, err := kcmParseCred(d, what)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// kcmParseOffset decodes GET_KDC_OFFSET's reply: i32 seconds. sssd
// answers INT32_MAX for a cache that has none.
func kcmParseOffset(b []byte, what string) (time.Duration, bool, error) {
	if len(b) < 4 {
		return 0, false, &KCMProtocolError{Op: what, Msg: "short KDC offset"}
	}
	v := int32(binary.BigEndian.Uint32(b))
	if v == math.MaxInt32 {
		return 0, false, nil
	}
	return time.Duration(v) * time.Second, true, nil
}

// kcmFormat turns a decoding error of the FILE encoding into a protocol
// error naming the request.
func kcmFormat(what string, err error) error {
	var fe *CCacheFormatError
	if errors.As(err, &fe) {
		return &KCMProtocolError{Op: what, Msg: fe.Msg}
	}
	return &KCMProtocolError{Op: what, Msg: err.Error()}
}

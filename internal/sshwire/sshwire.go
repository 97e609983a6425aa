// Package sshwire reads the SSH wire encoding (RFC 4251, section 5) of
// messages that sesame parses by hand: sign requests in the agent, and the
// userauth requests inside the data a key is asked to sign.
package sshwire

import (
	"encoding/binary"
	"errors"
)

// ErrShort reports a message that ends inside a field.
var ErrShort = errors.New("truncated")

// Reader takes fields off the front of B and remembers the first error;
// after one, every read returns a zero value.
type Reader struct {
	B   []byte
	Err error
}

// Byte reads a byte.
func (r *Reader) Byte() byte {
	if r.Err != nil {
		return 0
	}
	if len(r.B) < 1 {
		r.Err = ErrShort
		return 0
	}
	c := r.B[0]
	r.B = r.B[1:]
	return c
}

// Uint32 reads a big-endian uint32.
func (r *Reader) Uint32() uint32 {
	if r.Err != nil {
		return 0
	}
	if len(r.B) < 4 {
		r.Err = ErrShort
		return 0
	}
	v := binary.BigEndian.Uint32(r.B)
	r.B = r.B[4:]
	return v
}

// String reads a length-prefixed string. The result aliases B.
func (r *Reader) String() []byte {
	n := r.Uint32()
	if r.Err != nil {
		return nil
	}
	if uint64(n) > uint64(len(r.B)) {
		r.Err = ErrShort
		return nil
	}
	s := r.B[:n]
	r.B = r.B[n:]
	return s
}

package sshwire

import (
	"bytes"
	"testing"
)

func TestReader(t *testing.T) {
	r := Reader{B: []byte{7, 0, 0, 0, 2, 'h', 'i', 0, 0, 1, 0, 9}}
	if b, s, n := r.Byte(), r.String(), r.Uint32(); b != 7 || string(s) != "hi" || n != 256 || r.Err != nil {
		t.Fatalf("read %d %q %d, err %v", b, s, n, r.Err)
	}
	if !bytes.Equal(r.B, []byte{9}) {
		t.Fatalf("left %v", r.B)
	}
	// Past the end: the first error sticks and reads give zero values.
	if s := r.String(); s != nil || r.Err != ErrShort {
		t.Fatalf("short string: %q, %v", s, r.Err)
	}
	if r.Byte() != 0 || r.Uint32() != 0 {
		t.Fatal("reads after an error returned data")
	}
	// A length that runs past the end, including one that would overflow.
	for _, b := range [][]byte{{0, 0, 0, 5, 'a'}, {0xff, 0xff, 0xff, 0xff}, {0, 0}} {
		r := Reader{B: b}
		if s := r.String(); s != nil || r.Err != ErrShort {
			t.Errorf("% x: %q, %v", b, s, r.Err)
		}
	}
}

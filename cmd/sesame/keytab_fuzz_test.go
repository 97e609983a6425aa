package main

import (
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/keytab"
)

// FuzzKeytabListing: no keytab file, however hostile, makes kinit -k or
// klist -k crash; what parses is listed.
func FuzzKeytabListing(f *testing.F) {
	kt := keytab.New()
	if err := kt.AddEntry("host/localhost", "SESAME.TEST", "pw", time.Unix(1700000000, 0), 2, 18); err != nil {
		f.Fatal(err)
	}
	good, err := kt.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{5, 2})
	f.Add([]byte{5, 2, 0xff, 0xff, 0xff, 0xf0})
	f.Add([]byte{5, 2, 0, 0, 0, 0x10, 0, 5, 0, 1, 'A'})
	f.Add([]byte{5, 1, 0x80, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		kt, err := parseKeytab(data)
		if err != nil {
			return
		}
		keytabListing(kt, klistParams{keytab: true, times: true, keys: true, etypes: true})
	})
}

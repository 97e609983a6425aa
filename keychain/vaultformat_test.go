package keychain

import (
	"bytes"
	"testing"
)

func TestVaultFormatRoundTrip(t *testing.T) {
	m := map[string][]byte{"b": []byte("2"), "a": {}, "ssh-key/SHA256:x": bytes.Repeat([]byte("k"), 300)}
	b, err := encodeVault(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeVault(b)
	if err != nil || len(got) != 3 || string(got["b"]) != "2" || len(got["ssh-key/SHA256:x"]) != 300 {
		t.Fatalf("decode = %v, %v", got, err)
	}
	for _, bad := range [][]byte{
		nil, []byte("SESAMEV1"), []byte("SESAMEV2\x00\x00\x00\x00"),
		append(bytes.Clone(b), 0),          // trailing byte
		b[:len(b)-1],                       // truncated
		[]byte("SESAMEV1\xff\xff\xff\xff"), // huge count
		[]byte("SESAMEV1\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"),                           // empty name
		[]byte("SESAMEV1\x00\x00\x00\x02\x00\x01b\x00\x00\x00\x00\x00\x01a\x00\x00\x00\x00"), // out of order
		[]byte("SESAMEV1\x00\x00\x00\x02\x00\x01a\x00\x00\x00\x00\x00\x01a\x00\x00\x00\x00"), // duplicate
		[]byte("SESAMEV1\x00\x00\x00\x01\x00\x01a\xff\xff\xff\xff"),                          // secret too long
	} {
		if _, err := decodeVault(bad); err == nil {
			t.Errorf("decodeVault(%q) accepted", bad)
		}
	}
}

// FuzzVaultDecode feeds arbitrary decrypted contents to the parser: it must
// never panic, and whatever it accepts must re-encode to the same bytes
// (the format is canonical).
func FuzzVaultDecode(f *testing.F) {
	seed, _ := encodeVault(map[string][]byte{"a": []byte("1"), "krb-password/u@R": []byte("pw"), "ssh-key/SHA256:x": {}})
	f.Add(seed)
	f.Add([]byte("SESAMEV1\x00\x00\x00\x00"))
	f.Add([]byte("SESAMEV1\x00\x00\x00\x01\x00\x01a\x00\x00\x00\x01z"))
	f.Add([]byte("SESAMEV1\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeVault(data)
		if err != nil {
			return
		}
		again, err := encodeVault(m)
		if err != nil {
			t.Fatalf("accepted contents do not re-encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("not canonical:\n in  %q\n out %q", data, again)
		}
	})
}

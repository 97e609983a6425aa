package krb

import (
	"encoding/hex"
	"testing"

	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/types"
)

// TestCF2Vectors checks KRB-FX-CF2 against MIT's regression values
// (keys from string-to-key of "key1" and "key2", each its own salt;
// peppers "a" and "b").
func TestCF2Vectors(t *testing.T) {
	for _, c := range []struct {
		etype int32
		want  string
	}{
		{17, "97df97e4b798b29eb31ed7280287a92a"},
		{18, "4d6ca4e629785c1f01baf55e2e548566b9617ae3a96868c337cb93b5e72b1c7b"},
	} {
		et, err := crypto.GetEtype(c.etype)
		if err != nil {
			t.Fatal(err)
		}
		key := func(s string) types.EncryptionKey {
			b, err := et.StringToKey(s, s, et.GetDefaultStringToKeyParams())
			if err != nil {
				t.Fatal(err)
			}
			return types.EncryptionKey{KeyType: c.etype, KeyValue: b}
		}
		got, err := cf2(key("key1"), key("key2"), "a", "b")
		if err != nil {
			t.Fatal(err)
		}
		if h := hex.EncodeToString(got.KeyValue); h != c.want {
			t.Errorf("etype %d: cf2 = %s, want %s", c.etype, h, c.want)
		}
	}
}

package krb

import (
	"testing"

	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/types"
)

// A short or garbled enc-part from the network is an error, never a
// panic, for every enctype sesame accepts.
func TestDecryptEncPartHostileCiphertext(t *testing.T) {
	for _, et := range []int32{etypeID.AES128_CTS_HMAC_SHA1_96, etypeID.AES256_CTS_HMAC_SHA1_96,
		etypeID.AES128_CTS_HMAC_SHA256_128, etypeID.AES256_CTS_HMAC_SHA384_192, etypeID.RC4_HMAC} {
		key := types.EncryptionKey{KeyType: et, KeyValue: make([]byte, 32)}
		if et == etypeID.AES128_CTS_HMAC_SHA1_96 || et == etypeID.AES128_CTS_HMAC_SHA256_128 || et == etypeID.RC4_HMAC {
			key.KeyValue = make([]byte, 16)
		}
		for n := 0; n < 64; n++ {
			ed := types.EncryptedData{EType: et, Cipher: make([]byte, n)}
			if _, err := decryptEncPart(ed, key, 3); err == nil {
				t.Errorf("enctype %d: %d zero bytes decrypted without error", et, n)
			}
		}
	}
}

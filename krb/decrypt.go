package krb

import (
	"fmt"

	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/types"
)

// decryptEncPart decrypts ed with key for usage, as crypto.DecryptEncPart,
// but never panics on hostile input: gokrb5 slices the ciphertext by the
// enctype's confounder and checksum sizes without checking its length, so
// a KDC reply (or anyone on the path to the KDC) sending a short enc-part
// would crash kinit, the renewer or the agent that keeps the ticket.
func decryptEncPart(ed types.EncryptedData, key types.EncryptionKey, usage uint32) (plain []byte, err error) {
	et, err := crypto.GetEtype(key.KeyType)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	if min := et.GetConfounderByteSize() + et.GetHMACBitLength()/8; len(ed.Cipher) < min {
		return nil, fmt.Errorf("decrypt: ciphertext of %d bytes is shorter than the %d the encryption type needs", len(ed.Cipher), min)
	}
	defer func() {
		if r := recover(); r != nil {
			plain, err = nil, fmt.Errorf("decrypt: malformed ciphertext (%v)", r)
		}
	}()
	return crypto.DecryptEncPart(ed, key, usage)
}

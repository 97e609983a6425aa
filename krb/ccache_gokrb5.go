package krb

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// Conversions between the cache's types and gokrb5's, for the exchanges
// that use gokrb5 to talk to the KDC.

// PrincipalFromGokrb5 builds a Principal from a gokrb5 name and its realm.
func PrincipalFromGokrb5(pn types.PrincipalName, realm string) Principal {
	return Principal{NameType: pn.NameType, Realm: realm, Components: append([]string(nil), pn.NameString...)}
}

// Gokrb5 returns the principal's name part as gokrb5 uses it (the realm is
// passed separately in gokrb5).
func (p Principal) Gokrb5() types.PrincipalName {
	return types.PrincipalName{NameType: p.NameType, NameString: append([]string(nil), p.Components...)}
}

// Gokrb5 returns the key as a gokrb5 EncryptionKey.
func (k KeyBlock) Gokrb5() types.EncryptionKey {
	return types.EncryptionKey{KeyType: k.EncType, KeyValue: append([]byte(nil), k.Value...)}
}

// Gokrb5Ticket decodes the credential's DER ticket. Malformed DER is an
// error, never a panic (gokrb5's ASN.1 decoder is guarded).
func (c Credential) Gokrb5Ticket() (tkt messages.Ticket, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("ticket for %s cannot be decoded", c.Server)
		}
	}()
	if err := tkt.Unmarshal(c.Ticket); err != nil {
		return messages.Ticket{}, fmt.Errorf("ticket for %s cannot be decoded: %w", c.Server, err)
	}
	return tkt, nil
}

// FlagsFromGokrb5 converts an RFC 4120 TicketFlags bit string to MIT's
// 32-bit layout: bit 0 of the bit string is the most significant bit, so
// the first four bytes read big-endian are exactly MIT's value.
func FlagsFromGokrb5(bs asn1.BitString) uint32 {
	var b [4]byte
	copy(b[:], bs.Bytes)
	return binary.BigEndian.Uint32(b[:])
}

// FlagsGokrb5 converts MIT-layout flags to an RFC 4120 bit string.
func FlagsGokrb5(flags uint32) asn1.BitString {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, flags)
	return asn1.BitString{Bytes: b, BitLength: 32}
}

// CredentialFromKDCRep builds the cache entry for a ticket the KDC just
// issued: client name and realm from the reply, the ticket as DER, and the
// session key, times, flags and addresses from the decrypted reply part.
func CredentialFromKDCRep(crealm string, cname types.PrincipalName, tkt messages.Ticket, enc messages.EncKDCRepPart) (Credential, error) {
	der, err := tkt.Marshal()
	if err != nil {
		return Credential{}, fmt.Errorf("encode ticket: %w", err)
	}
	c := Credential{
		Client:    PrincipalFromGokrb5(cname, crealm),
		Server:    PrincipalFromGokrb5(enc.SName, enc.SRealm),
		Key:       KeyBlock{EncType: enc.Key.KeyType, Value: append([]byte(nil), enc.Key.KeyValue...)},
		AuthTime:  ccKDCTime(enc.AuthTime),
		StartTime: ccKDCTime(enc.StartTime),
		EndTime:   ccKDCTime(enc.EndTime),
		RenewTill: ccKDCTime(enc.RenewTill),
		Flags:     FlagsFromGokrb5(enc.Flags),
		Ticket:    der,
	}
	// MIT stores starttime = authtime when the KDC leaves it out.
	if c.StartTime.IsZero() {
		c.StartTime = c.AuthTime
	}
	for _, a := range enc.CAddr {
		c.Addresses = append(c.Addresses, Address{Type: int16(a.AddrType), Data: append([]byte(nil), a.Address...)})
	}
	return c, nil
}

// ccKDCTime maps gokrb5's absent optional time (the zero time, or year 1
// from the ASN.1 decoder) to the zero time.Time the cache writes as 0.
func ccKDCTime(t time.Time) time.Time {
	if t.IsZero() || t.Unix() <= 0 {
		return time.Time{}
	}
	return t.Truncate(time.Second)
}

// ccEnctypeNames are MIT's canonical enctype names, as klist -e prints them.
var ccEnctypeNames = map[int32]string{
	1: "des-cbc-crc", 2: "des-cbc-md4", 3: "des-cbc-md5", 6: "des3-cbc-raw", 16: "des3-cbc-sha1",
	17: "aes128-cts-hmac-sha1-96", 18: "aes256-cts-hmac-sha1-96",
	19: "aes128-cts-hmac-sha256-128", 20: "aes256-cts-hmac-sha384-192",
	23: "arcfour-hmac", 24: "arcfour-hmac-exp",
	25: "camellia128-cts-cmac", 26: "camellia256-cts-cmac",
}

// EncTypeName is the key's enctype as MIT klist -e names it
// ("aes256-cts-hmac-sha1-96"), or "etype N" for one MIT does not know.
func (k KeyBlock) EncTypeName() string { return ccEnctypeName(k.EncType) }

func ccEnctypeName(e int32) string {
	if n, ok := ccEnctypeNames[e]; ok {
		return n
	}
	return fmt.Sprintf("etype %d", e)
}

// ccDeprecatedEnctypes are the enctypes MIT 1.20 marks deprecated.
var ccDeprecatedEnctypes = map[int32]bool{6: true, 16: true, 23: true, 24: true}

// EncTypeKlistName is the enctype as MIT klist -e prints it:
// "DEPRECATED:" before a deprecated or unknown one, as MIT 1.20 does.
func EncTypeKlistName(e int32) string {
	n, known := ccEnctypeNames[e]
	if e >= 1 && e <= 3 {
		known = false // single DES: gone from MIT since 1.18
	}
	if !known {
		n = fmt.Sprintf("etype %d", e)
	}
	if !known || ccDeprecatedEnctypes[e] {
		return "DEPRECATED:" + n
	}
	return n
}

// TicketEncType is the enctype the ticket itself is encrypted with (the
// second name in klist -e's "Etype (skey, tkt)").
func (c Credential) TicketEncType() (int32, error) {
	t, err := c.Gokrb5Ticket()
	if err != nil {
		return 0, err
	}
	return t.EncPart.EType, nil
}

// TicketEncTypeName is TicketEncType named as klist -e does.
func (c Credential) TicketEncTypeName() (string, error) {
	e, err := c.TicketEncType()
	if err != nil {
		return "", err
	}
	return ccEnctypeName(e), nil
}

package krb

import (
	"fmt"
	"strings"
)

// Principal is a Kerberos principal name as stored in a ccache.
type Principal struct {
	NameType   int32
	Realm      string
	Components []string
}

// String renders the principal as MIT's krb5_unparse_name does:
// components joined by "/", then "@" and the realm, with "/", "@", "\"
// and control characters escaped.
func (p Principal) String() string {
	var b strings.Builder
	for i, c := range p.Components {
		if i > 0 {
			b.WriteByte('/')
		}
		ccEscape(&b, c, "/@")
	}
	b.WriteByte('@')
	ccEscape(&b, p.Realm, "@")
	return b.String()
}

// NameString is the principal without its realm ("host/example.org").
func (p Principal) NameString() string {
	var b strings.Builder
	for i, c := range p.Components {
		if i > 0 {
			b.WriteByte('/')
		}
		ccEscape(&b, c, "/@")
	}
	return b.String()
}

func ccEscape(b *strings.Builder, s, special string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' || strings.IndexByte(special, c) >= 0:
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\b':
			b.WriteString(`\b`)
		case c == 0:
			b.WriteString(`\0`)
		default:
			b.WriteByte(c)
		}
	}
}

// ParsePrincipal parses "name/inst@REALM" with MIT's escapes (\/ \@ \\ \n
// \t \b \0). Without "@" the realm is defaultRealm. The name type is
// KRB5_NT_PRINCIPAL, or KRB5_NT_SRV_INST for krbtgt/….
func ParsePrincipal(s, defaultRealm string) (Principal, error) {
	var p Principal
	var cur strings.Builder
	inRealm := false
	hasRealm := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' {
			if i+1 == len(s) {
				return Principal{}, fmt.Errorf("principal %q ends with a lone backslash", s)
			}
			i++
			switch s[i] {
			case 'n':
				c = '\n'
			case 't':
				c = '\t'
			case 'b':
				c = '\b'
			case '0':
				c = 0
			default:
				c = s[i]
			}
			cur.WriteByte(c)
			continue
		}
		switch {
		case c == '/' && !inRealm:
			p.Components = append(p.Components, cur.String())
			cur.Reset()
		case c == '@' && !inRealm:
			p.Components = append(p.Components, cur.String())
			cur.Reset()
			inRealm, hasRealm = true, true
		case c == '@':
			return Principal{}, fmt.Errorf("principal %q has more than one unescaped @", s)
		default:
			cur.WriteByte(c)
		}
	}
	if inRealm {
		p.Realm = cur.String()
	} else {
		p.Components = append(p.Components, cur.String())
		p.Realm = defaultRealm
	}
	for _, c := range p.Components {
		if c == "" {
			return Principal{}, fmt.Errorf("principal %q has an empty name component", s)
		}
	}
	if hasRealm && p.Realm == "" {
		return Principal{}, fmt.Errorf("principal %q has an empty realm", s)
	}
	if p.Realm == "" {
		return Principal{}, fmt.Errorf("principal %q has no realm and no default_realm is configured", s)
	}
	p.NameType = ccNameTypePrincipal
	if len(p.Components) == 2 && p.Components[0] == "krbtgt" {
		p.NameType = ccNameTypeSrvInst
	}
	return p, nil
}

// Equal compares two principals the way sesame matches cache entries: the
// name components exactly, the realm without regard to case (Active
// Directory realms arrive in either case). The name type is not
// significant (RFC 4120 section 6.2).
func (p Principal) Equal(o Principal) bool {
	if len(p.Components) != len(o.Components) || !strings.EqualFold(p.Realm, o.Realm) {
		return false
	}
	for i := range p.Components {
		if p.Components[i] != o.Components[i] {
			return false
		}
	}
	return true
}

// TGTPrincipal is krbtgt/REALM@REALM.
func TGTPrincipal(realm string) Principal {
	return Principal{NameType: ccNameTypeSrvInst, Realm: realm, Components: []string{"krbtgt", realm}}
}

// IsTGT reports whether the principal is the local TGS of realm
// (krbtgt/REALM@REALM, realm compared without regard to case).
func (p Principal) IsTGT(realm string) bool {
	return len(p.Components) == 2 && p.Components[0] == "krbtgt" &&
		strings.EqualFold(p.Components[1], realm) && strings.EqualFold(p.Realm, realm)
}

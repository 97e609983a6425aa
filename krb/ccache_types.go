package krb

import "time"

// These types are the in-memory form of an MIT credentials cache (FILE
// format version 3 or 4). The reader (ParseCCache) and writer
// (CCache.Marshal) in ccache.go convert between them and bytes; the AS and
// TGS exchanges produce Credentials to store in them.

// Address is a host address attached to a ticket.
type Address struct {
	Type int16
	Data []byte
}

// AuthData is one authorization-data element.
type AuthData struct {
	Type int16
	Data []byte
}

// KeyBlock is a session key.
type KeyBlock struct {
	EncType int32
	Value   []byte
}

// Credential is one ccache entry: a ticket with its session key and times.
// Config entries (server krb5_ccache_conf_data/<key>@X-CACHECONF:) are kept
// as ordinary Credentials whose Ticket holds the value.
type Credential struct {
	Client       Principal
	Server       Principal
	Key          KeyBlock
	AuthTime     time.Time
	StartTime    time.Time
	EndTime      time.Time
	RenewTill    time.Time
	IsSKey       bool
	Flags        uint32 // ticket flags, bit 0 (forwarded... see RFC 4120 5.3) in MIT's layout
	Addresses    []Address
	AuthData     []AuthData
	Ticket       []byte // DER-encoded Ticket
	SecondTicket []byte
}

// HeaderField is one tag of the v4 header that sesame does not interpret;
// it is kept so that a rewrite does not drop it.
type HeaderField struct {
	Tag   uint16
	Value []byte
}

// CCache is a whole credentials cache.
type CCache struct {
	Version          int // 3 or 4; Marshal writes 4 when zero
	KDCOffset        time.Duration
	HasKDCOffset     bool
	OtherHeader      []HeaderField
	DefaultPrincipal Principal
	Credentials      []Credential
}

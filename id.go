package iotpay

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"strings"
	"time"
)

// Typed identifiers. Each is a prefix and a 26-character ULID: 48 bits of
// milliseconds then 80 random bits, in Crockford base32, so ids sort by
// creation time and a device id can never be passed where an account id is
// expected.
type (
	TenantID   string
	DeviceID   string
	ProductID  string
	AccountID  string
	PaymentID  string
	TransferID string
	BindingID  string
	MandateID  string
	APIKeyID   string
)

// Id prefixes, one per kind.
const (
	PrefixTenant   = "ten"
	PrefixDevice   = "dev"
	PrefixProduct  = "prd"
	PrefixAccount  = "acc"
	PrefixPayment  = "pay"
	PrefixTransfer = "xfr"
	PrefixBinding  = "bnd"
	PrefixMandate  = "mdt"
	PrefixAPIKey   = "key"
	PrefixEvent    = "evt" // a device event, a webhook event
	PrefixOrder    = "ord" // a supply order
	PrefixWebhook  = "whe" // a webhook endpoint
	PrefixDelivery = "whd" // a webhook delivery
	PrefixFollowUp = "fup" // an operation a payment system owes the ledger
)

const (
	ulidLen     = 26
	crockford   = "0123456789abcdefghjkmnpqrstvwxyz"
	idPrefixMax = 8
)

// NewID returns a fresh id with the given prefix, from clock now and
// randomness r (crypto/rand when nil).
func NewID(prefix string, now time.Time, r io.Reader) string {
	if r == nil {
		r = rand.Reader
	}
	var b [16]byte
	ms := uint64(now.UnixMilli())
	binary.BigEndian.PutUint64(b[:8], ms<<16)
	if _, err := io.ReadFull(r, b[6:]); err != nil {
		panic("iotpay: randomness source failed: " + err.Error())
	}
	return prefix + "_" + encodeULID(b)
}

func encodeULID(b [16]byte) string {
	// 128 bits in 26 base32 digits: the first digit takes the top 3 bits.
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	var out [ulidLen]byte
	for i := ulidLen - 1; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// ValidID reports whether s is a well-formed id with the given prefix.
func ValidID(prefix, s string) bool {
	p, rest, ok := strings.Cut(s, "_")
	if !ok || p != prefix || len(rest) != ulidLen || len(p) > idPrefixMax {
		return false
	}
	if rest[0] > '7' { // the first digit holds only 3 bits
		return false
	}
	for i := 0; i < len(rest); i++ {
		if strings.IndexByte(crockford, rest[i]) < 0 {
			return false
		}
	}
	return true
}

// IDTime returns the creation time encoded in a valid id.
func IDTime(s string) time.Time {
	_, rest, _ := strings.Cut(s, "_")
	var ms uint64
	for i := 0; i < 10 && i < len(rest); i++ {
		ms = ms<<5 | uint64(strings.IndexByte(crockford, rest[i]))
	}
	return time.UnixMilli(int64(ms))
}

// DeriveID returns the id with the given prefix that parts name: the same
// parts always give the same id, so an object that exists once per name
// (a tenant's clearing account in a currency) needs no lookup table. Such
// ids do not sort by creation time.
func DeriveID(prefix string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var b [16]byte
	copy(b[:], h.Sum(nil))
	return prefix + "_" + encodeULID(b)
}

// IDBytes returns the 16 bytes a valid id with the given prefix encodes:
// its compact form in constrained frames (wire.Frame). It is an EINVALID
// error for anything else.
func IDBytes(prefix, s string) ([16]byte, error) {
	var b [16]byte
	if !ValidID(prefix, s) {
		return b, Errorf(EINVALID, "malformed %s id", prefix)
	}
	_, rest, _ := strings.Cut(s, "_")
	var hi, lo uint64
	for i := 0; i < ulidLen; i++ {
		d := uint64(strings.IndexByte(crockford, rest[i]))
		hi = hi<<5 | lo>>59
		lo = lo<<5 | d
	}
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return b, nil
}

// IDFromBytes is the id with the given prefix whose 16 bytes are b: the
// inverse of IDBytes.
func IDFromBytes(prefix string, b [16]byte) string { return prefix + "_" + encodeULID(b) }

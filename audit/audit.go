// Package audit is the traceability layer: an append-only log with one leaf
// per transaction event (the request's hash, the decision and its reason,
// the ledger postings), appended in the same database transaction as the
// payment it records. Leaves are hashed as RFC 6962 Merkle tree leaves so
// the log can be covered by signed checkpoints and inclusion proofs.
package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/iotpay/iotpay"
)

// LeafBytesMax bounds an encoded leaf.
const LeafBytesMax = 8192

// Leaf kinds.
const (
	KindPayment   = "payment"   // a decided request: approved or declined
	KindRejection = "rejection" // an authenticated request refused before a decision
	KindReceipt   = "receipt"   // the signed receipt a device was sent, just after the leaf it names
	KindOperation = "operation" // a change to a payment after its decision: capture, refund, void, increment, expiry, an operator's authorization
)

// Posting is one ledger transfer a leaf records.
type Posting struct {
	Transfer string `cbor:"1,keyasint"`
	Debit    string `cbor:"2,keyasint"`
	Credit   string `cbor:"3,keyasint"`
	Amount   int64  `cbor:"4,keyasint"`
	Currency string `cbor:"5,keyasint"`
}

// Leaf is one transaction event.
type Leaf struct {
	V           uint64    `cbor:"1,keyasint"`
	Kind        string    `cbor:"2,keyasint"`
	Tenant      string    `cbor:"3,keyasint"`
	Device      string    `cbor:"4,keyasint"`
	RequestID   string    `cbor:"5,keyasint,omitempty"`
	RequestHash []byte    `cbor:"6,keyasint"`
	Outcome     string    `cbor:"7,keyasint"`
	Reason      string    `cbor:"8,keyasint,omitempty"`
	Payment     string    `cbor:"9,keyasint,omitempty"`
	Amount      int64     `cbor:"10,keyasint,omitempty"`
	Currency    string    `cbor:"11,keyasint,omitempty"`
	Postings    []Posting `cbor:"12,keyasint,omitempty"`
	TimeMs      int64     `cbor:"13,keyasint"`
	// Request is the request as the device signed it (its COSE_Sign1
	// bytes), so that anyone holding the device's key can check the leaf
	// records what the device asked.
	Request []byte `cbor:"14,keyasint,omitempty"`
	// Receipt is the signed receipt as the device was sent it (a leaf of
	// kind receipt).
	Receipt []byte `cbor:"15,keyasint,omitempty"`
	// Decision is what the platform decided of the request and why, as
	// JSON: the product rule and its action, and the risk decision (its
	// outcome, score and reasons).
	Decision string `cbor:"16,keyasint,omitempty"`
}

var encMode, _ = cbor.CoreDetEncOptions().EncMode()

// Encode returns the leaf's canonical bytes (deterministic CBOR).
func (l *Leaf) Encode() ([]byte, error) { return encMode.Marshal(l) }

var decMode, _ = cbor.DecOptions{
	DupMapKey: cbor.DupMapKeyEnforcedAPF, IndefLength: cbor.IndefLengthForbidden, TagsMd: cbor.TagsForbidden,
	MaxNestedLevels: 8, MaxArrayElements: 64, MaxMapPairs: 32, ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
}.DecMode()

// ParseLeaf decodes a leaf as the log serves it. The bytes must be the
// leaf's canonical encoding, so a leaf has one form and one hash.
func ParseLeaf(data []byte) (*Leaf, error) {
	if len(data) > LeafBytesMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "audit leaf of %d bytes exceeds %d", len(data), LeafBytesMax)
	}
	var l Leaf
	if err := decMode.Unmarshal(data, &l); err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "malformed audit leaf", err)
	}
	if again, err := l.Encode(); err != nil || !bytes.Equal(again, data) {
		return nil, iotpay.Errorf(iotpay.EINVALID, "audit leaf is not in canonical encoding")
	}
	if l.V != 1 {
		return nil, iotpay.Errorf(iotpay.EINVALID, "audit leaf version %d", l.V)
	}
	return &l, nil
}

// LeafHash is the RFC 6962 leaf hash: SHA-256(0x00 || data).
func LeafHash(data []byte) []byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(data)
	return h.Sum(nil)
}

// Entry is a stored leaf.
type Entry struct {
	Index   uint64
	Data    []byte
	Hash    []byte
	Created time.Time
}

// Tx is what the audit log needs from a store inside the transaction that
// records the event.
type Tx interface {
	// AppendLeaf stores data with its hash at the next index and returns it.
	AppendLeaf(ctx context.Context, data, hash []byte, created time.Time) (uint64, error)
}

// Append encodes l and appends it within tx.
func Append(ctx context.Context, tx Tx, l *Leaf, now time.Time) (uint64, error) {
	l.V = 1
	l.TimeMs = now.UnixMilli()
	data, err := l.Encode()
	if err != nil {
		return 0, err
	}
	return tx.AppendLeaf(ctx, data, LeafHash(data), now)
}

package wire

import (
	"bytes"

	"github.com/fxamacker/cbor/v2"

	"github.com/iotpay/iotpay"
)

// A device that cannot reach the audit log over HTTP asks for its proofs on
// its payment channel: a LogQuery in, a LogProof out. Both are CBOR maps
// under tags of their own (private numbers in CBOR's first-come range,
// written with a 2-byte head), so the platform tells them from COSE
// messages by their first bytes. Nothing in them needs a signature: the
// checkpoint is signed by the log key and the proofs verify against it.
const (
	tagLogQuery = 61616
	tagLogProof = 61617
	// LogProofBytesMax bounds a LogProof: a checkpoint with its
	// co-signatures, a leaf, and two proofs of at most 63 hashes.
	LogProofBytesMax = 16 << 10
	logHashesMax     = 63
)

// LogQuery asks for the proof that leaf Index is in the log, and for the
// consistency of the latest checkpoint with the one of size Trusted the
// device holds (0: none).
type LogQuery struct {
	V       uint64 `cbor:"1,keyasint"`
	Index   uint64 `cbor:"2,keyasint"`
	Trusted uint64 `cbor:"3,keyasint,omitempty"`
}

// LogProof answers a LogQuery: the latest signed checkpoint, the leaf, its
// inclusion proof in the checkpoint's tree, and the consistency proof from
// the trusted size; or an error (Code and Reason) such as not_found while
// no checkpoint covers the leaf yet.
type LogProof struct {
	V           uint64   `cbor:"1,keyasint"`
	Index       uint64   `cbor:"2,keyasint"`
	Checkpoint  []byte   `cbor:"3,keyasint,omitempty"`
	Leaf        []byte   `cbor:"4,keyasint,omitempty"`
	Inclusion   [][]byte `cbor:"5,keyasint,omitempty"`
	Consistency [][]byte `cbor:"6,keyasint,omitempty"`
	Code        string   `cbor:"7,keyasint,omitempty"`
	Reason      string   `cbor:"8,keyasint,omitempty"`
}

var (
	logQueryHead = []byte{0xd9, tagLogQuery >> 8, tagLogQuery & 0xff}
	logProofHead = []byte{0xd9, tagLogProof >> 8, tagLogProof & 0xff}
)

// IsLogQuery reports whether b is (meant as) a LogQuery.
func IsLogQuery(b []byte) bool { return bytes.HasPrefix(b, logQueryHead) }

// IsLogProof reports whether b is (meant as) a LogProof.
func IsLogProof(b []byte) bool { return bytes.HasPrefix(b, logProofHead) }

// EncodeLogQuery encodes q.
func EncodeLogQuery(q LogQuery) ([]byte, error) {
	q.V = Version
	return marshal(cbor.Tag{Number: tagLogQuery, Content: q})
}

// ParseLogQuery decodes a LogQuery strictly.
func ParseLogQuery(b []byte) (*LogQuery, error) {
	var q LogQuery
	if err := parseTagged(b, tagLogQuery, 64, &q); err != nil {
		return nil, err
	}
	if q.V != Version {
		return nil, iotpay.Errorf(iotpay.EINVALID, "unsupported log query version %d", q.V)
	}
	return &q, nil
}

// EncodeLogProof encodes p.
func EncodeLogProof(p LogProof) ([]byte, error) {
	p.V = Version
	return marshal(cbor.Tag{Number: tagLogProof, Content: p})
}

// ParseLogProof decodes a LogProof strictly; an error answer becomes a
// typed error with its code.
func ParseLogProof(b []byte) (*LogProof, error) {
	var p LogProof
	if err := parseTagged(b, tagLogProof, LogProofBytesMax, &p); err != nil {
		return nil, err
	}
	switch {
	case p.V != Version:
		return nil, iotpay.Errorf(iotpay.EINVALID, "unsupported log proof version %d", p.V)
	case p.Code != "":
		return nil, iotpay.Errorf(iotpay.Code(p.Code), "log: %s", p.Reason)
	case len(p.Checkpoint) == 0 || len(p.Leaf) == 0 || len(p.Inclusion) > logHashesMax || len(p.Consistency) > logHashesMax:
		return nil, iotpay.Errorf(iotpay.EINVALID, "malformed log proof")
	}
	for _, h := range append(append([][]byte(nil), p.Inclusion...), p.Consistency...) {
		if len(h) != 32 {
			return nil, iotpay.Errorf(iotpay.EINVALID, "a log proof hash is not 32 bytes")
		}
	}
	return &p, nil
}

func parseTagged(b []byte, tag uint64, max int, v any) error {
	if len(b) > max {
		return iotpay.Errorf(iotpay.EINVALID, "message of %d bytes exceeds %d", len(b), max)
	}
	var raw cbor.RawTag
	if err := unmarshalTag(b, &raw); err != nil {
		return iotpay.Wrap(iotpay.EINVALID, "malformed message", err)
	}
	if raw.Number != tag {
		return iotpay.Errorf(iotpay.EINVALID, "unexpected message tag %d", raw.Number)
	}
	if err := unmarshalCanonical(raw.Content, v); err != nil {
		return iotpay.Wrap(iotpay.EINVALID, "malformed message", err)
	}
	if again, err := marshal(cbor.Tag{Number: tag, Content: v}); err != nil || !bytes.Equal(again, b) {
		return iotpay.Errorf(iotpay.EINVALID, "message not in deterministic encoding")
	}
	return nil
}

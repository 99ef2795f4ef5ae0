package wire

import (
	"bytes"
	"errors"

	"github.com/fxamacker/cbor/v2"
)

// Bounds on decoded messages.
const (
	EnvelopeBytesMax = 4096 // a signed request or receipt, whole
	NestedLevelsMax  = 8
	ArrayLenMax      = 64
	MapPairsMax      = 32
)

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
	// taggedMode decodes a message's outer COSE tag; nothing inside may
	// carry a tag (decMode), so no message has two encodings that differ
	// by a tag.
	taggedMode cbor.DecMode
)

func init() {
	var err error
	encMode, err = cbor.CoreDetEncOptions().EncMode() // RFC 8949 §4.2.1 deterministic encoding
	if err != nil {
		panic(err)
	}
	opts := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   NestedLevelsMax,
		MaxArrayElements:  ArrayLenMax,
		MaxMapPairs:       MapPairsMax,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
	}
	if decMode, err = opts.DecMode(); err != nil {
		panic(err)
	}
	opts.TagsMd = cbor.TagsAllowed
	if taggedMode, err = opts.DecMode(); err != nil {
		panic(err)
	}
}

// marshal encodes v in deterministic CBOR.
func marshal(v any) ([]byte, error) { return encMode.Marshal(v) }

// unmarshal decodes exactly one strict CBOR item from b into v; trailing
// bytes are an error.
func unmarshal(b []byte, v any) error { return decMode.Unmarshal(b, v) }

// errNotCanonical is returned by unmarshalCanonical for a well-formed item
// that is not in deterministic encoding.
var errNotCanonical = errors.New("cbor: not in deterministic encoding (RFC 8949 §4.2.1)")

// unmarshalCanonical is unmarshal, and then requires that b be exactly the
// deterministic encoding of what it decoded to: shortest integer and length
// forms, map keys in order, no field the encoder would omit. Without it one
// signed message has many byte strings (a longer length prefix, reordered
// keys), each with its own hash: refused as a replay today, but a message
// must have one form so that its hash is its identity.
func unmarshalCanonical(b []byte, v any) error {
	if err := unmarshal(b, v); err != nil {
		return err
	}
	again, err := marshal(v)
	if err != nil {
		return err
	}
	if !bytes.Equal(again, b) {
		return errNotCanonical
	}
	return nil
}

// unmarshalTag decodes a tagged message's tag and raw content; the content
// is then decoded with unmarshal, which refuses tags.
func unmarshalTag(b []byte, raw *cbor.RawTag) error { return taggedMode.Unmarshal(b, raw) }

package wire

import (
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
)

func init() {
	var err error
	encMode, err = cbor.CoreDetEncOptions().EncMode() // RFC 8949 §4.2.1 deterministic encoding
	if err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsAllowed,
		MaxNestedLevels:   NestedLevelsMax,
		MaxArrayElements:  ArrayLenMax,
		MaxMapPairs:       MapPairsMax,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// marshal encodes v in deterministic CBOR.
func marshal(v any) ([]byte, error) { return encMode.Marshal(v) }

// unmarshal decodes exactly one strict CBOR item from b into v; trailing
// bytes are an error.
func unmarshal(b []byte, v any) error { return decMode.Unmarshal(b, v) }

package wire

import (
	"bytes"

	"github.com/fxamacker/cbor/v2"
	"github.com/iotpay/iotpay"
)

// COSE_Encrypt0 (RFC 9052 §5.2) carries a session's messages.
const (
	tagEncrypt0     = 16
	encrypt0Context = "Encrypt0"
	// PIVBytesMax bounds a Partial IV, as OSCORE does (RFC 8613 §6.1):
	// sequence numbers below 2^40.
	PIVBytesMax = 5
	// SeqMax is the largest sequence number a Partial IV can carry.
	SeqMax       uint64 = 1<<(8*PIVBytesMax) - 1
	aeadTagBytes        = 16
)

// COSE algorithm identifiers of the session AEADs.
const (
	// AlgA128GCM is AES-128-GCM (RFC 9053 §4.1), the intl suite's AEAD.
	AlgA128GCM int64 = 1
	// AlgSM4GCM is SM4-GCM with a 12-byte nonce and a 16-byte tag
	// (RFC 8998 §2), the gm suite's AEAD. COSE registers no SM4
	// algorithm: iotpay uses the private-use value after AlgSM2SM3.
	AlgSM4GCM int64 = -65538
)

// encHeader is a COSE_Encrypt0 unprotected header: the session id (kid)
// and the sender's sequence number (Partial IV) of a request; a response
// has neither, its nonce and additional data are the request's.
type encHeader struct {
	Kid []byte `cbor:"4,keyasint,omitempty"`
	PIV []byte `cbor:"6,keyasint,omitempty"`
}

type encrypt0 struct {
	_           struct{} `cbor:",toarray"`
	Protected   []byte
	Unprotected encHeader
	Ciphertext  []byte
}

// Encrypt0 is a decoded COSE_Encrypt0 message, not yet decrypted.
type Encrypt0 struct {
	Alg        int64
	Kid        []byte // the session id; nil on a response
	Seq        uint64 // the Partial IV as a number, when HasSeq
	HasSeq     bool
	protected  []byte
	ciphertext []byte
}

// IsEncrypt0 reports whether b starts as a tagged COSE_Encrypt0 (tag 16):
// what tells a session's message from a signed request on the same
// channel. It checks nothing else; ParseEncrypt0 does.
func IsEncrypt0(b []byte) bool { return len(b) > 0 && b[0] == 0xc0|tagEncrypt0 }

// ParseEncrypt0 decodes a tagged COSE_Encrypt0 message. It checks form
// only: deterministic encoding (RFC 8949 §4.2.1), a protected header holding the algorithm alone, an unprotected
// header with a kid and a Partial IV both or neither, a minimal Partial IV
// of at most PIVBytesMax bytes, a ciphertext at least a tag long.
func ParseEncrypt0(b []byte) (*Encrypt0, error) {
	if len(b) > EnvelopeBytesMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "envelope of %d bytes exceeds %d", len(b), EnvelopeBytesMax)
	}
	var raw cbor.RawTag
	if err := unmarshalTag(b, &raw); err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "malformed envelope", err)
	}
	if raw.Number != tagEncrypt0 {
		return nil, iotpay.Errorf(iotpay.EINVALID, "envelope is not a COSE_Encrypt0 message")
	}
	var m encrypt0
	if err := unmarshal(raw.Content, &m); err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "malformed envelope", err)
	}
	// One message, one encoding: the outer structure, which the AEAD does
	// not cover, must be as the deterministic encoder writes it (no
	// longer-than-needed lengths or integers).
	if canon, err := sealEncrypt0(m.Protected, m.Unprotected, m.Ciphertext); err != nil || !bytes.Equal(canon, b) {
		return nil, iotpay.Errorf(iotpay.EINVALID, "malformed envelope: not in deterministic encoding")
	}
	var h header
	if err := unmarshal(m.Protected, &h); err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "malformed protected header", err)
	}
	if h.Alg == 0 || h.Kid != nil || h.Cty != "" {
		return nil, iotpay.Errorf(iotpay.EINVALID, "protected header must hold the algorithm alone")
	}
	if len(m.Ciphertext) < aeadTagBytes {
		return nil, iotpay.Errorf(iotpay.EINVALID, "ciphertext shorter than its tag")
	}
	e := &Encrypt0{Alg: h.Alg, protected: m.Protected, ciphertext: m.Ciphertext}
	u := m.Unprotected
	switch {
	case u.Kid == nil && u.PIV == nil:
	case len(u.Kid) != SessionIDBytes:
		return nil, iotpay.Errorf(iotpay.EINVALID, "session id must be %d bytes", SessionIDBytes)
	default:
		seq, err := parsePIV(u.PIV)
		if err != nil {
			return nil, err
		}
		e.Kid, e.Seq, e.HasSeq = u.Kid, seq, true
	}
	return e, nil
}

// encodePIV is the Partial IV of seq: big-endian, no leading zero bytes,
// one byte for 0 (RFC 8613 §6.1).
func encodePIV(seq uint64) []byte {
	var b [8]byte
	n := 0
	for v := seq; v > 0; v >>= 8 {
		n++
	}
	n = max(n, 1)
	for i := range n {
		b[i] = byte(seq >> (8 * (n - 1 - i)))
	}
	return b[:n]
}

func parsePIV(p []byte) (uint64, error) {
	if len(p) == 0 || len(p) > PIVBytesMax || (len(p) > 1 && p[0] == 0) {
		return 0, iotpay.Errorf(iotpay.EINVALID, "partial IV must be 1 to %d bytes, minimal", PIVBytesMax)
	}
	var v uint64
	for _, c := range p {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// encStructure is the AEAD's additional data (RFC 9052 §5.3).
func encStructure(protected, externalAAD []byte) ([]byte, error) {
	return marshal([]any{encrypt0Context, protected, externalAAD})
}

func sealEncrypt0(protected []byte, u encHeader, ciphertext []byte) ([]byte, error) {
	return marshal(cbor.Tag{Number: tagEncrypt0, Content: encrypt0{Protected: protected, Unprotected: u, Ciphertext: ciphertext}})
}

package wire

import (
	"bytes"
	"crypto"
	"io"

	"github.com/fxamacker/cbor/v2"
	"github.com/iotpay/iotpay"
)

const (
	tagSign1     = 18 // COSE_Sign1 (RFC 9052 §4.2)
	kidBytesMax  = 64
	sigBytesMax  = 132
	sign1Context = "Signature1"
)

// header is a COSE header map restricted to the labels iotpay uses.
type header struct {
	Alg int64  `cbor:"1,keyasint,omitempty"`
	Cty string `cbor:"3,keyasint,omitempty"` // content type: set on handshake messages only
	Kid []byte `cbor:"4,keyasint,omitempty"`
}

type sign1 struct {
	_           struct{} `cbor:",toarray"`
	Protected   []byte
	Unprotected header
	Payload     []byte
	Signature   []byte
}

// Sign1 is a decoded COSE_Sign1 message whose signature is not yet checked.
type Sign1 struct {
	Alg int64
	Kid []byte // key id from the protected header: who claims to have signed
	// ContentType is the protected content type (COSE header 3): empty for
	// requests and receipts, ContentTypeHello or ContentTypeWelcome for
	// the messages of a session handshake.
	ContentType string
	Payload     []byte
	protected   []byte
	signature   []byte
}

// Sign returns a tagged COSE_Sign1 over payload, with alg and kid in the
// protected header so both are covered by the signature.
func Sign(s Suite, signer crypto.Signer, rand io.Reader, kid, payload []byte) ([]byte, error) {
	return signTyped(s, signer, rand, kid, "", payload)
}

// signTyped is Sign with a content type in the protected header.
func signTyped(s Suite, signer crypto.Signer, rand io.Reader, kid []byte, cty string, payload []byte) ([]byte, error) {
	prot, err := marshal(header{Alg: s.Alg(), Cty: cty, Kid: kid})
	if err != nil {
		return nil, err
	}
	tbs, err := sigStructure(prot, payload)
	if err != nil {
		return nil, err
	}
	sig, err := s.Sign(signer, rand, tbs)
	if err != nil {
		return nil, err
	}
	return marshal(cbor.Tag{Number: tagSign1, Content: sign1{Protected: prot, Payload: payload, Signature: sig}})
}

// ParseSign1 decodes a tagged COSE_Sign1 message. It checks form only.
func ParseSign1(b []byte) (*Sign1, error) {
	if len(b) > EnvelopeBytesMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "envelope of %d bytes exceeds %d", len(b), EnvelopeBytesMax)
	}
	var raw cbor.RawTag
	if err := unmarshalTag(b, &raw); err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "malformed envelope", err)
	}
	if raw.Number != tagSign1 {
		return nil, iotpay.Errorf(iotpay.EINVALID, "envelope is not a COSE_Sign1 message")
	}
	var m sign1
	if err := unmarshal(raw.Content, &m); err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "malformed envelope", err)
	}
	if again, err := marshal(cbor.Tag{Number: tagSign1, Content: m}); err != nil || !bytes.Equal(again, b) {
		return nil, iotpay.Wrap(iotpay.EINVALID, "malformed envelope", errNotCanonical)
	}
	if m.Unprotected.Alg != 0 || m.Unprotected.Kid != nil {
		return nil, iotpay.Errorf(iotpay.EINVALID, "unexpected unprotected header")
	}
	var h header
	if err := unmarshalCanonical(m.Protected, &h); err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "malformed protected header", err)
	}
	if h.Alg == 0 || len(h.Kid) == 0 || len(h.Kid) > kidBytesMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "protected header needs alg and kid")
	}
	if h.Cty != "" && h.Cty != ContentTypeHello && h.Cty != ContentTypeWelcome && h.Cty != DesiredContentType {
		return nil, iotpay.Errorf(iotpay.EINVALID, "unknown content type")
	}
	if m.Payload == nil || len(m.Signature) == 0 || len(m.Signature) > sigBytesMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "envelope lacks payload or signature")
	}
	return &Sign1{Alg: h.Alg, Kid: h.Kid, ContentType: h.Cty, Payload: m.Payload, protected: m.Protected, signature: m.Signature}, nil
}

// Verify checks the signature with pub under suite s, which must be the
// suite the signer is bound to: a message carrying another algorithm is
// refused, so a device cannot be downgraded to a suite it does not use.
func (m *Sign1) Verify(s Suite, pub crypto.PublicKey) error {
	if m.Alg != s.Alg() {
		return iotpay.Errorf(iotpay.EUNAUTHORIZED, "verification failed: alg %d is not suite %s's %d", m.Alg, s.Name(), s.Alg())
	}
	tbs, err := sigStructure(m.protected, m.Payload)
	if err != nil {
		return err
	}
	if !s.Verify(pub, tbs, m.signature) {
		return iotpay.Errorf(iotpay.EUNAUTHORIZED, "verification failed: signature does not verify under suite %s", s.Name())
	}
	return nil
}

func sigStructure(protected, payload []byte) ([]byte, error) {
	return marshal([]any{sign1Context, protected, []byte{}, payload})
}

package wire

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"io"
	"math/big"

	"github.com/iotpay/iotpay"
)

// Suite is a crypto suite a device is bound to: how messages are hashed and
// signed. Keys are always used through crypto.Signer, so they may live in a
// software keystore or a secure element.
type Suite interface {
	Name() string
	// Alg is the COSE algorithm identifier written in the protected header.
	Alg() int64
	// Sign signs msg (not its digest) with signer; the result is in COSE form.
	Sign(signer crypto.Signer, rand io.Reader, msg []byte) ([]byte, error)
	// Verify reports whether sig is a valid COSE signature of msg by pub.
	Verify(pub crypto.PublicKey, msg, sig []byte) bool
	// Hash returns the suite's digest of msg (request hashes in receipts).
	Hash(msg []byte) []byte
}

// Suite names.
const (
	SuiteIntl = "intl" // ECDSA P-256, SHA-256
	// SuiteGM ("gm") is in gm.go.
)

// COSE algorithm identifiers (IANA COSE Algorithms registry).
const (
	AlgES256 int64 = -7
)

// SuiteByName returns the suite with that name.
func SuiteByName(name string) (Suite, error) {
	switch name {
	case SuiteIntl, "":
		return Intl, nil
	case SuiteGM:
		return GM, nil
	}
	return nil, iotpay.Errorf(iotpay.EINVALID, "unknown crypto suite %q", name)
}

// Intl is the international suite: ECDSA P-256 with SHA-256 (COSE ES256).
var Intl Suite = intlSuite{}

type intlSuite struct{}

func (intlSuite) Name() string { return SuiteIntl }
func (intlSuite) Alg() int64   { return AlgES256 }

func (intlSuite) Hash(msg []byte) []byte {
	h := sha256.Sum256(msg)
	return h[:]
}

func (intlSuite) Sign(signer crypto.Signer, rand io.Reader, msg []byte) ([]byte, error) {
	pub, ok := signer.Public().(*ecdsa.PublicKey)
	if !ok || pub == nil || pub.Curve != elliptic.P256() {
		return nil, iotpay.Errorf(iotpay.EINVALID, "intl suite needs a P-256 key")
	}
	h := sha256.Sum256(msg)
	der, err := signer.Sign(rand, h[:], crypto.SHA256)
	if err != nil {
		return nil, err
	}
	sig, err := derToRaw(der, 32)
	if err != nil {
		return nil, err
	}
	// Low-s form: (r, n−s) verifies as well as (r, s), so ECDSA gives
	// anyone a second valid signature, and a second byte string, for a
	// signed message. Signers (a keystore, a token) return either; we send
	// the low one and accept only it.
	s := new(big.Int).SetBytes(sig[32:])
	if s.Cmp(p256HalfOrder) > 0 {
		s.Sub(elliptic.P256().Params().N, s).FillBytes(sig[32:])
	}
	return sig, nil
}

// p256HalfOrder is ⌊n/2⌋ for P-256: a signature's s above it is the high
// form.
var p256HalfOrder = new(big.Int).Rsh(elliptic.P256().Params().N, 1)

func (intlSuite) Verify(pub crypto.PublicKey, msg, sig []byte) bool {
	// A typed nil key, as a lookup of an unknown device may return, or a
	// zero key is refused here: crypto/ecdsa dereferences its coordinates.
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok || k == nil || k.Curve != elliptic.P256() || k.X == nil || k.Y == nil || len(sig) != 64 {
		return false
	}
	h := sha256.Sum256(msg)
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	if s.Cmp(p256HalfOrder) > 0 {
		return false // the high form: see Sign
	}
	return ecdsa.Verify(k, h[:], r, s)
}

// derToRaw converts an ASN.1 ECDSA signature to the fixed-width r||s form
// COSE uses (RFC 9053 §2.1).
func derToRaw(der []byte, size int) ([]byte, error) {
	r, s, ok := parseECDSASig(der)
	if !ok || r.BitLen() > size*8 || s.BitLen() > size*8 {
		return nil, iotpay.Errorf(iotpay.EINTERNAL, "signer returned a malformed signature")
	}
	out := make([]byte, 2*size)
	r.FillBytes(out[:size])
	s.FillBytes(out[size:])
	return out, nil
}

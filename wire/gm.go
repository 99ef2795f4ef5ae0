package wire

import (
	"crypto"
	"crypto/ecdsa"
	"io"
	"math/big"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm3"
	"github.com/iotpay/iotpay"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// SuiteGM names the Chinese national (guomi) suite: SM2 signatures over
// SM3 (GB/T 32918.2, GB/T 32905).
const SuiteGM = "gm"

// AlgSM2SM3 is the COSE algorithm identifier of an SM2 signature over SM3
// with the default user id. COSE registers no SM2 algorithm, so iotpay uses
// a value from the private-use range (below -65536, RFC 9053 §10.2):
// -65537. Its signature is r‖s, 32 bytes each, as ES256's.
const AlgSM2SM3 int64 = -65537

// SM2UID is the SM2 signer's distinguishing identifier bound into every
// signature (ZA): the standard default "1234567812345678" (GB/T 35276,
// RFC 8998 §3.2.1).
const SM2UID = "1234567812345678"

// GM is the national suite: SM2 signatures with the default user id and
// SM3 digests, request hashes in SM3.
var GM Suite = gmSuite{}

type gmSuite struct{}

func (gmSuite) Name() string { return SuiteGM }
func (gmSuite) Alg() int64   { return AlgSM2SM3 }

func (gmSuite) Hash(msg []byte) []byte {
	h := sm3.Sum(msg)
	return h[:]
}

// IsSM2Key reports whether pub is a usable SM2 public key.
func IsSM2Key(pub crypto.PublicKey) bool {
	k, ok := pub.(*ecdsa.PublicKey)
	return ok && k != nil && k.Curve == sm2.P256() && k.X != nil && k.Y != nil
}

// Sign computes e = SM3(ZA ‖ msg) itself and asks signer to sign e, so any
// crypto.Signer holding an SM2 key works, a token's included: with no
// pre-hash option gmsm's key signs the digest as given.
func (gmSuite) Sign(signer crypto.Signer, rand io.Reader, msg []byte) ([]byte, error) {
	pub := signer.Public()
	if !IsSM2Key(pub) {
		return nil, iotpay.Errorf(iotpay.EINVALID, "gm suite needs an SM2 key")
	}
	e, err := sm2Digest(pub.(*ecdsa.PublicKey), msg)
	if err != nil {
		return nil, err
	}
	der, err := signer.Sign(rand, e, crypto.Hash(0))
	if err != nil {
		return nil, err
	}
	return derToRaw(der, 32)
}

func (gmSuite) Verify(pub crypto.PublicKey, msg, sig []byte) bool {
	if !IsSM2Key(pub) || len(sig) != 64 {
		return false
	}
	der, ok := rawToDER(sig)
	if !ok {
		return false
	}
	return sm2.VerifyASN1WithSM2(pub.(*ecdsa.PublicKey), []byte(SM2UID), msg, der)
}

// sm2Digest is e = SM3(ZA ‖ msg), ZA binding the default user id and the
// public key (GB/T 32918.2 §6.1).
func sm2Digest(pub *ecdsa.PublicKey, msg []byte) ([]byte, error) {
	za, err := sm2.CalculateZA(pub, []byte(SM2UID))
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "cannot compute SM2 ZA", err)
	}
	h := sm3.New()
	h.Write(za)
	h.Write(msg)
	return h.Sum(nil), nil
}

// rawToDER converts a COSE r‖s signature to ASN.1, refusing zero halves.
func rawToDER(sig []byte) ([]byte, bool) {
	r := new(big.Int).SetBytes(sig[:len(sig)/2])
	s := new(big.Int).SetBytes(sig[len(sig)/2:])
	if r.Sign() == 0 || s.Sign() == 0 {
		return nil, false
	}
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(r)
		b.AddASN1BigInt(s)
	})
	der, err := b.Bytes()
	return der, err == nil
}

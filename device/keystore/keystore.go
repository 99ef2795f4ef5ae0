// Package keystore is the device SDK's secure storage: where a device keeps
// its private key. A Keystore hands out a crypto.Signer and nothing else, so
// the rest of the SDK (and the wire package) signs the same way whether the
// key lives in a hardware secure element or in Soft, the software element
// here that keeps one P-256 key encrypted at rest in a file.
package keystore

import (
	"crypto"
	"crypto/ecdsa"
	"math/big"

	"github.com/iotpay/iotpay"
)

// Keystore holds a device's private key. The key never leaves it: callers
// only get a crypto.Signer.
type Keystore interface {
	// Signer returns the signer backed by the key. It stops working once the
	// keystore is closed.
	Signer() crypto.Signer
	// Close releases the key.
	Close() error
}

var _ Keystore = (*Soft)(nil)

// CheckDigest refuses what no ECDSA signer of a keystore signs: opts that
// name no usable hash, or a digest not of its size. Every Keystore's
// signer calls it first, so they all refuse bad input alike.
func CheckDigest(digest []byte, opts crypto.SignerOpts) error {
	if opts == nil || opts.HashFunc() == 0 || !opts.HashFunc().Available() {
		return iotpay.Errorf(iotpay.EINVALID, "ECDSA signs a digest: opts must name its hash")
	}
	if len(digest) != opts.HashFunc().Size() {
		return iotpay.Errorf(iotpay.EINVALID, "digest of %d bytes is not a %v digest", len(digest), opts.HashFunc())
	}
	return nil
}

// ClonePublic returns a copy of p, so a caller changing the public key a
// signer returns cannot change what other callers see.
func ClonePublic(p *ecdsa.PublicKey) *ecdsa.PublicKey {
	return &ecdsa.PublicKey{Curve: p.Curve, X: new(big.Int).Set(p.X), Y: new(big.Int).Set(p.Y)}
}

// Package keystore is the device SDK's secure storage: where a device keeps
// its private key. A Keystore hands out a crypto.Signer and nothing else, so
// the rest of the SDK (and the wire package) signs the same way whether the
// key lives in a hardware secure element or in Soft, the software element
// here that keeps one P-256 key encrypted at rest in a file.
package keystore

import "crypto"

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

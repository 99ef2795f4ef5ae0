//go:build !cgo

package pkcs11

import (
	"crypto"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device/keystore"
)

// Keystore is a device key on a PKCS#11 token. This build has no cgo, which
// loading a PKCS#11 library takes, so none can be opened.
type Keystore struct{}

var _ keystore.Keystore = (*Keystore)(nil)

// Create refuses: this build has no cgo.
func Create(Config) (*Keystore, error) { return nil, errNoCgo() }

// Open refuses: this build has no cgo.
func Open(Config) (*Keystore, error) { return nil, errNoCgo() }

// Signer returns nil: no Keystore is ever made without cgo.
func (*Keystore) Signer() crypto.Signer { return nil }

// Close does nothing.
func (*Keystore) Close() error { return nil }

func errNoCgo() error {
	return iotpay.Errorf(iotpay.EUNAVAILABLE, "PKCS#11 keystores need a build with cgo (CGO_ENABLED=1)")
}

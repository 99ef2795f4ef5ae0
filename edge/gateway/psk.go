package gateway

import (
	"io"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/internal/psk"
)

// PSK sizes, as the platform's (platform/coap).
const (
	// PSKBytes is the length of a device's pre-shared key: the hex text
	// of 16 bytes.
	PSKBytes = psk.KeyBytes
	// PSKSecretBytes is the length of the gateway secret keys derive from.
	PSKSecretBytes = psk.SecretBytes
)

// PSKIdentityHint is the identity hint the DTLS port sends (RFC 4279 §2).
const PSKIdentityHint = "iotpay-edge"

// DerivePSK returns device id's pre-shared key for this gateway
// (internal/psk.Derive, as the platform's CoAP port derives its own). The
// gateway has its own secret, so one device's key differs between the
// platform and each gateway unless an operator gives them the same secret.
func DerivePSK(secret []byte, id iotpay.DeviceID) ([]byte, error) { return psk.Derive(secret, id) }

// LoadOrCreatePSKSecret reads the PSK secret from path, creating it (mode
// 0600, from rnd, crypto/rand when nil) on first use.
func LoadOrCreatePSKSecret(path string, rnd io.Reader) ([]byte, error) {
	return psk.LoadOrCreateSecret(path, rnd)
}

package coap

import (
	"io"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/internal/psk"
)

// PSK sizes.
const (
	// PSKBytes is the length of a device's pre-shared key: the hex text of
	// 16 bytes.
	PSKBytes = psk.KeyBytes
	// PSKSecretBytes is the length of the platform secret keys derive from.
	PSKSecretBytes = psk.SecretBytes
)

// PSKIdentityHint is the PSK identity hint the server sends in its
// handshake (RFC 4279 §2): it names the key domain, so a device holding
// keys for several servers can pick this one's.
const PSKIdentityHint = "iotpay"

// DerivePSK returns device id's pre-shared key (internal/psk.Derive) from
// the platform's PSK secret. Nothing per device is stored; the key is
// handed to the device at provisioning (the operator API's POST
// /v1/devices/{id}/psk) and a compromised key is withdrawn by revoking the
// device: it authenticates the channel only, every request is still
// signed by the device's own key.
func DerivePSK(secret []byte, id iotpay.DeviceID) ([]byte, error) { return psk.Derive(secret, id) }

// LoadOrCreatePSKSecret reads the PSK secret from path, creating it (mode
// 0600, from rnd) on first use.
func LoadOrCreatePSKSecret(path string, rnd io.Reader) ([]byte, error) {
	return psk.LoadOrCreateSecret(path, rnd)
}

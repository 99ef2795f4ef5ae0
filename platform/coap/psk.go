package coap

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"

	"github.com/iotpay/iotpay"
)

// PSK sizes.
const (
	// pskEntropyBytes is the strength of a device's pre-shared key.
	pskEntropyBytes = 16
	// PSKBytes is the length of a device's pre-shared key: the hex text
	// of pskEntropyBytes bytes.
	PSKBytes = 2 * pskEntropyBytes
	// PSKSecretBytes is the length of the platform secret keys derive from.
	PSKSecretBytes = 32
)

// PSKIdentityHint is the PSK identity hint the server sends in its
// handshake (RFC 4279 §2): it names the key domain, so a device holding
// keys for several servers can pick this one's.
const PSKIdentityHint = "iotpay"

// pskInfo separates PSK derivation from any other use of the secret.
const pskInfo = "iotpay coap dtls psk v1\x00"

// DerivePSK returns device id's pre-shared key: the lowercase hex text of
// 16 bytes of HKDF-SHA256 of the platform's PSK secret with the device id
// in the info. Nothing per device is stored; the key is handed to the
// device at provisioning (the operator API's POST /v1/devices/{id}/psk)
// and a compromised key is withdrawn by revoking the device: it
// authenticates the channel only, every request is still signed by the
// device's own key. The key is text (128 bits in 32 octets) because tools and device
// configurations take a PSK as a string (libcoap's coap-client -k).
func DerivePSK(secret []byte, id iotpay.DeviceID) ([]byte, error) {
	if len(secret) < PSKSecretBytes {
		return nil, iotpay.Errorf(iotpay.EINVALID, "coap: PSK secret shorter than %d bytes", PSKSecretBytes)
	}
	if !iotpay.ValidID(iotpay.PrefixDevice, string(id)) {
		return nil, iotpay.Errorf(iotpay.EUNAUTHORIZED, "coap: PSK identity is not a device id")
	}
	k, err := hkdf.Key(sha256.New, secret, nil, pskInfo+string(id), pskEntropyBytes)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "coap: cannot derive PSK", err)
	}
	return hex.AppendEncode(nil, k), nil
}

// LoadOrCreatePSKSecret reads the PSK secret from path, creating it (mode
// 0600, from rnd) on first use.
func LoadOrCreatePSKSecret(path string, rnd io.Reader) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil && len(b) == PSKSecretBytes:
		return b, nil
	case err == nil:
		return nil, iotpay.Errorf(iotpay.EINVALID, "coap: PSK secret %s is not %d bytes", path, PSKSecretBytes)
	case !os.IsNotExist(err):
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "coap: cannot read PSK secret", err)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	b = make([]byte, PSKSecretBytes)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "coap: cannot make PSK secret", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "coap: cannot create PSK secret", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "coap: cannot write PSK secret", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "coap: cannot write PSK secret", err)
	}
	if err := f.Close(); err != nil {
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "coap: cannot write PSK secret", err)
	}
	return b, nil
}

// Package psk derives devices' DTLS pre-shared keys from a secret, for the
// platform's CoAP access point (platform/coap) and for iotpay-edge gateways
// (edge/gateway), each with a secret of its own: nothing per device is
// stored.
package psk

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"

	"github.com/iotpay/iotpay"
)

// Sizes.
const (
	// entropyBytes is the strength of a device's pre-shared key.
	entropyBytes = 16
	// KeyBytes is the length of a device's pre-shared key: the hex text of
	// 16 bytes.
	KeyBytes = 2 * entropyBytes
	// SecretBytes is the length of the secret keys derive from.
	SecretBytes = 32
)

// info separates PSK derivation from any other use of the secret.
const info = "iotpay coap dtls psk v1\x00"

// Derive returns device id's pre-shared key: the lowercase hex text of 16
// bytes of HKDF-SHA256 of secret with the device id in the info. The key
// authenticates a channel only; every request is still signed by the
// device's own key. It is text (128 bits in 32 octets) because tools and
// device configurations take a PSK as a string (libcoap's coap-client -k).
func Derive(secret []byte, id iotpay.DeviceID) ([]byte, error) {
	if len(secret) < SecretBytes {
		return nil, iotpay.Errorf(iotpay.EINVALID, "psk: secret shorter than %d bytes", SecretBytes)
	}
	if !iotpay.ValidID(iotpay.PrefixDevice, string(id)) {
		return nil, iotpay.Errorf(iotpay.EUNAUTHORIZED, "psk: identity is not a device id")
	}
	k, err := hkdf.Key(sha256.New, secret, nil, info+string(id), entropyBytes)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "psk: cannot derive a key", err)
	}
	return hex.AppendEncode(nil, k), nil
}

// LoadOrCreateSecret reads the secret from path, creating it (mode 0600,
// from rnd, crypto/rand when nil) on first use.
func LoadOrCreateSecret(path string, rnd io.Reader) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil && len(b) == SecretBytes:
		return b, nil
	case err == nil:
		return nil, iotpay.Errorf(iotpay.EINVALID, "psk: secret %s is not %d bytes", path, SecretBytes)
	case !os.IsNotExist(err):
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "psk: cannot read the secret", err)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	b = make([]byte, SecretBytes)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "psk: cannot make a secret", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "psk: cannot create the secret", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "psk: cannot write the secret", err)
	}
	return b, nil
}

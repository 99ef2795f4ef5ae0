package gateway

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"

	"github.com/iotpay/iotpay"
)

// PSK sizes, as the platform's (platform/coap).
const (
	// pskEntropyBytes is the strength of a device's pre-shared key.
	pskEntropyBytes = 16
	// PSKBytes is the length of a device's pre-shared key: the hex text
	// of 16 bytes.
	PSKBytes = 2 * pskEntropyBytes
	// PSKSecretBytes is the length of the gateway secret keys derive from.
	PSKSecretBytes = 32
)

// PSKIdentityHint is the identity hint the DTLS port sends (RFC 4279 §2).
const PSKIdentityHint = "iotpay-edge"

// pskInfo separates PSK derivation from any other use of the secret.
const pskInfo = "iotpay coap dtls psk v1\x00"

// DerivePSK returns device id's pre-shared key for this gateway: the
// lowercase hex text of 16 bytes of HKDF-SHA256 of the gateway's secret
// with the device id in the info.
//
// It is a copy of platform/coap.DerivePSK (a test checks they agree), not
// an import of it: the edge binary runs apart from the platform and
// should not link the platform's access point. The gateway has its own
// secret, so one device's key differs between the platform and each
// gateway unless an operator gives them the same secret. The key is text
// because tools take a PSK as a string (libcoap's coap-client -k).
func DerivePSK(secret []byte, id iotpay.DeviceID) ([]byte, error) {
	if len(secret) < PSKSecretBytes {
		return nil, iotpay.Errorf(iotpay.EINVALID, "gateway: PSK secret shorter than %d bytes", PSKSecretBytes)
	}
	if !iotpay.ValidID(iotpay.PrefixDevice, string(id)) {
		return nil, iotpay.Errorf(iotpay.EUNAUTHORIZED, "gateway: PSK identity is not a device id")
	}
	k, err := hkdf.Key(sha256.New, secret, nil, pskInfo+string(id), pskEntropyBytes)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "gateway: cannot derive PSK", err)
	}
	return hex.AppendEncode(nil, k), nil
}

// LoadOrCreatePSKSecret reads the PSK secret from path, creating it (mode
// 0600, from rnd, crypto/rand when nil) on first use.
func LoadOrCreatePSKSecret(path string, rnd io.Reader) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil && len(b) == PSKSecretBytes:
		return b, nil
	case err == nil:
		return nil, iotpay.Errorf(iotpay.EINVALID, "gateway: PSK secret %s is not %d bytes", path, PSKSecretBytes)
	case !os.IsNotExist(err):
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "gateway: cannot read PSK secret", err)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	b = make([]byte, PSKSecretBytes)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "gateway: cannot make PSK secret", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "gateway: cannot create PSK secret", err)
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
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "gateway: cannot write PSK secret", err)
	}
	return b, nil
}

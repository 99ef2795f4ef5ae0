package device

import (
	"context"
	"crypto"
	"errors"
	"net/http"
	"path/filepath"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device/keystore"
	"github.com/iotpay/iotpay/wire"
)

// Keys are a device's keystores in its directory: for suite intl one P-256
// key (KeyFile) that signs requests and authenticates TLS; for suite gm an
// SM2 key (SM2KeyFile) that signs requests and a P-256 transport key
// (KeyFile) for TLS.
type Keys struct {
	Suite     wire.Suite
	Signer    keystore.Keystore
	Transport keystore.Keystore // gm only
}

// CreateKeys generates the keys of suite in dir as software keystores
// sealed under passphrase. (A caller with a P-256 key elsewhere, on a
// PKCS#11 token, assembles Keys itself.)
func CreateKeys(dir, suite string, passphrase []byte) (*Keys, error) {
	s, err := wire.SuiteByName(suite)
	if err != nil {
		return nil, err
	}
	ks, err := keystore.CreateSoft(filepath.Join(dir, KeyFile), passphrase)
	if err != nil {
		return nil, err
	}
	if s != wire.GM {
		return &Keys{Suite: s, Signer: ks}, nil
	}
	gm, err := CreateSoftSM2(filepath.Join(dir, SM2KeyFile), passphrase)
	if err != nil {
		ks.Close()
		return nil, err
	}
	return &Keys{Suite: s, Signer: gm, Transport: ks}, nil
}

// Enroll enrolls the keys with the platform at apiURL.
func (k *Keys) Enroll(ctx context.Context, client *http.Client, apiURL string, id iotpay.DeviceID, token string) (*Enrollment, error) {
	en, err := EnrollWith(ctx, client, apiURL, id, token, k.Signer.Signer(), k.transport())
	if err == nil && en.Suite != k.Suite.Name() {
		err = iotpay.Errorf(iotpay.EINVALID, "the platform enrolled the device in suite %q, its keys are for %q", en.Suite, k.Suite.Name())
	}
	return en, err
}

// EnrollOver enrolls these keys for device id with its one-time token
// through exchange, which sends the enrollment request (EnrollRequest) and
// returns the platform's answer: over MQTT, say (device/mqtt.Enroll).
func (k *Keys) EnrollOver(ctx context.Context, exchange func(ctx context.Context, request []byte) ([]byte, error),
	id iotpay.DeviceID, token string) (*Enrollment, error) {
	req, err := EnrollRequest(id, token, k.Signer.Signer(), k.transport())
	if err != nil {
		return nil, err
	}
	answer, err := exchange(ctx, req)
	if err != nil {
		return nil, err
	}
	en, err := ParseEnrollment(id, answer)
	if err == nil && en.Suite != k.Suite.Name() {
		err = iotpay.Errorf(iotpay.EINVALID, "the platform enrolled the device in suite %q, its keys are for %q", en.Suite, k.Suite.Name())
	}
	return en, err
}

// Identity is the identity en gives these keys.
func (k *Keys) Identity(en *Enrollment) (*Identity, error) {
	return en.IdentityWith(k.Signer.Signer(), k.transport())
}

func (k *Keys) transport() crypto.Signer {
	if k.Transport == nil {
		return nil
	}
	return k.Transport.Signer()
}

// Close closes every keystore.
func (k *Keys) Close() error {
	err := k.Signer.Close()
	if k.Transport != nil {
		err = errors.Join(err, k.Transport.Close())
	}
	return err
}

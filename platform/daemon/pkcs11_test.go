package daemon_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"io"
	"sync/atomic"
	"testing"

	"github.com/iotpay/iotpay/device/keystore/pkcs11"
	"github.com/iotpay/iotpay/device/keystore/pkcs11/pkcs11test"
	"github.com/iotpay/iotpay/wire"
)

// countingSigner counts the signatures its keystore makes.
type countingSigner struct {
	crypto.Signer
	n atomic.Int64
}

func (c *countingSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	c.n.Add(1)
	return c.Signer.Sign(r, d, o)
}

// TestDeviceKeyOnPKCS11Token runs a device whose key was generated on a
// SoftHSM2 token: its CSR, its TLS client authentication and its payment
// requests are all signed by the token, and the platform admits them.
func TestDeviceKeyOnPKCS11Token(t *testing.T) {
	ks, err := pkcs11.Create(pkcs11test.Token(t, "device"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	key := &countingSigner{Signer: ks.Signer()}
	f := setupWith(t, "", key)
	enrolled := key.n.Load()
	if enrolled < 2 { // the CSR and the TLS handshake
		t.Fatalf("the token made %d signatures in enrollment and connection, want at least 2", enrolled)
	}
	if !f.dev.Identity().Cert.PublicKey.(*ecdsa.PublicKey).Equal(ks.Signer().Public()) {
		t.Fatal("the certificate is not for the token's key")
	}
	for i := range 3 {
		rc, err := f.dev.Pay(context.Background(), f.tr, dispense())
		if err != nil {
			t.Fatal(err)
		}
		if rc.Outcome != wire.Approved || rc.AmountMinor != 250 {
			t.Fatalf("payment %d: receipt %+v", i, rc)
		}
	}
	if key.n.Load() != enrolled+3 {
		t.Errorf("the token made %d signatures for 3 payments", key.n.Load()-enrolled)
	}
	if got := f.balance(f.payer); got != 2000-3*250 {
		t.Errorf("payer balance = %d", got)
	}
	f.assertBalanced()
}

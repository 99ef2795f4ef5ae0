package pki_test

import (
	"bytes"
	"crypto/ecdsa"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm2"
	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/pki"
)

var testDevice = iotpay.DeviceID(iotpay.NewID(iotpay.PrefixDevice, time.UnixMilli(1_750_000_000_000), bytes.NewReader(make([]byte, 10))))

// TestSuiteCAs issues a device certificate from each suite's CA: the key
// must be of the CA's suite, the certificate chains to its CA and not to
// the other, names the device, and OpenSSL 3 verifies the chain too.
func TestSuiteCAs(t *testing.T) {
	now := time.Now()
	cas := map[string]*pki.CA{}
	for _, suite := range []string{pki.SuiteIntl, pki.SuiteGM} {
		ca, err := pki.NewSuiteCA(suite, "test "+suite, now, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ca.Suite() != suite {
			t.Fatalf("CA of suite %s says %s", suite, ca.Suite())
		}
		cas[suite] = ca
	}
	for suite, ca := range cas {
		t.Run(suite, func(t *testing.T) {
			other := pki.SuiteGM
			if suite == pki.SuiteGM {
				other = pki.SuiteIntl
			}
			wrong, _ := pki.GenerateKey(other, nil)
			csr, _ := pki.NewCSR(wrong, "d")
			if _, err := ca.SignDeviceCSR(csr, testDevice, "ten_x"); iotpay.ErrorCode(err) != iotpay.EINVALID {
				t.Errorf("%s CA certified a %s key: %v", suite, other, err)
			}
			key, _ := pki.GenerateKey(suite, nil)
			csr, _ = pki.NewCSR(key, "d")
			cert, err := ca.SignDeviceCSR(csr, testDevice, "ten_x")
			if err != nil {
				t.Fatal(err)
			}
			if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || (suite == pki.SuiteGM) != (pub.Curve == sm2.P256()) {
				t.Errorf("certificate key %T", cert.PublicKey)
			}
			if id, err := pki.DeviceID(cert); err != nil || id != testDevice {
				t.Errorf("DeviceID = %s, %v", id, err)
			}
			if err := pki.Verify(cert, ca.Cert, now); err != nil {
				t.Errorf("does not chain to its CA: %v", err)
			}
			if err := pki.Verify(cert, cas[other].Cert, now); err == nil {
				t.Error("chains to the other suite's CA")
			}
			back, err := pki.ParseCertPEM(pki.EncodeCertPEM(cert))
			if err != nil || !bytes.Equal(back.Raw, cert.Raw) {
				t.Errorf("PEM round trip: %v", err)
			}

			dir := t.TempDir()
			for name, b := range map[string][]byte{"ca.pem": pki.EncodeCertPEM(ca.Cert), "dev.pem": pki.EncodeCertPEM(cert)} {
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			bin, err := exec.LookPath("openssl")
			if err != nil {
				t.Fatalf("openssl is needed: %v", err)
			}
			args := []string{"verify", "-purpose", "sslclient", "-CAfile", filepath.Join(dir, "ca.pem")}
			if suite == pki.SuiteGM {
				// SM2 certificate signatures bind the default user id, which
				// OpenSSL 3.0 does not assume for certificates.
				args = append(args, "-vfyopt", "distid:1234567812345678")
			}
			out, err := exec.Command(bin, append(args, filepath.Join(dir, "dev.pem"))...).CombinedOutput()
			if err != nil || !bytes.Contains(out, []byte(": OK")) {
				t.Errorf("openssl verify: %v\n%s", err, out)
			}
		})
	}
}

// TestKeyPEMRoundTrip stores and reloads a key of each suite.
func TestKeyPEMRoundTrip(t *testing.T) {
	for _, suite := range []string{pki.SuiteIntl, pki.SuiteGM} {
		path := filepath.Join(t.TempDir(), "k.pem")
		k, created, err := pki.LoadOrCreateKey(path, suite)
		if err != nil || !created {
			t.Fatal(created, err)
		}
		again, created, err := pki.LoadOrCreateKey(path, suite)
		if err != nil || created {
			t.Fatal(created, err)
		}
		a, _ := pki.MarshalPublicKey(k.Public())
		b, _ := pki.MarshalPublicKey(again.Public())
		if !bytes.Equal(a, b) {
			t.Errorf("%s key changed on reload", suite)
		}
	}
}

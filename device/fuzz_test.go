package device_test

import (
	"bytes"
	"crypto"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	"github.com/iotpay/iotpay/platform/pki"
)

var fuzzDevice = iotpay.DeviceID(iotpay.NewID(iotpay.PrefixDevice, time.UnixMilli(1_750_000_000_000), bytes.NewReader(make([]byte, 10))))

// fuzzEnrollment returns an enrollment of suite as the platform answers
// it, with the device's keys.
func fuzzEnrollment(f *testing.F, suite string) (en []byte, signer, transport crypto.Signer) {
	now := time.Now()
	ca, err := pki.NewCA("fuzz", now, nil)
	if err != nil {
		f.Fatal(err)
	}
	issue := func(ca *pki.CA, suite string) (crypto.Signer, string) {
		key, err := pki.GenerateKey(suite, nil)
		if err != nil {
			f.Fatal(err)
		}
		csr, err := pki.NewCSR(key, string(fuzzDevice))
		if err != nil {
			f.Fatal(err)
		}
		cert, err := ca.SignDeviceCSR(csr, fuzzDevice, "ten_fuzz")
		if err != nil {
			f.Fatal(err)
		}
		return key, string(pki.EncodeCertPEM(cert))
	}
	receipt, _ := pki.GenerateKey(suite, nil)
	pk, err := pki.MarshalPublicKey(receipt.Public())
	if err != nil {
		f.Fatal(err)
	}
	e := device.Enrollment{Device: fuzzDevice, Suite: suite, CA: string(pki.EncodeCertPEM(ca.Cert)),
		PlatformKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pk})), Challenge: make([]byte, 16)}
	if suite == pki.SuiteGM {
		gmCA, err := pki.NewSuiteCA(pki.SuiteGM, "fuzz gm", now, nil)
		if err != nil {
			f.Fatal(err)
		}
		e.GMCA = string(pki.EncodeCertPEM(gmCA.Cert))
		signer, e.Certificate = issue(gmCA, pki.SuiteGM)
		transport, e.TransportCertificate = issue(ca, pki.SuiteIntl)
	} else {
		signer, e.Certificate = issue(ca, pki.SuiteIntl)
	}
	b, err := json.Marshal(e)
	if err != nil {
		f.Fatal(err)
	}
	return b, signer, transport
}

// FuzzEnrollment: an enrollment — the platform's answer, and the
// enrollment.json the SDK reads back from the device directory — is
// refused with an error or gives an identity whose certificates are for
// the device's keys; never a panic.
func FuzzEnrollment(f *testing.F) {
	intl, intlKey, _ := fuzzEnrollment(f, pki.SuiteIntl)
	gm, gmKey, gmTransport := fuzzEnrollment(f, pki.SuiteGM)
	for _, s := range []struct {
		b                 []byte
		signer, transport crypto.Signer
	}{{intl, intlKey, nil}, {gm, gmKey, gmTransport}} {
		var en device.Enrollment
		if err := json.Unmarshal(s.b, &en); err != nil {
			f.Fatal(err)
		}
		if _, err := en.IdentityWith(s.signer, s.transport); err != nil {
			f.Fatalf("a seed enrollment is refused: %v", err)
		}
	}
	f.Add(intl, false)
	f.Add(gm, true)
	f.Add(bytes.Replace(gm, []byte(`"gm"`), []byte(`"intl"`), 1), true)
	f.Add([]byte(`{"suite":"intl","ca":"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"}`), false)
	f.Add([]byte(`{"device":`), false)
	dir := f.TempDir() // each fuzzing process has its own, and runs one input at a time
	f.Fuzz(func(t *testing.T, b []byte, gmKeys bool) {
		if err := os.WriteFile(filepath.Join(dir, device.EnrollmentFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		en, err := device.LoadEnrollment(dir)
		if err != nil {
			return
		}
		signer, transport := intlKey, crypto.Signer(nil)
		if gmKeys {
			signer, transport = gmKey, gmTransport
		}
		id, err := en.IdentityWith(signer, transport)
		if err != nil {
			return
		}
		if id.Cert == nil || id.CA == nil || id.PlatformKey == nil || (id.Transport != nil) != (id.TransportCert != nil) {
			t.Fatalf("incomplete identity %+v", id)
		}
		want, _ := pki.MarshalPublicKey(signer.Public())
		got, _ := pki.MarshalPublicKey(id.Cert.PublicKey)
		if !bytes.Equal(want, got) {
			t.Fatal("the identity's certificate is not for the device's key")
		}
	})
}

// FuzzFileState: a state file is read as a state or refused; a state read
// is written and read back the same.
func FuzzFileState(f *testing.F) {
	f.Add([]byte(`{"counter":7,"challenge":"AAECAwQFBgcICQoLDA0ODw=="}`))
	f.Add([]byte(`{"counter":-1}`))
	f.Add([]byte(`{"counter":18446744073709551615,"challenge":null}`))
	f.Add([]byte(`[]`))
	path := filepath.Join(f.TempDir(), device.StateFile) // one a fuzzing process
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		fs := device.FileState{Path: path}
		st, err := fs.Load()
		if err != nil {
			return
		}
		// Written back as Save writes it (without its fsync, which would
		// make fuzzing crawl).
		out, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, out, 0o600); err != nil {
			t.Fatal(err)
		}
		again, err := fs.Load()
		if err != nil || again.Counter != st.Counter || !bytes.Equal(again.Challenge, st.Challenge) {
			t.Fatalf("state %+v read back as %+v (%v)", st, again, err)
		}
	})
}

package pki_test

import (
	"encoding/pem"
	"testing"
	"time"

	"github.com/emmansun/gmsm/smx509"
	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/pki"
)

// csrSeeds are real certificate requests of both suites, DER and PEM, and
// a few broken ones.
func csrSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, suite := range []string{pki.SuiteIntl, pki.SuiteGM} {
		key, err := pki.GenerateKey(suite, nil)
		if err != nil {
			f.Fatal(err)
		}
		der, err := pki.NewCSR(key, string(testDevice))
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, der, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), der[:len(der)/2])
	}
	return append(seeds, []byte{0x30, 0x00}, []byte("-----BEGIN CERTIFICATE REQUEST-----\n!!\n-----END CERTIFICATE REQUEST-----\n"))
}

// FuzzParseCSR: a certificate request from a device (EST and the
// enrollment API take them) is refused as invalid or parses with a
// verified signature, and what parses the CA of its suite may certify
// without panicking.
func FuzzParseCSR(f *testing.F) {
	for _, s := range csrSeeds(f) {
		f.Add(s)
	}
	now := time.Unix(1_750_000_000, 0)
	intl, err := pki.NewCA("fuzz", now, nil)
	if err != nil {
		f.Fatal(err)
	}
	gm, err := pki.NewSuiteCA(pki.SuiteGM, "fuzz gm", now, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		csr, err := pki.ParseCSR(b)
		if err != nil {
			if iotpay.ErrorCode(err) != iotpay.EINVALID {
				t.Fatalf("error code of %v", err)
			}
			return
		}
		if again, err := smx509.ParseCertificateRequest(csr.Raw); err != nil || again.CheckSignature() != nil {
			t.Fatalf("a request whose signature does not verify parsed: %v", err)
		}
		for _, ca := range []*pki.CA{intl, gm} {
			if cert, err := ca.SignDeviceCSR(csr.Raw, testDevice, "ten_fuzz"); err == nil {
				if id, err := pki.DeviceID(cert); err != nil || id != testDevice {
					t.Fatalf("certificate names %q (%v), want %s", id, err, testDevice)
				}
			}
		}
	})
}

// FuzzDeviceCertificate: the device id read from a certificate (the
// channel's identity on MQTT, CoAP and HTTPS) is a valid device id or an
// unauthorized error, whatever the certificate says.
func FuzzDeviceCertificate(f *testing.F) {
	key, err := pki.GenerateKey(pki.SuiteIntl, nil)
	if err != nil {
		f.Fatal(err)
	}
	ca, err := pki.NewCA("fuzz", time.Unix(1_750_000_000, 0), nil)
	if err != nil {
		f.Fatal(err)
	}
	csr, err := pki.NewCSR(key, string(testDevice))
	if err != nil {
		f.Fatal(err)
	}
	cert, err := ca.SignDeviceCSR(csr, testDevice, "ten_fuzz")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cert.Raw)
	f.Add(ca.Cert.Raw)
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		c, err := pki.ParseCertificate(der)
		if err != nil {
			return
		}
		id, err := pki.DeviceID(c)
		switch {
		case err != nil && iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED:
			t.Fatalf("error code of %v", err)
		case err == nil && !iotpay.ValidID(iotpay.PrefixDevice, string(id)):
			t.Fatalf("device id %q is not one", id)
		}
	})
}

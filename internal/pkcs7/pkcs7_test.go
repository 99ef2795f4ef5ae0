package pkcs7

import (
	"bytes"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/pki"
)

func testCerts(t testing.TB) [][]byte {
	ca, err := pki.NewCA("test CA", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, _, err := ca.IssueServerCert([]string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{srv.Raw, ca.Cert.Raw}
}

func TestRoundTrip(t *testing.T) {
	certs := testCerts(t)
	der, err := EncodeCertsOnly(certs...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseCertsOnly(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !bytes.Equal(got[0], certs[0]) || !bytes.Equal(got[1], certs[1]) {
		t.Fatalf("round trip lost certificates")
	}
	if _, err := ParseCertsOnly(append(der, 0)); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("trailing byte: %v, want invalid", err)
	}
	if _, err := EncodeCertsOnly(); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("no certificates: %v, want invalid", err)
	}
}

// TestOpenSSL checks both directions against OpenSSL 3: it prints the
// certificates of our bundle, and we read the bundle it builds.
func TestOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("openssl is needed for the cross-checks (scripts/setup.sh installs it): %v", err)
	}
	certs := testCerts(t)
	der, err := EncodeCertsOnly(certs...)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p7 := filepath.Join(dir, "ours.p7")
	if err := os.WriteFile(p7, der, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("openssl", "pkcs7", "-inform", "DER", "-in", p7, "-print_certs").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl pkcs7: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), "BEGIN CERTIFICATE"); n != 2 {
		t.Fatalf("openssl printed %d certificates, want 2:\n%s", n, out)
	}
	pemPath := filepath.Join(dir, "certs.pem")
	var pemBytes []byte
	for _, c := range certs {
		pemBytes = append(pemBytes, pki.EncodeCertPEM(mustParse(t, c))...)
	}
	if err := os.WriteFile(pemPath, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	theirs, err := exec.Command("openssl", "crl2pkcs7", "-nocrl", "-certfile", pemPath, "-outform", "DER").Output()
	if err != nil {
		t.Fatalf("openssl crl2pkcs7: %v", err)
	}
	got, err := ParseCertsOnly(theirs)
	if err != nil {
		t.Fatalf("OpenSSL's bundle: %v", err)
	}
	if len(got) != 2 || !bytes.Equal(got[0], certs[0]) {
		t.Fatalf("OpenSSL's bundle: %d certificates", len(got))
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	c, err := pki.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func FuzzParseCertsOnly(f *testing.F) {
	der, err := EncodeCertsOnly(testCerts(f)...)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(der)
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := ParseCertsOnly(b)
		if err != nil {
			if iotpay.ErrorCode(err) != iotpay.EINVALID {
				t.Fatalf("error code %v", err)
			}
			return
		}
		// What parses re-encodes to bytes that parse to the same.
		again, err := EncodeCertsOnly(certs...)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseCertsOnly(again)
		if err != nil || len(got) != len(certs) {
			t.Fatalf("re-encoding: %v", err)
		}
	})
}

func FuzzDecodeBase64(f *testing.F) {
	f.Add([]byte("MAA=\r\n"))
	f.Add([]byte("!!"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := DecodeBase64(b)
		if err != nil {
			if iotpay.ErrorCode(err) != iotpay.EINVALID {
				t.Fatalf("error code %v", err)
			}
			return
		}
		if len(out) > len(b) {
			t.Fatalf("decoded %d bytes from %d", len(out), len(b))
		}
	})
}

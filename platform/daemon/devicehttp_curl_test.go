package daemon_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/wire"
)

// TestDeviceHTTPSCurl drives the HTTPS device endpoint with third-party
// clients only: OpenSSL makes the key and the CSRs and reads the PKCS#7
// answers, curl speaks EST and pays over mutual TLS. Go only signs the
// payment requests and checks the receipts, as a device would.
func TestDeviceHTTPSCurl(t *testing.T) {
	for _, bin := range []string{"curl", "openssl"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is needed (scripts/setup.sh installs it): %v", bin, err)
		}
	}
	f := setup(t, "")
	var dev struct{ Product iotpay.ProductID }
	f.must("GET", "/v1/devices/"+string(f.dev.ID()), nil, &dev)
	id, token := f.newDevice(dev.Product)
	f.must("POST", "/v1/mandates", map[string]any{"device": id, "payer": f.payer, "per_payment_limit": 500,
		"daily_limit": 1000, "monthly_limit": 10000}, nil)

	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if err := os.WriteFile(path("ca.pem"), pki.EncodeCertPEM(f.d.CA.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	url := f.deviceURL()
	curl := func(args ...string) string {
		t.Helper()
		return run("curl", append([]string{"-sS", "--fail-with-body", "--cacert", "ca.pem"}, args...)...)
	}
	// certs decodes an EST answer (base64 PKCS#7) with OpenSSL.
	certs := func(b64, out string) string {
		t.Helper()
		run("openssl", "base64", "-d", "-A", "-in", b64, "-out", b64+".der")
		run("openssl", "pkcs7", "-inform", "DER", "-in", b64+".der", "-print_certs", "-out", out)
		b, _ := os.ReadFile(path(out))
		return string(b)
	}

	curl("-o", "cacerts.b64", url+"/.well-known/est/cacerts")
	if got := certs("cacerts.b64", "cacerts.pem"); !strings.Contains(got, strings.TrimSpace(string(pki.EncodeCertPEM(f.d.CA.Cert)))) {
		t.Fatalf("cacerts is not the platform CA:\n%s", got)
	}

	run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "key.pem")
	newCSR := func(out string) {
		run("openssl", "req", "-new", "-key", "key.pem", "-subj", "/CN="+string(id), "-outform", "DER", "-out", out+".der")
		run("openssl", "base64", "-in", out+".der", "-out", out) // with line breaks, as RFC 7030 allows
	}
	newCSR("csr.b64")
	curl("-u", string(id)+":"+token, "-H", "Content-Type: application/pkcs10", "--data-binary", "@csr.b64",
		"-o", "cert.b64", url+"/.well-known/est/simpleenroll")
	certPEM := certs("cert.b64", "cert.pem")

	// The device, around the key OpenSSL made.
	keyPEM, _ := os.ReadFile(path("key.pem"))
	key, err := pki.ParseKeyPEM(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	_, _, d := f.estIdentity(id, certPEM, key)
	pay := func(cert string) *wire.Receipt {
		t.Helper()
		s, err := d.Sign(dispense())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path("req.cose"), s.Raw, 0o600); err != nil {
			t.Fatal(err)
		}
		curl("--cert", cert, "--key", "key.pem", "-H", "Content-Type: application/cose", "--data-binary", "@req.cose",
			"-o", "receipt.cose", url+"/device/v1/pay")
		answer, _ := os.ReadFile(path("receipt.cose"))
		rc, err := d.Open(s, answer)
		if err != nil {
			t.Fatal(err)
		}
		return rc
	}
	if rc := pay("cert.pem"); rc.Outcome != wire.Rejected || rc.Code != string(iotpay.EREPLAY) {
		t.Fatalf("first payment (no challenge yet): %+v, want rejected replay", rc)
	}
	if rc := pay("cert.pem"); rc.Outcome != wire.Approved {
		t.Fatalf("payment over curl: %+v", rc)
	}

	newCSR("csr2.b64")
	curl("--cert", "cert.pem", "--key", "key.pem", "-H", "Content-Type: application/pkcs10", "--data-binary", "@csr2.b64",
		"-o", "cert2.b64", url+"/.well-known/est/simplereenroll")
	if cert2 := certs("cert2.b64", "cert2.pem"); cert2 == certPEM || !strings.Contains(cert2, "BEGIN CERTIFICATE") {
		t.Fatal("simplereenroll gave no new certificate")
	}
	if rc := pay("cert2.pem"); rc.Outcome != wire.Approved {
		t.Fatalf("payment with the re-enrolled certificate: %+v", rc)
	}

	// Without a client certificate: 403, and curl says so.
	out := run("curl", "-sS", "--cacert", "ca.pem", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Content-Type: application/cose",
		"--data-binary", "@req.cose", url+"/device/v1/pay")
	if out != "403" {
		t.Fatalf("pay without client certificate: status %s, want 403", out)
	}
	if got := f.balance(f.payer); got != 2000-2*250 {
		t.Errorf("payer balance = %d, want %d", got, 2000-2*250)
	}
	f.assertBalanced()
}

package gateway

import (
	"context"
	"crypto"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/wire"
)

// TestLibcoapInterop: libcoap's coap-client (OpenSSL build) posts a frame
// over DTLS-PSK with the device id as identity and the derived key as
// its text; the answer is a frame.
func TestLibcoapInterop(t *testing.T) {
	bin, err := exec.LookPath("coap-client-openssl")
	if err != nil {
		if os.Getenv("IOTPAY_REQUIRE_TOOLS") != "" {
			t.Fatal("coap-client-openssl not installed (Debian libcoap3-bin)")
		}
		t.Skip("coap-client-openssl not installed (Debian libcoap3-bin)")
	}
	p := newPlatform(t)
	gw := newID()
	g := startGateway(t, Config{Budget: BudgetMax, AnswerWait: 3 * time.Second, Uplink: UplinkConfig{GatewayID: gw}})
	dev := newID()
	psk, err := DerivePSK(testSecret, dev)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	req := envelope(1, 300) // more than one block: libcoap does Block1/Block2 too
	in, out := filepath.Join(dir, "frame.bin"), filepath.Join(dir, "answer.bin")
	if err := os.WriteFile(in, messageFrame(t, dev, 1, req), 0o600); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(g.DTLSAddr(), "127.0.0.1:")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-m", "post", "-u", string(dev), "-k", string(psk),
		"-t", "60", "-b", strconv.Itoa(BlockSize(BudgetMax)), "-B", "20",
		"-f", in, "-o", out, "coaps://127.0.0.1:"+port+FramePath)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("coap-client: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	f, err := wire.ParseFrame(b)
	if err != nil {
		t.Fatalf("answer %x is not a frame: %v", b, err)
	}
	switch f.Kind {
	case wire.FrameAnswer:
		if string(f.Body) != string(reverse(req)) {
			t.Fatalf("wrong answer")
		}
	case wire.FrameQueued:
	default:
		t.Fatalf("answer kind %d, want FrameAnswer or FrameQueued", f.Kind)
	}
	t.Logf("libcoap got kind %d", f.Kind)
	p.WaitRelays(t, gw, 1)

	// A wrong key never reaches CoAP.
	cmd = exec.CommandContext(ctx, bin, "-m", "post", "-u", string(dev), "-k", strings.Repeat("0", PSKBytes),
		"-B", "3", "-f", in, "-o", filepath.Join(dir, "none"), "coaps://127.0.0.1:"+port+FramePath)
	cmd.CombinedOutput()
	if _, err := os.Stat(filepath.Join(dir, "none")); err == nil {
		if b, _ := os.ReadFile(filepath.Join(dir, "none")); len(b) > 0 {
			t.Fatalf("an answer with a wrong key: %x", b)
		}
	}
}

// TestLibcoapCertificate: coap-client posts a frame over DTLS with a
// device certificate of the platform CA (-c, -j), trusting the gateway's
// self-signed certificate as its CA (-C: libcoap's way to pin it). A
// device certificate of another CA, or a client trusting another
// certificate than the gateway's, gets no answer.
func TestLibcoapCertificate(t *testing.T) {
	bin, err := exec.LookPath("coap-client-openssl")
	if err != nil {
		if os.Getenv("IOTPAY_REQUIRE_TOOLS") != "" {
			t.Fatal("coap-client-openssl not installed (Debian libcoap3-bin)")
		}
		t.Skip("coap-client-openssl not installed (Debian libcoap3-bin)")
	}
	p := newPlatform(t)
	ca := newCA(t)
	gw := newID()
	dir := t.TempDir()
	g := startGateway(t, Config{DataDir: filepath.Join(dir, "gw"), ClientCAs: ca.Pool(), Budget: BudgetMax,
		AnswerWait: 3 * time.Second, Uplink: UplinkConfig{GatewayID: gw}})
	gwCert := filepath.Join(dir, "gateway.pem")
	if err := os.WriteFile(gwCert, pki.EncodeCertPEM(g.cert.Leaf), 0o600); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(g.DTLSAddr(), "127.0.0.1:")
	otherCA := filepath.Join(dir, "other-ca.pem")
	if err := os.WriteFile(otherCA, pki.EncodeCertPEM(newCA(t).Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	post := func(name string, ca *pki.CA, dev iotpay.DeviceID, trust string, req []byte) ([]byte, error) {
		cert := deviceCert(t, ca, dev)
		certFile, keyFile := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
		kpem, err := pki.EncodeKeyPEM(cert.PrivateKey.(crypto.Signer))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(certFile, pki.EncodeCertPEM(cert.Leaf), 0o600)
		os.WriteFile(keyFile, kpem, 0o600)
		in, out := filepath.Join(dir, name+".frame"), filepath.Join(dir, name+".answer")
		os.WriteFile(in, messageFrame(t, dev, 1, req), 0o600)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "-m", "post", "-c", certFile, "-j", keyFile, "-C", trust,
			"-t", "60", "-b", strconv.Itoa(BlockSize(BudgetMax)), "-B", "20",
			"-f", in, "-o", out, "coaps://127.0.0.1:"+port+FramePath)
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("coap-client: %v\n%s", err, b)
		}
		return os.ReadFile(out)
	}
	dev := newID()
	req := envelope(1, 300)
	b, err := post("device", ca, dev, gwCert, req)
	if err != nil {
		t.Fatal(err)
	}
	f, err := wire.ParseFrame(b)
	if err != nil {
		t.Fatalf("answer %x is not a frame: %v", b, err)
	}
	if f.Kind != wire.FrameAnswer && f.Kind != wire.FrameQueued {
		t.Fatalf("answer kind %d, want FrameAnswer or FrameQueued", f.Kind)
	}
	if f.Kind == wire.FrameAnswer && string(f.Body) != string(reverse(req)) {
		t.Fatalf("wrong answer")
	}
	p.WaitRelays(t, gw, 1)
	if b, _ := post("stranger", newCA(t), newID(), gwCert, req); len(b) > 0 {
		t.Errorf("an answer to a certificate of another CA: %x", b)
	}
	if b, _ := post("mistrust", ca, newID(), otherCA, req); len(b) > 0 {
		t.Errorf("an answer through a gateway the client does not trust: %x", b)
	}
}

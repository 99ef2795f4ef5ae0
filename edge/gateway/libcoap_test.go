package gateway

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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
	p.waitRelays(t, gw, 1)

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

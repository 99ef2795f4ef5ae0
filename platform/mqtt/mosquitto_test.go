package mqtt

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/wire"
)

// mosquittoTimeout bounds one mosquitto_pub run.
const mosquittoTimeout = 15 * time.Second

// mosquittoPub runs mosquitto_pub against the broker and returns its
// combined output and error.
func mosquittoPub(t *testing.T, e *env, args ...string) (string, error) {
	t.Helper()
	_, port, _ := strings.Cut(e.broker.Addr(), ":")
	ctx, cancel := context.WithTimeout(context.Background(), mosquittoTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "mosquitto_pub", append([]string{"-h", "127.0.0.1", "-p", port}, args...)...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("mosquitto_pub %v: timed out; output: %s", args, out)
	}
	t.Logf("mosquitto_pub %s: err=%v output=%q", strings.Join(args, " "), err, out)
	return string(out), err
}

// writePEM writes the CA certificate and d's certificate and key to a
// temporary directory.
func writePEM(t *testing.T, ca *pki.CA, d device) (caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	keyPEM, err := pki.EncodeKeyPEM(d.key)
	if err != nil {
		t.Fatal(err)
	}
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "dev.pem"), filepath.Join(dir, "dev.key")
	for name, data := range map[string][]byte{
		caFile:   pki.EncodeCertPEM(ca.Cert),
		certFile: pki.EncodeCertPEM(d.cert),
		keyFile:  keyPEM,
	} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}

// TestMosquittoPub checks the broker with a third-party client, Debian's
// mosquitto_pub (package mosquitto-clients).
func TestMosquittoPub(t *testing.T) {
	if _, err := exec.LookPath("mosquitto_pub"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("mosquitto_pub not installed: make test installs it (scripts/setup.sh)")
		}
		t.Skip("mosquitto_pub not installed (apt-get install mosquitto-clients; make test installs it)")
	}
	e := startBroker(t, newHandler())
	d, other := newDevice(t, e.ca), newDevice(t, e.ca)
	caFile, certFile, keyFile := writePEM(t, e.ca, d)
	id := string(d.id)

	t.Run("own pay topic", func(t *testing.T) {
		out, err := mosquittoPub(t, e, "--cafile", caFile, "--cert", certFile, "--key", keyFile,
			"-i", id, "-t", wire.PayTopic(id), "-m", "hello", "-q", "1")
		if err != nil {
			t.Fatalf("mosquitto_pub failed: %v: %s", err, out)
		}
		if c := e.handler.next(t); c.device != d.id || c.payload != "hello" {
			t.Fatalf("handler got %+v, want device %s payload hello", c, d.id)
		}
	})

	t.Run("other device's pay topic", func(t *testing.T) {
		out, _ := mosquittoPub(t, e, "--cafile", caFile, "--cert", certFile, "--key", keyFile,
			"-i", id, "-t", wire.PayTopic(string(other.id)), "-m", "steal", "-q", "1", "-V", "mqttv5")
		// mosquitto_pub 2.0 exits 0 here, but reports the PUBACK reason
		// code (0x87) and the reason string:
		// "Warning: Publish 1 failed: Not authorized.\nnot authorized\n".
		if !strings.Contains(out, "Publish 1 failed: Not authorized") {
			t.Fatalf("mosquitto_pub did not report the refusal: %q", out)
		}
		// The broker refused the message before acknowledging it, so no
		// handler call can follow.
		e.handler.none(t)
	})

	t.Run("no client certificate", func(t *testing.T) {
		checked := len(e.checker.called())
		out, err := mosquittoPub(t, e, "--cafile", caFile,
			"-i", id, "-t", wire.PayTopic(id), "-m", "anonymous", "-q", "1")
		// The TLS handshake fails, which mosquitto_pub 2.0 reports as
		// "Error: The connection was lost." with exit status 7.
		if err == nil {
			t.Fatalf("mosquitto_pub without a certificate succeeded: %q", out)
		}
		e.handler.none(t)
		if got := e.checker.called(); len(got) != checked {
			t.Fatalf("checker called for a connection without a certificate: %v", got[checked:])
		}
	})
}

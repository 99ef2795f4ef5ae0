package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iotpay/iotpay/platform/pki"
)

// TestDeviceEnrollMQTTCLI enrolls a device of each suite over MQTT with
// its token (no client certificate yet; the CA given out of band), pays
// over MQTT with its new certificate, shows its presence, and is revoked
// from the CLI, after which it pays no more.
func TestDeviceEnrollMQTTCLI(t *testing.T) {
	t.Setenv("IOTPAY_KEYSTORE_PASSPHRASE", "change-me")
	c, d, payer, product := vending(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pki.EncodeCertPEM(d.CA.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, suite := range []string{"intl", "gm"} {
		t.Run(suite, func(t *testing.T) {
			created := c.run("device", "create", "--product", product, "--name", suite, "--suite", suite)
			dev := created["device"].(map[string]any)["id"].(string)
			token := created["enrollment_token"].(string)
			dir := filepath.Join(t.TempDir(), suite)
			if err := run(context.Background(), []string{"device", "enroll", "--dir", dir, "--device", dev, "--token", token, "--suite", suite, "--mqtt", d.MQTTAddr()}, io.Discard, io.Discard); err == nil ||
				!strings.Contains(err.Error(), "--ca") {
				t.Fatalf("--mqtt without --ca: %v", err)
			}
			out := runText(t, "device", "enroll", "--dir", dir, "--device", dev, "--token", token, "--suite", suite, "--mqtt", d.MQTTAddr(), "--ca", ca)
			if !strings.HasPrefix(out, "enrolled "+dev) {
				t.Fatalf("enroll said %q", out)
			}
			c.run("mandate", "create", "--device", dev, "--payer", payer, "--per-payment", "500", "--daily", "1000")
			if out := runText(t, "device", "pay", "--dir", dir, "--mqtt", d.MQTTAddr(), "--event", "dispense"); !strings.HasPrefix(out, "receipt verified: approved") {
				t.Fatalf("pay said %q", out)
			}
			shown := c.run("device", "show", "--device", dev)
			p, ok := shown["presence"].(map[string]any)
			if !ok || p["transport"] != "mqtt" || shown["status"] != "active" {
				t.Fatalf("device show: %v", shown)
			}

			// Revoked from the CLI: its next payment is refused.
			if got := c.run("device", "revoke", "--device", dev); got["status"] != "revoked" {
				t.Fatalf("device revoke: %v", got)
			}
			var errOut strings.Builder
			if err := run(context.Background(), []string{"device", "pay", "--dir", dir, "--mqtt", d.MQTTAddr(), "--event", "dispense"}, io.Discard, &errOut); err == nil || !strings.Contains(err.Error(), "unauthorized") {
				t.Fatalf("a revoked device pays: %v", err)
			}
		})
	}
}

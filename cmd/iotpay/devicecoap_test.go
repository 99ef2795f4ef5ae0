package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// enrolledDevice creates a device of suite for product, enrolls it into a
// temporary directory through the CLI and gives it a mandate on payer; it
// returns the device id and directory.
func enrolledDevice(t *testing.T, c *cli, payer, product, suite string) (dev, dir string) {
	t.Helper()
	created := c.run("device", "create", "--product", product, "--name", suite, "--suite", suite)
	dev = created["device"].(map[string]any)["id"].(string)
	dir = filepath.Join(t.TempDir(), suite)
	runText(t, "device", "enroll", "--dir", dir, "--device", dev, "--token", created["enrollment_token"].(string), "--suite", suite)
	c.run("mandate", "create", "--device", dev, "--payer", payer, "--per-payment", "500", "--daily", "1000")
	return dev, dir
}

// TestDeviceCoAPCLI pays over CoAP/DTLS through the CLI, for a device of
// each suite (a gm device handshakes with its P-256 transport certificate).
func TestDeviceCoAPCLI(t *testing.T) {
	t.Setenv("IOTPAY_KEYSTORE_PASSPHRASE", "change-me")
	c, d, payer, product := vending(t)
	for _, suite := range []string{"intl", "gm"} {
		t.Run(suite, func(t *testing.T) {
			_, dir := enrolledDevice(t, c, payer, product, suite)
			if out := runText(t, "device", "pay", "--dir", dir, "--coap", d.CoAPAddr(), "--event", "dispense"); !strings.HasPrefix(out, "receipt verified: approved") {
				t.Fatalf("pay said %q", out)
			}
		})
	}
}

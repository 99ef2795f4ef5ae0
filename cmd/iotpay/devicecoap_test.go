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

// TestDevicePSKCLI: the operator gets a device's PSK ('device psk') and
// the device pays over CoAP/DTLS with it instead of its certificate, given
// on the command line or saved in its directory. (A wrong key is in the
// attack suite, platform/daemon.)
func TestDevicePSKCLI(t *testing.T) {
	t.Setenv("IOTPAY_KEYSTORE_PASSPHRASE", "change-me")
	c, d, payer, product := vending(t)
	for _, suite := range []string{"intl", "gm"} {
		t.Run(suite, func(t *testing.T) {
			dev, dir := enrolledDevice(t, c, payer, product, suite)
			psk := c.run("device", "psk", "--device", dev)
			key, _ := psk["key"].(string)
			if psk["identity"] != dev || len(key) != 32 || psk["hint"] == "" {
				t.Fatalf("device psk: %v", psk)
			}
			pay := func(args ...string) string {
				return runText(t, append([]string{"device", "pay", "--dir", dir, "--coap", d.CoAPAddr(), "--event", "dispense"}, args...)...)
			}
			if out := pay("--psk", key); !strings.HasPrefix(out, "receipt verified: approved") {
				t.Fatalf("pay --psk said %q", out)
			}
			if out := runText(t, "device", "psk", "--device", dev, "--dir", dir); !strings.Contains(out, "saved in") ||
				strings.Contains(out, key) {
				t.Errorf("device psk --dir said %q", out)
			}
			if out := pay("--psk-file", filepath.Join(dir, PSKFile)); !strings.HasPrefix(out, "receipt verified: approved") {
				t.Fatalf("pay --psk-file said %q", out)
			}
		})
	}
	c.fails("need --coap", "device", "pay", "--dir", t.TempDir(), "--event", "dispense", "--psk", "x")
}

package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/iotpay/iotpay/device"
)

// TestDeviceHTTPSCLI pays over the HTTPS device endpoint, rotates the
// certificate over EST and pays again, through the CLI, for a device of
// each suite.
func TestDeviceHTTPSCLI(t *testing.T) {
	t.Setenv("IOTPAY_KEYSTORE_PASSPHRASE", "change-me")
	c, d, payer, product := vending(t)
	url := "https://" + d.DeviceHTTPAddr()
	for _, suite := range []string{"intl", "gm"} {
		t.Run(suite, func(t *testing.T) {
			created := c.run("device", "create", "--product", product, "--name", suite, "--suite", suite)
			dev := created["device"].(map[string]any)["id"].(string)
			dir := filepath.Join(t.TempDir(), suite)
			runText(t, "device", "enroll", "--dir", dir, "--device", dev, "--token", created["enrollment_token"].(string), "--suite", suite)
			c.run("mandate", "create", "--device", dev, "--payer", payer, "--per-payment", "500", "--daily", "1000")
			if out := runText(t, "device", "pay", "--dir", dir, "--https", url, "--event", "dispense"); !strings.HasPrefix(out, "receipt verified: approved") {
				t.Fatalf("pay said %q", out)
			}
			before, err := device.LoadEnrollment(dir)
			if err != nil {
				t.Fatal(err)
			}
			if out := runText(t, "device", "rotate", "--dir", dir, "--https", url); !strings.Contains(out, "certificate renewed for "+dev) {
				t.Fatalf("rotate said %q", out)
			}
			after, err := device.LoadEnrollment(dir)
			if err != nil {
				t.Fatal(err)
			}
			if after.Certificate+after.TransportCertificate == before.Certificate+before.TransportCertificate {
				t.Fatal("rotate saved no new certificate")
			}
			if out := runText(t, "device", "pay", "--dir", dir, "--https", url, "--event", "dispense"); !strings.HasPrefix(out, "receipt verified: approved") {
				t.Fatalf("pay after rotation said %q", out)
			}
		})
	}
	if b := c.run("account", "balance", "--account", payer); b["balance"] != 0.0 {
		t.Errorf("payer balance: %v, want 0 after four payments of 2.50", b)
	}
}

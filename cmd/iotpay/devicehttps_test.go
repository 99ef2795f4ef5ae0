package main

import (
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
			dev, dir := enrolledDevice(t, c, payer, product, suite)
			if out := runText(t, "device", "pay", "--dir", dir, "--https", url, "--event", "dispense"); !strings.HasPrefix(out, "receipt verified: approved") {
				t.Fatalf("pay said %q", out)
			}
			before, err := device.LoadEnrollment(dir)
			if err != nil {
				t.Fatal(err)
			}
			if out := runText(t, "device", "rotate", "--dir", dir, "--https", url, "--if-due"); !strings.Contains(out, "nothing to do") {
				t.Fatalf("rotate --if-due of a new certificate said %q", out)
			}
			if again, err := device.LoadEnrollment(dir); err != nil || again.Certificate+again.TransportCertificate != before.Certificate+before.TransportCertificate {
				t.Fatalf("rotate --if-due changed the enrollment (err %v)", err)
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

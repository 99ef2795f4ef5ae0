package main

import (
	"strings"
	"testing"
)

// TestDevicePaySecureCLI pays with --secure, through an end-to-end session,
// over MQTT, CoAP and HTTPS, for a device of each suite. Each run of the
// CLI is a new process's worth of state: it handshakes, then pays sealed.
func TestDevicePaySecureCLI(t *testing.T) {
	t.Setenv("IOTPAY_KEYSTORE_PASSPHRASE", "change-me")
	c, d, payer, product := vending(t)
	c.run("account", "fund", "--account", payer, "--amount", "1000")
	transports := map[string][]string{
		"mqtt":  {"--mqtt", d.MQTTAddr()},
		"coap":  {"--coap", d.CoAPAddr()},
		"https": {"--https", "https://" + d.DeviceHTTPAddr()},
	}
	for _, suite := range []string{"intl", "gm"} {
		t.Run(suite, func(t *testing.T) {
			_, dir := enrolledDevice(t, c, payer, product, suite)
			for name, flags := range transports {
				args := append([]string{"device", "pay", "--dir", dir, "--secure", "--event", "dispense"}, flags...)
				if out := runText(t, args...); !strings.HasPrefix(out, "sealed receipt verified: approved") {
					t.Fatalf("%s: pay said %q", name, out)
				}
			}
		})
	}
	if b := c.run("account", "balance", "--account", payer); b["balance"] != 500.0 {
		t.Errorf("payer balance: %v", b)
	}
}

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iotpay/iotpay/device"
	"github.com/iotpay/iotpay/device/keystore/pkcs11/pkcs11test"
	"github.com/iotpay/iotpay/platform/daemon"
)

// vending starts a platform for the CLI (IOTPAY_URL, IOTPAY_API_KEY) with
// a merchant, a product at 2.50 a dispense and a payer holding 10.00.
func vending(t *testing.T) (c *cli, d *daemon.Daemon, payer, product string) {
	d = startDaemon(t)
	t.Setenv("IOTPAY_API_KEY", d.APIKey)
	t.Setenv("IOTPAY_URL", "http://"+d.HTTPAddr())
	c = &cli{t: t}
	merchant := c.run("account", "create", "--name", "Snack Co", "--kind", "merchant")["id"].(string)
	payer = c.run("account", "create", "--name", "Alice")["id"].(string)
	c.run("account", "fund", "--account", payer, "--amount", "1000")
	product = c.run("product", "create", "--name", "vending", "--merchant", merchant, "--mode", "fixed",
		"--event", "dispense", "--price", "250")["id"].(string)
	return c, d, payer, product
}

// TestGMDeviceCLI creates, enrolls and pays with gm devices through the
// CLI and a running platform: one with both keys in software keystores,
// one whose P-256 transport key is on a SoftHSM2 token (its SM2 key stays
// in software: SoftHSM2 has no SM2). A gm device enrolled as intl is
// refused.
func TestGMDeviceCLI(t *testing.T) {
	t.Setenv("IOTPAY_KEYSTORE_PASSPHRASE", "change-me")
	tok := pkcs11test.Token(t, "gm")
	t.Setenv("IOTPAY_PKCS11_PIN", tok.PIN)
	c, d, payer, product := vending(t)
	for i, spec := range []string{"soft", "pkcs11:token=gm;pin-env=IOTPAY_PKCS11_PIN;module=" + tok.Module} {
		name := []string{"soft", "token"}[i]
		created := c.run("device", "create", "--product", product, "--name", name, "--suite", "gm")
		dv := created["device"].(map[string]any)
		if dv["suite"] != "gm" {
			t.Fatalf("device created %v", dv)
		}
		dev, token := dv["id"].(string), created["enrollment_token"].(string)
		root := t.TempDir()

		var stdout, stderr bytes.Buffer
		probe := spec
		if i == 1 {
			probe += ";label=probe" // the refused attempt leaves its key on the token
		}
		err := run(context.Background(), []string{"device", "enroll", "--dir", filepath.Join(root, "as-intl"), "--device", dev,
			"--token", token, "--keystore", probe}, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "transport_csr") {
			t.Errorf("gm device enrolled as intl: %v", err)
		}

		dir := filepath.Join(root, "gm")
		out := runText(t, "device", "enroll", "--dir", dir, "--device", dev, "--token", token, "--suite", "gm", "--keystore", spec)
		if !strings.Contains(out, "(suite gm)") || !strings.Contains(out, device.SM2KeyFile) {
			t.Errorf("enroll said %q", out)
		}
		c.run("mandate", "create", "--device", dev, "--payer", payer, "--per-payment", "500", "--daily", "1000")
		out = runText(t, "device", "pay", "--dir", dir, "--mqtt", d.MQTTAddr(), "--event", "dispense", "--keystore", spec)
		if !strings.HasPrefix(out, "receipt verified: approved") {
			t.Errorf("pay said %q", out)
		}
		if _, err := os.Stat(filepath.Join(dir, device.SM2KeyFile)); err != nil {
			t.Errorf("no SM2 keystore: %v", err)
		}
	}
	if b := c.run("account", "balance", "--account", payer); b["balance"] != 500.0 {
		t.Errorf("payer balance: %v", b)
	}
}

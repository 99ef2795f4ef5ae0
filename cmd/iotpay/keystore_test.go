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
)

// TestDeviceOnPKCS11Token enrolls a device whose key is generated on a
// SoftHSM2 token and pays with it, through the CLI and a running platform.
func TestDeviceOnPKCS11Token(t *testing.T) {
	c, d, payer, product := vending(t)
	tok := pkcs11test.Token(t, "iotpay")
	t.Setenv("IOTPAY_PKCS11_PIN", tok.PIN)
	spec := "pkcs11:token=iotpay;pin-env=IOTPAY_PKCS11_PIN;module=" + tok.Module

	created := c.run("device", "create", "--product", product, "--name", "m1")
	dev := created["device"].(map[string]any)["id"].(string)
	dir := filepath.Join(t.TempDir(), "m1")

	out := runText(t, "device", "enroll", "--dir", dir, "--device", dev, "--token", created["enrollment_token"].(string), "--keystore", spec)
	if !strings.Contains(out, `pkcs11 token "iotpay"`) || strings.Contains(out, tok.PIN) {
		t.Errorf("enroll said %q", out)
	}
	if _, err := os.Stat(filepath.Join(dir, device.KeyFile)); !os.IsNotExist(err) {
		t.Errorf("a key file in the device directory: %v", err)
	}
	c.run("mandate", "create", "--device", dev, "--payer", payer, "--per-payment", "500", "--daily", "1000")
	out = runText(t, "device", "pay", "--dir", dir, "--mqtt", d.MQTTAddr(), "--event", "dispense", "--keystore", spec)
	if !strings.HasPrefix(out, "receipt verified: approved") {
		t.Errorf("pay said %q", out)
	}
	if b := c.run("account", "balance", "--account", payer); b["balance"] != 750.0 {
		t.Errorf("payer balance: %v", b)
	}

	var stdout, stderr bytes.Buffer
	t.Setenv("IOTPAY_PKCS11_PIN", "0000")
	err := run(context.Background(), []string{"device", "pay", "--dir", dir, "--mqtt", d.MQTTAddr(), "--event", "dispense", "--keystore", spec}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Errorf("pay with a wrong PIN: %v", err)
	}
	err = run(context.Background(), []string{"device", "pay", "--dir", dir, "--event", "dispense", "--keystore", "tpm"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "want soft or pkcs11") {
		t.Errorf("pay with an unknown keystore: %v", err)
	}
}

// runText runs a command that prints text, not JSON.
func runText(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), args, &out, &errOut); err != nil {
		t.Fatalf("iotpay %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

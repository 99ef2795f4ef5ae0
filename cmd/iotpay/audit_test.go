package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestAuditVerifyCLI pays through the CLI, then verifies the audit log the
// platform serves with 'iotpay audit verify', given only its URL and key:
// the payment's leaf is proven included and every leaf re-hashed.
func TestAuditVerifyCLI(t *testing.T) {
	t.Setenv("IOTPAY_KEYSTORE_PASSPHRASE", "change-me")
	c, d, payer, product := vending(t)
	_, dir := enrolledDevice(t, c, payer, product, "intl")
	out := runText(t, "device", "pay", "--dir", dir, "--mqtt", d.MQTTAddr(), "--event", "dispense",
		"--log", "http://"+d.HTTPAddr()+"/log/", "--log-key", d.LogKey)
	if !strings.Contains(out, "logged: leaf ") {
		t.Fatalf("pay --log said %q", out)
	}
	// The same proof asked on the payment channel (CoAP here), no HTTP.
	if out := runText(t, "device", "pay", "--dir", dir, "--coap", d.CoAPAddr(), "--event", "dispense", "--log-key", d.LogKey); !strings.Contains(out, "logged: leaf ") {
		t.Fatalf("pay --log-key over CoAP said %q", out)
	}
	m := regexp.MustCompile(`log #(\d+) request ([0-9a-f]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("pay said %q", out)
	}
	args := []string{"audit", "verify", "--log", "http://" + d.HTTPAddr() + "/log/", "--key", d.LogKey,
		"--witness", d.GMLogKey, "--quorum", "1", "--state", t.TempDir() + "/seen", "--full", "--leaf", m[1] + ":" + m[2]}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, &stdout, &stderr)
		if err == nil {
			if !strings.Contains(stdout.String(), "1 leaves proven included") || !strings.HasSuffix(stdout.String(), "OK\n") ||
				!strings.Contains(stderr.String(), "re-hashing leaves") {
				t.Fatalf("verify said:\n%s\n%s", stdout.String(), stderr.String())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("verify never passed: %v\n%s\n%s", err, stdout.String(), stderr.String())
		}
		time.Sleep(200 * time.Millisecond) // the next checkpoint is at most a second away
	}
	// Another request hash for the same leaf: refused, non-zero exit.
	args[len(args)-1] = m[1] + ":00"
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), args, &stdout, &stderr); err == nil || !strings.Contains(stdout.String(), "FAIL: leaf") {
		t.Fatalf("a wrong request hash passed: %v\n%s", err, stdout.String())
	}
}

func TestWitnessCLI(t *testing.T) {
	dir := t.TempDir()
	key := runText(t, "witness", "--dir", dir, "--name", "witness.test/w", "--print-key")
	if !strings.HasPrefix(key, "witness.test/w+") || runText(t, "witness", "--dir", dir, "--print-key") != key {
		t.Fatalf("witness key %q is not stable", key)
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"witness", "--dir", dir}, &stdout, &stderr); err == nil {
		t.Fatal("a witness of no log started")
	}
}

func TestAnchorDeployNeedsItsFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"audit", "anchor-deploy", "--eth-rpc", "http://127.0.0.1:1"}, &stdout, &stderr); err == nil ||
		!strings.Contains(err.Error(), "--eth-key-file") {
		t.Fatalf("deploy without a key: %v", err)
	}
}

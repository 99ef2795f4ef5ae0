package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iotpay/iotpay/platform/rules"
)

// writeJSON writes v as JSON to a file in dir and returns its path.
func writeJSONFile(t *testing.T, dir, name string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestIntelCommands drives the platform's intelligence from the CLI: a
// tariff, a product profile (parking rules, a cool-off, allowed firmware),
// a dry run, a device reporting its state and firmware, a payment held for
// review and approved, a desired state sent and applied, the events.
func TestIntelCommands(t *testing.T) {
	t.Setenv("IOTPAY_KEYSTORE_PASSPHRASE", "change-me")
	c, d, payer, product := vending(t)
	dir := t.TempDir()
	c.run("tariff", "set", "--name", "ev", "--file", writeJSONFile(t, dir, "ev.json",
		map[string]any{"currency": "EUR", "per_units": 1000, "bands": []any{map[string]any{"from": "00:00", "to": "24:00", "price_minor": 35}}}))
	if ts := c.run("tariffs"); len(ts["data"].([]any)) != 1 {
		t.Fatalf("tariffs: %v", ts)
	}
	image := filepath.Join(dir, "firmware.bin")
	os.WriteFile(image, []byte("gate firmware 3.0"), 0o600)
	sum := sha256.Sum256([]byte("gate firmware 3.0"))
	prof := c.run("product", "profile", "--product", product, "--file", writeJSONFile(t, dir, "profile.json", map[string]any{
		"rules": rules.ParkingRules().Rules, "risk": map[string]any{"cool_off": map[string]any{"period": "24h", "amount_max": 300}},
		"firmware": []any{map[string]any{"version": "3.0", "measurement": hex.EncodeToString(sum[:])}}}))
	if prof["version"] != 1.0 {
		t.Fatalf("profile: %v", prof)
	}
	c.fails("invalid", "product", "profile", "--product", product, "--file", writeJSONFile(t, dir, "bad.json",
		map[string]any{"rules": []any{map[string]any{"name": "x", "action": "charge", "amount": "price('nope', 1)"}}}))
	if got := c.run("product", "profile", "--product", product, "--version", "1"); got["version"] != 1.0 {
		t.Fatalf("profile version 1: %v", got)
	}
	dry := c.run("product", "dry-run", "--product", product, "--event", "exit", "--num", "minutes=130")
	if a := dry["action"].(map[string]any); a["kind"] != "charge" || a["amount"] != 400.0 {
		t.Fatalf("dry run: %v", dry)
	}

	dev, devDir := enrolledDevice(t, c, payer, product, "intl")
	out := runText(t, "device", "pay", "--dir", devDir, "--mqtt", d.MQTTAddr(), "--firmware", "3.0", "--measurement", "@"+image, "--battery", "71")
	if !strings.HasPrefix(out, "receipt verified: approved report") {
		t.Fatalf("report: %q", out)
	}
	st := c.run("device", "state", "--device", dev)
	if st["attested"] != true || st["battery"] != 71.0 || st["firmware"] != "3.0" {
		t.Fatalf("state: %v", st)
	}
	// 2 h 10 min: 4.00, over the cool-off's 3.00: held for review.
	if err := run(t.Context(), []string{"device", "pay", "--dir", devDir, "--mqtt", d.MQTTAddr(), "--event", "exit", "--fields", "minutes=130"},
		&strings.Builder{}, &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "review") {
		t.Fatalf("a payment held for review: %v", err)
	}
	queue := c.run("reviews")
	items := queue["data"].([]any)
	if len(items) != 1 {
		t.Fatalf("review queue: %v", queue)
	}
	held := items[0].(map[string]any)["payment"].(string)
	if r := c.run("review", "approve", "--payment", held, "--note", "ok"); r["payment"].(map[string]any)["status"] != "captured" {
		t.Fatalf("approve: %v", r)
	}
	c.fails("conflict", "review", "decline", "--payment", held)

	// Desired state: set, carried by the next receipt, applied.
	if st := c.run("device", "desire", "--device", dev, "--set", "gate_open_s=15,mode=night"); st["desired_version"] != 1.0 {
		t.Fatalf("desire: %v", st)
	}
	c.fails("conflict", "device", "desire", "--device", dev, "--set", "mode=day", "--if-version", "1")
	out = runText(t, "device", "pay", "--dir", devDir, "--mqtt", d.MQTTAddr(), "--event", "entry")
	if !strings.Contains(out, "desired state version 1 (signed, checked)") {
		t.Fatalf("receipt without the desired state: %q", out)
	}
	runText(t, "device", "pay", "--dir", devDir, "--mqtt", d.MQTTAddr(), "--applied", "1", "--reported", "mode=night")
	if st := c.run("device", "state", "--device", dev); st["applied"] != 1.0 || st["reported"].(map[string]any)["mode"] != "night" {
		t.Fatalf("state after applying: %v", st)
	}
	// Tampering reported from the CLI: an event, then cleared.
	runText(t, "device", "pay", "--dir", devDir, "--mqtt", d.MQTTAddr(), "--tamper")
	events := c.run("events", "--device", dev)
	kinds := ""
	for _, e := range events["data"].([]any) {
		kinds += e.(map[string]any)["kind"].(string) + " "
	}
	if !strings.Contains(kinds, "device.tamper") || !strings.Contains(kinds, "payment.review") {
		t.Fatalf("events: %s", kinds)
	}
	if st := c.run("device", "desire", "--device", dev, "--clear-tamper"); st["tamper"] != false {
		t.Fatalf("clear tamper: %v", st)
	}
	c.run("orders")

	// Webhooks from the CLI.
	hook := c.run("webhook", "create", "--url", "https://ops.example/hooks", "--events", "payment.*,device.*")
	if hook["secret"] == nil {
		t.Fatalf("webhook create: %v", hook)
	}
	if hs := c.run("webhooks"); len(hs["data"].([]any)) != 1 {
		t.Fatalf("webhooks: %v", hs)
	}
	runText(t, "device", "pay", "--dir", devDir, "--mqtt", d.MQTTAddr(), "--event", "exit", "--fields", "minutes=70")
	log := c.run("webhook", "deliveries", "--webhook", hook["id"].(string))
	ds := log["data"].([]any)
	if len(ds) == 0 {
		t.Fatalf("no deliveries: %v", log)
	}
	c.run("webhook", "redeliver", "--delivery", ds[0].(map[string]any)["id"].(string))
	c.run("webhook", "delete", "--webhook", hook["id"].(string))
	c.fails("not_found", "webhook", "delete", "--webhook", hook["id"].(string))
}

package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/payment/connector/iso8583"
	"github.com/iotpay/iotpay/platform/daemon"
)

// TestAcquirerSimAndReconcileCLI runs 'iotpay acquirer-sim' as a command,
// a platform whose acquirer connector talks to it, pays from a card
// account created with --sources, and reconciles the acquirer's report
// with 'iotpay reconcile': clean, then with a missing item (exit error).
func TestAcquirerSimAndReconcileCLI(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"acquirer-sim", "--addr", "127.0.0.1:0"}, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() { cancel(); <-done })
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "acquirer-sim listening on ") {
		t.Fatalf("acquirer-sim said %q: %v", line, err)
	}
	go io.Copy(io.Discard, pr)
	addr := strings.Fields(strings.TrimPrefix(line, "acquirer-sim listening on "))[0]
	acq, err := iso8583.New(iso8583.Config{Name: "acquirer", Addr: addr, MerchantID: "M1", TerminalID: "T1", AcquirerID: "1", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer acq.Close()
	d, err := daemon.Open(context.Background(), daemon.Config{DataDir: filepath.Join(t.TempDir(), "d"), HTTPAddr: "127.0.0.1:0",
		MQTTAddr: "127.0.0.1:0", DeviceHTTPAddr: "127.0.0.1:0", CoAPAddr: "127.0.0.1:0", Connectors: []connector.Connector{acq}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	t.Setenv("IOTPAY_API_KEY", d.APIKey)
	t.Setenv("IOTPAY_URL", "http://"+d.HTTPAddr())
	c := &cli{t: t}
	merchant := c.run("account", "create", "--name", "ChargeNet", "--kind", "merchant")["id"].(string)
	card := c.run("account", "create", "--name", "Alice's card", "--sources", "acquirer=4111111111111111")
	if card["overdraft_allowed"] != true {
		t.Fatalf("card account: %v", card)
	}
	product := c.run("product", "create", "--name", "charger", "--merchant", merchant, "--mode", "amount")["id"].(string)
	dev := c.run("device", "create", "--product", product, "--name", "c1")["device"].(map[string]any)["id"].(string)
	c.run("mandate", "create", "--device", dev, "--payer", card["id"].(string), "--per-payment", "5000", "--daily", "10000")
	p := c.run("payment", "authorize", "--device", dev, "--amount", "1999", "--capture")
	if p["status"] != "captured" || p["connector"] != "acquirer" {
		t.Fatalf("payment %v", p)
	}
	if h := c.run("connectors"); len(h["data"].([]any)) != 1 {
		t.Fatalf("connectors: %v", h)
	}
	if fs := c.run("follow-ups"); len(fs["data"].([]any)) != 0 {
		t.Fatalf("follow-ups: %v", fs)
	}
	if fs := c.run("follow-ups", "--status", "failed", "--limit", "5"); len(fs["data"].([]any)) != 0 {
		t.Fatalf("failed follow-ups: %v", fs)
	}
	if err := run(context.Background(), []string{"follow-up", "retry", "--id", "fup_01jd0000000000000000000000"}, io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "404") && !strings.Contains(err.Error(), "not found") {
		t.Fatalf("retry of no follow-up: %v", err)
	}
	report := filepath.Join(t.TempDir(), "settlement.csv")
	day := time.Now().UTC().Format("2006-01-02")
	os.WriteFile(report, []byte("reference,amount,currency,date,type\n"+p["connector_ref"].(string)+",19.99,EUR,"+day+",capture\n"), 0o600)
	var clean strings.Builder
	if err := run(context.Background(), []string{"reconcile", "--connector", "acquirer", "--file", report}, &clean, io.Discard); err != nil {
		t.Fatalf("a clean report: %v\n%s", err, clean.String())
	}
	os.WriteFile(report, []byte("reference,amount,currency,date\n"), 0o600)
	var out strings.Builder
	if err := run(context.Background(), []string{"reconcile", "--connector", "acquirer", "--file", report}, &out, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "differ") {
		t.Fatalf("a report missing a capture: %v\n%s", err, out.String())
	}
}

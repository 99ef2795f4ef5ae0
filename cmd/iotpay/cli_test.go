package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/iotpay/iotpay/platform/daemon"
)

// cli runs the operator commands against an in-process platform, through
// a proxy that notes the Idempotency-Key of every POST.
type cli struct {
	t    *testing.T
	url  string
	mu   sync.Mutex
	keys []string // of the POSTs, in order
}

// startDaemon runs a platform on loopback ports for the test.
func startDaemon(t *testing.T) *daemon.Daemon {
	t.Helper()
	d, err := daemon.Open(context.Background(), daemon.Config{DataDir: filepath.Join(t.TempDir(), "d"),
		HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", DeviceHTTPAddr: "127.0.0.1:0", CoAPAddr: "127.0.0.1:0", Fees: demoFees})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		d.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func newCLI(t *testing.T) *cli {
	d := startDaemon(t)
	target, _ := url.Parse("http://" + d.HTTPAddr())
	c := &cli{t: t}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			c.mu.Lock()
			c.keys = append(c.keys, r.Header.Get("Idempotency-Key"))
			c.mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c.url = srv.URL
	t.Setenv("IOTPAY_API_KEY", d.APIKey)
	t.Setenv("IOTPAY_URL", srv.URL)
	return c
}

// run runs a command and decodes its JSON output.
func (c *cli) run(args ...string) map[string]any {
	c.t.Helper()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), args, &out, &errOut); err != nil {
		c.t.Fatalf("iotpay %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	var v map[string]any
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		c.t.Fatalf("iotpay %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return v
}

// fails runs a command that must fail with an error mentioning want.
func (c *cli) fails(want string, args ...string) {
	c.t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), want) {
		c.t.Errorf("iotpay %s: %v, want an error with %q", strings.Join(args, " "), err, want)
	}
}

func TestOperatorCommands(t *testing.T) {
	c := newCLI(t)
	merchant := c.run("account", "create", "--name", "ChargeNet", "--kind", "merchant")["id"].(string)
	payer := c.run("account", "create", "--name", "Alice")["id"].(string)
	c.run("account", "fund", "--account", payer, "--amount", "5000")
	product := c.run("product", "create", "--name", "charger", "--merchant", merchant, "--mode", "amount", "--category", "5552")["id"].(string)
	dev := c.run("device", "create", "--product", product, "--name", "c1")["device"].(map[string]any)["id"].(string)
	mandate := c.run("mandate", "create", "--device", dev, "--payer", payer, "--per-payment", "3000", "--daily", "4000",
		"--categories", "5552", "--products", product)["id"].(string)
	if m := c.run("mandate", "suspend", "--mandate", mandate); m["status"] != "suspended" {
		t.Errorf("suspend: %v", m)
	}
	if p := c.run("payment", "authorize", "--device", dev, "--amount", "100"); p["decline_code"] != "mandate_suspended" {
		t.Errorf("payment under a suspended mandate: %v", p)
	}
	c.run("mandate", "resume", "--mandate", mandate)

	p := c.run("payment", "authorize", "--device", dev, "--amount", "2000", "--hold", "1h")
	id := p["id"].(string)
	if p["status"] != "authorized" {
		t.Fatalf("authorize: %v", p)
	}
	c.run("payment", "increment", "--payment", id, "--amount", "500")
	c.fails("over_payment_limit", "payment", "increment", "--payment", id, "--amount", "501")
	if p := c.run("payment", "capture", "--payment", id, "--amount", "1000", "--final=false"); p["status"] != "partially_captured" {
		t.Errorf("partial capture: %v", p)
	}
	if p := c.run("payment", "capture", "--payment", id); p["status"] != "captured" || p["captured"] != 2500.0 {
		t.Errorf("final capture: %v", p)
	}
	c.fails("conflict", "payment", "void", "--payment", id)
	c.run("payment", "refund", "--payment", id, "--amount", "100")
	if p := c.run("payment", "refund", "--payment", id); p["status"] != "refunded" {
		t.Errorf("refund: %v", p)
	}
	voided := c.run("payment", "authorize", "--device", dev, "--amount", "300")["id"].(string)
	if p := c.run("payment", "void", "--payment", voided); p["status"] != "voided" {
		t.Errorf("void: %v", p)
	}
	c.run("payment", "authorize", "--device", dev, "--amount", "50", "--capture")
	if got := c.run("payment", "get", "--payment", id, "--transfers"); len(got["data"].([]any)) == 0 {
		t.Errorf("no transfers: %v", got)
	}

	// Balances now and back in time.
	if b := c.run("account", "balance", "--account", payer); b["balance"] != 4950.0 {
		t.Errorf("balance: %v", b)
	}
	if b := c.run("account", "balance", "--account", payer, "--as-of-seq", "1"); b["balance"] != 5000.0 || b["as_of_seq"] != 1.0 {
		t.Errorf("balance as of the funding: %v", b)
	}
	if b := c.run("account", "balance", "--account", payer, "--as-of", "2000-01-01T00:00:00Z"); b["balance"] != 0.0 {
		t.Errorf("balance in 2000: %v", b)
	}

	// Listings: a page, every page, the filters.
	page := c.run("payments", "--device", dev, "--limit", "2")
	if len(page["data"].([]any)) != 2 || page["has_more"] != true {
		t.Errorf("a page of 2: %v", page)
	}
	next := c.run("payments", "--device", dev, "--limit", "2", "--starting-after", page["next_cursor"].(string))
	if len(next["data"].([]any)) != 2 {
		t.Errorf("the next page: %v", next)
	}
	if all := c.run("payments", "--all", "--limit", "1", "--mandate", mandate); len(all["data"].([]any)) != 4 {
		t.Errorf("every page: %v", all)
	}
	if got := c.run("payments", "--status", "voided", "--created-gte", "2000-01-01T00:00:00Z"); len(got["data"].([]any)) != 1 {
		t.Errorf("voided payments: %v", got)
	}
	c.fails("invalid", "payments", "--status", "paid")
	c.fails("needs --payment", "payment", "capture")

	c.run("mandate", "revoke", "--mandate", mandate)
	c.fails("conflict", "mandate", "resume", "--mandate", mandate)

	// Every POST carried its own key.
	seen := map[string]bool{}
	for _, k := range c.keys {
		if k == "" || seen[k] {
			t.Errorf("POST Idempotency-Keys %q: empty or repeated", c.keys)
			break
		}
		seen[k] = true
	}
}

// TestIdempotencyKeyFlag repeats a command with --idempotency-key: it
// takes effect once, and the repeat answers the same.
func TestIdempotencyKeyFlag(t *testing.T) {
	c := newCLI(t)
	payer := c.run("account", "create", "--name", "Bob")["id"].(string)
	first := c.run("account", "fund", "--account", payer, "--amount", "700", "--idempotency-key", "bank-ref-42")
	again := c.run("account", "fund", "--account", payer, "--amount", "700", "--idempotency-key", "bank-ref-42")
	if first["id"] != again["id"] {
		t.Errorf("the repeat made another transfer: %v then %v", first, again)
	}
	if b := c.run("account", "get", "--account", payer); b["balance"] != 700.0 {
		t.Errorf("balance after a repeated funding: %v", b)
	}
	c.fails("another request", "account", "fund", "--account", payer, "--amount", "701", "--idempotency-key", "bank-ref-42")
	if c.keys[len(c.keys)-1] != "bank-ref-42" {
		t.Errorf("keys sent: %q", c.keys)
	}
}

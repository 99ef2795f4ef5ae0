package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iotpay/iotpay/platform/coap"
	"github.com/iotpay/iotpay/platform/daemon"
	"github.com/iotpay/iotpay/platform/httpapi"
)

// api is a real daemon (store, writer, engine, registry) on a temporary
// directory, its HTTP API served on loopback. When the test ends the
// ledger must balance.
type api struct {
	srv *httptest.Server
	d   *daemon.Daemon
	key string
}

func newAPI(tb testing.TB, cfg daemon.Config) *api {
	tb.Helper()
	cfg.DataDir = filepath.Join(tb.TempDir(), "d")
	d, err := daemon.Open(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer((&httpapi.Server{Registry: d.Registry, Payments: d.Payments, PSK: d.DevicePSK,
		PSKHint: coap.PSKIdentityHint, Processor: d.Processor, SupplySecret: d.SupplySecret}).Handler())
	a := &api{srv: srv, d: d, key: d.APIKey}
	tb.Cleanup(func() { srv.Close(); d.Close() })
	tb.Cleanup(func() { a.balanced(tb) }) // runs first
	return a
}

// otherTenant returns the API key of a new tenant.
func (a *api) otherTenant(tb testing.TB) string {
	tb.Helper()
	_, key, err := a.d.Registry.Bootstrap(context.Background(), "other")
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

// reply is an answer of the API.
type reply struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (r reply) String() string { return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.raw)) }

// str returns a string field of the body.
func (r reply) str(name string) string { s, _ := r.body[name].(string); return s }

// num returns a number field of the body.
func (r reply) num(name string) int64 { n, _ := r.body[name].(float64); return int64(n) }

// call sends body (a string as it is, anything else as JSON, nil for
// none) with key as the bearer key (none when empty) and headers given as
// name, value pairs.
func (a *api) call(tb testing.TB, key, method, path string, body any, headers ...string) reply {
	tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, a.srv.URL+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := a.srv.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	out := reply{status: resp.StatusCode, header: resp.Header, raw: raw}
	json.Unmarshal(raw, &out.body)
	if resp.StatusCode >= 500 {
		tb.Errorf("%s %s: %s", method, path, out)
	}
	if resp.StatusCode >= 400 && (out.str("code") == "" || out.str("message") == "") {
		tb.Errorf("%s %s: error without code and message: %s", method, path, out)
	}
	return out
}

// must calls as the default tenant and fails the test unless the status is want.
func (a *api) must(tb testing.TB, want int, method, path string, body any, headers ...string) reply {
	tb.Helper()
	r := a.call(tb, a.key, method, path, body, headers...)
	if r.status != want {
		tb.Fatalf("%s %s: %s, want %d", method, path, r, want)
	}
	return r
}

// balanced fails the test unless GET /v1/ledger/check says the ledger balances.
func (a *api) balanced(tb testing.TB) {
	tb.Helper()
	if r := a.call(tb, a.key, "GET", "/v1/ledger/check", nil); r.status != 200 || r.body["balanced"] != true {
		tb.Errorf("ledger check: %s", r)
	}
}

// world is a merchant, a product of it, and a funded payer.
type world struct {
	merchant, product, payer string
}

// newWorld opens a merchant with a product priced by amount and a payer
// funded with fund.
func (a *api) newWorld(tb testing.TB, fund int64) world {
	tb.Helper()
	var w world
	w.merchant = a.must(tb, 201, "POST", "/v1/accounts", map[string]any{"name": "merchant", "kind": "merchant", "currency": "EUR"}).str("id")
	w.product = a.must(tb, 201, "POST", "/v1/products", map[string]any{"name": "charger", "merchant_account": w.merchant,
		"category": "5552", "pricing": map[string]any{"mode": "amount", "currency": "EUR"}}).str("id")
	w.payer = a.must(tb, 201, "POST", "/v1/accounts", map[string]any{"name": "payer", "kind": "payer", "currency": "EUR"}).str("id")
	if fund > 0 {
		a.must(tb, 201, "POST", "/v1/accounts/"+w.payer+"/fund", map[string]any{"amount": fund})
	}
	return w
}

// device registers a device of the world's product and gives it a
// mandate on the payer with limits (nil: no mandate); extra fields are
// added to the mandate.
func (a *api) device(tb testing.TB, w world, limits []int64, extra map[string]any) (device, mandate string) {
	tb.Helper()
	r := a.must(tb, 201, "POST", "/v1/devices", map[string]any{"product": w.product, "name": "dev"})
	device = r.body["device"].(map[string]any)["id"].(string)
	if limits == nil {
		return device, ""
	}
	m := map[string]any{"device": device, "payer": w.payer, "per_payment_limit": limits[0], "daily_limit": limits[1],
		"monthly_limit": limits[2]}
	for k, v := range extra {
		m[k] = v
	}
	return device, a.must(tb, 201, "POST", "/v1/mandates", m).str("id")
}

// authorize creates a payment for device.
func (a *api) authorize(tb testing.TB, device string, amount int64, capture bool) reply {
	tb.Helper()
	return a.must(tb, 201, "POST", "/v1/payments", map[string]any{"device": device, "amount": amount, "currency": "EUR", "capture": capture})
}

// walk lists every page of path (which may hold a query) with limit
// items a page and returns the items in order, failing on a page that is
// too long or a cursor that does not move on.
func (a *api) walk(tb testing.TB, key, path string, limit int) []map[string]any {
	tb.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	var all []map[string]any
	cursor := ""
	for pages := 0; ; pages++ {
		p := fmt.Sprintf("%s%slimit=%d", path, sep, limit)
		if cursor != "" {
			p += "&starting_after=" + cursor
		}
		r := a.call(tb, key, "GET", p, nil)
		if r.status != 200 {
			tb.Fatalf("GET %s: %s", p, r)
		}
		data, _ := r.body["data"].([]any)
		if len(data) > limit || pages > 1000 {
			tb.Fatalf("GET %s: %d items on a page of %d", p, len(data), limit)
		}
		for _, d := range data {
			all = append(all, d.(map[string]any))
		}
		if r.body["has_more"] != true {
			if r.str("next_cursor") != "" {
				tb.Fatalf("GET %s: a next_cursor without has_more", p)
			}
			return all
		}
		next := r.str("next_cursor")
		if next == "" || next == cursor || len(data) != limit {
			tb.Fatalf("GET %s: has_more with next_cursor %q after %q and %d items", p, next, cursor, len(data))
		}
		cursor = next
	}
}

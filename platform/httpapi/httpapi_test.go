package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iotpay/iotpay/platform/daemon"
	"github.com/iotpay/iotpay/platform/httpapi"
)

type api struct {
	srv *httptest.Server
	d   *daemon.Daemon
}

func newAPI(tb testing.TB) *api {
	tb.Helper()
	d, err := daemon.Open(context.Background(), daemon.Config{DataDir: filepath.Join(tb.TempDir(), "d")})
	if err != nil {
		tb.Fatal(err)
	}
	h := (&httpapi.Server{Registry: d.Registry, Payments: d.Payments}).Handler()
	srv := httptest.NewServer(h)
	tb.Cleanup(func() { srv.Close(); d.Close() })
	return &api{srv: srv, d: d}
}

func (a *api) do(tb testing.TB, key, method, path, body string) (int, map[string]any) {
	tb.Helper()
	req, _ := http.NewRequest(method, a.srv.URL+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func TestAuthAndBadInput(t *testing.T) {
	a := newAPI(t)
	key := a.d.APIKey
	cases := []struct {
		name, key, method, path, body string
		status                        int
		code                          string
	}{
		{"no key", "", "GET", "/v1/accounts", "", 401, "unauthorized"},
		{"wrong secret", strings.SplitN(key, ".", 2)[0] + ".nope", "GET", "/v1/accounts", "", 401, "unauthorized"},
		{"garbage key", "x", "GET", "/v1/accounts", "", 401, "unauthorized"},
		{"malformed JSON", key, "POST", "/v1/accounts", `{"name":`, 400, "invalid"},
		{"unknown field", key, "POST", "/v1/accounts", `{"name":"a","kind":"payer","currency":"EUR","x":1}`, 400, "invalid"},
		{"trailing data", key, "POST", "/v1/accounts", `{"name":"a","kind":"payer","currency":"EUR"} {}`, 400, "invalid"},
		{"oversized body", key, "POST", "/v1/accounts", `{"name":"` + strings.Repeat("a", httpapi.RequestBytesMax) + `"}`, 400, "invalid"},
		{"unknown currency", key, "POST", "/v1/accounts", `{"name":"a","kind":"payer","currency":"XXX"}`, 400, "invalid"},
		{"funding by API", key, "POST", "/v1/accounts", `{"name":"a","kind":"funding","currency":"EUR"}`, 400, "invalid"},
		{"negative funding", key, "POST", "/v1/accounts/acc_01jd000000000000000000000/fund", `{"amount":-5}`, 400, "invalid"},
		{"unknown account", key, "GET", "/v1/accounts/acc_01jd0000000000000000000000", "", 404, "not_found"},
		{"float amount", key, "POST", "/v1/accounts/acc_01jd0000000000000000000000/fund", `{"amount":1.5}`, 400, "invalid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, out := a.do(t, c.key, c.method, c.path, c.body)
			if st != c.status || out["code"] != c.code {
				t.Errorf("got %d %v, want %d %s", st, out, c.status, c.code)
			}
		})
	}
}

func TestTenantsAreIsolated(t *testing.T) {
	a := newAPI(t)
	_, other, err := a.d.Registry.Bootstrap(context.Background(), "other")
	if err != nil {
		t.Fatal(err)
	}
	st, acc := a.do(t, a.d.APIKey, "POST", "/v1/accounts", `{"name":"mine","kind":"payer","currency":"EUR"}`)
	if st != 201 {
		t.Fatalf("create: %d %v", st, acc)
	}
	id := acc["id"].(string)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/accounts/" + id, ""},
		{"POST", "/v1/accounts/" + id + "/fund", `{"amount":100}`},
		{"GET", "/v1/accounts/" + id + "/transfers", ""},
	} {
		if st, out := a.do(t, other, c.method, c.path, c.body); st != 404 {
			t.Errorf("other tenant %s %s: %d %v, want 404", c.method, c.path, st, out)
		}
	}
	if _, out := a.do(t, other, "GET", "/v1/accounts", ""); len(out["accounts"].([]any)) != 0 {
		t.Errorf("other tenant lists %v", out["accounts"])
	}
}

// FuzzAPIBodies posts arbitrary bodies to every POST route: never a 5xx,
// and the ledger always balances.
func FuzzAPIBodies(f *testing.F) {
	a := newAPI(f)
	key := a.d.APIKey
	_, acc := a.do(f, key, "POST", "/v1/accounts", `{"name":"p","kind":"payer","currency":"EUR"}`)
	id := acc["id"].(string)
	paths := []string{"/v1/accounts", "/v1/accounts/" + id + "/fund", "/v1/products", "/v1/devices", "/v1/bindings", "/v1/enroll"}
	for i, seed := range []string{`{"amount":100}`, `{"name":"x","kind":"merchant","currency":"EUR"}`,
		`{"name":"p","merchant_account":"` + id + `","pricing":{"mode":"fixed","price_minor":1,"currency":"EUR"}}`,
		`{"device":"dev_x","account":"` + id + `","per_payment_limit":1,"daily_limit":2}`, `{"device":"dev_x","token":"t","csr":"x"}`, `[]`, `null`} {
		f.Add(uint8(i), []byte(seed))
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		path := paths[int(route)%len(paths)]
		st, out := a.do(t, key, "POST", path, string(bytes.ToValidUTF8(body, nil)))
		if st >= 500 {
			t.Fatalf("POST %s %q: %d %v", path, body, st, out)
		}
		rep, err := a.d.Payments.LedgerCheck(context.Background())
		if err != nil || !rep.Balanced {
			t.Fatalf("ledger: %+v %v", rep, err)
		}
	})
}

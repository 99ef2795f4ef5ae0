package httpapi_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/iotpay/iotpay/platform/daemon"
	"github.com/iotpay/iotpay/platform/httpapi"
)

// An id that is well formed but names nothing.
const (
	noAccount = "acc_01jd0000000000000000000000"
	noPayment = "pay_01jd0000000000000000000000"
	noMandate = "mdt_01jd0000000000000000000000"
	noDevice  = "dev_01jd0000000000000000000000"
	noProduct = "prd_01jd0000000000000000000000"
)

func TestAuthAndBadInput(t *testing.T) {
	a := newAPI(t, daemon.Config{})
	key := a.key
	w := a.newWorld(t, 1000)
	dev, _ := a.device(t, w, []int64{500, 1000, 10000}, nil)
	pay := a.authorize(t, dev, 100, false).str("id")
	long := strings.Repeat("a", httpapi.RequestBytesMax)
	cases := []struct {
		name, key, method, path, body string
		status                        int
		code                          string
	}{
		{"no key", "", "GET", "/v1/accounts", "", 401, "unauthorized"},
		{"no key on a POST", "", "POST", "/v1/payments", `{}`, 401, "unauthorized"},
		{"wrong secret", strings.SplitN(key, ".", 2)[0] + ".nope", "GET", "/v1/accounts", "", 401, "unauthorized"},
		{"garbage key", "x", "GET", "/v1/accounts", "", 401, "unauthorized"},
		{"malformed JSON", key, "POST", "/v1/accounts", `{"name":`, 400, "invalid"},
		{"not an object", key, "POST", "/v1/accounts", `["name"]`, 400, "invalid"},
		{"null body", key, "POST", "/v1/payments/" + pay + "/capture", `null`, 400, "invalid"},
		{"empty body", key, "POST", "/v1/accounts", ``, 400, "invalid"},
		{"unknown field", key, "POST", "/v1/accounts", `{"name":"a","kind":"payer","currency":"EUR","x":1}`, 400, "invalid"},
		{"unknown nested field", key, "POST", "/v1/products", `{"name":"p","merchant_account":"` + w.merchant + `","pricing":{"mode":"fixed","price_minor":1,"currency":"EUR","x":1}}`, 400, "invalid"},
		{"server-set field", key, "POST", "/v1/products", `{"id":"prd_x","name":"p","merchant_account":"` + w.merchant + `","pricing":{"mode":"amount","currency":"EUR"}}`, 400, "invalid"},
		{"duplicate key", key, "POST", "/v1/payments/" + pay + "/refund", `{"amount":1,"amount":2}`, 400, "invalid"},
		{"keys differing in case", key, "POST", "/v1/payments/" + pay + "/refund", `{"amount":1,"AMOUNT":2}`, 400, "invalid"},
		{"trailing data", key, "POST", "/v1/accounts", `{"name":"a","kind":"payer","currency":"EUR"} {}`, 400, "invalid"},
		{"trailing bracket", key, "POST", "/v1/accounts", `{"name":"a","kind":"payer","currency":"EUR"}]`, 400, "invalid"},
		{"oversized body", key, "POST", "/v1/accounts", `{"name":"` + long + `"}`, 400, "invalid"},
		{"body where none is taken", key, "POST", "/v1/payments/" + pay + "/void", `{"amount":1}`, 400, "invalid"},
		{"string for integer", key, "POST", "/v1/accounts/" + w.payer + "/fund", `{"amount":"5"}`, 400, "invalid"},
		{"float amount", key, "POST", "/v1/accounts/" + w.payer + "/fund", `{"amount":1.5}`, 400, "invalid"},
		{"huge amount", key, "POST", "/v1/accounts/" + w.payer + "/fund", `{"amount":1e300}`, 400, "invalid"},
		{"bool for string", key, "POST", "/v1/accounts", `{"name":true,"kind":"payer","currency":"EUR"}`, 400, "invalid"},
		{"string for bool", key, "POST", "/v1/payments/" + pay + "/capture", `{"final":"yes"}`, 400, "invalid"},
		{"bad time", key, "POST", "/v1/mandates", `{"device":"` + dev + `","payer":"` + w.payer + `","valid_from":"yesterday"}`, 400, "invalid"},
		{"unknown currency", key, "POST", "/v1/accounts", `{"name":"a","kind":"payer","currency":"XXX"}`, 400, "invalid"},
		{"funding by API", key, "POST", "/v1/accounts", `{"name":"a","kind":"funding","currency":"EUR"}`, 400, "invalid"},
		{"negative funding", key, "POST", "/v1/accounts/" + w.payer + "/fund", `{"amount":-5}`, 400, "invalid"},
		{"funding a merchant", key, "POST", "/v1/accounts/" + w.merchant + "/fund", `{"amount":5}`, 400, "invalid"},
		{"bad Idempotency-Key", key, "POST", "/v1/accounts", `{"name":"a","kind":"payer","currency":"EUR"}`, 400, "invalid"},
		{"bad account id", key, "GET", "/v1/accounts/nope", "", 400, "invalid"},
		{"id of another kind", key, "GET", "/v1/accounts/" + pay, "", 400, "invalid"},
		{"bad payment id", key, "POST", "/v1/payments/pay_%00/capture", `{}`, 400, "invalid"},
		{"bad mandate id", key, "POST", "/v1/mandates/x/suspend", ``, 400, "invalid"},
		{"bad device id", key, "GET", "/v1/devices/dev_", "", 400, "invalid"},
		{"bad product id", key, "GET", "/v1/products/" + strings.Repeat("p", 300), "", 400, "invalid"},
		{"bad device in body", key, "POST", "/v1/payments", `{"device":"dev_x","amount":1,"currency":"EUR"}`, 400, "invalid"},
		{"unknown account", key, "GET", "/v1/accounts/" + noAccount, "", 404, "not_found"},
		{"unknown payment", key, "GET", "/v1/payments/" + noPayment, "", 404, "not_found"},
		{"unknown mandate", key, "GET", "/v1/mandates/" + noMandate, "", 404, "not_found"},
		{"unknown device", key, "GET", "/v1/devices/" + noDevice, "", 404, "not_found"},
		{"unknown product", key, "GET", "/v1/products/" + noProduct, "", 404, "not_found"},
		{"unknown device in body", key, "POST", "/v1/payments", `{"device":"` + noDevice + `","amount":1,"currency":"EUR"}`, 404, "not_found"},
		{"bad cursor", key, "GET", "/v1/accounts?starting_after=zzz", "", 400, "invalid"},
		{"bad payments cursor", key, "GET", "/v1/payments?starting_after=" + noAccount, "", 400, "invalid"},
		{"bad transfers cursor", key, "GET", "/v1/accounts/" + w.payer + "/transfers?starting_after=-1", "", 400, "invalid"},
		{"bad mandates cursor", key, "GET", "/v1/mandates?starting_after=1", "", 400, "invalid"},
		{"bad devices cursor", key, "GET", "/v1/devices?starting_after=dev_", "", 400, "invalid"},
		{"zero limit", key, "GET", "/v1/accounts?limit=0", "", 400, "invalid"},
		{"negative limit", key, "GET", "/v1/payments?limit=-1", "", 400, "invalid"},
		{"limit over the maximum", key, "GET", fmt.Sprintf("/v1/mandates?limit=%d", httpapi.PageLimitMax+1), "", 400, "invalid"},
		{"word for limit", key, "GET", "/v1/devices?limit=ten", "", 400, "invalid"},
		{"bad status filter", key, "GET", "/v1/payments?status=paid", "", 400, "invalid"},
		{"bad kind filter", key, "GET", "/v1/accounts?kind=bank", "", 400, "invalid"},
		{"bad time filter", key, "GET", "/v1/payments?created_gte=today", "", 400, "invalid"},
		{"bad device filter", key, "GET", "/v1/payments?device=x", "", 400, "invalid"},
		{"bad as_of_seq", key, "GET", "/v1/accounts/" + w.payer + "/balance?as_of_seq=0", "", 400, "invalid"},
		{"bad as_of", key, "GET", "/v1/accounts/" + w.payer + "/balance?as_of=noon", "", 400, "invalid"},
		{"both as_of", key, "GET", "/v1/accounts/" + w.payer + "/balance?as_of_seq=1&as_of=2030-01-01T00:00:00Z", "", 400, "invalid"},
		{"unknown route", key, "GET", "/v1/nothing", "", 404, "not_found"},
		{"wrong method", key, "DELETE", "/v1/accounts", "", 405, "invalid"},
		{"enroll: bad JSON", "", "POST", "/v1/enroll", `{"device":`, 400, "invalid"},
		{"enroll: bad device id", "", "POST", "/v1/enroll", `{"device":"dev_x","token":"t","csr":"x"}`, 401, "unauthorized"},
		{"enroll: bad CSR", "", "POST", "/v1/enroll", `{"device":"` + noDevice + `","token":"t","csr":"x"}`, 400, "invalid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var headers []string
			if c.name == "bad Idempotency-Key" {
				headers = []string{"Idempotency-Key", strings.Repeat("k", httpapi.IdempotencyKeyLenMax+1)}
			}
			r := a.call(t, c.key, c.method, c.path, c.body, headers...)
			if r.status != c.status || r.str("code") != c.code {
				t.Errorf("got %s, want %d %s", r, c.status, c.code)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
	if r := a.call(t, key, "DELETE", "/v1/accounts", nil); !strings.Contains(r.header.Get("Allow"), "GET") {
		t.Errorf("405 without Allow: %v", r.header)
	}
	// None of it moved money: the payer still has what it was funded.
	if r := a.must(t, 200, "GET", "/v1/accounts/"+w.payer, nil); r.num("balance") != 1000 || r.num("available") != 900 {
		t.Errorf("payer after bad input: %s", r)
	}
}

func TestTenantsAreIsolated(t *testing.T) {
	a := newAPI(t, daemon.Config{})
	other := a.otherTenant(t)
	w := a.newWorld(t, 1000)
	dev, mdt := a.device(t, w, []int64{500, 1000, 10000}, nil)
	pay := a.authorize(t, dev, 100, false).str("id")
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/accounts/" + w.payer, ""},
		{"GET", "/v1/accounts/" + w.payer + "/balance", ""},
		{"POST", "/v1/accounts/" + w.payer + "/fund", `{"amount":100}`},
		{"GET", "/v1/accounts/" + w.payer + "/transfers", ""},
		{"GET", "/v1/products/" + w.product, ""},
		{"GET", "/v1/devices/" + dev, ""},
		{"POST", "/v1/devices/" + dev + "/revoke", ""},
		{"GET", "/v1/mandates/" + mdt, ""},
		{"POST", "/v1/mandates/" + mdt + "/suspend", ""},
		{"POST", "/v1/mandates/" + mdt + "/resume", ""},
		{"POST", "/v1/mandates/" + mdt + "/revoke", ""},
		{"GET", "/v1/payments/" + pay, ""},
		{"GET", "/v1/payments/" + pay + "/transfers", ""},
		{"POST", "/v1/payments/" + pay + "/capture", `{}`},
		{"POST", "/v1/payments/" + pay + "/increment", `{"amount":1}`},
		{"POST", "/v1/payments/" + pay + "/void", ``},
		{"POST", "/v1/payments/" + pay + "/refund", `{}`},
		{"POST", "/v1/payments", `{"device":"` + dev + `","amount":100,"currency":"EUR"}`},
		{"POST", "/v1/devices", `{"product":"` + w.product + `","name":"x"}`},
	} {
		if r := a.call(t, other, c.method, c.path, c.body); r.status != 404 {
			t.Errorf("other tenant %s %s: %s, want 404", c.method, c.path, r)
		}
	}
	// Refusals by reference to another tenant's objects inside a body.
	for _, c := range []struct{ path, body string }{
		{"/v1/products", `{"name":"p","merchant_account":"` + w.merchant + `","pricing":{"mode":"amount","currency":"EUR"}}`},
		{"/v1/mandates", `{"device":"` + dev + `","payer":"` + w.payer + `","per_payment_limit":1,"daily_limit":1,"monthly_limit":1}`},
	} {
		if r := a.call(t, other, "POST", c.path, c.body); r.status != 400 && r.status != 404 {
			t.Errorf("other tenant POST %s: %s, want 400 or 404", c.path, r)
		}
	}
	for _, path := range []string{"/v1/accounts", "/v1/devices", "/v1/mandates", "/v1/payments"} {
		if r := a.call(t, other, "GET", path, nil); r.status != 200 || len(r.body["data"].([]any)) != 0 {
			t.Errorf("other tenant lists %s: %s", path, r)
		}
	}
	// And nothing the other tenant tried changed the first one's state.
	if r := a.must(t, 200, "GET", "/v1/payments/"+pay, nil); r.str("status") != "authorized" || r.num("held") != 100 {
		t.Errorf("payment after the other tenant: %s", r)
	}
	if r := a.must(t, 200, "GET", "/v1/mandates/"+mdt, nil); r.str("status") != "active" {
		t.Errorf("mandate after the other tenant: %s", r)
	}
}

// FuzzAPIBodies posts arbitrary bodies to every route that decodes one:
// never a 5xx, always a JSON error with a code, and the ledger always
// balances.
func FuzzAPIBodies(f *testing.F) {
	a := newAPI(f, daemon.Config{Fees: feePlan})
	w := a.newWorld(f, 100000)
	dev, mdt := a.device(f, w, []int64{5000, 50000, 500000}, nil)
	pay := a.authorize(f, dev, 1000, false).str("id")
	routes := []struct{ path, seed string }{
		{"/v1/accounts", `{"name":"x","kind":"merchant","currency":"EUR"}`},
		{"/v1/accounts/" + w.payer + "/fund", `{"amount":100}`},
		{"/v1/products", `{"name":"p","merchant_account":"` + w.merchant + `","category":"5552","pricing":{"mode":"metered","event":"session_end","unit":"wh","per_units":1000,"price_minor":35,"currency":"EUR"}}`},
		{"/v1/devices", `{"product":"` + w.product + `","name":"d"}`},
		{"/v1/devices/" + noDevice + "/revoke", `{}`},
		{"/v1/mandates", `{"device":"` + dev + `","payer":"` + w.payer + `","per_payment_limit":1,"daily_limit":2,"monthly_limit":3,"products":["` + w.product + `"],"categories":["5552"],"valid_from":"2025-01-01T00:00:00Z","valid_to":"2099-01-01T00:00:00Z"}`},
		{"/v1/mandates/" + mdt + "/suspend", ``},
		{"/v1/mandates/" + mdt + "/resume", `{}`},
		{"/v1/payments", `{"device":"` + dev + `","amount":100,"currency":"EUR","capture":true,"hold_seconds":60}`},
		{"/v1/payments/" + pay + "/capture", `{"amount":10,"final":false}`},
		{"/v1/payments/" + pay + "/increment", `{"amount":10}`},
		{"/v1/payments/" + pay + "/refund", `{"amount":1}`},
		{"/v1/payments/" + pay + "/void", ``},
		{"/v1/enroll", `{"device":"` + dev + `","token":"t","csr":"-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n"}`},
	}
	for i, r := range routes {
		f.Add(uint8(i), []byte(r.seed))
	}
	for i, seed := range []string{`[]`, `null`, `{"amount":1,"amount":2}`, `{"a":{"b":[{"c":1,"C":2}]}}`, `{}` + "\n" + `{}`, `{"amount":9223372036854775807}`} {
		f.Add(uint8(i*3), []byte(seed))
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		path := routes[int(route)%len(routes)].path
		r := a.call(t, a.key, "POST", path, string(body))
		if r.status >= 500 {
			t.Fatalf("POST %s %q: %s", path, body, r)
		}
		if r.status >= 400 && r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("POST %s %q: %s without JSON", path, body, r)
		}
		a.balanced(t)
	})
}

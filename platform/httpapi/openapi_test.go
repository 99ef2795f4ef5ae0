package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/iotpay/iotpay"
	apidoc "github.com/iotpay/iotpay/api"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/payment/connector/iso8583"
	"github.com/iotpay/iotpay/payment/connector/iso8583/acquirersim"
	"github.com/iotpay/iotpay/payment/ledger"
	"github.com/iotpay/iotpay/platform"
	"github.com/iotpay/iotpay/platform/daemon"
	"github.com/iotpay/iotpay/platform/decision"
	"github.com/iotpay/iotpay/platform/httpapi"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/store/sqlstore"
)

// unreachable are documented answers no request through the API can
// produce, and why.
var unreachable = map[string]string{
	"POST /v1/payments/{id}/refund 402": "a refund takes back the merchant's share and the fees in proportion, " +
		"and nothing else debits those accounts, so they always cover it",
}

const (
	noWebhook  = "whe_01jd0000000000000000000000"
	noDelivery = "whd_01jd0000000000000000000000"
)

// noIdempotency are POST routes that write nothing, so take no
// Idempotency-Key, and why.
var noIdempotency = map[string]string{
	"POST /v1/devices/{id}/psk": "the key is derived, not stored: every call answers the same, " +
		"and the answer, a secret, must not be kept in the idempotency table",
	"POST /v1/products/{id}/dry-run":       "a dry run evaluates and writes nothing: repeating it is harmless",
	"POST /v1/reconciliations/{connector}": "a reconciliation reads the ledger and writes nothing",
	"POST /v1/follow-ups/{id}/retry": "a retry sends the follow-up's own idempotency key to the payment system, " +
		"and a second retry of one not failed any more is refused",
}

// liveDoc fetches the document the server serves, checks it is the
// embedded one and valid OpenAPI 3.0, and loads it.
func liveDoc(t *testing.T, a *api) *openapi3.T {
	t.Helper()
	r := a.call(t, "", "GET", "/openapi.yaml", nil)
	if r.status != 200 || !bytes.Equal(r.raw, apidoc.OpenAPI) {
		t.Fatalf("GET /openapi.yaml: %d, %d bytes, want the %d embedded", r.status, len(r.raw), len(apidoc.OpenAPI))
	}
	doc, err := openapi3.NewLoader().LoadFromData(r.raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	return doc
}

// TestOpenAPIRoutes: the document describes exactly the routes the
// server registers, with the same authentication, and an
// Idempotency-Key on every POST.
func TestOpenAPIRoutes(t *testing.T) {
	a := newAPI(t, daemon.Config{})
	doc := liveDoc(t, a)
	served := map[string]bool{}
	for _, rt := range (&httpapi.Server{}).Routes() {
		key := rt.Method + " " + rt.Path
		served[key] = true
		item := doc.Paths.Value(rt.Path)
		if item == nil || item.GetOperation(rt.Method) == nil {
			t.Errorf("%s is served but not in api/openapi.yaml", key)
			continue
		}
		op := item.GetOperation(rt.Method)
		if authed := op.Security == nil || len(*op.Security) > 0; authed != rt.Operator {
			t.Errorf("%s: the document says authenticated %v, the server %v", key, authed, rt.Operator)
		}
		hasKey := op.Parameters.GetByInAndName("header", "Idempotency-Key") != nil
		if rt.Method == "POST" && noIdempotency[key] != "" && hasKey {
			t.Errorf("%s: documents an Idempotency-Key it does not take", key)
		}
		if rt.Method == "POST" && noIdempotency[key] == "" && !hasKey {
			t.Errorf("%s: no Idempotency-Key in the document", key)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !served[method+" "+path] {
				t.Errorf("%s %s is in api/openapi.yaml but not served", method, path)
			}
		}
	}
}

// checker sends requests to the live server and validates each request
// and response against the document, noting which answers of which
// operations it saw.
type checker struct {
	t      *testing.T
	a      *api
	doc    *openapi3.T
	router routers.Router
	seen   map[string]bool // "METHOD /path/{id} status"
}

func bearer(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if !strings.HasPrefix(in.RequestValidationInput.Request.Header.Get("Authorization"), "Bearer ") {
		return fmt.Errorf("no bearer key")
	}
	return nil
}

// send sends body (JSON; a string as it is; nil for none). valid says
// whether the document should take the request: a request the server
// must refuse for its form must be one the document refuses too.
func (c *checker) send(key, method, path string, body any, valid bool, want int, headers ...string) reply {
	c.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		raw, _ = json.Marshal(b)
	}
	req, err := http.NewRequest(method, c.a.srv.URL+path, bytes.NewReader(raw))
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		c.t.Fatalf("%s %s: not in the document: %v", method, path, err)
	}
	opts := &openapi3filter.Options{AuthenticationFunc: bearer, SkipSettingDefaults: true, IncludeResponseStatus: true,
		MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	switch err := openapi3filter.ValidateRequest(context.Background(), in); {
	case valid && err != nil:
		c.t.Errorf("%s %s %s: the document refuses the request: %v", method, path, raw, err)
	case !valid && err == nil:
		c.t.Errorf("%s %s %s: the document takes a request the server must refuse", method, path, raw)
	}
	r := c.a.call(c.t, key, method, path, body, headers...)
	if r.status != want {
		c.t.Errorf("%s %s %s: %s, want %d", method, path, raw, r, want)
	}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: r.status, Header: r.header, Body: io.NopCloser(bytes.NewReader(r.raw)), Options: opts})
	if err != nil {
		c.t.Errorf("%s %s: the answer %s does not match the document: %v", method, path, r, err)
	}
	c.seen[fmt.Sprintf("%s %s %d", route.Method, route.Path, r.status)] = true
	return r
}

// ok sends a valid request as the default tenant.
func (c *checker) ok(want int, method, path string, body any, headers ...string) reply {
	c.t.Helper()
	return c.send(c.a.key, method, path, body, true, want, headers...)
}

// csrPEM returns a PEM certificate request for a fresh key of suite.
func csrPEM(t *testing.T, suite, device string) string {
	t.Helper()
	key, err := pki.GenerateKey(suite, nil)
	if err != nil {
		t.Fatal(err)
	}
	der, err := pki.NewCSR(key, device)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// TestOpenAPILive drives every documented operation against a running
// daemon — successes and every documented error — and validates every
// request and answer against the document.
func TestOpenAPILive(t *testing.T) {
	sim, err := acquirersim.Start(acquirersim.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	acq, err := iso8583.New(iso8583.Config{Name: "acquirer", Addr: sim.Addr(), MerchantID: "M1", TerminalID: "T1", AcquirerID: "1"})
	if err != nil {
		t.Fatal(err)
	}
	defer acq.Close()
	a := newAPI(t, daemon.Config{Fees: feePlan, Connectors: []connector.Connector{acq}})
	doc := liveDoc(t, a)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	c := &checker{t: t, a: a, doc: doc, router: router, seen: map[string]bool{}}

	// The successes, a whole life of each object.
	c.send("", "GET", "/healthz", nil, true, 200)
	c.send("", "GET", "/openapi.yaml", nil, true, 200)
	merchant := c.ok(201, "POST", "/v1/accounts", map[string]any{"name": "merchant", "kind": "merchant", "currency": "EUR"}).str("id")
	payer := c.ok(201, "POST", "/v1/accounts", map[string]any{"name": "payer", "kind": "payer", "currency": "EUR"},
		"Idempotency-Key", "payer-1").str("id")
	c.ok(201, "POST", "/v1/accounts", map[string]any{"name": "payer", "kind": "payer", "currency": "EUR"}, "Idempotency-Key", "payer-1")
	c.ok(201, "POST", "/v1/accounts/"+payer+"/fund", map[string]any{"amount": 100000})
	product := c.ok(201, "POST", "/v1/products", map[string]any{"name": "charger", "merchant_account": merchant, "category": "5552",
		"pricing": map[string]any{"mode": "metered", "event": "session_end", "unit": "wh", "per_units": 1000, "price_minor": 35, "currency": "EUR"}}).str("id")
	c.ok(200, "GET", "/v1/products/"+product, nil)
	created := c.ok(201, "POST", "/v1/devices", map[string]any{"product": product, "name": "charger-1"})
	device := created.body["device"].(map[string]any)["id"].(string)
	token := created.str("enrollment_token")
	csr := csrPEM(t, pki.SuiteIntl, device)
	c.send("", "POST", "/v1/enroll", map[string]any{"device": device, "token": "wrong", "csr": csr}, true, 401)
	c.send("", "POST", "/v1/enroll", map[string]any{"device": device, "token": token, "csr": "not a CSR"}, true, 400)
	c.send("", "POST", "/v1/enroll", map[string]any{"device": device, "token": token, "csr": csr}, true, 200, "Idempotency-Key", "enroll-1")
	c.send("", "POST", "/v1/enroll", map[string]any{"device": device, "token": token, "csr": csr}, true, 200, "Idempotency-Key", "enroll-1")
	c.ok(200, "GET", "/v1/devices/"+device, nil)
	c.ok(200, "GET", "/v1/devices?limit=1", nil)
	if psk := c.ok(200, "POST", "/v1/devices/"+device+"/psk", nil); psk.str("identity") != device || len(psk.str("key")) != 32 ||
		psk.header.Get("Cache-Control") != "no-store" {
		t.Errorf("device PSK: %s %v", psk, psk.header)
	}
	// A gm device: an SM2 signing key, a P-256 transport key.
	gmCreated := c.ok(201, "POST", "/v1/devices", map[string]any{"product": product, "name": "charger-gm", "suite": "gm"})
	gmDevice := gmCreated.body["device"].(map[string]any)["id"].(string)
	gmCSR := csrPEM(t, pki.SuiteGM, gmDevice)
	c.send("", "POST", "/v1/enroll", map[string]any{"device": gmDevice, "token": gmCreated.str("enrollment_token"), "csr": gmCSR},
		true, 400)
	gmEn := c.send("", "POST", "/v1/enroll", map[string]any{"device": gmDevice, "token": gmCreated.str("enrollment_token"),
		"csr": gmCSR, "transport_csr": csr}, true, 200)
	if gmEn.str("suite") != "gm" || gmEn.str("gm_ca") == "" || gmEn.str("transport_certificate") == "" {
		t.Errorf("gm enrollment: %s", gmEn)
	}
	c.send(c.a.key, "POST", "/v1/devices", map[string]any{"product": product, "name": "x", "suite": "rsa"}, false, 400)
	mandate := c.ok(201, "POST", "/v1/mandates", map[string]any{"device": device, "payer": payer, "currency": "EUR",
		"per_payment_limit": 5000, "daily_limit": 20000, "monthly_limit": 100000, "products": []string{product},
		"categories": []string{"5552"}, "valid_from": "2020-01-01T00:00:00Z", "valid_to": "2999-01-01T00:00:00Z"}).str("id")
	c.ok(200, "GET", "/v1/mandates/"+mandate, nil)
	c.ok(200, "GET", "/v1/mandates?device="+device+"&status=active&limit=5", nil)
	c.ok(200, "POST", "/v1/mandates/"+mandate+"/suspend", nil, "Idempotency-Key", "suspend-1")
	declined := c.ok(201, "POST", "/v1/payments", map[string]any{"device": device, "amount": 100, "currency": "EUR"})
	if declined.str("decline_code") != "mandate_suspended" {
		t.Errorf("payment under a suspended mandate: %s", declined)
	}
	c.ok(200, "POST", "/v1/mandates/"+mandate+"/resume", map[string]any{})
	pay := c.ok(201, "POST", "/v1/payments", map[string]any{"device": device, "amount": 3000, "currency": "EUR", "hold_seconds": 3600},
		"Idempotency-Key", "ev-session-1").str("id")
	c.ok(200, "POST", "/v1/payments/"+pay+"/increment", map[string]any{"amount": 1000})
	c.ok(200, "POST", "/v1/payments/"+pay+"/capture", map[string]any{"amount": 1500, "final": false})
	c.ok(200, "POST", "/v1/payments/"+pay+"/capture", map[string]any{"amount": 1000})
	c.ok(200, "POST", "/v1/payments/"+pay+"/refund", map[string]any{"amount": 500})
	c.ok(200, "POST", "/v1/payments/"+pay+"/refund", map[string]any{})
	voided := c.ok(201, "POST", "/v1/payments", map[string]any{"device": device, "amount": 200, "currency": "EUR"}).str("id")
	c.ok(200, "POST", "/v1/payments/"+voided+"/void", nil)
	sale := c.ok(201, "POST", "/v1/payments", map[string]any{"device": device, "amount": 100, "currency": "EUR", "capture": true}).str("id")
	c.ok(200, "GET", "/v1/payments/"+pay, nil)
	c.ok(200, "GET", "/v1/payments/"+pay+"/transfers?limit=3", nil)
	page := c.ok(200, "GET", "/v1/payments?limit=2&device="+device+"&status=captured&created_gte=2020-01-01T00:00:00Z&created_lt=2999-01-01T00:00:00Z", nil)
	if cur := page.str("next_cursor"); cur != "" {
		c.ok(200, "GET", "/v1/payments?limit=2&starting_after="+cur, nil)
	}
	c.ok(200, "GET", "/v1/payments?mandate="+mandate, nil)
	c.ok(200, "GET", "/v1/accounts", nil)
	accounts := c.ok(200, "GET", "/v1/accounts?limit=2&kind=payer", nil)
	c.ok(200, "GET", "/v1/accounts?starting_after="+accounts.body["data"].([]any)[0].(map[string]any)["id"].(string), nil)
	c.ok(200, "GET", "/v1/accounts/"+payer, nil)
	c.ok(200, "GET", "/v1/accounts/"+payer+"/balance", nil)
	c.ok(200, "GET", "/v1/accounts/"+payer+"/balance?as_of_seq=1", nil)
	c.ok(200, "GET", "/v1/accounts/"+payer+"/balance?as_of=2020-01-01T00:00:00Z", nil)
	transfers := c.ok(200, "GET", "/v1/accounts/"+payer+"/transfers?limit=2&ref="+pay, nil)
	c.ok(200, "GET", "/v1/accounts/"+payer+"/transfers?starting_after="+transfers.str("next_cursor"), nil)
	c.ok(200, "GET", "/v1/ledger/check", nil)

	// Platform intelligence: tariffs, a product profile (rules, risk,
	// firmware), dry runs, device state, events, orders, reviews.
	band := map[string]any{"from": "00:00", "to": "24:00", "price_minor": 35}
	c.ok(200, "PUT", "/v1/tariffs/ev", map[string]any{"currency": "EUR", "per_units": 1000, "bands": []any{band}})
	c.ok(200, "GET", "/v1/tariffs", nil)
	c.ok(400, "PUT", "/v1/tariffs/ev", map[string]any{"currency": "EUR", "per_units": 1000, "bands": []any{}})
	rule := map[string]any{"name": "end", "when": "event.type == 'session_end'", "action": "charge", "amount": "price('ev', event.num.wh)"}
	c.ok(200, "PUT", "/v1/products/"+product+"/profile", map[string]any{"rules": []any{rule},
		"risk":     map[string]any{"decline_tamper": true, "velocity": []any{map[string]any{"scope": "device", "window": "1m", "max_count": 5}}},
		"firmware": []any{map[string]any{"version": "1.0", "measurement": strings.Repeat("ab", 32)}}, "inactivity_timeout_s": 3600})
	c.ok(200, "GET", "/v1/products/"+product+"/profile", nil)
	c.ok(200, "GET", "/v1/products/"+product+"/profile?version=1", nil)
	c.ok(400, "PUT", "/v1/products/"+product+"/profile", map[string]any{"rules": []any{map[string]any{"name": "x", "action": "charge", "amount": "'1'"}}})
	if r := c.ok(200, "POST", "/v1/products/"+product+"/dry-run", map[string]any{"event": map[string]any{"type": "session_end",
		"num": map[string]any{"wh": 12_000}}}); r.body["action"].(map[string]any)["amount"] != 420.0 {
		t.Errorf("dry run: %s", r)
	}
	c.ok(400, "POST", "/v1/products/"+product+"/dry-run", map[string]any{"event": map[string]any{"type": "session_end"}})
	c.ok(200, "GET", "/v1/devices/"+device+"/state", nil)
	c.ok(200, "PATCH", "/v1/devices/"+device+"/state", map[string]any{"desired": map[string]any{"max_kw": 11, "mode": "eco"}})
	c.ok(409, "PATCH", "/v1/devices/"+device+"/state", map[string]any{"if_version": 99, "desired": map[string]any{"mode": nil}})
	c.ok(400, "PATCH", "/v1/devices/"+device+"/state", map[string]any{})
	c.ok(200, "GET", "/v1/events?limit=5&device="+device, nil)
	c.ok(200, "GET", "/v1/orders?device="+device, nil)
	c.ok(200, "GET", "/v1/supply/secret", nil)
	// Webhooks: an endpoint, an event queued for it, its delivery log,
	// a redelivery, the endpoint deleted.
	hook := c.ok(201, "POST", "/v1/webhooks", map[string]any{"url": "https://operator.example/hooks", "events": []string{"payment.*"}})
	if !strings.HasPrefix(hook.str("secret"), "whsec_") {
		t.Errorf("webhook endpoint: %s", hook)
	}
	c.ok(400, "POST", "/v1/webhooks", map[string]any{"url": "ftp://x", "events": []string{"payment.*"}})
	c.ok(400, "POST", "/v1/webhooks", map[string]any{"url": "https://x", "events": []string{"nope"}})
	for range 15 { // up to the bound of 16
		c.ok(201, "POST", "/v1/webhooks", map[string]any{"url": "https://operator.example/other", "events": []string{"device.*"}})
	}
	c.ok(409, "POST", "/v1/webhooks", map[string]any{"url": "https://operator.example/one-too-many"})
	c.ok(200, "GET", "/v1/webhooks", nil)
	c.ok(201, "POST", "/v1/payments", map[string]any{"device": device, "amount": 50, "currency": "EUR", "capture": true})
	log := c.ok(200, "GET", "/v1/webhooks/"+hook.str("id")+"/deliveries?status=pending&limit=5", nil)
	deliveries := log.body["data"].([]any)
	if len(deliveries) == 0 || deliveries[0].(map[string]any)["type"] != "payment.succeeded" {
		t.Fatalf("delivery log: %s", log)
	}
	delivery := deliveries[0].(map[string]any)["id"].(string)
	c.ok(200, "POST", "/v1/webhook-deliveries/"+delivery+"/redeliver", nil)

	// Routing: a table (the wallet only here: no external connector is
	// configured), connector health; an account with an instrument at an
	// unknown connector is refused.
	c.ok(404, "GET", "/v1/routing", nil)
	c.ok(200, "PUT", "/v1/routing", map[string]any{"rules": []any{map[string]any{"name": "small", "amount_max": 1000, "connectors": []string{"wallet"}}},
		"default": []string{"wallet"}})
	c.ok(200, "GET", "/v1/routing", nil)
	c.ok(400, "PUT", "/v1/routing", map[string]any{"default": []string{"paypal"}})
	c.ok(200, "GET", "/v1/connectors", nil)
	// Follow-ups: a failed one (put here as the engine records it, at a
	// payment system no longer configured) retried: pending again, since
	// the system may come back; a pending one cannot be retried.
	c.ok(200, "GET", "/v1/follow-ups", nil)
	c.send(a.key, "GET", "/v1/follow-ups?status=done", nil, false, 400)
	tenant, err := a.d.Registry.Authenticate(context.Background(), a.key)
	if err != nil {
		t.Fatal(err)
	}
	failed := &payment.FollowUp{ID: "fup_01jd0000000000000000000001", Tenant: tenant, Connector: "gone", Ref: "123456789012",
		Op: payment.OpCapture, Amount: 100, Final: true, Key: "pay_x:capture:sale", Status: payment.FollowUpFailed,
		LastError: "acquirer declined the capture: 12", Next: time.Now(), Created: time.Now()}
	if err := a.d.DB.Update(context.Background(), func(tx *sqlstore.Tx) error { return tx.PutFollowUp(context.Background(), failed) }); err != nil {
		t.Fatal(err)
	}
	if r := c.ok(200, "GET", "/v1/follow-ups?status=failed&limit=5", nil); len(r.body["data"].([]any)) != 1 {
		t.Errorf("failed follow-ups: %s", r)
	}
	if r := c.ok(200, "POST", "/v1/follow-ups/"+failed.ID+"/retry", nil); r.body["done"] != false ||
		r.body["follow_up"].(map[string]any)["status"] != "pending" {
		t.Errorf("retry at a payment system not configured: %s", r)
	}
	c.ok(409, "POST", "/v1/follow-ups/"+failed.ID+"/retry", nil)
	report := "reference,amount,currency,date,type\n123456789012,12.34,EUR,2026-12-01,capture\n"
	if r := c.send(a.key, "POST", "/v1/reconciliations/acquirer?format=csv", report, true, 200, "Content-Type", "text/csv"); r.body["ok"] != false {
		t.Errorf("reconciliation of an unknown item: %s", r)
	}
	c.send(a.key, "POST", "/v1/reconciliations/acquirer", "reference,amount\nx,1\n", true, 400, "Content-Type", "text/csv")
	c.ok(400, "POST", "/v1/accounts", map[string]any{"name": "card", "kind": "payer", "currency": "EUR", "sources": map[string]string{"paypal": "x"}})

	// Payments risk control held: holds made here, each given a review.
	heldFor := func() string {
		id := c.ok(201, "POST", "/v1/payments", map[string]any{"device": device, "amount": 300, "currency": "EUR"}).str("id")
		err := a.d.Payments.Do(context.Background(), func(b *ledger.Batch[platform.Tx]) error {
			return b.Tx.CreateReview(b.Context(), &decision.Review{Payment: iotpay.PaymentID(id), Tenant: tenant, Device: iotpay.DeviceID(device),
				Status: decision.ReviewPending, Decision: json.RawMessage(`{"action":{"kind":"charge"},"risk":{"outcome":"review","score":60}}`), Created: time.Now()})
		})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	approved, rejected := heldFor(), heldFor()
	c.ok(200, "GET", "/v1/reviews?status=pending&limit=1", nil)
	c.ok(200, "GET", "/v1/reviews/"+approved, nil)
	if r := c.ok(200, "POST", "/v1/reviews/"+approved+"/approve", map[string]any{"note": "called the owner"}); r.body["payment"].(map[string]any)["status"] != "captured" {
		t.Errorf("approved review: %s", r)
	}
	if r := c.ok(200, "POST", "/v1/reviews/"+rejected+"/decline", nil); r.body["payment"].(map[string]any)["status"] != "voided" {
		t.Errorf("declined review: %s", r)
	}
	c.ok(409, "POST", "/v1/reviews/"+approved+"/decline", nil)
	c.ok(409, "POST", "/v1/reviews/"+rejected+"/approve", nil)
	c.ok(200, "GET", "/v1/reviews?status=approved", nil)
	lastHook := c.ok(200, "GET", "/v1/webhooks", nil).body["data"].([]any)[15].(map[string]any)["id"].(string)
	c.ok(200, "DELETE", "/v1/webhooks/"+lastHook, nil)

	// The documented refusals that need a state to refuse.
	c.ok(404, "POST", "/v1/devices", map[string]any{"product": noProduct, "name": "x"})
	c.ok(404, "POST", "/v1/mandates", map[string]any{"device": noDevice, "payer": payer, "per_payment_limit": 1, "daily_limit": 1, "monthly_limit": 1})
	c.ok(409, "POST", "/v1/mandates", map[string]any{"device": device, "payer": payer, "per_payment_limit": 1, "daily_limit": 1, "monthly_limit": 1})
	c.ok(400, "POST", "/v1/mandates", map[string]any{"device": device, "payer": merchant, "per_payment_limit": 1, "daily_limit": 1, "monthly_limit": 1})
	c.ok(404, "POST", "/v1/payments", map[string]any{"device": noDevice, "amount": 1, "currency": "EUR"})
	c.ok(409, "POST", "/v1/payments/"+sale+"/capture", map[string]any{})
	c.ok(409, "POST", "/v1/payments/"+sale+"/void", nil)
	c.ok(409, "POST", "/v1/payments/"+sale+"/increment", map[string]any{"amount": 1})
	c.ok(409, "POST", "/v1/payments/"+pay+"/refund", map[string]any{})
	open := c.ok(201, "POST", "/v1/payments", map[string]any{"device": device, "amount": 4000, "currency": "EUR"}).str("id")
	if r := c.ok(402, "POST", "/v1/payments/"+open+"/increment", map[string]any{"amount": 1001}); r.str("decline_code") != "over_payment_limit" {
		t.Errorf("increment over the limit: %s", r)
	}
	c.ok(400, "POST", "/v1/payments/"+open+"/capture", map[string]any{"amount": 4001})
	c.ok(400, "POST", "/v1/accounts", map[string]any{"name": "x", "kind": "payer", "currency": "EUR"}, "Idempotency-Key", "payer-1")
	c.ok(400, "GET", "/v1/accounts/"+payer+"/balance?as_of_seq=1&as_of=2020-01-01T00:00:00Z", nil)
	c.ok(200, "POST", "/v1/mandates/"+mandate+"/revoke", nil)
	c.ok(409, "POST", "/v1/mandates/"+mandate+"/suspend", nil)
	c.ok(409, "POST", "/v1/mandates/"+mandate+"/resume", nil)
	c.ok(200, "POST", "/v1/devices/"+device+"/revoke", nil)
	c.ok(409, "POST", "/v1/devices/"+device+"/psk", map[string]any{})
	c.ok(409, "POST", "/v1/payments", map[string]any{"device": device, "amount": 1, "currency": "EUR"})

	// Refusals every operation documents, swept over the document.
	real := map[string]string{"/v1/accounts/": payer, "/v1/products/": product, "/v1/devices/": device,
		"/v1/mandates/": mandate, "/v1/payments/": open, "/v1/reviews/": approved, "/v1/webhooks/": hook.str("id"),
		"/v1/webhook-deliveries/": delivery, "/v1/follow-ups/": failed.ID}
	unknown := map[string]string{"/v1/accounts/": noAccount, "/v1/products/": noProduct, "/v1/devices/": noDevice,
		"/v1/mandates/": noMandate, "/v1/payments/": noPayment, "/v1/reviews/": noPayment, "/v1/webhooks/": noWebhook,
		"/v1/webhook-deliveries/": noDelivery, "/v1/follow-ups/": "fup_01jd0000000000000000000000"}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			with := func(id string) string { return strings.Replace(path, "{id}", id, 1) }
			prefix := path[:strings.Index(path+"{id}", "{id}")]
			documents := func(status int) bool { return op.Responses.Status(status) != nil }
			var body any // the least body the operation takes
			if method == "POST" || method == "PUT" || method == "PATCH" {
				body = map[string]any{}
				if strings.HasSuffix(path, "/fund") || strings.HasSuffix(path, "/increment") {
					body = map[string]any{"amount": 1}
				}
			}
			if documents(401) && (op.Security == nil || len(*op.Security) > 0) {
				c.send("", method, with(real[prefix]), body, false, 401)
			}
			if strings.Contains(path, "{id}") {
				c.send(a.key, method, with("x"+real[prefix]), body, false, 400)
				if documents(404) {
					c.send(a.key, method, with(unknown[prefix]), body, true, 404)
				}
			}
			if method != "GET" && method != "DELETE" && documents(400) && path != "/v1/enroll" {
				c.send(a.key, method, with(real[prefix]), map[string]any{"unknown_field": 1}, false, 400)
			}
			if method == "GET" && slices.ContainsFunc(op.Parameters, func(p *openapi3.ParameterRef) bool { return p.Value.Name == "limit" }) {
				c.send(a.key, method, with(real[prefix])+"?limit=0", nil, false, 400)
			}
		}
	}

	// Every documented answer below 500 was seen.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for code := range op.Responses.Map() {
				k := method + " " + path + " " + code
				if code < "500" && !c.seen[k] && unreachable[k] == "" {
					t.Errorf("%s: documented, never seen", k)
				}
			}
		}
	}
	for k := range unreachable {
		if c.seen[k] {
			t.Errorf("%s: listed as unreachable, but seen", k)
		}
	}
}

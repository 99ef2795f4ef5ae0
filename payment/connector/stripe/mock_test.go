package stripe_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/payment/connector/stripe"
	"github.com/iotpay/iotpay/payment/connector/stripe/stripetest"
)

// ignoreAt leaves out a Result's time, which is the clock's.
var ignoreAt = cmpopts.IgnoreFields(connector.Result{}, "At")

// The tests against stripe-mock share one: it is stateless, and starts
// in most of a second.
func TestMock(t *testing.T) {
	base := stripetest.Start(t)
	t.Run("Authorize", func(t *testing.T) { testMockAuthorize(t, base) })
	t.Run("Operations", func(t *testing.T) { testMockOperations(t, base) })
	t.Run("HeldPayment", func(t *testing.T) { testMockHeldPayment(t, base) })
	t.Run("IncrementUnsupported", func(t *testing.T) { testMockIncrementUnsupported(t, base) })
	t.Run("Ping", func(t *testing.T) { testMockPing(t, base) })
	t.Run("TwoKeys", func(t *testing.T) { testMockTwoKeys(t, base) })
	t.Run("SameOperationSameRequest", func(t *testing.T) { testMockSameOperationSameRequest(t, base) })
	t.Run("Release", func(t *testing.T) { testMockRelease(t, base) })
}

// testMockAuthorize checks the PaymentIntent an Authorize creates, as
// stripe-mock validated it against Stripe's OpenAPI spec, and the mapping
// of stripe-mock's fixture (requires_payment_method with a
// last_payment_error that has no code: a decline).
func testMockAuthorize(t *testing.T, base string) {
	manual := url.Values{
		"amount":                      {"1250"},
		"currency":                    {"eur"},
		"payment_method":              {"pm_card_visa"},
		"payment_method_types[0]":     {"card"},
		"confirm":                     {"true"},
		"capture_method":              {"manual"},
		"error_on_requires_action":    {"true"},
		"metadata[iotpay_device]":     {"dev_7"},
		"metadata[iotpay_payment]":    {"pay_1"},
		"statement_descriptor_suffix": {"EV 42"},
		"payment_method_options[card][request_incremental_authorization]": {"if_available"},
		"payment_method_options[card][request_multicapture]":              {"if_available"},
		"expand[0]": {"latest_charge"},
	}
	with := func(v url.Values, set map[string]string, del ...string) url.Values {
		out := url.Values{}
		for k, vs := range v {
			out[k] = vs
		}
		for k, s := range set {
			out.Set(k, s)
		}
		for _, k := range del {
			out.Del(k)
		}
		return out
	}
	tests := []struct {
		name    string
		edit    func(a *connector.Authorization)
		form    url.Values
		account string // Stripe-Account header
		refPfx  string
	}{
		{name: "manual capture", form: manual, refPfx: "pi_"},
		{
			name: "capture at once",
			edit: func(a *connector.Authorization) { a.Capture = true },
			form: with(manual, map[string]string{"capture_method": "automatic"},
				"payment_method_options[card][request_incremental_authorization]",
				"payment_method_options[card][request_multicapture]"),
			refPfx: "pi_",
		},
		{
			name: "zero-decimal currency, no device, no descriptor",
			edit: func(a *connector.Authorization) {
				a.Amount = iotpay.Money{Amount: 500, Currency: "JPY"}
				a.Device, a.Descriptor = "", ""
			},
			form: with(manual, map[string]string{"amount": "500", "currency": "jpy"},
				"metadata[iotpay_device]", "statement_descriptor_suffix"),
			refPfx: "pi_",
		},
		{
			name:   "descriptor cleaned and cut",
			edit:   func(a *connector.Authorization) { a.Descriptor = ` "Charge" <bay> 7 of Main St. West ` },
			form:   with(manual, map[string]string{"statement_descriptor_suffix": "Charge bay 7 of Main S"}),
			refPfx: "pi_",
		},
		{
			name:   "descriptor without a letter dropped",
			edit:   func(a *connector.Authorization) { a.Descriptor = "42" },
			form:   with(manual, nil, "statement_descriptor_suffix"),
			refPfx: "pi_",
		},
		{
			name:    "connected account",
			edit:    func(a *connector.Authorization) { a.Merchant = "acct_1Merchant" },
			form:    manual,
			account: "acct_1Merchant",
			refPfx:  "acct_1Merchant/pi_",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := newConnector(t, base, stripe.Config{})
			a := authorization(t, fmt.Sprintf("auth-%d", i))
			if tt.edit != nil {
				tt.edit(a)
			}
			r, err := c.Authorize(context.Background(), a)
			if err != nil {
				t.Fatalf("Authorize: %v", err)
			}
			reqs := rec.all()
			if len(reqs) != 1 || reqs[0].Method != http.MethodPost || reqs[0].Path != "/v1/payment_intents" {
				t.Fatalf("requests = %+v, want one POST /v1/payment_intents", reqs)
			}
			// The operation's key, not the payment id: the same for
			// every try.
			form := with(tt.form, map[string]string{"metadata[iotpay_key]": a.Key})
			if d := cmp.Diff(form, reqs[0].Form); d != "" {
				t.Errorf("form (-want +got):\n%s", d)
			}
			if got := reqs[0].Header.Get("Idempotency-Key"); got != a.Key {
				t.Errorf("Idempotency-Key = %q, want %q", got, a.Key)
			}
			if got := reqs[0].Header.Get("Stripe-Account"); got != tt.account {
				t.Errorf("Stripe-Account = %q, want %q", got, tt.account)
			}
			// stripe-mock's fixture: requires_payment_method with a
			// last_payment_error of no code or message.
			want := &connector.Result{Ref: r.Ref, Status: connector.Declined, Code: "declined"}
			if d := cmp.Diff(want, r, ignoreAt); d != "" {
				t.Errorf("result (-want +got):\n%s", d)
			}
			if !strings.HasPrefix(r.Ref, tt.refPfx) {
				t.Errorf("Ref = %q, want prefix %q", r.Ref, tt.refPfx)
			}
		})
	}
}

// testMockOperations checks each later call's request and the mapping of
// stripe-mock's fixtures.
func testMockOperations(t *testing.T, base string) {
	declined := func(ref string) *connector.Result {
		return &connector.Result{Ref: ref, Status: connector.Declined, Code: "declined"}
	}
	tests := []struct {
		name   string
		call   func(c *stripe.Connector) (*connector.Result, error)
		method string
		path   string
		form   url.Values
		key    string // Idempotency-Key; "" for none (a GET)
		want   *connector.Result
	}{
		{
			name: "capture all",
			call: func(c *stripe.Connector) (*connector.Result, error) {
				return c.Capture(context.Background(), "pi_A1", 0, true, "cap-1")
			},
			method: http.MethodPost, path: "/v1/payment_intents/pi_A1/capture",
			form: url.Values{"expand[0]": {"latest_charge"}}, key: "cap-1",
			want: declined("pi_A1"),
		},
		{
			name: "capture part, final",
			call: func(c *stripe.Connector) (*connector.Result, error) {
				return c.Capture(context.Background(), "pi_A1", 700, true, "cap-2")
			},
			method: http.MethodPost, path: "/v1/payment_intents/pi_A1/capture",
			form: url.Values{"amount_to_capture": {"700"}, "expand[0]": {"latest_charge"}}, key: "cap-2",
			want: declined("pi_A1"),
		},
		{
			name: "capture part, not final",
			call: func(c *stripe.Connector) (*connector.Result, error) {
				return c.Capture(context.Background(), "pi_A1", 700, false, "cap-3")
			},
			method: http.MethodPost, path: "/v1/payment_intents/pi_A1/capture",
			form: url.Values{"amount_to_capture": {"700"}, "final_capture": {"false"}, "expand[0]": {"latest_charge"}}, key: "cap-3",
			want: declined("pi_A1"),
		},
		{
			name: "void",
			call: func(c *stripe.Connector) (*connector.Result, error) {
				return c.Void(context.Background(), "pi_A1", "void-1")
			},
			method: http.MethodPost, path: "/v1/payment_intents/pi_A1/cancel",
			form: nil, key: "void-1",
			want: declined("pi_A1"),
		},
		{
			name: "refund part",
			call: func(c *stripe.Connector) (*connector.Result, error) {
				return c.Refund(context.Background(), "pi_A1", 300, "ref-1")
			},
			method: http.MethodPost, path: "/v1/refunds",
			form: url.Values{"payment_intent": {"pi_A1"}, "amount": {"300"}, "expand[0]": {"charge"}}, key: "ref-1",
			// stripe-mock's refund: succeeded, its amount the one asked.
			want: &connector.Result{Ref: "pi_A1", Status: connector.Refunded, Amount: 300},
		},
		{
			name: "refund all",
			call: func(c *stripe.Connector) (*connector.Result, error) {
				return c.Refund(context.Background(), "pi_A1", 0, "ref-2")
			},
			method: http.MethodPost, path: "/v1/refunds",
			form: url.Values{"payment_intent": {"pi_A1"}, "expand[0]": {"charge"}}, key: "ref-2",
			// The fixture's refund amount (100) and charge (0 refunded).
			want: &connector.Result{Ref: "pi_A1", Status: connector.Refunded, Amount: 100},
		},
		{
			name:   "status",
			call:   func(c *stripe.Connector) (*connector.Result, error) { return c.Status(context.Background(), "pi_A1") },
			method: http.MethodGet, path: "/v1/payment_intents/pi_A1",
			form: url.Values{"expand[0]": {"latest_charge"}},
			want: declined("pi_A1"),
		},
		{
			name: "status on a connected account",
			call: func(c *stripe.Connector) (*connector.Result, error) {
				return c.Status(context.Background(), "acct_9/pi_A1")
			},
			method: http.MethodGet, path: "/v1/payment_intents/pi_A1",
			form: url.Values{"expand[0]": {"latest_charge"}},
			want: declined("acct_9/pi_A1"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := newConnector(t, base, stripe.Config{})
			r, err := tt.call(c)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, r, ignoreAt); d != "" {
				t.Errorf("result (-want +got):\n%s", d)
			}
			reqs := rec.all()
			if len(reqs) != 1 || reqs[0].Method != tt.method || reqs[0].Path != tt.path {
				t.Fatalf("requests = %+v, want one %s %s", reqs, tt.method, tt.path)
			}
			if d := cmp.Diff(tt.form, reqs[0].Form, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("form (-want +got):\n%s", d)
			}
			if got := reqs[0].Header.Get("Idempotency-Key"); got != tt.key {
				t.Errorf("Idempotency-Key = %q, want %q", got, tt.key)
			}
			wantAcct := ""
			if a, _, ok := strings.Cut(tt.want.Ref, "/"); ok {
				wantAcct = a
			}
			if got := reqs[0].Header.Get("Stripe-Account"); got != wantAcct {
				t.Errorf("Stripe-Account = %q, want %q", got, wantAcct)
			}
		})
	}
}

// held makes stripe-mock's answers those of a held card payment of
// amount (stripe-mock answers the same fixture whatever happened before):
// the proxy rewrites statuses and amounts, stripe-mock still validates
// every request.
func held(amount int64) func(r *stripetest.Request, obj map[string]any) {
	num := func(s string) int64 {
		var n int64
		fmt.Sscan(s, &n)
		return n
	}
	card := func(obj map[string]any) map[string]any {
		ch, _ := obj["latest_charge"].(map[string]any)
		if ch == nil {
			return nil
		}
		pmd, _ := ch["payment_method_details"].(map[string]any)
		c, _ := pmd["card"].(map[string]any)
		return c
	}
	return func(r *stripetest.Request, obj map[string]any) {
		switch {
		case obj["object"] == "refund":
			if ch, ok := obj["charge"].(map[string]any); ok {
				ch["amount_refunded"] = num(r.Form.Get("amount"))
			}
			return
		case obj["object"] != "payment_intent":
			return
		}
		// stripe-mock answers an increment with a made-up id.
		if rest, ok := strings.CutPrefix(r.Path, "/v1/payment_intents/"); ok {
			obj["id"], _, _ = strings.Cut(rest, "/")
		}
		obj["amount"], obj["amount_received"] = amount, 0
		obj["status"], obj["amount_capturable"], obj["last_payment_error"] = "requires_capture", amount, nil
		if c := card(obj); c != nil {
			c["authorization_code"] = "A7X9"
			c["incremental_authorization"] = map[string]any{"status": "available"}
		}
		switch {
		case strings.HasSuffix(r.Path, "/increment_authorization"):
			obj["amount"], obj["amount_capturable"] = num(r.Form.Get("amount")), num(r.Form.Get("amount"))
		case strings.HasSuffix(r.Path, "/capture"):
			got := amount
			if s := r.Form.Get("amount_to_capture"); s != "" {
				got = num(s)
			}
			obj["status"], obj["amount_received"], obj["amount_capturable"] = "succeeded", got, 0
			if r.Form.Get("final_capture") == "false" {
				obj["status"], obj["amount_capturable"] = "requires_capture", amount-got
			}
		case strings.HasSuffix(r.Path, "/cancel"):
			obj["status"], obj["amount_capturable"] = "canceled", 0
		}
	}
}

// testMockHeldPayment runs a payment's life through the rewriting proxy:
// stripe-mock validates each request, the proxy makes the fixtures those
// of a held card, and each mutating call carries its own key.
func testMockHeldPayment(t *testing.T, base string) {
	proxy := stripetest.Rewrite(t, base, held(1250))
	c, rec := newConnector(t, proxy, stripe.Config{})
	ctx := context.Background()

	r, err := c.Authorize(ctx, authorization(t, "pay_1/authorize"))
	if err != nil {
		t.Fatal(err)
	}
	ref := r.Ref
	if d := cmp.Diff(&connector.Result{Ref: ref, Status: connector.Authorized, Amount: 1250, Approval: "A7X9"}, r, ignoreAt); d != "" {
		t.Errorf("authorize (-want +got):\n%s", d)
	}
	steps := []struct {
		name string
		call func() (*connector.Result, error)
		key  string
		want *connector.Result
		form url.Values // the form of the last request
	}{
		{
			name: "increment",
			call: func() (*connector.Result, error) { return c.Increment(ctx, ref, 500, "pay_1/increment/1") },
			key:  "pay_1/increment/1",
			want: &connector.Result{Ref: ref, Status: connector.Authorized, Amount: 1750, Approval: "A7X9"},
			form: url.Values{"amount": {"1750"}, "expand[0]": {"latest_charge"}},
		},
		{
			name: "capture part, not final",
			call: func() (*connector.Result, error) { return c.Capture(ctx, ref, 400, false, "pay_1/capture/1") },
			key:  "pay_1/capture/1",
			want: &connector.Result{Ref: ref, Status: connector.Captured, Amount: 400, Approval: "A7X9"},
			form: url.Values{"amount_to_capture": {"400"}, "final_capture": {"false"}, "expand[0]": {"latest_charge"}},
		},
		{
			name: "capture final",
			call: func() (*connector.Result, error) { return c.Capture(ctx, ref, 1000, true, "pay_1/capture/2") },
			key:  "pay_1/capture/2",
			want: &connector.Result{Ref: ref, Status: connector.Captured, Amount: 1000, Approval: "A7X9"},
			form: url.Values{"amount_to_capture": {"1000"}, "expand[0]": {"latest_charge"}},
		},
		{
			name: "refund",
			call: func() (*connector.Result, error) { return c.Refund(ctx, ref, 250, "pay_1/refund/1") },
			key:  "pay_1/refund/1",
			want: &connector.Result{Ref: ref, Status: connector.Refunded, Amount: 250},
			form: url.Values{"payment_intent": {ref}, "amount": {"250"}, "expand[0]": {"charge"}},
		},
		{
			name: "void",
			call: func() (*connector.Result, error) { return c.Void(ctx, ref, "pay_1/void") },
			key:  "pay_1/void",
			want: &connector.Result{Ref: ref, Status: connector.Voided}, // no charge asked for
		},
		{
			name: "status",
			call: func() (*connector.Result, error) { return c.Status(ctx, ref) },
			want: &connector.Result{Ref: ref, Status: connector.Authorized, Amount: 1250, Approval: "A7X9"},
			form: url.Values{"expand[0]": {"latest_charge"}},
		},
	}
	rec.all()
	for _, s := range steps {
		r, err := s.call()
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if d := cmp.Diff(s.want, r, ignoreAt); d != "" {
			t.Errorf("%s (-want +got):\n%s", s.name, d)
		}
		reqs := rec.all()
		for _, q := range reqs {
			got := q.Header.Get("Idempotency-Key")
			switch {
			case q.Method == http.MethodGet && got != "":
				t.Errorf("%s: GET %s has Idempotency-Key %q", s.name, q.Path, got)
			case q.Method == http.MethodPost && got != s.key:
				t.Errorf("%s: POST %s has Idempotency-Key %q, want %q", s.name, q.Path, got, s.key)
			}
		}
		if last := reqs[len(reqs)-1]; cmp.Diff(s.form, last.Form, cmpopts.EquateEmpty()) != "" {
			t.Errorf("%s: %s %s form (-want +got):\n%s", s.name, last.Method, last.Path, cmp.Diff(s.form, last.Form, cmpopts.EquateEmpty()))
		}
	}
}

// testMockIncrementUnsupported: stripe-mock's charge says incremental
// authorization is unavailable for the card, so the connector does not
// try it.
func testMockIncrementUnsupported(t *testing.T, base string) {
	proxy := stripetest.Rewrite(t, base, func(r *stripetest.Request, obj map[string]any) {
		if obj["object"] == "payment_intent" {
			obj["status"], obj["last_payment_error"] = "requires_capture", nil
		}
	})
	c, rec := newConnector(t, proxy, stripe.Config{})
	_, err := c.Increment(context.Background(), "pi_A1", 100, "inc-1")
	if !connector.IsUnsupported(err) {
		t.Fatalf("Increment = %v, want connector.ErrUnsupported", err)
	}
	for _, q := range rec.all() {
		if q.Method != http.MethodGet {
			t.Errorf("%s %s sent, want only the GET", q.Method, q.Path)
		}
	}

	// Not held at all (stripe-mock's own fixture): refused.
	c, _ = newConnector(t, base, stripe.Config{})
	if _, err := c.Increment(context.Background(), "pi_A1", 100, "inc-2"); code(err) != iotpay.EINVALID || connector.IsUnsupported(err) {
		t.Errorf("Increment of an unheld payment = %v, want EINVALID", err)
	}
}

func testMockPing(t *testing.T, base string) {
	c, rec := newConnector(t, base, stripe.Config{})
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if reqs := rec.all(); len(reqs) != 1 || reqs[0].Method != http.MethodGet || reqs[0].Path != "/v1/balance" {
		t.Errorf("Ping sent %+v, want GET /v1/balance", reqs)
	}
	// stripe-mock takes test keys only: a live key is refused, as Stripe
	// refuses a revoked one. A configuration error, not retryable.
	c, _ = newConnector(t, base, stripe.Config{Key: "sk_live_revoked"})
	if err := c.Ping(context.Background()); code(err) != iotpay.EINTERNAL {
		t.Errorf("Ping with a refused key = %v, want EINTERNAL", err)
	}
}

// testMockTwoKeys runs two connectors with different keys at once: each
// request carries its own connector's key (no global stripe.Key).
func testMockTwoKeys(t *testing.T, base string) {
	keys := []string{"sk_test_first", "sk_test_second", "sk_live_refused"}
	conns := make([]*stripe.Connector, len(keys))
	recs := make([]*recorder, len(keys))
	for i, k := range keys {
		conns[i], recs[i] = newConnector(t, base, stripe.Config{Key: k, Name: "stripe-" + k})
	}
	const calls = 5
	errs := make([][]error, len(keys))
	var wg sync.WaitGroup
	for i := range conns {
		errs[i] = make([]error, calls)
		for j := range calls {
			wg.Go(func() {
				_, errs[i][j] = conns[i].Authorize(context.Background(), authorization(t, fmt.Sprintf("k-%d-%d", i, j)))
			})
		}
	}
	wg.Wait()
	for i, k := range keys {
		if got := conns[i].Name(); got != "stripe-"+k {
			t.Errorf("Name = %q", got)
		}
		for j, err := range errs[i] {
			wantCode := iotpay.Code("")
			if strings.HasPrefix(k, "sk_live") {
				wantCode = iotpay.EINTERNAL
			}
			if code(err) != wantCode {
				t.Errorf("connector %s call %d: %v, want code %q", k, j, err, wantCode)
			}
		}
		reqs := recs[i].all()
		if len(reqs) != calls {
			t.Errorf("connector %s sent %d requests, want %d", k, len(reqs), calls)
		}
		for _, q := range reqs {
			if got := q.Header.Get("Authorization"); got != "Bearer "+k {
				t.Errorf("connector %s sent Authorization %q", k, got)
			}
		}
	}
}

// testMockSameOperationSameRequest: Stripe refuses a key sent again with
// other parameters, so every try of one operation sends the same request:
// the same payment's key, id and device.
func testMockSameOperationSameRequest(t *testing.T, base string) {
	c, rec := newConnector(t, base, stripe.Config{})
	var reqs []recorded
	for try := range 2 {
		a := authorization(t, "dev_7:req-9:authorize")
		if _, err := c.Authorize(context.Background(), a); err != nil {
			t.Fatalf("Authorize, try %d: %v", try, err)
		}
		reqs = append(reqs, rec.all()...)
	}
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if d := cmp.Diff(reqs[0].Form, reqs[1].Form); d != "" {
		t.Errorf("the retry's form differs (-first +retry):\n%s", d)
	}
	for _, h := range []string{"Idempotency-Key", "Stripe-Account"} {
		if a, b := reqs[0].Header.Get(h), reqs[1].Header.Get(h); a != b {
			t.Errorf("%s: %q, then %q", h, a, b)
		}
	}
	if got := reqs[0].Form.Get("metadata[" + stripe.MetaKey + "]"); got != "dev_7:req-9:authorize" {
		t.Errorf("metadata[%s] = %q, want the key", stripe.MetaKey, got)
	}
}

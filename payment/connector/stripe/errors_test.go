package stripe_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/payment/connector/stripe"
)

// answer is a canned HTTP answer of a fake Stripe.
type answer struct {
	status      int
	contentType string
	body        string
}

func jsonAnswer(status int, body string) answer {
	return answer{status: status, contentType: "application/json", body: body}
}

// fake starts a server on 127.0.0.1 that gives answers in turn (the last
// one again once they run out) and counts the requests.
func fake(t *testing.T, answers ...answer) (url string, hits *atomic.Int64) {
	t.Helper()
	hits = &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		n := int(hits.Add(1)) - 1
		a := answers[min(n, len(answers)-1)]
		if a.contentType != "" {
			w.Header().Set("Content-Type", a.contentType)
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, hits
}

const (
	declineBody = `{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds",
		"message":"Your card has insufficient funds.","payment_intent":{"id":"pi_Declined1","object":"payment_intent","status":"requires_payment_method"}}}`
	declineNoCodeBody = `{"error":{"type":"card_error","code":"expired_card","message":"Your card has expired."}}`
	invalidBody       = `{"error":{"type":"invalid_request_error","code":"parameter_invalid_integer","param":"amount","message":"Invalid integer: x"}}`
	idemReuseBody     = `{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters they were first used with."}}`
	inUseBody         = `{"error":{"type":"invalid_request_error","code":"idempotency_key_in_use","message":"There is currently another in-progress request using this Idempotent Key."}}`
	lockBody          = `{"error":{"type":"invalid_request_error","code":"lock_timeout","message":"This object cannot be accessed right now."}}`
	rateBody          = `{"error":{"type":"invalid_request_error","code":"rate_limit","message":"Too many requests."}}`
	apiErrBody        = `{"error":{"type":"api_error","message":"Something went wrong on Stripe's end."}}`
	missingBody       = `{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such payment_intent: 'pi_X'"}}`
	authBody          = `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_****"}}`
)

// TestAuthorizeAnswers checks how Stripe's answers to an Authorize map:
// declines are results, only what may succeed later is retryable.
func TestAuthorizeAnswers(t *testing.T) {
	tests := []struct {
		name   string
		answer answer
		want   *connector.Result
		code   iotpay.Code
	}{
		{name: "402 card_error with decline_code", answer: jsonAnswer(402, declineBody),
			want: &connector.Result{Ref: "pi_Declined1", Status: connector.Declined, Code: "insufficient_funds", Message: "Your card has insufficient funds."}},
		{name: "402 card_error with code only", answer: jsonAnswer(402, declineNoCodeBody),
			want: &connector.Result{Status: connector.Declined, Code: "expired_card", Message: "Your card has expired."}},
		{name: "400 invalid_request_error", answer: jsonAnswer(400, invalidBody), code: iotpay.EINVALID},
		{name: "400 idempotency_error", answer: jsonAnswer(400, idemReuseBody), code: iotpay.EINVALID},
		{name: "404 resource_missing", answer: jsonAnswer(404, missingBody), code: iotpay.EINVALID},
		{name: "401 key refused", answer: jsonAnswer(401, authBody), code: iotpay.EINTERNAL},
		{name: "409 idempotency_key_in_use", answer: jsonAnswer(409, inUseBody), code: iotpay.EUNAVAILABLE},
		{name: "429 lock_timeout", answer: jsonAnswer(429, lockBody), code: iotpay.EUNAVAILABLE},
		{name: "429 rate_limit", answer: jsonAnswer(429, rateBody), code: iotpay.EUNAVAILABLE},
		{name: "500 api_error", answer: jsonAnswer(500, apiErrBody), code: iotpay.EUNAVAILABLE},
		{name: "502 proxy page", answer: answer{status: 502, contentType: "text/html", body: "<html>Bad Gateway</html>"}, code: iotpay.EUNAVAILABLE},
		{name: "503 empty", answer: answer{status: 503}, code: iotpay.EUNAVAILABLE},
		{name: "504 JSON not Stripe's", answer: jsonAnswer(504, `{"message":"upstream timed out"}`), code: iotpay.EUNAVAILABLE},
		{name: "200 not JSON", answer: answer{status: 200, contentType: "text/html", body: "<html>login</html>"}, code: iotpay.EINTERNAL},
		{name: "200 no object", answer: jsonAnswer(200, `{}`), code: iotpay.EINTERNAL},
		{name: "200 unknown status", answer: jsonAnswer(200, `{"id":"pi_1","object":"payment_intent","status":"teleported"}`), code: iotpay.EINTERNAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, hits := fake(t, tt.answer)
			c, _ := newConnector(t, base, stripe.Config{})
			r, err := c.Authorize(context.Background(), authorization(t, "k"))
			if code(err) != tt.code {
				t.Fatalf("Authorize = %+v, %v; want code %q", r, err, tt.code)
			}
			if connector.Retryable(err) != (tt.code == iotpay.EUNAVAILABLE) {
				t.Errorf("Retryable(%v) = %v", err, connector.Retryable(err))
			}
			if d := cmp.Diff(tt.want, r, ignoreAt); d != "" {
				t.Errorf("result (-want +got):\n%s", d)
			}
			// stripe-go's own retries are off: the engine retries.
			if n := hits.Load(); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
			if err != nil && strings.Contains(iotpay.ErrorMessage(err), "sk_test") {
				t.Errorf("error message shows the key: %q", iotpay.ErrorMessage(err))
			}
		})
	}
}

// TestEveryCallFailures: each call maps a 503, a time-out, a refused
// connection and a decline the same way.
func TestEveryCallFailures(t *testing.T) {
	calls := map[string]func(c *stripe.Connector, ctx context.Context) (*connector.Result, error){
		"authorize": func(c *stripe.Connector, ctx context.Context) (*connector.Result, error) {
			return c.Authorize(ctx, authorization(t, "k"))
		},
		"capture": func(c *stripe.Connector, ctx context.Context) (*connector.Result, error) {
			return c.Capture(ctx, "pi_1", 0, true, "k")
		},
		"void": func(c *stripe.Connector, ctx context.Context) (*connector.Result, error) {
			return c.Void(ctx, "pi_1", "k")
		},
		"refund": func(c *stripe.Connector, ctx context.Context) (*connector.Result, error) {
			return c.Refund(ctx, "pi_1", 0, "k")
		},
		"status": func(c *stripe.Connector, ctx context.Context) (*connector.Result, error) {
			return c.Status(ctx, "pi_1")
		},
		"increment": func(c *stripe.Connector, ctx context.Context) (*connector.Result, error) {
			return c.Increment(ctx, "pi_1", 10, "k")
		},
		"ping": func(c *stripe.Connector, ctx context.Context) (*connector.Result, error) { return nil, c.Ping(ctx) },
		"release": func(c *stripe.Connector, ctx context.Context) (*connector.Result, error) {
			_, err := c.Release(ctx, "k")
			return nil, err
		},
	}
	// The time-outs: the server holds each request until the client
	// gives up (or the test ends).
	stall := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stall:
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(stall) })
	// A refused connection: a port that was free a moment ago.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()

	const shortTimeout = 100 * time.Millisecond
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			unavailable, _ := fake(t, jsonAnswer(503, apiErrBody))
			cases := []struct {
				what    string
				base    string
				timeout time.Duration
				cancel  bool
			}{
				{what: "503", base: unavailable},
				{what: "time-out", base: slow.URL, timeout: shortTimeout},
				{what: "caller gave up", base: slow.URL, cancel: true},
				{what: "refused", base: closed},
			}
			for _, cs := range cases {
				c, _ := newConnector(t, cs.base, stripe.Config{Timeout: cs.timeout})
				ctx, cancel := context.WithCancel(context.Background())
				if cs.cancel {
					time.AfterFunc(shortTimeout, cancel)
				}
				start := time.Now()
				r, err := call(c, ctx)
				cancel()
				if !connector.Retryable(err) || r != nil {
					t.Errorf("%s: %+v, %v; want a retryable error", cs.what, r, err)
				}
				if cs.timeout != 0 || cs.cancel {
					if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
						t.Errorf("%s: %v does not say why", cs.what, err)
					}
					if d := time.Since(start); d > testTimeout/2 {
						t.Errorf("%s: took %v", cs.what, d)
					}
				}
			}
			if name == "ping" || name == "status" || name == "increment" || name == "release" {
				return // no decline for these
			}
			declined, _ := fake(t, jsonAnswer(402, declineBody))
			c, _ := newConnector(t, declined, stripe.Config{})
			r, err := call(c, context.Background())
			if err != nil || r.Status != connector.Declined || r.Code != "insufficient_funds" {
				t.Errorf("402: %+v, %v; want a decline", r, err)
			}
		})
	}
}

// pi is a PaymentIntent as Stripe answers it.
func pi(fields string) string {
	return `{"id":"pi_1","object":"payment_intent","amount":1250,"currency":"eur",` + fields + `}`
}

// TestStatusMapping checks each PaymentIntent status.
func TestStatusMapping(t *testing.T) {
	charge := func(fields string) string {
		return `"latest_charge":{"id":"ch_1","object":"charge","payment_method_details":{"type":"card","card":{"authorization_code":"123456"}}` + fields + `}`
	}
	tests := []struct {
		name string
		body string
		want *connector.Result
		code iotpay.Code
	}{
		{name: "held", body: pi(`"status":"requires_capture","amount_capturable":1250,` + charge("")),
			want: &connector.Result{Status: connector.Authorized, Amount: 1250, Approval: "123456"}},
		{name: "partly captured, rest held (multicapture)", body: pi(`"status":"requires_capture","amount_capturable":850,"amount_received":400`),
			want: &connector.Result{Status: connector.Captured, Amount: 400}},
		{name: "captured", body: pi(`"status":"succeeded","amount_received":1000,` + charge(`,"amount_refunded":0`)),
			want: &connector.Result{Status: connector.Captured, Amount: 1000, Approval: "123456"}},
		{name: "refunded in part", body: pi(`"status":"succeeded","amount_received":1000,` + charge(`,"amount_refunded":300`)),
			want: &connector.Result{Status: connector.Refunded, Amount: 300, Approval: "123456"}},
		{name: "captured, charge not expanded", body: pi(`"status":"succeeded","amount_received":1000,"latest_charge":"ch_1"`),
			want: &connector.Result{Status: connector.Captured, Amount: 1000}},
		{name: "cancelled", body: pi(`"status":"canceled","cancellation_reason":"requested_by_customer"`),
			want: &connector.Result{Status: connector.Voided}},
		{name: "declined with decline code", body: pi(`"status":"requires_payment_method","last_payment_error":{"type":"card_error","code":"card_declined","decline_code":"do_not_honor","message":"Your card was declined."}`),
			want: &connector.Result{Status: connector.Declined, Code: "do_not_honor", Message: "Your card was declined."}},
		{name: "declined with code", body: pi(`"status":"requires_payment_method","last_payment_error":{"type":"card_error","code":"authentication_required","message":"Authentication required."}`),
			want: &connector.Result{Status: connector.Declined, Code: "authentication_required", Message: "Authentication required."}},
		{name: "waiting for 3-D Secure", body: pi(`"status":"requires_action"`),
			want: &connector.Result{Status: connector.Declined, Code: "authentication_required"}},
		{name: "not confirmed", body: pi(`"status":"requires_payment_method"`),
			want: &connector.Result{Status: connector.Pending}},
		{name: "confirmation", body: pi(`"status":"requires_confirmation"`),
			want: &connector.Result{Status: connector.Pending}},
		{name: "processing", body: pi(`"status":"processing"`),
			want: &connector.Result{Status: connector.Pending}},
		{name: "unknown status", body: pi(`"status":"teleported"`), code: iotpay.EINTERNAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, _ := fake(t, jsonAnswer(200, tt.body))
			c, _ := newConnector(t, base, stripe.Config{})
			r, err := c.Status(context.Background(), "pi_1")
			if code(err) != tt.code {
				t.Fatalf("Status = %v, want code %q", err, tt.code)
			}
			if tt.want != nil {
				tt.want.Ref = "pi_1"
			}
			if d := cmp.Diff(tt.want, r, ignoreAt); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestRefundMapping checks each Refund status.
func TestRefundMapping(t *testing.T) {
	refund := func(fields string) string {
		return `{"id":"re_1","object":"refund","amount":300,"payment_intent":"pi_1",` + fields + `}`
	}
	tests := []struct {
		name string
		body string
		want *connector.Result
	}{
		{name: "succeeded, charge expanded", body: refund(`"status":"succeeded","charge":{"id":"ch_1","object":"charge","amount_refunded":800}`),
			want: &connector.Result{Status: connector.Refunded, Amount: 800}},
		{name: "succeeded, charge id only", body: refund(`"status":"succeeded","charge":"ch_1"`),
			want: &connector.Result{Status: connector.Refunded, Amount: 300}},
		{name: "pending", body: refund(`"status":"pending"`),
			want: &connector.Result{Status: connector.Pending, Amount: 300}},
		{name: "failed", body: refund(`"status":"failed","failure_reason":"expired_or_canceled_card"`),
			want: &connector.Result{Status: connector.Declined, Amount: 300, Code: "expired_or_canceled_card"}},
		{name: "canceled, no reason", body: refund(`"status":"canceled"`),
			want: &connector.Result{Status: connector.Declined, Amount: 300, Code: "refund_failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, _ := fake(t, jsonAnswer(200, tt.body))
			c, _ := newConnector(t, base, stripe.Config{})
			r, err := c.Refund(context.Background(), "pi_1", 300, "k")
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Ref = "pi_1"
			if d := cmp.Diff(tt.want, r, ignoreAt); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestIncrementRetry: a retry of an increment that went through is
// answered with the intent as it stands, not raised again.
func TestIncrementRetry(t *testing.T) {
	const heldBody = `"status":"requires_capture","latest_charge":{"id":"ch_1","object":"charge","payment_method_details":{"type":"card","card":{"incremental_authorization":{"status":"available"}}}}`
	already := pi(heldBody + `,"amount_capturable":1750`)
	already = strings.Replace(already, `"amount":1250`, `"amount":1750`, 1)
	base, hits := fake(t,
		jsonAnswer(200, already),       // the GET: already raised to 1750
		jsonAnswer(400, idemReuseBody), // the POST with 2250 under the same key
		jsonAnswer(200, already))       // the GET that answers
	c, rec := newConnector(t, base, stripe.Config{})
	r, err := c.Increment(context.Background(), "pi_1", 500, "inc-1")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(&connector.Result{Ref: "pi_1", Status: connector.Authorized, Amount: 1750}, r, ignoreAt); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if n := hits.Load(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
	reqs := rec.all()
	if got := reqs[1].Form.Get("amount"); got != "2250" {
		t.Errorf("increment total sent = %q, want 2250", got)
	}

	// An increment that would overflow is refused before it is sent.
	huge := strings.Replace(pi(heldBody), `"amount":1250`, `"amount":9223372036854775000`, 1)
	base, hits = fake(t, jsonAnswer(200, huge))
	c, _ = newConnector(t, base, stripe.Config{})
	if _, err := c.Increment(context.Background(), "pi_1", 1000, "inc-2"); code(err) != iotpay.EINVALID {
		t.Errorf("overflowing increment = %v, want EINVALID", err)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("%d requests, want only the GET", n)
	}
}

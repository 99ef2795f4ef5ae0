package stripe_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/payment/connector/stripe"
	"github.com/iotpay/iotpay/payment/connector/stripe/stripetest"
)

const searchPath = "/v1/payment_intents/search"

// intent is a PaymentIntent a search answers: its id, status and key.
type intent struct{ id, status, key string }

// found makes stripe-mock's answers those of a search that finds intents
// (its fixture, with each one's id, status and metadata) and of a cancel
// that goes through.
func found(intents ...intent) func(r *stripetest.Request, obj map[string]any) {
	return func(r *stripetest.Request, obj map[string]any) {
		switch {
		case r.Path == searchPath:
			data, _ := obj["data"].([]any)
			fixture, _ := data[0].(map[string]any)
			out := []any{}
			for _, in := range intents {
				pi := maps.Clone(fixture)
				pi["id"], pi["status"] = in.id, in.status
				pi["metadata"] = map[string]any{stripe.MetaKey: in.key, stripe.MetaDevice: "dev_7"}
				out = append(out, pi)
			}
			obj["data"], obj["total_count"] = out, len(out)
		case strings.HasSuffix(r.Path, "/cancel"):
			obj["id"] = strings.TrimSuffix(strings.TrimPrefix(r.Path, "/v1/payment_intents/"), "/cancel")
			obj["status"], obj["cancellation_reason"] = "canceled", r.Form.Get("cancellation_reason")
		}
	}
}

// testMockRelease runs Release against stripe-mock, which validates the
// search and each cancel, behind a proxy that makes the search find the
// intents of each case.
func testMockRelease(t *testing.T, base string) {
	const key = "dev_7:req-1:authorize"
	long := strings.Repeat("k", 255)
	longSum := sha256.Sum256([]byte(long + ":release:pi_Held1"))
	tests := []struct {
		name    string
		key     string
		query   string // the search query sent
		intents []intent
		want    int
		cancels map[string]string // intent id: Idempotency-Key of its cancel
	}{
		{
			name:    "held",
			intents: []intent{{"pi_Held1", "requires_capture", key}},
			want:    1,
			cancels: map[string]string{"pi_Held1": key + ":release:pi_Held1"},
		},
		{name: "captured", intents: []intent{{"pi_Done1", "succeeded", key}}},
		{name: "cancelled", intents: []intent{{"pi_Gone1", "canceled", key}}},
		{name: "processing", intents: []intent{{"pi_Busy1", "processing", key}}},
		{name: "none found yet"},
		{
			name: "unfinished",
			intents: []intent{
				{"pi_Conf1", "requires_confirmation", key},
				{"pi_Meth1", "requires_payment_method", key},
				{"pi_Act1", "requires_action", key},
			},
			want: 3,
			cancels: map[string]string{
				"pi_Conf1": key + ":release:pi_Conf1",
				"pi_Meth1": key + ":release:pi_Meth1",
				"pi_Act1":  key + ":release:pi_Act1",
			},
		},
		{
			name:    "another key's intent answered too",
			intents: []intent{{"pi_Held1", "requires_capture", key}, {"pi_Other1", "requires_capture", key + "x"}},
			want:    1,
			cancels: map[string]string{"pi_Held1": key + ":release:pi_Held1"},
		},
		{
			name:    "key with a quote and a backslash",
			key:     `dev_7:it's\:authorize`,
			query:   `metadata['iotpay_key']:'dev_7:it\'s\\:authorize'`,
			intents: []intent{{"pi_Held1", "requires_capture", `dev_7:it's\:authorize`}},
			want:    1,
			cancels: map[string]string{"pi_Held1": `dev_7:it's\:authorize:release:pi_Held1`},
		},
		{
			name:    "longest key",
			key:     long,
			query:   "metadata['iotpay_key']:'" + long + "'",
			intents: []intent{{"pi_Held1", "requires_capture", long}},
			want:    1,
			cancels: map[string]string{"pi_Held1": "iotpay-release-" + hex.EncodeToString(longSum[:])},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.key == "" {
				tt.key, tt.query = key, "metadata['iotpay_key']:'"+key+"'"
			}
			c, rec := newConnector(t, stripetest.Rewrite(t, base, found(tt.intents...)), stripe.Config{})
			var first []recorded
			// Twice: a retry sends the same requests, so the same keys.
			for try := range 2 {
				n, err := c.Release(context.Background(), tt.key)
				if err != nil || n != tt.want {
					t.Fatalf("Release = %d, %v; want %d", n, err, tt.want)
				}
				reqs := rec.all()
				if len(reqs) == 0 || reqs[0].Method != http.MethodGet || reqs[0].Path != searchPath {
					t.Fatalf("requests = %+v, want a GET %s first", reqs, searchPath)
				}
				want := url.Values{"query": {tt.query}, "limit": {"100"}}
				if d := cmp.Diff(want, reqs[0].Form); d != "" {
					t.Errorf("search (-want +got):\n%s", d)
				}
				cancels := map[string]string{}
				for _, q := range reqs[1:] {
					id, ok := strings.CutSuffix(strings.TrimPrefix(q.Path, "/v1/payment_intents/"), "/cancel")
					if q.Method != http.MethodPost || !ok {
						t.Errorf("%s %s sent, want only cancels", q.Method, q.Path)
						continue
					}
					if got := q.Form.Get("cancellation_reason"); got != "abandoned" {
						t.Errorf("cancel %s: cancellation_reason %q", id, got)
					}
					cancels[id] = q.Header.Get("Idempotency-Key")
				}
				if d := cmp.Diff(tt.cancels, cancels, cmpopts.EquateEmpty()); d != "" {
					t.Errorf("cancels, id: key (-want +got):\n%s", d)
				}
				if try == 1 && !cmp.Equal(first, reqs, cmpopts.IgnoreFields(recorded{}, "Header")) {
					t.Errorf("the retry sent other requests")
				}
				first = reqs
			}
		})
	}
}

// search is a search answer of a fake Stripe.
func search(intents ...string) string {
	return `{"object":"search_result","url":"/v1/payment_intents/search","has_more":false,"data":[` + strings.Join(intents, ",") + `]}`
}

// TestReleaseAnswers checks how Stripe's answers to a Release's search
// and cancels map.
func TestReleaseAnswers(t *testing.T) {
	held := func(id string) string {
		return `{"id":"` + id + `","object":"payment_intent","status":"requires_capture","metadata":{"iotpay_key":"k"}}`
	}
	cancelled := jsonAnswer(200, `{"id":"pi_1","object":"payment_intent","status":"canceled"}`)
	unexpected := `{"error":{"type":"invalid_request_error","code":"payment_intent_unexpected_state",
		"message":"You cannot cancel this PaymentIntent because it has a status of succeeded."}}`
	tests := []struct {
		name    string
		answers []answer
		want    int
		code    iotpay.Code
	}{
		{name: "search 500 api_error", answers: []answer{jsonAnswer(500, apiErrBody)}, code: iotpay.EUNAVAILABLE},
		{name: "search 502 proxy page", answers: []answer{{status: 502, contentType: "text/html", body: "<html>Bad Gateway</html>"}}, code: iotpay.EUNAVAILABLE},
		{name: "search 429", answers: []answer{jsonAnswer(429, rateBody)}, code: iotpay.EUNAVAILABLE},
		{name: "search 401 key refused", answers: []answer{jsonAnswer(401, authBody)}, code: iotpay.EINTERNAL},
		{name: "search 400", answers: []answer{jsonAnswer(400, invalidBody)}, code: iotpay.EINVALID},
		{name: "search answers a bad id", answers: []answer{jsonAnswer(200, search(held("pi_1/../x")))}, code: iotpay.EINTERNAL},
		{name: "cancel 503", answers: []answer{jsonAnswer(200, search(held("pi_1"))), jsonAnswer(503, apiErrBody)}, code: iotpay.EUNAVAILABLE},
		{name: "second cancel 500", answers: []answer{jsonAnswer(200, search(held("pi_1"), held("pi_2"))), cancelled, jsonAnswer(500, apiErrBody)},
			want: 1, code: iotpay.EUNAVAILABLE},
		{name: "captured since the search", answers: []answer{jsonAnswer(200, search(held("pi_1"))), jsonAnswer(400, unexpected)}},
		{name: "cancel answers no cancelled intent", answers: []answer{jsonAnswer(200, search(held("pi_1"))), jsonAnswer(200, held("pi_1"))},
			code: iotpay.EINTERNAL},
		{name: "cancelled", answers: []answer{jsonAnswer(200, search(held("pi_1"))), cancelled}, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, hits := fake(t, tt.answers...)
			c, _ := newConnector(t, base, stripe.Config{})
			n, err := c.Release(context.Background(), "k")
			if n != tt.want || code(err) != tt.code {
				t.Fatalf("Release = %d, %v; want %d, code %q", n, err, tt.want, tt.code)
			}
			if connector.Retryable(err) != (tt.code == iotpay.EUNAVAILABLE) {
				t.Errorf("Retryable(%v) = %v", err, connector.Retryable(err))
			}
			// stripe-go's own retries are off, and nothing follows an
			// error.
			if n := hits.Load(); n != int64(len(tt.answers)) {
				t.Errorf("%d requests, want %d", n, len(tt.answers))
			}
		})
	}
}

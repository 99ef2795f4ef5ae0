package stripe_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/payment/connector/stripe"
)

const (
	whSecret = "whsec_test_iotpay"
	// apiVersion is stripe-go v82's; events of other versions parse too.
	apiVersion = "2025-08-27.basil"
)

// sign returns a Stripe-Signature header for payload, made as Stripe
// makes it (HMAC-SHA256 of "t.payload"), independently of stripe-go.
func sign(payload []byte, secret string, at time.Time) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%d.", at.Unix())
	mac.Write(payload)
	return fmt.Sprintf("t=%d,v1=%s", at.Unix(), hex.EncodeToString(mac.Sum(nil)))
}

// event is a webhook payload as Stripe sends it.
func event(id, typ, account, object string) []byte {
	acct := ""
	if account != "" {
		acct = `"account":"` + account + `",`
	}
	return []byte(`{"id":"` + id + `","object":"event",` + acct + `"api_version":"` + apiVersion + `","created":1733300000,` +
		`"data":{"object":` + object + `},"livemode":false,"pending_webhooks":1,` +
		`"request":{"id":"req_1","idempotency_key":"pay_1/authorize"},"type":"` + typ + `"}`)
}

func intentObject(status, fields string) string {
	return `{"id":"pi_3Q1","object":"payment_intent","amount":1250,"currency":"eur","capture_method":"manual",` +
		`"metadata":{"iotpay_key":"pay_1/authorize","iotpay_device":"dev_7"},"status":"` + status + `"` + fields + `}`
}

// The events of a payment, as Stripe sends them.
var (
	evCapturable = event("evt_1", "payment_intent.amount_capturable_updated", "",
		intentObject("requires_capture", `,"amount_capturable":1250,"amount_received":0`))
	evSucceeded = event("evt_2", "payment_intent.succeeded", "",
		intentObject("succeeded", `,"amount_capturable":0,"amount_received":1000`))
	evFailed = event("evt_3", "payment_intent.payment_failed", "",
		intentObject("requires_payment_method", `,"last_payment_error":{"type":"card_error","code":"card_declined","decline_code":"stolen_card","message":"Your card was declined."}`))
	evCanceled = event("evt_4", "payment_intent.canceled", "",
		intentObject("canceled", `,"cancellation_reason":"requested_by_customer"`))
	evRefunded = event("evt_5", "charge.refunded", "",
		`{"id":"ch_3Q1","object":"charge","amount":1000,"amount_captured":1000,"amount_refunded":400,"refunded":false,"payment_intent":"pi_3Q1","status":"succeeded"}`)
	evConnect = event("evt_6", "payment_intent.succeeded", "acct_1Merchant",
		intentObject("succeeded", `,"amount_received":1250`))
	evOther = event("evt_7", "customer.created", "", `{"id":"cus_1","object":"customer"}`)
	// An endpoint made for an older API version still delivers.
	evOldVersion = []byte(strings.Replace(string(evCanceled), apiVersion, "2020-08-27", 1))
	// A charge of the legacy Charges API: no PaymentIntent.
	evLegacyRefund = event("evt_8", "charge.refunded", "",
		`{"id":"ch_9","object":"charge","amount":500,"amount_refunded":500,"refunded":true,"payment_intent":null}`)
)

func webhookConnector(t testing.TB, secret string) *stripe.Connector {
	t.Helper()
	c, err := stripe.New(stripe.Config{Key: "sk_test_1", WebhookSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParseWebhookEvents(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    *stripe.Event
	}{
		{"amount_capturable_updated", evCapturable, &stripe.Event{ID: "evt_1", Type: stripe.EventCapturableUpdated,
			PaymentIntent: "pi_3Q1", Ref: "pi_3Q1", Status: connector.Authorized, Amount: 1250}},
		{"succeeded", evSucceeded, &stripe.Event{ID: "evt_2", Type: stripe.EventSucceeded,
			PaymentIntent: "pi_3Q1", Ref: "pi_3Q1", Status: connector.Captured, Amount: 1000}},
		{"payment_failed", evFailed, &stripe.Event{ID: "evt_3", Type: stripe.EventPaymentFailed,
			PaymentIntent: "pi_3Q1", Ref: "pi_3Q1", Status: connector.Declined, Code: "stolen_card", Message: "Your card was declined."}},
		{"canceled", evCanceled, &stripe.Event{ID: "evt_4", Type: stripe.EventCanceled,
			PaymentIntent: "pi_3Q1", Ref: "pi_3Q1", Status: connector.Voided}},
		{"charge.refunded", evRefunded, &stripe.Event{ID: "evt_5", Type: stripe.EventChargeRefunded,
			PaymentIntent: "pi_3Q1", Ref: "pi_3Q1", Status: connector.Refunded, Amount: 400}},
		{"connected account", evConnect, &stripe.Event{ID: "evt_6", Type: stripe.EventSucceeded,
			PaymentIntent: "pi_3Q1", Ref: "acct_1Merchant/pi_3Q1", Status: connector.Captured, Amount: 1250}},
		{"other type", evOther, &stripe.Event{ID: "evt_7", Type: "customer.created"}},
		{"older API version", evOldVersion, &stripe.Event{ID: "evt_4", Type: stripe.EventCanceled,
			PaymentIntent: "pi_3Q1", Ref: "pi_3Q1", Status: connector.Voided}},
		{"legacy charge refunded", evLegacyRefund, &stripe.Event{ID: "evt_8", Type: stripe.EventChargeRefunded,
			Status: connector.Refunded, Amount: 500}},
	}
	c := webhookConnector(t, whSecret)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.ParseWebhook(tt.payload, sign(tt.payload, whSecret, time.Now()))
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestParseWebhookRefused(t *testing.T) {
	now := time.Now()
	good := sign(evSucceeded, whSecret, now)
	tampered := []byte(strings.Replace(string(evSucceeded), `"amount_received":1000`, `"amount_received":9000`, 1))
	_, goodSig, _ := strings.Cut(good, ",")
	tests := []struct {
		name    string
		payload []byte
		header  string
		code    iotpay.Code
	}{
		{"no header", evSucceeded, "", iotpay.EUNAUTHORIZED},
		{"wrong secret", evSucceeded, sign(evSucceeded, "whsec_other", now), iotpay.EUNAUTHORIZED},
		{"too old", evSucceeded, sign(evSucceeded, whSecret, now.Add(-stripe.WebhookTolerance-time.Minute)), iotpay.EUNAUTHORIZED},
		{"tampered payload", tampered, good, iotpay.EUNAUTHORIZED},
		{"signature of another time", evSucceeded, fmt.Sprintf("t=%d,%s", now.Unix()+1, goodSig), iotpay.EUNAUTHORIZED},
		{"no timestamp", evSucceeded, goodSig, iotpay.EUNAUTHORIZED},
		{"only a v0 signature", evSucceeded, strings.Replace(good, "v1=", "v0=", 1), iotpay.EUNAUTHORIZED},
		{"garbage header", evSucceeded, "t=x,v1=zz,,", iotpay.EUNAUTHORIZED},
		{"signed, not JSON", []byte("hello"), sign([]byte("hello"), whSecret, now), iotpay.EINVALID},
		{"signed, not an event", []byte(`{"a":1}`), sign([]byte(`{"a":1}`), whSecret, now), iotpay.EINVALID},
		{"signed, intent event without an intent", event("evt_9", "payment_intent.succeeded", "", `{"id":"cus_1"}`),
			sign(event("evt_9", "payment_intent.succeeded", "", `{"id":"cus_1"}`), whSecret, now), iotpay.EINVALID},
		{"signed, bad account", event("evt_9", "payment_intent.succeeded", "acct/../x", intentObject("succeeded", "")),
			sign(event("evt_9", "payment_intent.succeeded", "acct/../x", intentObject("succeeded", "")), whSecret, now), iotpay.EINVALID},
	}
	c := webhookConnector(t, whSecret)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := c.ParseWebhook(tt.payload, tt.header)
			if code(err) != tt.code || ev != nil {
				t.Errorf("ParseWebhook = %+v, %v; want code %q", ev, err, tt.code)
			}
		})
	}

	// A rolled secret: Stripe signs with both for a while.
	both := sign(evSucceeded, "whsec_old", now) + "," + goodSig
	if _, err := c.ParseWebhook(evSucceeded, both); err != nil {
		t.Errorf("two signatures, one good: %v", err)
	}
	big := make([]byte, stripe.MaxWebhookBody+1)
	if _, err := c.ParseWebhook(big, sign(big, whSecret, now)); code(err) != iotpay.EINVALID {
		t.Errorf("oversized payload: %v, want EINVALID", err)
	}
	if _, err := webhookConnector(t, "").ParseWebhook(evSucceeded, good); code(err) != iotpay.EINTERNAL {
		t.Errorf("no secret configured: %v, want EINTERNAL", err)
	}
}

func TestWebhookHandler(t *testing.T) {
	now := time.Now()
	c := webhookConnector(t, whSecret)
	failing := errors.New("store down")
	tests := []struct {
		name    string
		method  string
		payload []byte
		header  string
		onErr   error
		status  int
		handled bool
	}{
		{"delivered", http.MethodPost, evSucceeded, sign(evSucceeded, whSecret, now), nil, http.StatusOK, true},
		{"other type delivered", http.MethodPost, evOther, sign(evOther, whSecret, now), nil, http.StatusOK, true},
		{"bad signature", http.MethodPost, evSucceeded, sign(evSucceeded, "whsec_other", now), nil, http.StatusUnauthorized, false},
		{"unsigned", http.MethodPost, evSucceeded, "", nil, http.StatusUnauthorized, false},
		{"bad payload", http.MethodPost, []byte("{"), sign([]byte("{"), whSecret, now), nil, http.StatusBadRequest, false},
		{"too large", http.MethodPost, make([]byte, stripe.MaxWebhookBody+1), "t=1,v1=00", nil, http.StatusRequestEntityTooLarge, false},
		{"callback failed", http.MethodPost, evSucceeded, sign(evSucceeded, whSecret, now), failing, http.StatusServiceUnavailable, true},
		{"GET", http.MethodGet, nil, "", nil, http.StatusMethodNotAllowed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []*stripe.Event
			h := stripe.WebhookHandler(c, func(ctx context.Context, ev *stripe.Event) error {
				got = append(got, ev)
				return tt.onErr
			})
			req := httptest.NewRequest(tt.method, "/webhooks/stripe", strings.NewReader(string(tt.payload)))
			if tt.header != "" {
				req.Header.Set("Stripe-Signature", tt.header)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tt.status {
				t.Errorf("status = %d, want %d", w.Code, tt.status)
			}
			if tt.handled != (len(got) == 1) || len(got) > 1 {
				t.Errorf("callback called %d times, want handled=%v", len(got), tt.handled)
			}
			if strings.Contains(w.Body.String(), "store down") || strings.Contains(w.Body.String(), "signature") {
				t.Errorf("body tells why: %q", w.Body.String())
			}
		})
	}
}

// TestWebhookHandlerServer: a real delivery over a loopback socket.
func TestWebhookHandlerServer(t *testing.T) {
	c := webhookConnector(t, whSecret)
	got := make(chan *stripe.Event, 1)
	srv := httptest.NewServer(stripe.WebhookHandler(c, func(ctx context.Context, ev *stripe.Event) error {
		got <- ev
		return nil
	}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(string(evFailed)))
	req.Header.Set("Stripe-Signature", sign(evFailed, whSecret, time.Now()))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	if ev := <-got; ev.Status != connector.Declined || ev.Code != "stolen_card" {
		t.Errorf("event = %+v", ev)
	}
}

package daemon_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iotpay/iotpay/payment/connector/stripe"
	"github.com/iotpay/iotpay/payment/connector/stripe/stripetest"
	"github.com/iotpay/iotpay/platform/daemon"
)

// stripeSigned signs payload as Stripe does (Stripe-Signature: t=…,v1=…).
func stripeSigned(secret string, payload []byte) string {
	ts := fmt.Sprint(time.Now().Unix())
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(payload)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// TestStripeWebhookVoidsALapsedHold: a payment authorized at Stripe
// (stripe-mock behind a proxy that makes its fixture a held card) is
// cancelled on Stripe's side; Stripe's signed webhook makes the ledger
// release the hold. A webhook with a bad signature changes nothing.
func TestStripeWebhookVoidsALapsedHold(t *testing.T) {
	const secret = "whsec_test_secret"
	base := stripetest.Start(t)
	proxy := stripetest.Rewrite(t, base, func(r *stripetest.Request, obj map[string]any) {
		if obj["object"] == "payment_intent" {
			obj["status"], obj["amount"], obj["amount_capturable"], obj["last_payment_error"] = "requires_capture", 900, 900, nil
		}
	})
	st, err := stripe.New(stripe.Config{Key: stripetest.Key, BaseURL: proxy, WebhookSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	s := newRoutedShop(t, map[string]any{"default": []string{"stripe"}}, st)
	p := s.pay(900, false, "")
	if p.Status != "authorized" || p.Connector != "stripe" || !strings.HasPrefix(p.ConnectorRef, "pi_") {
		t.Fatalf("payment %+v", p)
	}
	event := []byte(`{"id":"evt_1","object":"event","type":"payment_intent.canceled","api_version":"2025-01-27.acacia","created":1,
		"data":{"object":{"id":"` + p.ConnectorRef + `","object":"payment_intent","amount":900,"amount_capturable":0,"amount_received":0,
		"currency":"eur","status":"canceled"}}}`)
	post := func(sig string) int {
		req, _ := http.NewRequest("POST", s.url+daemon.StripeWebhookPath, strings.NewReader(string(event)))
		req.Header.Set("Stripe-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(stripeSigned("whsec_other", event)); code != http.StatusUnauthorized {
		t.Fatalf("a forged webhook: %d", code)
	}
	if got := s.payment(p.ID); got.Status != "authorized" {
		t.Fatalf("a forged webhook changed the payment: %+v", got)
	}
	if code := post(stripeSigned(secret, event)); code != http.StatusOK {
		t.Fatalf("webhook: %d", code)
	}
	if got := s.payment(p.ID); got.Status != "voided" || got.Held != 0 {
		t.Fatalf("after Stripe cancelled it: %+v", got)
	}
	if code := post(stripeSigned(secret, event)); code != http.StatusOK { // again: nothing more
		t.Fatalf("webhook again: %d", code)
	}
}

func (s *routedShop) payment(id string) routedPayment {
	s.t.Helper()
	var p routedPayment
	s.must("GET", "/v1/payments/"+id, nil, &p)
	return p
}

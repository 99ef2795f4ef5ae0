package daemon_test

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotpay/iotpay/payment/connector/stripe"
	"github.com/iotpay/iotpay/payment/connector/stripe/stripetest"
	"github.com/iotpay/iotpay/platform/rules"
	"github.com/iotpay/iotpay/wire"
)

// heldCard makes stripe-mock, which is stateless, answer as Stripe would
// for one PaymentIntent on a card that allows incremental authorization:
// it keeps the intent's amount, capture and status across calls, and
// finds it by its metadata in a search. With lose set, the answer to
// every creation arrives after the connector stopped waiting (the intent
// is made all the same).
type heldCard struct {
	mu               sync.Mutex
	amount, received int64
	status, key      string
	lose             bool
	cancels          int
}

func (h *heldCard) rewrite(r *stripetest.Request, obj map[string]any) {
	h.mu.Lock()
	lose := false
	switch {
	case r.Method == "POST" && r.Path == "/v1/payment_intents":
		h.amount, _ = strconv.ParseInt(r.Form.Get("amount"), 10, 64)
		h.status, h.received, h.key = "requires_capture", 0, r.Form.Get("metadata["+stripe.MetaKey+"]")
		if r.Form.Get("capture_method") == "automatic" {
			h.status, h.received = "succeeded", h.amount
		}
		lose = h.lose
	case strings.HasSuffix(r.Path, "/increment_authorization"):
		h.amount, _ = strconv.ParseInt(r.Form.Get("amount"), 10, 64)
	case strings.HasSuffix(r.Path, "/capture"):
		h.received = h.amount
		if v := r.Form.Get("amount_to_capture"); v != "" {
			h.received, _ = strconv.ParseInt(v, 10, 64)
		}
		h.status = "succeeded"
	case strings.HasSuffix(r.Path, "/cancel"):
		h.status = "canceled"
		h.cancels++
	case strings.HasSuffix(r.Path, "/search"):
		if data, _ := obj["data"].([]any); len(data) > 0 {
			if pi, ok := data[0].(map[string]any); ok && h.key != "" {
				h.fill(pi)
				obj["data"] = data[:1]
			}
		}
	}
	if obj["object"] == "payment_intent" {
		h.fill(obj)
	}
	h.mu.Unlock()
	if lose {
		time.Sleep(600 * time.Millisecond)
	}
}

func (h *heldCard) fill(pi map[string]any) {
	capturable := int64(0)
	if h.status == "requires_capture" {
		capturable = h.amount
	}
	pi["amount"], pi["amount_capturable"], pi["amount_received"], pi["status"] = h.amount, capturable, h.received, h.status
	pi["last_payment_error"] = nil
	pi["metadata"] = map[string]any{stripe.MetaKey: h.key}
	pi["latest_charge"] = map[string]any{"id": "ch_1", "object": "charge", "payment_method_details": map[string]any{
		"type": "card", "card": map[string]any{"incremental_authorization": map[string]any{"status": "available"}}}}
}

func (h *heldCard) get() (amount, received int64, status string, cancels int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.amount, h.received, h.status, h.cancels
}

// TestEVSessionAtStripe: an EV charging session on a card at Stripe: the
// hold is a PaymentIntent held for manual capture, the increment is asked
// of Stripe (incremental authorization) before the ledger's hold grows,
// and the end's capture follows at Stripe.
func TestEVSessionAtStripe(t *testing.T) {
	card := &heldCard{}
	st, err := stripe.New(stripe.Config{Key: stripetest.Key, BaseURL: stripetest.Rewrite(t, stripetest.Start(t), card.rewrite)})
	if err != nil {
		t.Fatal(err)
	}
	s := newRoutedShop(t, map[string]any{"default": []string{"stripe"}}, st)
	s.must("PUT", "/v1/tariffs/ev", flat("ev", 35), nil)
	u := s.unit(rules.EVChargerRules(), 10_000)
	sess := map[string]string{"session": "s-1"}
	start := u.event("session_start", nil, sess)
	u.want(start, wire.Approved, "hold", 3000)
	if amount, _, status, _ := card.get(); amount != 3000 || status != "requires_capture" {
		t.Fatalf("at Stripe: %d %s", amount, status)
	}
	u.want(u.event("session_update", map[string]int64{"wh": 100_000}, sess), wire.Approved, "increment", 1500)
	if amount, _, _, _ := card.get(); amount != 4500 {
		t.Fatalf("at Stripe after the increment: %d", amount)
	}
	if p := s.payment(start.PaymentID); p.Held != 4500 || p.Connector != "stripe" {
		t.Fatalf("after the increment: %+v", p)
	}
	u.want(u.event("session_end", map[string]int64{"wh": 120_000}, sess), wire.Approved, "capture", 4200)
	if _, received, status, _ := card.get(); received != 4200 || status != "succeeded" {
		t.Fatalf("at Stripe after the end: %d %s", received, status)
	}
	if fs := s.followUps("pending"); len(fs) != 0 {
		t.Fatalf("follow-ups left: %+v", fs)
	}
	if b := s.balance(s.card); b != -4200 {
		t.Fatalf("card %d", b)
	}
	// An increment the mandate refuses (300 kWh are worth 105.00: 85.00
	// more than the 30.00 held passes the 100.00 per payment) is not
	// asked of Stripe.
	sess = map[string]string{"session": "s-2"}
	u.want(u.event("session_start", nil, sess), wire.Approved, "hold", 3000)
	u.want(u.event("session_update", map[string]int64{"wh": 300_000}, sess), wire.Declined, "increment", 0)
	if amount, _, _, _ := card.get(); amount != 3000 {
		t.Fatalf("Stripe was asked for an increment the mandate refuses: %d held", amount)
	}
	u.want(u.event("session_end", map[string]int64{"wh": 50_000}, sess), wire.Approved, "capture", 1750)
	if _, received, _, _ := card.get(); received != 1750 {
		t.Fatalf("captured at Stripe %d", received)
	}
}

// TestLostStripeAnswerReleased: Stripe makes the authorization but its
// answer never arrives; the sale fails over to the acquirer and is
// charged there once; the hold left at Stripe is found by the operation's
// key and cancelled.
func TestLostStripeAnswerReleased(t *testing.T) {
	card := &heldCard{lose: true}
	st, err := stripe.New(stripe.Config{Key: stripetest.Key, BaseURL: stripetest.Rewrite(t, stripetest.Start(t), card.rewrite),
		Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sim, acq := acquirer(t, "acquirer")
	s := newRoutedShop(t, map[string]any{"default": []string{"stripe", "acquirer"}}, st, acq)
	u := s.unit(rules.VendingRules("http://127.0.0.1:1/x"), 1000)
	rc := u.event("dispense", nil, map[string]string{"sku": "B1"})
	u.want(rc, wire.Approved, "charge", 300)
	p := s.payment(rc.PaymentID)
	if p.Connector != "acquirer" || p.Status != "captured" {
		t.Fatalf("payment %+v", p)
	}
	waitFor(t, func() bool { a, _ := sim.Auth(p.ConnectorRef); return a.Captured == 300 })
	waitFor(t, func() bool { _, _, status, _ := card.get(); return status == "canceled" })
	waitFor(t, func() bool { return len(s.followUps("pending")) == 0 })
	if _, _, _, cancels := card.get(); cancels != 1 || len(sim.Authorizations()) != 1 {
		t.Fatalf("%d cancels at Stripe, %d authorizations at the acquirer", cancels, len(sim.Authorizations()))
	}
	if b := s.balance(s.card); b != -300 {
		t.Fatalf("card %d", b)
	}
}

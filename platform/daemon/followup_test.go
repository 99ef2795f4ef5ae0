package daemon_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/iotpay/iotpay/device"
	devmqtt "github.com/iotpay/iotpay/device/mqtt"
	"github.com/iotpay/iotpay/payment/connector/iso8583"
	"github.com/iotpay/iotpay/payment/connector/iso8583/acquirersim"
	"github.com/iotpay/iotpay/platform/rules"
	"github.com/iotpay/iotpay/wire"
)

// routedUnit is a device of the routed shop's product, enrolled over
// MQTT, with a mandate on the card.
type routedUnit struct {
	s   *routedShop
	dev *device.Device
	tr  *devmqtt.Transport
}

func (s *routedShop) unit(rs rules.Ruleset, perPayment int64) *routedUnit {
	s.t.Helper()
	s.must("PUT", "/v1/products/"+string(s.product)+"/profile", map[string]any{"rules": rs.Rules}, nil)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		s.t.Fatal(err)
	}
	f := &fixture{platform: s.platform}
	dev, tr := f.enroll(s.product, key)
	s.must("POST", "/v1/mandates", map[string]any{"device": dev.ID(), "payer": s.card, "per_payment_limit": perPayment,
		"daily_limit": perPayment * 10, "monthly_limit": perPayment * 100}, nil)
	return &routedUnit{s: s, dev: dev, tr: tr}
}

func (u *routedUnit) event(typ string, num map[string]int64, str map[string]string) *wire.Receipt {
	u.s.t.Helper()
	rc, err := u.dev.Pay(context.Background(), u.tr, device.Payment{Event: &wire.Event{Type: typ, Num: num, Str: str}})
	if err != nil {
		u.s.t.Fatalf("%s: %v", typ, err)
	}
	return rc
}

func (u *routedUnit) want(rc *wire.Receipt, outcome wire.Outcome, action string, amount int64) {
	u.s.t.Helper()
	if rc.Outcome != outcome || rc.Action != action || rc.AmountMinor != amount {
		u.s.t.Fatalf("receipt %s %s %d (%s %s), want %s %s %d", rc.Outcome, rc.Action, rc.AmountMinor, rc.Code, rc.Reason,
			outcome, action, amount)
	}
}

type followUpView struct {
	ID, Payment, Connector, Ref, Op, Key, Status string
	Amount                                       int64
	Attempts                                     int
	LastError                                    string `json:"last_error"`
}

func (s *routedShop) followUps(status string) []followUpView {
	s.t.Helper()
	var out struct{ Data []followUpView }
	s.must("GET", "/v1/follow-ups?status="+status, nil, &out)
	return out.Data
}

// TestEVSessionAtTheAcquirer: an EV charging session whose payer is a
// card: the hold is an authorization at the acquirer (0100), an increment
// the acquirer cannot make is declined and moves nothing, and the end
// captures what was delivered with a completion (0220) that releases the
// rest — the ledger's capture and the acquirer's agree.
func TestEVSessionAtTheAcquirer(t *testing.T) {
	sim, acq := acquirer(t, "acquirer")
	s := newRoutedShop(t, map[string]any{"default": []string{"acquirer"}}, acq)
	s.must("PUT", "/v1/tariffs/ev", flat("ev", 35), nil)
	u := s.unit(rules.EVChargerRules(), 10_000)
	sess := map[string]string{"session": "s-1"}
	start := u.event("session_start", nil, sess)
	u.want(start, wire.Approved, "hold", 3000)
	var p routedPayment
	s.must("GET", "/v1/payments/"+start.PaymentID, nil, &p)
	if p.Connector != "acquirer" || p.Status != "authorized" || p.Held != 3000 {
		t.Fatalf("session's payment %+v", p)
	}
	if a, ok := sim.Auth(p.ConnectorRef); !ok || a.Amount != 3000 || a.Captured != 0 {
		t.Fatalf("at the acquirer: %+v %v", a, ok)
	}
	// 100 kWh are worth 35.00, more than the 30.00 held: the acquirer
	// cannot raise an authorization, so the increment is declined.
	u.want(u.event("session_update", map[string]int64{"wh": 100_000}, sess), wire.Declined, "increment", 0)
	s.must("GET", "/v1/payments/"+start.PaymentID, nil, &p)
	if p.Held != 3000 {
		t.Fatalf("after a declined increment: %+v", p)
	}
	// The session ends at 80 kWh: 28.00 captured, the rest released.
	u.want(u.event("session_end", map[string]int64{"wh": 80_000}, sess), wire.Approved, "capture", 2800)
	waitFor(t, func() bool { a, _ := sim.Auth(p.ConnectorRef); return a.Captured == 2800 })
	if n := sim.Count("0220"); n != 1 {
		t.Fatalf("%d completions", n)
	}
	if fs := s.followUps("pending"); len(fs) != 0 {
		t.Fatalf("follow-ups left: %+v", fs)
	}
	if b := s.balance(s.card); b != -2800 {
		t.Fatalf("card %d", b)
	}
	// A session that delivers nothing is released at the acquirer.
	sess = map[string]string{"session": "s-2"}
	start = u.event("session_start", nil, sess)
	u.want(start, wire.Approved, "hold", 3000)
	u.want(u.event("session_end", map[string]int64{"wh": 0}, sess), wire.Approved, "capture", 0)
	s.must("GET", "/v1/payments/"+start.PaymentID, nil, &p)
	waitFor(t, func() bool { a, _ := sim.Auth(p.ConnectorRef); return a.Reversed })
}

// TestSaleCapturedOnceTheAcquirerAnswers: a device's sale is booked and
// its receipt signed; the completion that follows gets no answer, so the
// follow-up stays pending and is retried with back-off until the acquirer
// answers. A completion the acquirer refuses is failed until an operator
// retries it.
func TestSaleCapturedOnceTheAcquirerAnswers(t *testing.T) {
	sim, acq := acquirer(t, "acquirer", acquirersim.Rule{Match: acquirersim.Match{MTI: []string{"0220"}}, Action: acquirersim.Timeout, Times: 1})
	s := newRoutedShop(t, map[string]any{"default": []string{"acquirer"}}, acq)
	u := s.unit(rules.VendingRules("http://127.0.0.1:1/x"), 1000)
	rc := u.event("dispense", nil, map[string]string{"sku": "B1"})
	u.want(rc, wire.Approved, "charge", 300)
	var p routedPayment
	s.must("GET", "/v1/payments/"+rc.PaymentID, nil, &p)
	fs := s.followUps("pending")
	if len(fs) != 1 || fs[0].Op != "capture" || fs[0].Payment != rc.PaymentID || fs[0].Amount != 300 || fs[0].Attempts != 1 ||
		fs[0].LastError == "" {
		t.Fatalf("pending follow-ups %+v", fs)
	}
	waitFor(t, func() bool { a, _ := sim.Auth(p.ConnectorRef); return a.Captured == 300 })
	waitFor(t, func() bool { return len(s.followUps("pending")) == 0 })

	// Completions refused (a merchant set up wrong): failed, then retried
	// by the operator once mended.
	if err := sim.SetRules([]acquirersim.Rule{{Match: acquirersim.Match{MTI: []string{"0220"}}, Action: acquirersim.Decline, Code: "12"}}); err != nil {
		t.Fatal(err)
	}
	rc = u.event("dispense", nil, map[string]string{"sku": "A2"})
	u.want(rc, wire.Approved, "charge", 250)
	s.must("GET", "/v1/payments/"+rc.PaymentID, nil, &p)
	failed := s.followUps("failed")
	if len(failed) != 1 || failed[0].Payment != rc.PaymentID || !strings.Contains(failed[0].LastError, "12") {
		t.Fatalf("failed follow-ups %+v", failed)
	}
	if st := s.api("POST", "/v1/follow-ups/fup_01jd0000000000000000000000/retry", nil, nil); st != 404 {
		t.Fatalf("retry of no follow-up: %d", st)
	}
	if err := sim.SetRules(nil); err != nil {
		t.Fatal(err)
	}
	var retried struct{ Done bool }
	s.must("POST", "/v1/follow-ups/"+failed[0].ID+"/retry", nil, &retried)
	if a, _ := sim.Auth(p.ConnectorRef); !retried.Done || a.Captured != 250 {
		t.Fatalf("retried: %+v, captured %d", retried, a.Captured)
	}
	if fs := s.followUps("failed"); len(fs) != 0 {
		t.Fatalf("failed after the retry: %+v", fs)
	}
	if st := s.api("POST", "/v1/follow-ups/"+failed[0].ID+"/retry", nil, nil); st != 404 {
		t.Fatalf("retry of a done follow-up: %d", st)
	}
	if b := s.balance(s.card); b != -550 {
		t.Fatalf("card %d", b)
	}
}

// TestAcquirerPaymentAfterARestart: iotpayd authorizes at the acquirer,
// stops, and starts again with a new client that remembers nothing in
// memory: it captures and refunds that authorization from what it kept in
// the store (the original data elements), and the completion names the
// original.
func TestAcquirerPaymentAfterARestart(t *testing.T) {
	sim, acq := acquirer(t, "acquirer")
	s := newRoutedShop(t, map[string]any{"default": []string{"acquirer"}}, acq)
	held := s.pay(3000, false, "hold-1")
	sold := s.pay(1200, true, "sale-1")
	if held.Status != "authorized" || sold.Status != "captured" {
		t.Fatalf("before the restart: %+v %+v", held, sold)
	}
	acq.Close()
	acq2, err := iso8583.New(iso8583.Config{Name: "acquirer", Addr: sim.Addr(), MerchantID: "IOTPAY-TEST", TerminalID: "TERM0001",
		AcquirerID: "123456", Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { acq2.Close() })
	s.restart(acq2)
	s.must("POST", "/v1/payments/"+held.ID+"/capture", map[string]any{"amount": 2000}, nil)
	s.must("POST", "/v1/payments/"+held.ID+"/refund", map[string]any{"amount": 500}, nil)
	s.must("POST", "/v1/payments/"+sold.ID+"/refund", map[string]any{"amount": 1200}, nil)
	if a, _ := sim.Auth(held.ConnectorRef); a.Captured != 2000 || a.Refunded != 500 {
		t.Fatalf("held payment at the acquirer after the restart: %+v", a)
	}
	if a, _ := sim.Auth(sold.ConnectorRef); a.Refunded != 1200 {
		t.Fatalf("sale at the acquirer after the restart: %+v", a)
	}
	var completion *iso8583.Message
	for _, m := range sim.Received() {
		if m.MTI == "0220" {
			completion = m
		}
	}
	orig, err := iso8583.ParseOriginalData(completion.Get(iso8583.FieldOriginalData))
	if err != nil || orig.MTI != "0100" {
		t.Fatalf("completion's original data %+v %v", orig, err)
	}
	if b := s.balance(s.card); b != -(2000 - 500) {
		t.Fatalf("card %d", b)
	}
}

// TestLapsedHoldReleasedAtTheAcquirer: a hold the ledger lets lapse is
// reversed at the acquirer too.
func TestLapsedHoldReleasedAtTheAcquirer(t *testing.T) {
	sim, acq := acquirer(t, "acquirer")
	s := newRoutedShop(t, map[string]any{"default": []string{"acquirer"}}, acq)
	var p routedPayment
	s.must("POST", "/v1/payments", map[string]any{"device": s.device, "amount": 700, "currency": "EUR", "hold_seconds": 1}, &p)
	if p.Status != "authorized" || p.Connector != "acquirer" {
		t.Fatalf("held: %+v", p)
	}
	// The reversal reaches the acquirer before its follow-up is done with.
	waitFor(t, func() bool { a, _ := sim.Auth(p.ConnectorRef); return a.Reversed && len(s.followUps("pending")) == 0 })
	s.must("GET", "/v1/payments/"+p.ID, nil, &p)
	if p.Status != "expired" || len(s.followUps("pending")) != 0 {
		t.Fatalf("after the lapse: %+v, follow-ups %+v", p, s.followUps("pending"))
	}
}

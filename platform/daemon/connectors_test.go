package daemon_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/payment/connector/iso8583"
	"github.com/iotpay/iotpay/payment/connector/iso8583/acquirersim"
	"github.com/iotpay/iotpay/payment/connector/stripe"
	"github.com/iotpay/iotpay/platform/daemon"
	"github.com/iotpay/iotpay/platform/rules"
	"github.com/iotpay/iotpay/wire"
)

const testCard = "4111111111111111"

// acquirer starts an acquirer simulator with rules and a client
// connector of that name to it.
func acquirer(t *testing.T, name string, rules ...acquirersim.Rule) (*acquirersim.Server, *iso8583.Client) {
	t.Helper()
	sim, err := acquirersim.Start(acquirersim.Config{Addr: "127.0.0.1:0", Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	c, err := iso8583.New(iso8583.Config{Name: name, Addr: sim.Addr(), MerchantID: "IOTPAY-TEST", TerminalID: "TERM0001", AcquirerID: "123456",
		Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return sim, c
}

// routedShop is a platform with connectors, a merchant, a device with a
// mandate on a payer account that is a card at every connector.
type routedShop struct {
	*platform
	cfg            daemon.Config
	merchant, card iotpay.AccountID
	product        iotpay.ProductID
	device         iotpay.DeviceID
}

func newRoutedShop(t *testing.T, table map[string]any, cs ...connector.Connector) *routedShop {
	t.Helper()
	cfg := daemon.Config{DataDir: filepath.Join(t.TempDir(), "data"), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
		DeviceHTTPAddr: "127.0.0.1:0", CoAPAddr: "127.0.0.1:0", Connectors: cs, WatchInterval: 100 * time.Millisecond}
	d, err := daemon.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	p := &platform{t: t, d: d, url: "http://" + d.HTTPAddr()}
	t.Cleanup(func() { p.d.Close() }) // the daemon running then (restart replaces it)
	t.Cleanup(p.assertBalanced)
	s := &routedShop{platform: p, cfg: cfg}
	var acc struct{ ID iotpay.AccountID }
	p.must("POST", "/v1/accounts", map[string]any{"name": "merchant", "kind": "merchant", "currency": "EUR"}, &acc)
	s.merchant = acc.ID
	sources := map[string]string{}
	for _, c := range cs {
		src := testCard
		if strings.HasPrefix(c.Name(), "stripe") {
			src = "pm_card_visa"
		}
		sources[c.Name()] = src
	}
	p.must("POST", "/v1/accounts", map[string]any{"name": "Alice's card", "kind": "payer", "currency": "EUR", "sources": sources}, &acc)
	s.card = acc.ID
	var prod struct{ ID iotpay.ProductID }
	p.must("POST", "/v1/products", map[string]any{"name": "charger", "merchant_account": s.merchant,
		"pricing": map[string]any{"mode": "amount", "currency": "EUR"}}, &prod)
	s.product = prod.ID
	var created struct{ Device struct{ ID iotpay.DeviceID } }
	p.must("POST", "/v1/devices", map[string]any{"product": prod.ID, "name": "c1"}, &created)
	s.device = created.Device.ID
	p.must("POST", "/v1/mandates", map[string]any{"device": s.device, "payer": s.card, "per_payment_limit": 10_000,
		"daily_limit": 50_000, "monthly_limit": 100_000}, nil)
	p.must("PUT", "/v1/routing", table, nil)
	return s
}

// restart stops the platform and starts it again on the same data,
// with connectors cs (new clients: nothing kept in memory), keeping the
// operator's API key.
func (s *routedShop) restart(cs ...connector.Connector) {
	s.t.Helper()
	key := s.d.APIKey
	if err := s.d.Close(); err != nil {
		s.t.Fatal(err)
	}
	s.cfg.Connectors = cs
	d, err := daemon.Open(context.Background(), s.cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		d.Close()
		s.t.Fatal(err)
	}
	d.APIKey = key
	s.d, s.url = d, "http://"+d.HTTPAddr()
}

type routedPayment struct {
	ID, Status, Connector, Reason string
	ConnectorRef                  string `json:"connector_ref"`
	DeclineCode                   string `json:"decline_code"`
	Amount, Captured, Held        int64
}

func (s *routedShop) pay(amount int64, capture bool, key string) routedPayment {
	s.t.Helper()
	var p routedPayment
	s.mustKey("POST", "/v1/payments", map[string]any{"device": s.device, "amount": amount, "currency": "EUR", "capture": capture}, &p, key)
	return p
}

// mustKey is must with an Idempotency-Key.
func (s *routedShop) mustKey(method, path string, in, out any, key string) {
	s.t.Helper()
	if st := s.apiKey(method, path, in, out, key); st >= 300 {
		s.t.Fatalf("%s %s: status %d", method, path, st)
	}
}

// TestFailoverOneCharge: the first acquirer never answers; the payment
// times out there (and is reversed), fails over to the second with the
// same key, and is charged exactly once; asked again with the same
// Idempotency-Key it is the same payment, charged once still.
func TestFailoverOneCharge(t *testing.T) {
	down, a := acquirer(t, "acquirer-a", acquirersim.Rule{Action: acquirersim.Timeout})
	up, b := acquirer(t, "acquirer-b")
	s := newRoutedShop(t, map[string]any{"default": []string{"acquirer-a", "acquirer-b"}}, a, b)
	p := s.pay(1234, true, "sale-1")
	if p.Status != "captured" || p.Connector != "acquirer-b" || p.Captured != 1234 || p.ConnectorRef == "" {
		t.Fatalf("payment %+v", p)
	}
	if got := s.pay(1234, true, "sale-1"); got.ID != p.ID {
		t.Fatalf("the same request again made payment %s, not %s", got.ID, p.ID)
	}
	if n := len(up.Standing()); n != 1 {
		t.Fatalf("the healthy acquirer holds %d authorizations, want 1", n)
	}
	if n := len(down.Standing()); n != 0 || down.Count("0400") == 0 {
		t.Fatalf("the acquirer that timed out holds %d authorizations after %d reversals", n, down.Count("0400"))
	}
	if b := s.balance(s.merchant); b != 1234 {
		t.Fatalf("merchant %d, want one charge of 1234", b)
	}
	if b := s.balance(s.card); b != -1234 {
		t.Fatalf("card account %d, want -1234 (owed by the acquirer)", b)
	}
	var health struct {
		Data []struct {
			Name   string
			Errors int64
			State  string
		}
	}
	s.must("GET", "/v1/connectors", nil, &health)
	if len(health.Data) != 2 || health.Data[0].Name != "acquirer-a" || health.Data[0].Errors == 0 {
		t.Fatalf("health %+v", health.Data)
	}
}

// TestAcquirerDeclineCaptureRefund: a decline is recorded with the
// acquirer's code and moves nothing; an authorization is captured in part
// and refunded through the acquirer (0220, 0200 refund).
func TestAcquirerDeclineCaptureRefund(t *testing.T) {
	sim, acq := acquirer(t, "acquirer", acquirersim.Rule{Match: acquirersim.Match{AmountMin: 5100, AmountMax: 5100}, Action: acquirersim.Decline, Code: "51"})
	s := newRoutedShop(t, map[string]any{"default": []string{"acquirer"}}, acq)
	if p := s.pay(5100, true, ""); p.Status != "declined" || p.DeclineCode != "connector_declined" || !strings.Contains(p.Reason, "51") {
		t.Fatalf("declined: %+v", p)
	}
	if b := s.balance(s.card); b != 0 {
		t.Fatalf("a decline moved %d", b)
	}
	p := s.pay(3000, false, "hold-1")
	if p.Status != "authorized" || p.Held != 3000 {
		t.Fatalf("authorized: %+v", p)
	}
	s.must("POST", "/v1/payments/"+p.ID+"/capture", map[string]any{"amount": 2000}, nil)
	s.must("POST", "/v1/payments/"+p.ID+"/refund", map[string]any{"amount": 500}, nil)
	auth, ok := sim.Auth(p.ConnectorRef)
	if !ok || auth.Captured != 2000 || auth.Refunded != 500 {
		t.Fatalf("at the acquirer: %+v %v", auth, ok)
	}
	if b := s.balance(s.merchant); b != 1500 {
		t.Fatalf("merchant %d", b)
	}
}

// TestFailoverFromAStripeThatIsDown: Stripe unreachable (a closed port):
// the payment fails over to the acquirer, charged once there.
func TestFailoverFromAStripeThatIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	st, err := stripe.New(stripe.Config{Key: "sk_test_123", BaseURL: dead, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sim, acq := acquirer(t, "acquirer")
	s := newRoutedShop(t, map[string]any{"default": []string{"stripe", "acquirer"}}, st, acq)
	p := s.pay(700, true, "")
	if p.Status != "captured" || p.Connector != "acquirer" || len(sim.Standing()) != 1 {
		t.Fatalf("payment %+v, %d at the acquirer", p, len(sim.Standing()))
	}
}

// TestReconcile: the acquirer's settlement, as CSV and as camt.053,
// matched against the ledger: every capture and refund matched; a
// report with an amount changed, a payment left out and one the ledger
// does not know is reported as such.
func TestReconcile(t *testing.T) {
	sim, acq := acquirer(t, "acquirer")
	s := newRoutedShop(t, map[string]any{"default": []string{"acquirer"}}, acq)
	p1, p2 := s.pay(1250, true, ""), s.pay(800, true, "")
	s.must("POST", "/v1/payments/"+p2.ID+"/refund", map[string]any{"amount": 300}, nil)
	day := time.Now().UTC().Format("2006-01-02")
	line := func(ref, amount, typ string) string { return ref + "," + amount + ",EUR," + day + "," + typ + "\n" }
	header := "reference,amount,currency,date,type\n"
	type report struct {
		OK                                       bool
		Matched, Missing, Unexpected, Mismatched []any
	}
	post := func(body, contentType string) report {
		t.Helper()
		var r report
		req, _ := http.NewRequest("POST", s.url+"/v1/reconciliations/acquirer", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+s.d.APIKey)
		req.Header.Set("Content-Type", contentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != 200 {
			t.Fatalf("reconcile: %d %v", resp.StatusCode, err)
		}
		return r
	}
	clean := header + line(p1.ConnectorRef, "12.50", "capture") + line(p2.ConnectorRef, "8.00", "capture") + line(p2.ConnectorRef, "3.00", "refund")
	if r := post(clean, "text/csv"); !r.OK || len(r.Matched) != 3 {
		t.Fatalf("clean report: %+v", r)
	}
	dirty := header + line(p1.ConnectorRef, "12.51", "capture") + line("999999999999", "1.00", "capture") + line(p2.ConnectorRef, "3.00", "refund")
	if r := post(dirty, "text/csv"); r.OK || len(r.Mismatched) != 1 || len(r.Missing) != 1 || len(r.Unexpected) != 1 || len(r.Matched) != 1 {
		t.Fatalf("dirty report: %+v", r)
	}
	camt := `<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt><GrpHdr><MsgId>S1</MsgId><CreDtTm>` + day + `T18:00:00Z</CreDtTm></GrpHdr>
<Stmt><Id>1</Id><CreDtTm>` + day + `T18:00:00Z</CreDtTm><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct>
<Ntry><Amt Ccy="EUR">12.50</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>` + day + `</Dt></BookgDt><BkTxCd/>
<NtryDtls><TxDtls><Refs><AcctSvcrRef>` + p1.ConnectorRef + `</AcctSvcrRef></Refs><Amt Ccy="EUR">12.50</Amt></TxDtls></NtryDtls></Ntry>
<Ntry><Amt Ccy="EUR">8.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>` + day + `</Dt></BookgDt><BkTxCd/>
<NtryDtls><TxDtls><Refs><AcctSvcrRef>` + p2.ConnectorRef + `</AcctSvcrRef></Refs><Amt Ccy="EUR">8.00</Amt></TxDtls></NtryDtls></Ntry>
<Ntry><Amt Ccy="EUR">3.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>` + day + `</Dt></BookgDt><BkTxCd/>
<NtryDtls><TxDtls><Refs><AcctSvcrRef>` + p2.ConnectorRef + `</AcctSvcrRef></Refs><Amt Ccy="EUR">3.00</Amt></TxDtls></NtryDtls></Ntry>
</Stmt></BkToCstmrStmt></Document>`
	if r := post(camt, "application/xml"); !r.OK || len(r.Matched) != 3 {
		t.Fatalf("camt.053 report: %+v", r)
	}
	_ = sim
}

// TestDevicePaysThroughTheAcquirer: a vending machine whose payer is a
// card pays over MQTT; the sale is authorized at the acquirer before the
// writer decides, booked, then captured there. A tampered machine's sale
// is declined by risk control and its authorization released; the
// device's retry of a request is one authorization.
func TestDevicePaysThroughTheAcquirer(t *testing.T) {
	sim, acq := acquirer(t, "acquirer")
	s := newRoutedShop(t, map[string]any{"default": []string{"acquirer"}}, acq)
	s.must("PUT", "/v1/products/"+string(s.product)+"/profile", map[string]any{"rules": rules.VendingRules("http://127.0.0.1:1/x").Rules,
		"risk": map[string]any{"decline_tamper": true}}, nil)
	f := &fixture{platform: s.platform}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	dev, tr := f.enroll(s.product, key)
	s.must("POST", "/v1/mandates", map[string]any{"device": dev.ID(), "payer": s.card, "per_payment_limit": 1000,
		"daily_limit": 5000, "monthly_limit": 50000}, nil)
	signed, err := dev.Sign(device.Payment{Event: &wire.Event{Type: "dispense", Str: map[string]string{"sku": "B1"}}})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := dev.Send(context.Background(), tr, signed)
	if err != nil || rc.Outcome != wire.Approved || rc.AmountMinor != 300 {
		t.Fatalf("sale: %+v %v", rc, err)
	}
	var p routedPayment
	s.must("GET", "/v1/payments/"+rc.PaymentID, nil, &p)
	if p.Connector != "acquirer" || p.Status != "captured" {
		t.Fatalf("payment %+v", p)
	}
	waitFor(t, func() bool { a, ok := sim.Auth(p.ConnectorRef); return ok && a.Captured == 300 })
	// The device resends the same bytes (a receipt lost): the same answer,
	// no second authorization.
	if again, err := dev.Send(context.Background(), tr, signed); err != nil || again.PaymentID != rc.PaymentID || len(sim.Authorizations()) != 1 {
		t.Fatalf("redelivery: %+v %v, %d authorizations", again, err, len(sim.Authorizations()))
	}
	// Tampered: declined by risk, released at the acquirer.
	rc, err = dev.Pay(context.Background(), tr, device.Payment{Event: &wire.Event{Type: "dispense", Str: map[string]string{"sku": "A1"}},
		Report: &wire.Report{Tamper: true}})
	if err != nil || rc.Outcome != wire.Declined {
		t.Fatalf("tampered sale: %+v %v", rc, err)
	}
	waitFor(t, func() bool { return len(sim.Standing()) == 1 && len(sim.Authorizations()) == 2 })
	if b := s.balance(s.card); b != -300 {
		t.Fatalf("card account %d", b)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

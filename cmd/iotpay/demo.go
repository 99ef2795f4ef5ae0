package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	"github.com/iotpay/iotpay/device/keystore"
	devmqtt "github.com/iotpay/iotpay/device/mqtt"
	"github.com/iotpay/iotpay/platform/daemon"
	"github.com/iotpay/iotpay/wire"
)

// demoSummary is what `iotpay demo --json` prints as its last line.
type demoSummary struct {
	PaymentsOK         int                       `json:"payments_ok"`
	PaymentsDeclined   int                       `json:"payments_declined"`
	ReplaysRejected    int                       `json:"replays_rejected"`
	DuplicatesAnswered int                       `json:"duplicates_answered"`
	ForgeriesRejected  int                       `json:"forgeries_rejected"`
	ReceiptsVerified   int                       `json:"receipts_verified"`
	LedgerBalanced     bool                      `json:"ledger_balanced"`
	PaidMinor          map[iotpay.Currency]int64 `json:"paid_minor"`
	Devices            int                       `json:"devices"`
	DurationMs         int64                     `json:"duration_ms"`
}

type demo struct {
	api   *apiClient
	d     *daemon.Daemon
	dir   string
	out   io.Writer
	sum   demoSummary
	payer map[string]iotpay.AccountID
}

type demoDevice struct {
	name string
	dev  *device.Device
	t    *devmqtt.Transport
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("iotpay demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print a JSON summary as the last line")
	keep := fs.String("data", "", "data directory to use (default: a temporary one, removed at the end)")
	verbose := fs.Bool("v", false, "show the platform's log")
	if err := fs.Parse(args); err != nil {
		return err
	}
	start := time.Now()
	dir := *keep
	if dir == "" {
		tmp, err := os.MkdirTemp("", "iotpay-demo-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if *verbose {
		logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	d, err := daemon.Open(ctx, daemon.Config{DataDir: filepath.Join(dir, "platform"), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", Logger: logger})
	if err != nil {
		return err
	}
	if d.APIKey == "" {
		d.Close()
		return fmt.Errorf("demo needs a fresh data directory: %s already holds a platform", dir)
	}
	if err := d.Start(); err != nil {
		d.Close()
		return err
	}
	defer d.Close()
	dm := &demo{api: newAPIClient("http://"+d.HTTPAddr(), d.APIKey), d: d, dir: dir, out: stdout,
		payer: map[string]iotpay.AccountID{}, sum: demoSummary{PaidMinor: map[iotpay.Currency]int64{}}}
	fmt.Fprintf(stdout, "platform up: HTTP API http://%s, MQTT/TLS %s (client certificates required)\n", d.HTTPAddr(), d.MQTTAddr())
	if err := dm.scenario(ctx); err != nil {
		return err
	}
	dm.sum.DurationMs = time.Since(start).Milliseconds()
	s := dm.sum
	fmt.Fprintf(stdout, "\nsummary: %d approved, %d declined, %d replay rejected, %d duplicate answered with its original receipt, %d forgery rejected;\n"+
		"         %d receipts verified by the devices; ledger balanced: %v\n",
		s.PaymentsOK, s.PaymentsDeclined, s.ReplaysRejected, s.DuplicatesAnswered, s.ForgeriesRejected, s.ReceiptsVerified, s.LedgerBalanced)
	if *asJSON {
		b, _ := json.Marshal(s)
		fmt.Fprintln(stdout, string(b))
	}
	if !s.LedgerBalanced {
		return fmt.Errorf("the ledger does not balance")
	}
	return nil
}

func (dm *demo) scenario(ctx context.Context) error {
	var vendMerchant, evMerchant struct{ ID iotpay.AccountID }
	if err := dm.api.do(ctx, "POST", "/v1/accounts", map[string]any{"name": "Snack Co", "kind": "merchant", "currency": "EUR"}, &vendMerchant); err != nil {
		return err
	}
	if err := dm.api.do(ctx, "POST", "/v1/accounts", map[string]any{"name": "ChargeNet", "kind": "merchant", "currency": "EUR"}, &evMerchant); err != nil {
		return err
	}
	var vending, charger struct{ ID iotpay.ProductID }
	if err := dm.api.do(ctx, "POST", "/v1/products", map[string]any{"name": "vending machine", "merchant_account": vendMerchant.ID,
		"pricing": map[string]any{"mode": "fixed", "event": "dispense", "price_minor": 250, "currency": "EUR"}}, &vending); err != nil {
		return err
	}
	if err := dm.api.do(ctx, "POST", "/v1/products", map[string]any{"name": "EV charger", "merchant_account": evMerchant.ID,
		"pricing": map[string]any{"mode": "metered", "event": "session_end", "unit": "wh", "per_units": 1000, "price_minor": 35, "currency": "EUR"}}, &charger); err != nil {
		return err
	}
	fmt.Fprintf(dm.out, "products: vending machine 2.50 EUR per dispense; EV charger 0.35 EUR per kWh\n\n")

	vend1, err := dm.enroll(ctx, "vending-1", vending.ID, 2000, 500, 1000)
	if err != nil {
		return err
	}
	vend2, err := dm.enroll(ctx, "vending-2", vending.ID, 2000, 500, 1000)
	if err != nil {
		return err
	}
	ev1, err := dm.enroll(ctx, "charger-1", charger.ID, 10000, 4000, 20000)
	if err != nil {
		return err
	}
	ev2, err := dm.enroll(ctx, "charger-2", charger.ID, 10000, 4000, 20000)
	if err != nil {
		return err
	}
	fmt.Fprintln(dm.out)

	dispense := func(sku string) device.Payment {
		return device.Payment{Event: &wire.Event{Type: "dispense", Str: map[string]string{"sku": sku}}}
	}
	session := func(wh int64) device.Payment {
		return device.Payment{Event: &wire.Event{Type: "session_end", Num: map[string]int64{"wh": wh}}}
	}
	// Ordinary traffic, then a purchase over vending-1's daily limit
	// (4 × 2.50 = 10.00 EUR a day) and a charge over charger-2's
	// per-payment limit (40.00 EUR).
	var first *device.Signed
	for i, sku := range []string{"A3", "B1", "A3", "C7"} {
		s, err := dm.pay(ctx, vend1, dispense(sku), "dispense sku="+sku)
		if err != nil {
			return err
		}
		if i == 0 {
			first = s
		}
	}
	if _, err := dm.pay(ctx, vend2, dispense("D2"), "dispense sku=D2"); err != nil {
		return err
	}
	if _, err := dm.pay(ctx, ev1, session(12400), "session_end wh=12400"); err != nil {
		return err
	}
	if _, err := dm.pay(ctx, ev2, session(30150), "session_end wh=30150"); err != nil {
		return err
	}
	if _, err := dm.pay(ctx, vend1, dispense("A3"), "dispense sku=A3"); err != nil {
		return err
	}
	if _, err := dm.pay(ctx, ev2, session(150000), "session_end wh=150000"); err != nil {
		return err
	}
	fmt.Fprintln(dm.out)
	if err := dm.redeliver(ctx, vend1, first); err != nil {
		return err
	}
	if err := dm.clone(ctx, vend2); err != nil {
		return err
	}
	if err := dm.forge(ctx, ev1); err != nil {
		return err
	}
	for _, dd := range []*demoDevice{vend1, vend2, ev1, ev2} {
		dd.t.Close()
	}
	return dm.checkLedger(ctx, vendMerchant.ID, evMerchant.ID)
}

// enroll registers a device, lets it generate its key in a software
// keystore, enrolls it, funds its payer and binds it with limits.
func (dm *demo) enroll(ctx context.Context, name string, product iotpay.ProductID, fund, perPayment, daily int64) (*demoDevice, error) {
	var created struct {
		Device struct{ ID iotpay.DeviceID }
		Token  string `json:"enrollment_token"`
	}
	if err := dm.api.do(ctx, "POST", "/v1/devices", map[string]any{"product": product, "name": name}, &created); err != nil {
		return nil, err
	}
	dir := filepath.Join(dm.dir, "devices", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	pass := make([]byte, 16)
	rand.Read(pass)
	ks, err := keystore.CreateSoft(filepath.Join(dir, device.KeyFile), pass)
	if err != nil {
		return nil, err
	}
	en, err := device.Enroll(ctx, nil, dm.api.base, created.Device.ID, created.Token, ks.Signer())
	if err != nil {
		return nil, err
	}
	if err := device.SaveEnrollment(dir, en); err != nil {
		return nil, err
	}
	id, err := en.Identity(ks.Signer())
	if err != nil {
		return nil, err
	}
	dev, err := device.New(*id, device.FileState{Path: filepath.Join(dir, device.StateFile)})
	if err != nil {
		return nil, err
	}
	t, err := devmqtt.Dial(ctx, devmqtt.Config{Addr: dm.d.MQTTAddr(), TLS: id.TLSConfig("127.0.0.1"), DeviceID: id.ID})
	if err != nil {
		return nil, err
	}
	var payer struct{ ID iotpay.AccountID }
	if err := dm.api.do(ctx, "POST", "/v1/accounts", map[string]any{"name": name + " owner", "kind": "payer", "currency": "EUR"}, &payer); err != nil {
		return nil, err
	}
	if err := dm.api.do(ctx, "POST", "/v1/accounts/"+string(payer.ID)+"/fund", map[string]any{"amount": fund}, nil); err != nil {
		return nil, err
	}
	if err := dm.api.do(ctx, "POST", "/v1/bindings", map[string]any{"device": id.ID, "account": payer.ID,
		"per_payment_limit": perPayment, "daily_limit": daily}, nil); err != nil {
		return nil, err
	}
	dm.payer[name] = payer.ID
	dm.sum.Devices++
	eur := func(v int64) iotpay.Money { return iotpay.Money{Amount: v, Currency: "EUR"} }
	fmt.Fprintf(dm.out, "enrolled %-10s %s  key in keystore, certificate from the platform CA; wallet %s, limits %s/payment %s/day\n",
		name, id.ID, eur(fund), eur(perPayment), eur(daily))
	return &demoDevice{name: name, dev: dev, t: t}, nil
}

// pay signs p, sends it and checks the receipt.
func (dm *demo) pay(ctx context.Context, dd *demoDevice, p device.Payment, what string) (*device.Signed, error) {
	s, err := dd.dev.Sign(p)
	if err != nil {
		return nil, err
	}
	rc, err := dd.dev.Send(ctx, dd.t, s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dd.name, err)
	}
	dm.sum.ReceiptsVerified++
	switch rc.Outcome {
	case wire.Approved:
		dm.sum.PaymentsOK++
		dm.sum.PaidMinor[iotpay.Currency(rc.Currency)] += rc.AmountMinor
	case wire.Declined:
		dm.sum.PaymentsDeclined++
	}
	dm.line(dd.name, what, rc)
	return s, nil
}

func (dm *demo) line(name, what string, rc *wire.Receipt) {
	amount := iotpay.Money{Amount: rc.AmountMinor, Currency: iotpay.Currency(rc.Currency)}.String()
	if rc.Currency == "" {
		amount = "-"
	}
	idx := "-"
	if rc.LogIndex != nil {
		idx = fmt.Sprintf("#%d", *rc.LogIndex)
	}
	fmt.Fprintf(dm.out, "%-10s %-22s %-9s %10s  log %-4s receipt verified", name, what, rc.Outcome, amount, idx)
	if rc.Reason != "" {
		fmt.Fprintf(dm.out, "  (%s)", rc.Reason)
	}
	fmt.Fprintln(dm.out)
}

// redeliver sends an already answered request again, byte for byte, as a
// device that lost its receipt would (or an eavesdropper replaying it):
// the platform answers with the original receipt and moves no money.
func (dm *demo) redeliver(ctx context.Context, dd *demoDevice, s *device.Signed) error {
	first, err := dd.dev.Send(ctx, dd.t, s)
	if err != nil {
		return err
	}
	again, err := dd.dev.Send(ctx, dd.t, s)
	if err != nil {
		return err
	}
	dm.sum.ReceiptsVerified += 2
	if first.PaymentID != again.PaymentID || first.TimeMs != again.TimeMs {
		return fmt.Errorf("a redelivered request got a new receipt")
	}
	dm.sum.DuplicatesAnswered++
	dm.line(dd.name, "same request resent", again)
	fmt.Fprintf(dm.out, "%-10s %-22s answered with its original receipt (%s): no money moved\n", "", "", again.PaymentID)
	return nil
}

// clone plays a copy of the device made from its key but with old state:
// its counter is behind the platform's, so its request is refused.
func (dm *demo) clone(ctx context.Context, dd *demoDevice) error {
	stale := &device.MemState{}
	clone, err := device.New(*dd.dev.Identity(), stale)
	if err != nil {
		return err
	}
	s, err := clone.Sign(device.Payment{Event: &wire.Event{Type: "dispense", Str: map[string]string{"sku": "A3"}}})
	if err != nil {
		return err
	}
	rc, err := clone.Send(ctx, dd.t, s)
	if err != nil {
		return err
	}
	dm.sum.ReceiptsVerified++
	if rc.Outcome == wire.Rejected && rc.Code == string(iotpay.EREPLAY) {
		dm.sum.ReplaysRejected++
	}
	dm.line(dd.name+"'", "cloned device, old ctr", rc)
	return nil
}

// forge sends a request whose signature was altered in transit.
func (dm *demo) forge(ctx context.Context, dd *demoDevice) error {
	s, err := dd.dev.Sign(device.Payment{Event: &wire.Event{Type: "session_end", Num: map[string]int64{"wh": 1000}}})
	if err != nil {
		return err
	}
	bad := bytes.Clone(s.Raw)
	bad[len(bad)-1] ^= 0x01
	forged := &device.Signed{Raw: bad, Hash: dd.dev.Identity().Suite.Hash(bad), Request: s.Request}
	rc, err := dd.dev.Send(ctx, dd.t, forged)
	if err != nil {
		return err
	}
	dm.sum.ReceiptsVerified++
	if rc.Outcome == wire.Rejected {
		dm.sum.ForgeriesRejected++
	}
	dm.line(dd.name, "signature altered", rc)
	return nil
}

// checkLedger asks the platform whether the ledger balances and checks
// that the merchants received exactly what the receipts say was paid.
func (dm *demo) checkLedger(ctx context.Context, merchants ...iotpay.AccountID) error {
	var check struct{ Balanced bool }
	if err := dm.api.do(ctx, "GET", "/v1/ledger/check", nil, &check); err != nil {
		return err
	}
	var received int64
	for _, m := range merchants {
		var a struct{ Balance int64 }
		if err := dm.api.do(ctx, "GET", "/v1/accounts/"+string(m), nil, &a); err != nil {
			return err
		}
		received += a.Balance
	}
	dm.sum.LedgerBalanced = check.Balanced && received == dm.sum.PaidMinor["EUR"]
	fmt.Fprintf(dm.out, "\nledger: every currency sums to zero: %v; merchants received %s = sum of approved receipts\n",
		check.Balanced, iotpay.Money{Amount: received, Currency: "EUR"})
	return nil
}

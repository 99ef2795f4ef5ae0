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

	"golang.org/x/mod/sumdb/note"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit/tlog"
	"github.com/iotpay/iotpay/audit/verify"
	"github.com/iotpay/iotpay/device"
	devmqtt "github.com/iotpay/iotpay/device/mqtt"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/platform/daemon"
	"github.com/iotpay/iotpay/store/sqlstore"
	"github.com/iotpay/iotpay/wire"
)

// demoFees are the fees the demo's platform takes on every capture.
var demoFees = payment.FeePlan{OperatorBps: 200, PlatformBps: 100}

func bps(v int64) string { return fmt.Sprintf("%d.%02d%%", v/100, v%100) }

// demoSummary is what `iotpay demo --json` prints as its last line.
type demoSummary struct {
	PaymentsOK         int                       `json:"payments_ok"`
	PaymentsDeclined   int                       `json:"payments_declined"`
	ReplaysRejected    int                       `json:"replays_rejected"`
	DuplicatesAnswered int                       `json:"duplicates_answered"`
	ForgeriesRejected  int                       `json:"forgeries_rejected"`
	ReceiptsVerified   int                       `json:"receipts_verified"`
	LedgerBalanced     bool                      `json:"ledger_balanced"`
	LogLeaves          uint64                    `json:"log_leaves"`
	LogVerified        bool                      `json:"log_verified"`
	PaidMinor          map[iotpay.Currency]int64 `json:"paid_minor"`
	Devices            int                       `json:"devices"`
	DurationMs         int64                     `json:"duration_ms"`
}

type demo struct {
	suite string // every device's crypto suite
	api   *apiClient
	d     *daemon.Daemon
	dir   string
	out   io.Writer
	sum   demoSummary
	payer map[string]iotpay.AccountID
}

type demoDevice struct {
	name string
	id   iotpay.DeviceID
	dev  *device.Device
	t    *devmqtt.Transport
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("iotpay demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print a JSON summary as the last line")
	keep := fs.String("data", "", "data directory to use (default: a temporary one, removed at the end)")
	verbose := fs.Bool("v", false, "show the platform's log")
	suite := fs.String("suite", wire.SuiteIntl, "the devices' crypto suite: intl (ECDSA P-256, SHA-256) or gm (SM2, SM3)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := wire.SuiteByName(*suite); err != nil {
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
	d, err := daemon.Open(ctx, daemon.Config{DataDir: filepath.Join(dir, "platform"), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", DeviceHTTPAddr: "127.0.0.1:0", CoAPAddr: "127.0.0.1:0",
		Fees: demoFees, Logger: logger})
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
	dm := &demo{suite: *suite, api: newAPIClient("http://"+d.HTTPAddr(), d.APIKey, ""), d: d, dir: dir, out: stdout,
		payer: map[string]iotpay.AccountID{}, sum: demoSummary{PaidMinor: map[iotpay.Currency]int64{}}}
	fmt.Fprintf(stdout, "platform up: HTTP API http://%s, MQTT/TLS %s (client certificates required)\n", d.HTTPAddr(), d.MQTTAddr())
	fmt.Fprintf(stdout, "crypto suite of the devices: %s\n", *suite)
	fmt.Fprintf(stdout, "fees on every capture: operator %s, platform %s\n", bps(demoFees.OperatorBps), bps(demoFees.PlatformBps))
	if err := dm.scenario(ctx); err != nil {
		return err
	}
	if err := dm.verifyLog(ctx); err != nil {
		return err
	}
	dm.sum.DurationMs = time.Since(start).Milliseconds()
	s := dm.sum
	fmt.Fprintf(stdout, "\nsummary: %d approved, %d declined, %d replay rejected, %d duplicate answered with its original receipt, %d forgery rejected;\n"+
		"         %d receipts verified by the devices; ledger balanced: %v; audit log of %d leaves verified: %v\n",
		s.PaymentsOK, s.PaymentsDeclined, s.ReplaysRejected, s.DuplicatesAnswered, s.ForgeriesRejected, s.ReceiptsVerified, s.LedgerBalanced,
		s.LogLeaves, s.LogVerified)
	if *asJSON {
		b, _ := json.Marshal(s)
		fmt.Fprintln(stdout, string(b))
	}
	if !s.LedgerBalanced {
		return fmt.Errorf("the ledger does not balance")
	}
	if !s.LogVerified {
		return fmt.Errorf("the audit log does not verify")
	}
	return nil
}

// verifyLog waits for the checkpoint covering every leaf the scenario
// logged (one comes every second) and verifies the log as an outsider
// would, from its URL and keys: signature, SM2 co-signature, every leaf
// re-hashed.
func (dm *demo) verifyLog(ctx context.Context) error {
	var leaves uint64
	if err := dm.d.DB.View(ctx, func(tx *sqlstore.Tx) error {
		var err error
		leaves, err = tx.LogSize(ctx)
		return err
	}); err != nil {
		return err
	}
	logKey, err := tlog.NewVerifier(dm.d.LogKey)
	if err != nil {
		return err
	}
	gmKey, err := tlog.NewVerifier(dm.d.GMLogKey)
	if err != nil {
		return err
	}
	o := verify.Options{Log: &tlog.Client{URL: "http://" + dm.d.HTTPAddr() + daemon.LogPathPrefix}, LogKey: logKey,
		Witnesses: []note.Verifier{gmKey}, Quorum: 1, Full: true}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		r, err := verify.Run(ctx, o)
		if err == nil && r.Checkpoint.Size >= leaves {
			dm.sum.LogLeaves, dm.sum.LogVerified = r.Checkpoint.Size, r.OK()
			fmt.Fprintf(dm.out, "audit log: checkpoint of %d leaves, co-signed in SM2, every leaf re-hashed to its root: %v\n", r.Checkpoint.Size, r.OK())
			for _, f := range r.Failures {
				fmt.Fprintln(dm.out, "  FAIL:", f)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no checkpoint covered the demo's %d leaves: %v", leaves, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
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
	if err := dm.api.do(ctx, "POST", "/v1/products", map[string]any{"name": "vending machine", "merchant_account": vendMerchant.ID, "category": "5814",
		"pricing": map[string]any{"mode": "fixed", "event": "dispense", "price_minor": 250, "currency": "EUR"}}, &vending); err != nil {
		return err
	}
	if err := dm.api.do(ctx, "POST", "/v1/products", map[string]any{"name": "EV charger", "merchant_account": evMerchant.ID, "category": "5552",
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
	if err := dm.session(ctx, ev1); err != nil {
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
	return dm.checkLedger(ctx)
}

// enroll registers a device, lets it generate its key in a software
// keystore, enrolls it, funds its payer and gives it a mandate on the
// payer's account with limits (the monthly one 31 days of the daily).
func (dm *demo) enroll(ctx context.Context, name string, product iotpay.ProductID, fund, perPayment, daily int64) (*demoDevice, error) {
	var created struct {
		Device struct{ ID iotpay.DeviceID }
		Token  string `json:"enrollment_token"`
	}
	if err := dm.api.do(ctx, "POST", "/v1/devices", map[string]any{"product": product, "name": name, "suite": dm.suite}, &created); err != nil {
		return nil, err
	}
	dir := filepath.Join(dm.dir, "devices", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	pass := make([]byte, 16)
	rand.Read(pass)
	ks, err := device.CreateKeys(dir, dm.suite, pass)
	if err != nil {
		return nil, err
	}
	en, err := ks.Enroll(ctx, dm.api.http, dm.api.base, created.Device.ID, created.Token)
	if err != nil {
		return nil, err
	}
	if err := device.SaveEnrollment(dir, en); err != nil {
		return nil, err
	}
	id, err := ks.Identity(en)
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
	var mandate struct{ ID iotpay.MandateID }
	if err := dm.api.do(ctx, "POST", "/v1/mandates", map[string]any{"device": id.ID, "payer": payer.ID,
		"per_payment_limit": perPayment, "daily_limit": daily, "monthly_limit": 31 * daily}, &mandate); err != nil {
		return nil, err
	}
	dm.payer[name] = payer.ID
	dm.sum.Devices++
	eur := func(v int64) iotpay.Money { return iotpay.Money{Amount: v, Currency: "EUR"} }
	fmt.Fprintf(dm.out, "enrolled %-10s %s  %s key in keystore, certificate from the %s CA; wallet %s, mandate %s: %s/payment %s/day\n",
		name, id.ID, keyKind(dm.suite), keyKind(dm.suite), eur(fund), mandate.ID, eur(perPayment), eur(daily))
	return &demoDevice{name: name, id: id.ID, dev: dev, t: t}, nil
}

// keyKind names a suite's signature key.
func keyKind(suite string) string {
	if suite == wire.SuiteGM {
		return "SM2"
	}
	return "P-256"
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

// demoPayment is the part of a payment the demo shows.
type demoPayment struct {
	ID          iotpay.PaymentID `json:"id"`
	Status      string           `json:"status"`
	Amount      int64            `json:"amount"`
	Captured    int64            `json:"captured"`
	Held        int64            `json:"held"`
	FeeOperator int64            `json:"fee_operator"`
	FeePlatform int64            `json:"fee_platform"`
	Payer       iotpay.AccountID `json:"payer"`
}

// session plays an EV charging session opened from the charging
// network's backend over the operator API: an authorization holds an
// estimate on the driver's wallet, raised as the session goes on, then
// captured in parts, each paying the merchant, which pays the fees' legs;
// the final capture releases what was not used.
func (dm *demo) session(ctx context.Context, dd *demoDevice) error {
	eur := func(v int64) string { return iotpay.Money{Amount: v, Currency: "EUR"}.String() }
	var p demoPayment
	step := func(what, path string, in any) error {
		if err := dm.api.do(ctx, "POST", path, in, &p); err != nil {
			return fmt.Errorf("%s: %s: %w", dd.name, what, err)
		}
		var wallet struct{ Balance, Available int64 }
		if err := dm.api.do(ctx, "GET", "/v1/accounts/"+string(p.Payer), nil, &wallet); err != nil {
			return err
		}
		fmt.Fprintf(dm.out, "%-10s %-26s %-18s authorized %s, captured %s, held %s; wallet %s, available %s\n", dd.name, what,
			p.Status, eur(p.Amount), eur(p.Captured), eur(p.Held), eur(wallet.Balance), eur(wallet.Available))
		return nil
	}
	fmt.Fprintf(dm.out, "%s: a session opened from the charging backend (HTTP API), held then captured in parts\n", dd.name)
	if err := step("authorize (hold)", "/v1/payments", map[string]any{"device": dd.id, "amount": 2000, "currency": "EUR",
		"hold_seconds": 4 * 3600}); err != nil {
		return err
	}
	if p.Status != string(payment.StatusAuthorized) {
		return fmt.Errorf("%s: the session's authorization was %s", dd.name, p.Status)
	}
	id := "/v1/payments/" + string(p.ID)
	if err := step("capture first 8.75 kWh", id+"/capture", map[string]any{"amount": 875 * 35 / 100, "final": false}); err != nil {
		return err
	}
	if err := step("increment +10.00", id+"/increment", map[string]any{"amount": 1000}); err != nil {
		return err
	}
	if err := step("capture 30 kWh more, final", id+"/capture", map[string]any{"amount": 3000 * 35 / 100, "final": true}); err != nil {
		return err
	}
	dm.sum.PaymentsOK++
	dm.sum.PaidMinor["EUR"] += p.Captured
	return dm.legs(ctx, dd.name, p)
}

// legs shows how a payment's captures were shared, and checks that the
// captures and the fees' legs are what the payment says.
func (dm *demo) legs(ctx context.Context, name string, p demoPayment) error {
	var page struct {
		Data []struct {
			Kind   string `json:"kind"`
			Amount int64  `json:"amount"`
		} `json:"data"`
	}
	if err := dm.api.do(ctx, "GET", "/v1/payments/"+string(p.ID)+"/transfers?limit=200", nil, &page); err != nil {
		return err
	}
	by := map[string]int64{}
	for _, t := range page.Data {
		by[t.Kind] += t.Amount
	}
	eur := func(v int64) string { return iotpay.Money{Amount: v, Currency: "EUR"}.String() }
	// The captures pay the merchant; the merchant pays the fees.
	kept := by["capture"] - by["fee operator"] - by["fee platform"]
	fmt.Fprintf(dm.out, "%-10s %-26s merchant %s + operator fee %s + platform fee %s = %s captured\n", name, "ledger legs",
		eur(kept), eur(by["fee operator"]), eur(by["fee platform"]), eur(by["capture"]))
	if by["capture"] != p.Captured ||
		by["fee operator"] != p.FeeOperator || by["fee platform"] != p.FeePlatform {
		return fmt.Errorf("%s: the legs of %s do not add up to its captures", name, p.ID)
	}
	return nil
}

// checkLedger asks the platform whether the ledger balances and checks
// that the merchants and the fee accounts received exactly what was paid.
func (dm *demo) checkLedger(ctx context.Context) error {
	var check struct{ Balanced bool }
	if err := dm.api.do(ctx, "GET", "/v1/ledger/check", nil, &check); err != nil {
		return err
	}
	received := map[string]int64{}
	for _, kind := range []string{payment.KindMerchant, payment.KindOperator, payment.KindPlatform} {
		var page struct {
			Data []struct {
				Balance int64 `json:"balance"`
			} `json:"data"`
			HasMore bool `json:"has_more"`
		}
		if err := dm.api.do(ctx, "GET", "/v1/accounts?limit=200&kind="+kind, nil, &page); err != nil {
			return err
		}
		if page.HasMore {
			return fmt.Errorf("more %s accounts than the demo makes", kind)
		}
		for _, a := range page.Data {
			received[kind] += a.Balance
		}
	}
	total := received[payment.KindMerchant] + received[payment.KindOperator] + received[payment.KindPlatform]
	dm.sum.LedgerBalanced = check.Balanced && total == dm.sum.PaidMinor["EUR"]
	eur := func(v int64) string { return iotpay.Money{Amount: v, Currency: "EUR"}.String() }
	fmt.Fprintf(dm.out, "\nledger: every currency sums to zero: %v; merchants %s + operator fees %s + platform fees %s = %s, "+
		"the sum of approved payments\n", check.Balanced, eur(received[payment.KindMerchant]), eur(received[payment.KindOperator]),
		eur(received[payment.KindPlatform]), eur(total))
	return nil
}

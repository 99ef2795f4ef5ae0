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
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit/tlog"
	"github.com/iotpay/iotpay/audit/verify"
	"github.com/iotpay/iotpay/device"
	devmqtt "github.com/iotpay/iotpay/device/mqtt"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/platform/daemon"
	"github.com/iotpay/iotpay/platform/rules"
	"github.com/iotpay/iotpay/platform/webhook"
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
	// Actions counts what the products' rules did with the events.
	Actions    map[string]int `json:"actions"`
	Devices    int            `json:"devices"`
	DurationMs int64          `json:"duration_ms"`
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
		Fees: demoFees, Logger: logger, AllowPrivateWebhooks: true}) // the demo's supplier is on loopback
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
		payer: map[string]iotpay.AccountID{}, sum: demoSummary{PaidMinor: map[iotpay.Currency]int64{}, Actions: map[string]int{}}}
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

// demoProduct is one of the reference products the demo sells.
type demoProduct struct {
	name, category string
	merchant       string
	rules          rules.Ruleset
	risk           map[string]any
}

// products creates the reference products (platform/rules), each with its
// rules and risk policy as a profile, after the reference tariffs.
func (dm *demo) products(ctx context.Context, supplier string) (map[string]iotpay.ProductID, error) {
	for _, tf := range rules.ReferenceTariffs() {
		if err := dm.api.do(ctx, "PUT", "/v1/tariffs/"+tf.Name, tf, nil); err != nil {
			return nil, err
		}
	}
	merchants := map[string]iotpay.AccountID{}
	ids := map[string]iotpay.ProductID{}
	for _, p := range []demoProduct{
		{"vending machine", "5814", "Snack Co", rules.VendingRules(supplier), map[string]any{"decline_tamper": true,
			"velocity": []any{map[string]any{"scope": "device", "window": "1m", "max_count": 10}}}},
		{"EV charger", "5552", "ChargeNet", rules.EVChargerRules(), map[string]any{"velocity": []any{
			map[string]any{"scope": "account", "window": "24h", "max_amount": 50_000, "action": "review"}}}},
		{"smart meter", "4900", "GridCo", rules.SmartMeterRules(), nil},
		{"parking barrier", "7523", "ParkWell", rules.ParkingRules(), map[string]any{"cool_off": map[string]any{"period": "24h", "amount_max": 1000}}},
	} {
		if merchants[p.merchant] == "" {
			var acc struct{ ID iotpay.AccountID }
			if err := dm.api.do(ctx, "POST", "/v1/accounts", map[string]any{"name": p.merchant, "kind": "merchant", "currency": "EUR"}, &acc); err != nil {
				return nil, err
			}
			merchants[p.merchant] = acc.ID
		}
		var prod struct{ ID iotpay.ProductID }
		if err := dm.api.do(ctx, "POST", "/v1/products", map[string]any{"name": p.name, "merchant_account": merchants[p.merchant], "category": p.category,
			"pricing": map[string]any{"mode": "amount", "currency": "EUR"}}, &prod); err != nil {
			return nil, err
		}
		profile := map[string]any{"rules": p.rules.Rules}
		if p.risk != nil {
			profile["risk"] = p.risk
		}
		if err := dm.api.do(ctx, "PUT", "/v1/products/"+string(prod.ID)+"/profile", profile, nil); err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		ids[p.name] = prod.ID
		names := make([]string, len(p.rules.Rules))
		for i, r := range p.rules.Rules {
			names[i] = r.Name
		}
		fmt.Fprintf(dm.out, "product %-16s rules %s\n", p.name, strings.Join(names, ", "))
	}
	fmt.Fprintf(dm.out, "tariffs: ev 0.20 EUR/kWh at night, 0.35 by day; grid 0.15 off-peak, 0.30 07:00-22:00 (Europe/Berlin)\n\n")
	return ids, nil
}

func (dm *demo) scenario(ctx context.Context) error {
	supplier, orders, err := dm.supplier(ctx)
	if err != nil {
		return err
	}
	defer supplier.Close()
	ids, err := dm.products(ctx, "http://"+supplier.Addr().String()+"/orders")
	if err != nil {
		return err
	}
	vend1, err := dm.enroll(ctx, "vending-1", ids["vending machine"], 2000, 500, 1000)
	if err != nil {
		return err
	}
	vend2, err := dm.enroll(ctx, "vending-2", ids["vending machine"], 2000, 500, 1000)
	if err != nil {
		return err
	}
	ev1, err := dm.enroll(ctx, "charger-1", ids["EV charger"], 30000, 10000, 30000)
	if err != nil {
		return err
	}
	ev2, err := dm.enroll(ctx, "charger-2", ids["EV charger"], 10000, 4000, 20000)
	if err != nil {
		return err
	}
	meter, err := dm.enroll(ctx, "meter-1", ids["smart meter"], 10000, 5000, 5000)
	if err != nil {
		return err
	}
	gate, err := dm.enroll(ctx, "gate-1", ids["parking barrier"], 5000, 3000, 5000)
	if err != nil {
		return err
	}
	fmt.Fprintln(dm.out)

	event := func(typ string, num map[string]int64, str map[string]string) device.Payment {
		return device.Payment{Event: &wire.Event{Type: typ, Num: num, Str: str}}
	}
	dispense := func(sku string) device.Payment { return event("dispense", nil, map[string]string{"sku": sku}) }
	// Vending: priced by slot; then a purchase over vending-1's daily
	// limit (10.00 EUR a day).
	var first *device.Signed
	for i, sku := range []string{"A3", "B1", "A1", "C7"} {
		s, err := dm.pay(ctx, vend1, dispense(sku), "dispense sku="+sku)
		if err != nil {
			return err
		}
		if i == 0 {
			first = s
		}
	}
	if _, err := dm.pay(ctx, vend1, dispense("B1"), "dispense sku=B1"); err != nil {
		return err
	}
	if _, err := dm.pay(ctx, vend2, dispense("A2"), "dispense sku=A2"); err != nil {
		return err
	}
	// vending-2 runs low on B1: the rules order a refill, signed.
	if _, err := dm.pay(ctx, vend2, event("stock", map[string]int64{"left": 2}, map[string]string{"sku": "B1"}), "stock B1 left=2"); err != nil {
		return err
	}
	select {
	case o := <-orders:
		fmt.Fprintf(dm.out, "%-10s %-22s supplier got order %s: %d × %s, signature checked\n", "supplier", "", o.ID, o.Quantity, o.Item)
	case <-time.After(10 * time.Second):
		return fmt.Errorf("the supplier got no refill order")
	}
	// vending-2 reports it was forced open: risk control declines.
	tampered := dispense("A1")
	tampered.Report = &wire.Report{Tamper: true}
	if _, err := dm.pay(ctx, vend2, tampered, "dispense, tampered"); err != nil {
		return err
	}

	// EV: sessions the chargers drive themselves: a hold when the car
	// plugs in, raised as energy flows, the energy delivered captured.
	for _, step := range []struct {
		dd    *demoDevice
		typ   string
		wh    int64
		label string
	}{
		{ev1, "session_start", 0, "session_start"},
		{ev1, "session_update", 160_000, "session_update 160kWh"},
		{ev1, "session_update", 250_000, "session_update 250kWh"},
		{ev1, "session_end", 255_000, "session_end 255 kWh"},
		{ev2, "session_start", 0, "session_start"},
		{ev2, "session_update", 200_000, "session_update 200kWh"}, // over charger-2's 40.00 a payment: declined
		{ev2, "session_end", 12_400, "session_end 12.4 kWh"},
	} {
		num := map[string]int64{}
		if step.wh > 0 {
			num["wh"] = step.wh
		}
		if _, err := dm.pay(ctx, step.dd, event(step.typ, num, map[string]string{"session": "sess-" + step.dd.name}), step.label); err != nil {
			return err
		}
	}
	// The meter: readings, billed at the period's end from the last bill.
	for i, total := range []int64{4_200, 9_800, 15_300, 21_000, 26_500} {
		end := strconv.FormatBool(i == 2 || i == 4)
		if _, err := dm.pay(ctx, meter, event("reading", map[string]int64{"kwh_total": total}, map[string]string{"period_end": end}),
			fmt.Sprintf("reading %d Wh", total)); err != nil {
			return err
		}
	}
	// Parking: free entry, an hour and a quarter, then a stay a new
	// barrier may not charge alone: held for review, approved by the
	// operator.
	if _, err := dm.pay(ctx, gate, event("entry", nil, nil), "entry"); err != nil {
		return err
	}
	if _, err := dm.pay(ctx, gate, event("exit", map[string]int64{"minutes": 75}, nil), "exit after 75 min"); err != nil {
		return err
	}
	if err := dm.review(ctx, gate, event("exit", map[string]int64{"minutes": 600}, nil)); err != nil {
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
	if err := dm.clone(ctx, vend1); err != nil {
		return err
	}
	if err := dm.forge(ctx, ev1); err != nil {
		return err
	}
	for _, dd := range []*demoDevice{vend1, vend2, ev1, ev2, meter, gate} {
		dd.t.Close()
	}
	return dm.checkLedger(ctx)
}

// review pays p, which risk control holds for review, and approves it
// from the review queue as the operator would.
func (dm *demo) review(ctx context.Context, dd *demoDevice, p device.Payment) error {
	if _, err := dm.pay(ctx, dd, p, "exit after 10 h"); err != nil {
		return err
	}
	var queue struct {
		Data []struct {
			Payment iotpay.PaymentID `json:"payment"`
		} `json:"data"`
	}
	if err := dm.api.do(ctx, "GET", "/v1/reviews?status=pending", nil, &queue); err != nil {
		return err
	}
	for _, r := range queue.Data {
		var out struct {
			Payment demoPayment `json:"payment"`
		}
		if err := dm.api.do(ctx, "POST", "/v1/reviews/"+string(r.Payment)+"/approve", map[string]any{"note": "stay confirmed"}, &out); err != nil {
			return err
		}
		dm.sum.PaymentsOK++
		dm.sum.PaidMinor["EUR"] += out.Payment.Captured
		fmt.Fprintf(dm.out, "%-10s %-22s %-9s %10s  operator approved it from the review queue\n", "operator", "review "+string(r.Payment)[:12]+"…",
			out.Payment.Status, iotpay.Money{Amount: out.Payment.Captured, Currency: "EUR"})
	}
	return nil
}

// supplier runs the demo's supplier: it checks each refill order's
// signature with the tenant's supply secret and passes it on.
func (dm *demo) supplier(ctx context.Context) (net.Listener, <-chan daemon.OrderBody, error) {
	var secret struct{ Secret string }
	if err := dm.api.do(ctx, "GET", "/v1/supply/secret", nil, &secret); err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	orders := make(chan daemon.OrderBody, 8)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err := webhook.Verify(secret.Secret, r.Header.Get(webhook.SignatureHeader), body, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var o daemon.OrderBody
		if json.Unmarshal(body, &o) != nil {
			http.Error(w, "bad order", http.StatusBadRequest)
			return
		}
		select {
		case orders <- o:
		default:
		}
	})}
	go srv.Serve(ln)
	return ln, orders, nil
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
	switch {
	case rc.Outcome == wire.Approved && (rc.Action == "" || rc.Action == "charge" || rc.Action == "bill" || rc.Action == "capture"):
		// What moved to the merchant (a hold or an increment only holds).
		dm.sum.PaymentsOK++
		dm.sum.PaidMinor[iotpay.Currency(rc.Currency)] += rc.AmountMinor
	case rc.Outcome == wire.Declined:
		dm.sum.PaymentsDeclined++
	}
	if rc.Action != "" {
		dm.sum.Actions[rc.Action]++
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
	fmt.Fprintf(dm.out, "%-10s %-22s %-9s %-9s %10s  log %-4s receipt verified", name, what, rc.Outcome, rc.Action, amount, idx)
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

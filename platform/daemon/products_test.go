package daemon_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit"
	"github.com/iotpay/iotpay/device"
	devmqtt "github.com/iotpay/iotpay/device/mqtt"
	"github.com/iotpay/iotpay/platform/daemon"
	"github.com/iotpay/iotpay/platform/rules"
	"github.com/iotpay/iotpay/platform/webhook"
	"github.com/iotpay/iotpay/store/sqlstore"
	"github.com/iotpay/iotpay/wire"
)

// The scenario tests of the reference products: each device enrolls,
// reports and pays over MQTT/TLS through a running platform whose
// products carry the reference rules (platform/rules) and risk policies,
// and the ledger balances after every scenario.

// flat is a tariff of one price all day, so that a scenario's amounts do
// not depend on the hour it runs at.
func flat(name string, price int64) rules.Tariff {
	return rules.Tariff{Name: name, Currency: "EUR", PerUnits: 1000, Bands: []rules.Band{{From: "00:00", To: "24:00", PriceMinor: price}}}
}

// shop is a running platform with a merchant, a funded payer and tariffs.
type shop struct {
	*fixture
}

func newShop(t *testing.T, store string) *shop {
	t.Helper()
	d, err := daemon.Open(context.Background(), daemon.Config{DataDir: filepath.Join(t.TempDir(), "data"), Store: store,
		HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", DeviceHTTPAddr: "127.0.0.1:0", CoAPAddr: "127.0.0.1:0",
		WatchInterval: 50 * time.Millisecond, AllowPrivateWebhooks: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	p := &platform{t: t, d: d, url: "http://" + d.HTTPAddr()}
	s := &shop{fixture: &fixture{platform: p}}
	var acc struct{ ID iotpay.AccountID }
	p.must("POST", "/v1/accounts", map[string]any{"name": "merchant", "kind": "merchant", "currency": "EUR"}, &acc)
	s.merchant = acc.ID
	p.must("POST", "/v1/accounts", map[string]any{"name": "payer", "kind": "payer", "currency": "EUR"}, &acc)
	s.payer = acc.ID
	p.must("POST", "/v1/accounts/"+string(s.payer)+"/fund", map[string]any{"amount": 100_000}, nil)
	for _, tf := range []rules.Tariff{flat("ev", 35), flat("grid", 30)} {
		p.must("PUT", "/v1/tariffs/"+tf.Name, tf, nil)
	}
	t.Cleanup(p.assertBalanced) // after every scenario
	return s
}

// product creates a product whose profile is rs and policy (JSON, may be
// nil), and returns its id.
func (s *shop) product(name string, rs rules.Ruleset, profile map[string]any) iotpay.ProductID {
	s.t.Helper()
	var prod struct{ ID iotpay.ProductID }
	s.must("POST", "/v1/products", map[string]any{"name": name, "merchant_account": s.merchant,
		"pricing": map[string]any{"mode": "amount", "currency": "EUR"}}, &prod)
	if profile == nil {
		profile = map[string]any{}
	}
	profile["rules"] = rs.Rules
	s.must("PUT", "/v1/products/"+string(prod.ID)+"/profile", profile, nil)
	return prod.ID
}

// unit is one enrolled device of a product, with a mandate on the payer.
type unit struct {
	s   *shop
	dev *device.Device
	tr  *devmqtt.Transport
}

func (s *shop) device(prod iotpay.ProductID, perPayment, daily int64) *unit {
	s.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		s.t.Fatal(err)
	}
	dev, tr := s.enroll(prod, key)
	s.must("POST", "/v1/mandates", map[string]any{"device": dev.ID(), "payer": s.payer, "per_payment_limit": perPayment,
		"daily_limit": daily, "monthly_limit": daily * 31}, nil)
	return &unit{s: s, dev: dev, tr: tr}
}

// event sends an event (with an optional report) and returns its
// verified receipt.
func (u *unit) event(typ string, num map[string]int64, str map[string]string, report *wire.Report) *wire.Receipt {
	u.s.t.Helper()
	rc, err := u.dev.Pay(context.Background(), u.tr, device.Payment{Event: &wire.Event{Type: typ, Num: num, Str: str}, Report: report})
	if err != nil {
		u.s.t.Fatalf("%s: %v", typ, err)
	}
	if rc.Outcome == wire.Rejected {
		u.s.t.Fatalf("%s rejected: %s: %s", typ, rc.Code, rc.Reason)
	}
	return rc
}

func (u *unit) want(rc *wire.Receipt, outcome wire.Outcome, action string, amount int64) {
	u.s.t.Helper()
	if rc.Outcome != outcome || rc.Action != action || rc.AmountMinor != amount {
		u.s.t.Fatalf("receipt %s %s %d (%s), want %s %s %d", rc.Outcome, rc.Action, rc.AmountMinor, rc.Reason, outcome, action, amount)
	}
}

type paymentView struct {
	Status                 string
	Amount, Captured, Held int64
	DeclineCode            string `json:"decline_code"`
	Reason                 string
}

func (s *shop) payment(id string) paymentView {
	s.t.Helper()
	var p paymentView
	s.must("GET", "/v1/payments/"+id, nil, &p)
	return p
}

type stateView struct {
	Version, DesiredVersion, Applied uint64
	Firmware                         string
	Attested, Tamper                 bool
	Battery                          *int64
	LastReading                      int64 `json:"last_reading"`
	Reported                         map[string]any
	InactiveSince                    time.Time `json:"inactive_since"`
}

func (s *shop) state(id iotpay.DeviceID) stateView {
	s.t.Helper()
	var st stateView
	s.must("GET", "/v1/devices/"+string(id)+"/state", nil, &st)
	return st
}

type eventView struct{ Kind, Detail string }

func (s *shop) events(id iotpay.DeviceID) []eventView {
	s.t.Helper()
	var out struct{ Data []eventView }
	s.must("GET", "/v1/events?device="+string(id), nil, &out)
	return out.Data
}

// leaf reads an audit leaf from the store.
func (s *shop) leaf(i uint64) *audit.Leaf {
	s.t.Helper()
	ctx := context.Background()
	var e *audit.Entry
	if err := s.d.DB.View(ctx, func(tx *sqlstore.Tx) (err error) { e, err = tx.Leaf(ctx, i); return err }); err != nil {
		s.t.Fatal(err)
	}
	l, err := audit.ParseLeaf(e.Data)
	if err != nil {
		s.t.Fatal(err)
	}
	return l
}

func hasEvent(es []eventView, kind string) bool {
	for _, e := range es {
		if e.Kind == kind {
			return true
		}
	}
	return false
}

// TestEVChargingSession: a session starts with a hold of 30.00, two
// updates each raise it (incremental authorizations), and the end
// captures the energy delivered, part of what is held: the rest goes back
// to the payer. On SQLite and PostgreSQL.
func TestEVChargingSession(t *testing.T) { onEachStore(t, testEVChargingSession) }

func testEVChargingSession(t *testing.T, store string) {
	s := newShop(t, store)
	ev := s.device(s.product("charger", rules.EVChargerRules(), nil), 10_000, 20_000)
	sess := map[string]string{"session": "s-1"}
	start := ev.event("session_start", nil, sess, nil)
	ev.want(start, wire.Approved, "hold", 3000)
	pay := start.PaymentID
	ev.want(ev.event("session_update", map[string]int64{"wh": 50_000}, sess, nil), wire.Approved, "none", 0) // 17.50 < 30.00 held
	ev.want(ev.event("session_update", map[string]int64{"wh": 100_000}, sess, nil), wire.Approved, "increment", 1500)
	ev.want(ev.event("session_update", map[string]int64{"wh": 150_000}, sess, nil), wire.Approved, "increment", 1750)
	if p := s.payment(pay); p.Status != "authorized" || p.Held != 6250 || p.Amount != 6250 {
		t.Fatalf("after two increments: %+v", p)
	}
	end := ev.event("session_end", map[string]int64{"wh": 160_000}, sess, nil)
	ev.want(end, wire.Approved, "capture", 5600)
	if p := s.payment(pay); p.Status != "captured" || p.Captured != 5600 || p.Held != 0 || p.Amount != 6250 {
		t.Fatalf("after the partial capture: %+v", p)
	}
	if b := s.balance(s.payer); b != 100_000-5600 {
		t.Fatalf("payer balance %d", b)
	}
	if b := s.balance(s.merchant); b != 5600 {
		t.Fatalf("merchant balance %d", b)
	}
	// The session is closed: another end finds none, and moves nothing.
	again := ev.event("session_end", map[string]int64{"wh": 170_000}, sess, nil)
	ev.want(again, wire.Declined, "capture", 0)
	if b := s.balance(s.payer); b != 100_000-5600 {
		t.Fatalf("payer balance after a second end %d", b)
	}
}

// TestSmartMeterMonth: a meter reports its cumulative reading every day
// of a simulated month and is billed each week and at the month's end for
// what it used since the last bill, at 0.30 a kWh.
func TestSmartMeterMonth(t *testing.T) {
	s := newShop(t, "")
	meter := s.device(s.product("meter", rules.SmartMeterRules(), nil), 50_000, 50_000)
	total, billed, bills, lastBilled := int64(0), int64(0), 0, int64(0)
	for day := 1; day <= 30; day++ {
		total += 4_000 + int64(day%5)*700 // Wh used that day
		end := day%7 == 0 || day == 30
		rc := meter.event("reading", map[string]int64{"kwh_total": total}, map[string]string{"period_end": strconv.FormatBool(end), "day": strconv.Itoa(day)}, nil)
		if !end {
			meter.want(rc, wire.Approved, "none", 0)
			continue
		}
		want, _ := iotpay.MulDivCeil(total-lastBilled, 30, 1000)
		meter.want(rc, wire.Approved, "bill", want)
		lastBilled = total
		billed += want
		bills++
		if st := s.state(meter.dev.ID()); st.LastReading != total {
			t.Fatalf("day %d: last reading %d, want %d", day, st.LastReading, total)
		}
	}
	// A period end with nothing used since is billed nothing.
	meter.want(meter.event("reading", map[string]int64{"kwh_total": total}, map[string]string{"period_end": "true"}, nil), wire.Approved, "none", 0)
	if bills != 5 || s.balance(s.payer) != 100_000-billed || s.balance(s.merchant) != billed {
		t.Fatalf("%d bills of %d in all; payer %d, merchant %d", bills, billed, s.balance(s.payer), s.balance(s.merchant))
	}
}

// TestTamperedVendingMachineDeclined: a vending machine that reports
// tampering is declined by risk control and the operator is told; once
// inspected and the flag cleared, it sells again. Its firmware is attested
// against the product's allowed list.
func TestTamperedVendingMachineDeclined(t *testing.T) {
	s := newShop(t, "")
	image := sha256.Sum256([]byte("vending firmware 2.1.0"))
	prod := s.product("vending", rules.VendingRules("http://127.0.0.1:1/unused"), map[string]any{
		"risk":     map[string]any{"decline_tamper": true, "require_attested_firmware": true},
		"firmware": []any{map[string]any{"version": "2.1.0", "measurement": hex.EncodeToString(image[:])}}})
	vm := s.device(prod, 1000, 5000)
	a1 := map[string]string{"sku": "A1"}
	bat := int64(80)
	vm.want(vm.event("dispense", nil, a1, &wire.Report{Firmware: "2.1.0", Measurement: image[:], Battery: &bat}), wire.Approved, "charge", 150)
	if st := s.state(vm.dev.ID()); !st.Attested || st.Firmware != "2.1.0" || *st.Battery != 80 {
		t.Fatalf("state after an attested report: %+v", st)
	}

	rc := vm.event("dispense", nil, a1, &wire.Report{Tamper: true})
	if rc.Outcome != wire.Declined || rc.Code != string(iotpay.EDECLINED) || !strings.Contains(rc.Reason, "tamper") {
		t.Fatalf("tampered machine: %s %s %q", rc.Outcome, rc.Code, rc.Reason)
	}
	if p := s.payment(rc.PaymentID); p.Status != "declined" || p.DeclineCode != "risk_declined" {
		t.Fatalf("declined payment: %+v", p)
	}
	if st := s.state(vm.dev.ID()); !st.Tamper {
		t.Fatal("tamper flag not recorded")
	}
	if !hasEvent(s.events(vm.dev.ID()), "device.tamper") {
		t.Fatal("no device.tamper event")
	}
	if b := s.balance(s.payer); b != 100_000-150 {
		t.Fatalf("payer balance %d after the decline", b)
	}
	// Inspected: the operator clears the flag, and it sells again.
	s.must("PATCH", "/v1/devices/"+string(vm.dev.ID())+"/state", map[string]any{"clear_tamper": true}, nil)
	vm.want(vm.event("dispense", nil, map[string]string{"sku": "A2"}, nil), wire.Approved, "charge", 250)

	// Another image under the same version is not attested: declined.
	other := sha256.Sum256([]byte("modified firmware"))
	rc = vm.event("dispense", nil, a1, &wire.Report{Firmware: "2.1.0", Measurement: other[:]})
	if rc.Outcome != wire.Declined || !strings.Contains(rc.Reason, "firmware") {
		t.Fatalf("unattested firmware: %s %q", rc.Outcome, rc.Reason)
	}
	if !hasEvent(s.events(vm.dev.ID()), "device.firmware_not_attested") {
		t.Fatal("no firmware event")
	}
}

// TestVelocityCatchesABurst: a device may pay three times a minute; the
// fourth payment of a burst is declined with the velocity reason, and its
// risk decision is in the audit log. A payer's devices together are
// bounded by the account's velocity. A device outside its geofence is
// declined.
func TestVelocityCatchesABurst(t *testing.T) {
	s := newShop(t, "")
	prod := s.product("vending", rules.VendingRules("http://127.0.0.1:1/unused"), map[string]any{
		"risk": map[string]any{"velocity": []any{map[string]any{"scope": "device", "window": "1m", "max_count": 3}}}})
	vm := s.device(prod, 1000, 10_000)
	for range 3 {
		vm.want(vm.event("dispense", nil, map[string]string{"sku": "A1"}, nil), wire.Approved, "charge", 150)
	}
	rc := vm.event("dispense", nil, map[string]string{"sku": "A1"}, nil)
	if rc.Outcome != wire.Declined || !strings.Contains(rc.Reason, "4 payments in 1m0s on this device, max 3") {
		t.Fatalf("fourth payment in a minute: %s %q", rc.Outcome, rc.Reason)
	}
	// Across the payer's devices: an hour's amount on the account.
	acct := s.product("kiosk", rules.VendingRules("http://127.0.0.1:1/unused"), map[string]any{
		"risk": map[string]any{"velocity": []any{map[string]any{"scope": "account", "window": "1h", "max_amount": 900}}}})
	k1, k2 := s.device(acct, 1000, 10_000), s.device(acct, 1000, 10_000)
	k1.want(k1.event("dispense", nil, map[string]string{"sku": "B1"}, nil), wire.Approved, "charge", 300) // 450 + 300: the payer's 750 this hour
	if rc := k2.event("dispense", nil, map[string]string{"sku": "B1"}, nil); rc.Outcome != wire.Declined || !strings.Contains(rc.Reason, "account") {
		t.Fatalf("over the account's hour on another device: %s %q", rc.Outcome, rc.Reason)
	}
	k2.want(k2.event("dispense", nil, map[string]string{"sku": "A1"}, nil), wire.Approved, "charge", 150) // exactly 900

	// The decision, with its score and reasons, is the leaf's.
	leaf := s.leaf(*rc.LogIndex)
	var dec struct {
		Risk struct {
			Outcome string
			Score   int
			Reasons []struct{ Code string }
		}
	}
	if err := json.Unmarshal([]byte(leaf.Decision), &dec); err != nil || dec.Risk.Outcome != "decline" || dec.Risk.Score != 100 ||
		len(dec.Risk.Reasons) == 0 || dec.Risk.Reasons[0].Code != "velocity_count" {
		t.Fatalf("leaf decision %q: %v", leaf.Decision, err)
	}
	if b := s.balance(s.payer); b != 100_000-450-300-150 {
		t.Fatalf("payer balance %d", b)
	}

	// A geofence around Paris: a machine reporting Paris sells, the same
	// reporting Lyon is declined.
	fenced := s.product("fenced", rules.VendingRules("http://127.0.0.1:1/unused"), map[string]any{
		"risk": map[string]any{"geofence": map[string]any{"lat_e7": 488_566_000, "lon_e7": 23_522_000, "radius_m": 20_000}}})
	g := s.device(fenced, 1000, 10_000)
	paris, lyon := [2]int64{488_600_000, 23_400_000}, [2]int64{457_640_000, 48_357_000}
	g.want(g.event("dispense", nil, map[string]string{"sku": "A1"}, &wire.Report{LatE7: &paris[0], LonE7: &paris[1]}), wire.Approved, "charge", 150)
	if rc := g.event("dispense", nil, map[string]string{"sku": "A1"}, &wire.Report{LatE7: &lyon[0], LonE7: &lyon[1]}); rc.Outcome != wire.Declined ||
		!strings.Contains(rc.Reason, "geofence") {
		t.Fatalf("outside the geofence: %s %q", rc.Outcome, rc.Reason)
	}
}

// TestRefillOrderSigned: a vending machine running low makes the rules
// order a refill; the supplier receives it signed with the tenant's supply
// secret, and the order shows delivered.
func TestRefillOrderSigned(t *testing.T) {
	s := newShop(t, "")
	var secret struct{ Secret string }
	s.must("GET", "/v1/supply/secret", nil, &secret)
	var mu sync.Mutex
	var got []daemon.OrderBody
	attempts := 0
	supplier := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if attempts == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable) // the first delivery fails: it is sent again
			return
		}
		if err := webhook.Verify(secret.Secret, r.Header.Get(webhook.SignatureHeader), body, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var o daemon.OrderBody
		if err := json.Unmarshal(body, &o); err != nil || r.Header.Get("Idempotency-Key") != o.ID {
			http.Error(w, "bad order", http.StatusBadRequest)
			return
		}
		got = append(got, o)
	}))
	defer supplier.Close()
	vm := s.device(s.product("vending", rules.VendingRules(supplier.URL+"/orders"), nil), 1000, 5000)
	vm.want(vm.event("stock", map[string]int64{"left": 5}, map[string]string{"sku": "B1"}, nil), wire.Approved, "none", 0)
	vm.want(vm.event("stock", map[string]int64{"left": 1}, map[string]string{"sku": "B1"}, nil), wire.Approved, "refill", 0)
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the supplier got no order")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if o := got[0]; o.Item != "B1" || o.Quantity != 9 || o.Device != vm.dev.ID() {
		t.Fatalf("order %+v", o)
	}
	var orders struct {
		Data []struct {
			Status   string
			Attempts int
		}
	}
	s.must("GET", "/v1/orders?device="+string(vm.dev.ID()), nil, &orders)
	if len(orders.Data) != 1 || orders.Data[0].Status != "delivered" || orders.Data[0].Attempts != 2 {
		t.Fatalf("orders %+v", orders.Data)
	}
	// A forged signature is refused by the supplier's check.
	if err := webhook.Verify(secret.Secret, webhook.Sign("whsec_other", time.Now(), []byte("{}")), []byte("{}"), time.Now(), time.Minute); err == nil {
		t.Fatal("a signature under another secret verified")
	}
	if b := s.balance(s.payer); b != 100_000 {
		t.Fatalf("a refill moved money: payer %d", b)
	}
}

// TestParkingReviewAndDesiredState: a new parking barrier's large charge
// is held for review (cool-off) and the operator approves it from the
// queue; the barrier is sent a desired state over MQTT, which it checks,
// and reports applied; a silent barrier is reported inactive.
func TestParkingReviewAndDesiredState(t *testing.T) {
	s := newShop(t, "")
	prod := s.product("parking", rules.ParkingRules(), map[string]any{
		"risk": map[string]any{"cool_off": map[string]any{"period": "24h", "amount_max": 1000}}, "inactivity_timeout_s": 1})
	gate := s.device(prod, 5000, 10_000)
	gate.want(gate.event("entry", nil, nil, nil), wire.Approved, "none", 0)
	gate.want(gate.event("exit", map[string]int64{"minutes": 75}, nil, nil), wire.Approved, "charge", 200)
	rc := gate.event("exit", map[string]int64{"minutes": 26 * 60}, nil, nil) // two started days: 40.00
	gate.want(rc, wire.Review, "charge", 4000)
	if p := s.payment(rc.PaymentID); p.Status != "authorized" || p.Held != 4000 {
		t.Fatalf("held for review: %+v", p)
	}
	var queue struct {
		Data []struct{ Payment, Status string }
	}
	s.must("GET", "/v1/reviews?status=pending", nil, &queue)
	if len(queue.Data) != 1 || queue.Data[0].Payment != rc.PaymentID {
		t.Fatalf("review queue %+v", queue.Data)
	}
	s.must("POST", "/v1/reviews/"+rc.PaymentID+"/approve", map[string]any{"note": "long stay, confirmed"}, nil)
	if p := s.payment(rc.PaymentID); p.Status != "captured" || p.Captured != 4000 {
		t.Fatalf("approved: %+v", p)
	}
	if b := s.balance(s.payer); b != 100_000-4200 {
		t.Fatalf("payer balance %d", b)
	}

	// Desired state: pushed on the device's desired topic, signed.
	desired := make(chan []byte, 4)
	tr, err := devmqtt.Dial(context.Background(), devmqtt.Config{Addr: s.d.MQTTAddr(), TLS: gate.dev.Identity().TLSConfig("127.0.0.1"),
		DeviceID: gate.dev.ID(), Timeout: 5 * time.Second, OnDesired: func(b []byte) { desired <- b }})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	gate.tr.Close()
	gate.tr = tr
	s.must("PATCH", "/v1/devices/"+string(gate.dev.ID())+"/state", map[string]any{"desired": map[string]any{"barrier_open_s": 20, "mode": "night"}}, nil)
	var ds *wire.Desired
	select {
	case b := <-desired:
		if ds, err = gate.dev.OpenDesired(b); err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no desired state pushed")
	}
	if ds.Version != 1 || ds.Num["barrier_open_s"] != 20 || ds.Str["mode"] != "night" {
		t.Fatalf("desired %+v", ds)
	}
	// Until the device applies it, its receipts carry it too.
	rc = gate.event("entry", nil, nil, nil)
	if d, err := gate.dev.OpenDesired(rc.Desired); err != nil || d.Version != 1 {
		t.Fatalf("receipt's desired state: %v", err)
	}
	rc = gate.event(wire.EventState, nil, nil, &wire.Report{Applied: 1, Str: map[string]string{"mode": "night"}})
	if rc.Desired != nil || rc.Action != "report" {
		t.Fatalf("after applying: %+v", rc)
	}
	if st := s.state(gate.dev.ID()); st.Applied != 1 || st.Reported["mode"] != "night" {
		t.Fatalf("state %+v", st)
	}

	// Silent for more than its product's second: reported inactive, once.
	deadline := time.Now().Add(10 * time.Second)
	for !hasEvent(s.events(gate.dev.ID()), "device.inactive") {
		if time.Now().After(deadline) {
			t.Fatal("no device.inactive event")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := s.state(gate.dev.ID()); st.InactiveSince.IsZero() {
		t.Fatal("state not marked inactive")
	}
	gate.event("entry", nil, nil, nil)
	if st := s.state(gate.dev.ID()); !st.InactiveSince.IsZero() {
		t.Fatal("heard from again, still inactive")
	}
}

// TestRuleErrorsMoveNoMoney: an event a rule cannot evaluate (a field it
// needs is missing) is refused with the rule's error, logged, and moves
// nothing; a dry run shows the same without any device.
func TestRuleErrorsMoveNoMoney(t *testing.T) {
	s := newShop(t, "")
	prod := s.product("charger", rules.EVChargerRules(), nil)
	ev := s.device(prod, 10_000, 20_000)
	rc, err := ev.dev.Pay(context.Background(), ev.tr, device.Payment{Event: &wire.Event{Type: "session_end", Str: map[string]string{"session": "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	if rc.Outcome != wire.Rejected || rc.Code != string(iotpay.EINVALID) || !strings.Contains(rc.Reason, `rule "ev-end"`) {
		t.Fatalf("rule error: %s %s %q", rc.Outcome, rc.Code, rc.Reason)
	}
	if b := s.balance(s.payer); b != 100_000 {
		t.Fatalf("payer balance %d", b)
	}
	var dry map[string]any
	s.must("POST", "/v1/products/"+string(prod)+"/dry-run", map[string]any{"event": map[string]any{"type": "session_start", "str": map[string]any{"session": "y"}}}, &dry)
	if a := dry["action"].(map[string]any); a["kind"] != "hold" || a["amount"] != 3000.0 {
		t.Fatalf("dry run %v", dry)
	}
	if st := s.api("POST", "/v1/products/"+string(prod)+"/dry-run", map[string]any{"event": map[string]any{"type": "session_end"}}, nil); st != 400 {
		t.Fatalf("dry run of a rule error: %d", st)
	}
	if b := s.balance(s.payer); b != 100_000 {
		t.Fatalf("a dry run moved money: %d", b)
	}
}

package platform_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/iotpay/iotpay/device"
	"github.com/iotpay/iotpay/payment/ledger"
	"github.com/iotpay/iotpay/platform"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/platform/rules"
	"github.com/iotpay/iotpay/wire"
)

// withRules gives the world's product rs as its rules, with a risk policy
// (JSON), after flat ev and grid tariffs.
func (w *world) withRules(tb testing.TB, rs rules.Ruleset, risk string) {
	tb.Helper()
	w.do(tb, func(b *ledger.Batch[platform.Tx]) error {
		for _, name := range []string{"ev", "grid"} {
			tf, _ := json.Marshal(rules.Tariff{Name: name, Currency: "EUR", PerUnits: 1000, Bands: []rules.Band{{From: "00:00", To: "24:00", PriceMinor: 35}}})
			if err := b.Tx.PutTariff(b.Context(), w.tenant, name, tf, b.Now); err != nil {
				return err
			}
		}
		rb, _ := json.Marshal(rs.Rules)
		pf := &registry.Profile{Product: w.product, Version: 1, Rules: rb, Created: b.Now}
		if risk != "" {
			pf.Risk = json.RawMessage(risk)
		}
		return b.Tx.PutProfile(b.Context(), pf)
	})
}

// FuzzProcessRules signs arbitrary events (with reports) as the enrolled
// device and feeds them through a product with rules of every action and
// a risk policy: always a signed answer, never a panic, and money is
// conserved whatever the rules make of it (holds stay the payer's).
func FuzzProcessRules(f *testing.F) {
	w := newWorld(f)
	all := append(rules.EVChargerRules().Rules, rules.VendingRules("http://127.0.0.1:1/orders").Rules...)
	all = append(all, rules.SmartMeterRules().Rules...)
	all = append(all, rules.ParkingRules().Rules...)
	w.withRules(f, rules.Ruleset{Rules: all}, `{"decline_tamper":true,"velocity":[{"scope":"device","window":"1m","max_count":50,"action":"review"}],"anomaly":{"min_history":3}}`)
	for _, typ := range []string{"session_start", "session_update", "session_end", "dispense", "stock", "reading", "exit", "entry", "state", ""} {
		f.Add(typ, int64(12_000), "A1", "s-1", false, int64(50))
	}
	f.Add("session_update", int64(1<<62), "", "s-1", true, int64(-1))
	f.Add("exit", int64(-5), "B1", "", false, int64(101))
	f.Fuzz(func(t *testing.T, typ string, n int64, str, session string, tamper bool, battery int64) {
		ev := &wire.Event{Type: typ, Num: map[string]int64{"wh": n, "wh_max": n, "left": n, "kwh_total": n, "minutes": n},
			Str: map[string]string{"sku": str, "session": session, "period_end": "true"}}
		p := device.Payment{Event: ev, Report: &wire.Report{Tamper: tamper, Battery: &battery}}
		s, err := w.dev.Sign(p)
		if err != nil {
			return // not a request the device can send (bad type, battery…)
		}
		res := w.proc.Process(context.Background(), w.dev.ID(), s.Raw)
		if res.Receipt == nil {
			t.Fatal("no receipt")
		}
		rc, err := w.dev.Open(s, res.Receipt)
		if err != nil {
			t.Fatalf("the device cannot check its receipt: %v", err)
		}
		if rc.Outcome == wire.Rejected && rc.Code == "internal" {
			t.Fatalf("internal error for %+v: %s", ev, rc.Reason)
		}
		if payer, paid := w.balances(t); payer+paid != 10000 {
			t.Fatalf("money appeared or vanished: payer %d + paid %d", payer, paid)
		}
	})
}

// TestRulesThroughTheProcessor: a session held, captured in part, its
// end again finding none, a tampered device declined, a hold over the
// mandate declined; money is conserved.
func TestRulesThroughTheProcessor(t *testing.T) {
	w := newWorld(t)
	w.withRules(t, rules.EVChargerRules(), `{"decline_tamper":true}`)
	pay := func(typ string, num map[string]int64, report *wire.Report) *wire.Receipt {
		t.Helper()
		s, err := w.dev.Sign(device.Payment{Event: &wire.Event{Type: typ, Num: num, Str: map[string]string{"session": "a"}}, Report: report})
		if err != nil {
			t.Fatal(err)
		}
		rc, err := w.dev.Open(s, w.proc.Process(context.Background(), w.dev.ID(), s.Raw).Receipt)
		if err != nil {
			t.Fatal(err)
		}
		return rc
	}
	want := func(rc *wire.Receipt, outcome wire.Outcome, action string, amount int64) {
		t.Helper()
		if rc.Outcome != outcome || rc.Action != action || rc.AmountMinor != amount {
			t.Fatalf("receipt %s %s %d (%s), want %s %s %d", rc.Outcome, rc.Action, rc.AmountMinor, rc.Reason, outcome, action, amount)
		}
	}
	// The mandate allows 10.00 a payment: the default 30.00 hold is declined.
	want(pay("session_start", nil, nil), wire.Declined, "hold", 3000)
	want(pay("session_start", map[string]int64{"wh_max": 20_000}, nil), wire.Approved, "hold", 700)
	want(pay("session_end", map[string]int64{"wh": 10_000}, nil), wire.Approved, "capture", 350)
	want(pay("session_end", map[string]int64{"wh": 10_000}, nil), wire.Declined, "capture", 0)
	want(pay("session_start", map[string]int64{"wh_max": 1000}, &wire.Report{Tamper: true}), wire.Declined, "hold", 35)
	if payer, paid := w.balances(t); payer != 10000-350 || paid != 350 {
		t.Fatalf("balances %d %d", payer, paid)
	}
}

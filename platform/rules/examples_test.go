package rules_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/rules"
)

var (
	berlin, _ = time.LoadLocation("Europe/Berlin")
	day       = time.Date(2025, 1, 15, 14, 0, 0, 0, berlin) // ev 35, grid 30 per kWh
	night     = time.Date(2025, 1, 15, 3, 0, 0, 0, berlin)  // ev 20, grid 15 per kWh
)

type step struct {
	name string
	in   rules.Input
	want rules.Action // Kind "" for an EINVALID error
}

func run(t *testing.T, rs rules.Ruleset, steps []step) {
	t.Helper()
	p, err := rules.Compile(rs, rules.ReferenceTariffs(), "EUR")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			a, err := p.Eval(&s.in)
			if s.want.Kind == "" {
				if iotpay.ErrorCode(err) != iotpay.EINVALID || a != nil {
					t.Fatalf("got %+v, %v; want an EINVALID error", a, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(s.want, *a); d != "" {
				t.Errorf("action (-want +got):\n%s", d)
			}
		})
	}
}

func ev(typ string, num map[string]int64, held int64, now time.Time) rules.Input {
	return rules.Input{Event: rules.Event{Type: typ, Num: num, Str: map[string]string{"session": "s-9"}},
		Session: rules.Session{Open: held > 0, Held: held}, Now: now}
}

func TestEVCharger(t *testing.T) {
	run(t, rules.EVChargerRules(), []step{
		{"start with a maximum, by day", ev("session_start", map[string]int64{"wh_max": 40_000}, 0, day),
			rules.Action{Rule: "ev-start", Kind: rules.Hold, Amount: 1400, Currency: "EUR", Session: "s-9"}},
		{"start with a maximum, by night", ev("session_start", map[string]int64{"wh_max": 40_000}, 0, night),
			rules.Action{Rule: "ev-start", Kind: rules.Hold, Amount: 800, Currency: "EUR", Session: "s-9"}},
		{"start without one", ev("session_start", nil, 0, day),
			rules.Action{Rule: "ev-start", Kind: rules.Hold, Amount: 3000, Currency: "EUR", Session: "s-9"}},
		{"update within the hold", ev("session_update", map[string]int64{"wh": 50_000}, 3000, day),
			rules.Action{Kind: rules.None}},
		{"update past the hold", ev("session_update", map[string]int64{"wh": 100_000}, 3000, day),
			rules.Action{Rule: "ev-top-up", Kind: rules.Increment, Amount: 3500 - 3000 + 1000, Currency: "EUR", Session: "s-9"}},
		{"update without a session", ev("session_update", map[string]int64{"wh": 100_000}, 0, day), rules.Action{Kind: rules.None}},
		{"update without energy", ev("session_update", nil, 3000, day), rules.Action{}},
		{"end", ev("session_end", map[string]int64{"wh": 12_345}, 3000, day),
			rules.Action{Rule: "ev-end", Kind: rules.Capture, Amount: 433, Currency: "EUR", Session: "s-9", Final: true}},
		{"end having used nothing", ev("session_end", map[string]int64{"wh": 0}, 3000, day),
			rules.Action{Rule: "ev-end", Kind: rules.Capture, Amount: 0, Currency: "EUR", Session: "s-9", Final: true}},
		{"end without energy", ev("session_end", nil, 3000, day), rules.Action{}},
		{"other event", ev("heartbeat", nil, 3000, day), rules.Action{Kind: rules.None}},
	})
}

func TestVending(t *testing.T) {
	const supplier = "http://127.0.0.1:8099/orders" // a test supplier's, known at run time
	in := func(typ, sku string, left int64) rules.Input {
		return rules.Input{Event: rules.Event{Type: typ, Num: map[string]int64{"left": left}, Str: map[string]string{"sku": sku}}, Now: day}
	}
	run(t, rules.VendingRules(supplier), []step{
		{"A1", in("dispense", "A1", 5), rules.Action{Rule: "dispense", Kind: rules.Charge, Amount: 150, Currency: "EUR"}},
		{"B1", in("dispense", "B1", 5), rules.Action{Rule: "dispense", Kind: rules.Charge, Amount: 300, Currency: "EUR"}},
		{"unlisted", in("dispense", "Z9", 5), rules.Action{Rule: "dispense", Kind: rules.Charge, Amount: 200, Currency: "EUR"}},
		{"stock low", in("stock", "A2", 2), rules.Action{Rule: "restock", Kind: rules.Refill, Quantity: 8, Item: "A2", Supplier: supplier}},
		{"stock empty", in("stock", "A2", 0), rules.Action{Rule: "restock", Kind: rules.Refill, Quantity: 10, Item: "A2", Supplier: supplier}},
		{"stock fine", in("stock", "A2", 3), rules.Action{Kind: rules.None}},
		{"dispense without a sku", rules.Input{Event: rules.Event{Type: "dispense"}}, rules.Action{}},
	})
}

func TestSmartMeter(t *testing.T) {
	in := func(total int64, periodEnd bool, last int64, now time.Time) rules.Input {
		i := rules.Input{Event: rules.Event{Type: "reading", Num: map[string]int64{"kwh_total": total}}, LastReading: last, Now: now}
		if periodEnd {
			i.Event.Str = map[string]string{"period_end": "true"}
		}
		return i
	}
	run(t, rules.SmartMeterRules(), []step{
		{"within the period", in(1_200_000, false, 1_000_000, day), rules.Action{Kind: rules.None}},
		{"period end, peak", in(1_200_000, true, 1_000_000, day),
			rules.Action{Rule: "period-end", Kind: rules.Bill, Amount: 6000, Currency: "EUR", Reading: 1_200_000}},
		{"period end, off-peak", in(1_200_000, true, 1_000_000, night),
			rules.Action{Rule: "period-end", Kind: rules.Bill, Amount: 3000, Currency: "EUR", Reading: 1_200_000}},
		{"period end, first bill, rounded up", in(1_001, true, 0, day),
			rules.Action{Rule: "period-end", Kind: rules.Bill, Amount: 31, Currency: "EUR", Reading: 1_001}},
		{"period end, nothing used", in(1_000_000, true, 1_000_000, day), rules.Action{Kind: rules.None}},
		{"meter went backwards", in(900_000, true, 1_000_000, day), rules.Action{}},
	})
}

func TestParking(t *testing.T) {
	exit := func(minutes int64) rules.Input {
		return rules.Input{Event: rules.Event{Type: "exit", Num: map[string]int64{"minutes": minutes}}, Now: day}
	}
	charge := func(amount int64) rules.Action {
		return rules.Action{Rule: "exit", Kind: rules.Charge, Amount: amount, Currency: "EUR"}
	}
	run(t, rules.ParkingRules(), []step{
		{"entry", rules.Input{Event: rules.Event{Type: "entry"}}, rules.Action{Rule: "entry", Kind: rules.None}},
		{"10 minutes", exit(10), rules.Action{Rule: "grace", Kind: rules.None}},
		{"15 minutes", exit(15), rules.Action{Rule: "grace", Kind: rules.None}},
		{"16 minutes", exit(16), charge(200)},
		{"75 minutes", exit(75), charge(200)},
		{"76 minutes", exit(76), charge(400)},
		{"10 hours", exit(600), charge(2000)},
		{"a day", exit(1440), charge(2000)},
		{"a day and a minute", exit(1441), charge(4000)},
		{"a week", exit(7 * 1440), charge(14000)},
		{"no duration", rules.Input{Event: rules.Event{Type: "exit"}}, rules.Action{}},
	})
}

func TestReferenceNeeds(t *testing.T) {
	for _, c := range []struct {
		rs   rules.Ruleset
		want rules.Needs
	}{
		{rules.EVChargerRules(), rules.Needs{Session: true}},
		{rules.VendingRules("https://s.example/"), rules.Needs{}},
		{rules.SmartMeterRules(), rules.Needs{LastReading: true}},
		{rules.ParkingRules(), rules.Needs{}},
	} {
		p, err := rules.Compile(c.rs, rules.ReferenceTariffs(), "EUR")
		if err != nil {
			t.Fatal(err)
		}
		if p.Needs() != c.want {
			t.Errorf("%s: needs %+v, want %+v", c.rs.Rules[0].Name, p.Needs(), c.want)
		}
	}
}

func ExampleProgram_Eval() {
	p, err := rules.Compile(rules.EVChargerRules(), rules.ReferenceTariffs(), "EUR")
	if err != nil {
		panic(err)
	}
	a, err := p.Eval(&rules.Input{
		Event:   rules.Event{Type: "session_end", Num: map[string]int64{"wh": 12_345}, Str: map[string]string{"session": "s-9"}},
		Session: rules.Session{Open: true, Held: 3000},
		Now:     time.Date(2025, 1, 15, 14, 0, 0, 0, time.UTC),
	})
	fmt.Println(a.Rule, a.Kind, a.Amount, a.Currency, a.Session, a.Final, err)
	_, err = p.Eval(&rules.Input{Event: rules.Event{Type: "session_end"}})
	fmt.Println(err)
	// Output:
	// ev-end capture 433 EUR s-9 true <nil>
	// invalid: rule "ev-end": amount: no such key: wh
}

package rules

import (
	"testing"
	"time"
	"unicode/utf8"

	"github.com/iotpay/iotpay"
)

var fuzzKinds = []ActionKind{Charge, Hold, Increment, Capture, Bill, Refill, None}

// FuzzEval compiles a rule of fuzzed expressions and evaluates it on a
// fuzzed event: nothing panics, every failure is EINVALID without an
// action, and every action keeps to the bounds.
func FuzzEval(f *testing.F) {
	for _, rs := range []Ruleset{EVChargerRules(), VendingRules("https://s.example/o"), SmartMeterRules(), ParkingRules()} {
		for _, r := range rs.Rules {
			aux := r.Session + r.Reading + r.Item
			f.Add(r.When, r.Amount+r.Quantity, aux, uint8(0), "session_end", "wh", int64(12345), "s-1", int64(0), int64(1736949600))
		}
	}
	f.Add(`event.num.wh > 0`, `price("ev", event.num.wh)`, `event.str.wh`, uint8(3), "x", "wh", int64(-1), "", int64(0), int64(0))
	f.Add(`true`, `ceil_div(event.num.k, 0)`, `event.num.k`, uint8(4), "reading", "k", int64(5), "v", int64(7), int64(-1))
	f.Add(``, `event.num.k * 1000000000000`, `"a" + event.str.k`, uint8(1), "t", "k", int64(9_223_372_036), "kk", int64(0), int64(1))
	f.Add(`device.reported.k`, `device.reported.k`, `device.reported.k`, uint8(5), "", "k", int64(3), "1", int64(0), int64(0))
	f.Add(`event.num.exists(k, event.num.all(j, j == k))`, `size(event.str)`, `string(hour)`, uint8(2), "e", "k", int64(1), "s", int64(0), int64(1e10))
	f.Add(`session.open`, ``, ``, uint8(3), "", "", int64(0), "", int64(0), int64(0))
	f.Fuzz(func(t *testing.T, when, amount, aux string, kind uint8, typ, key string, num int64, str string, last, unix int64) {
		k := fuzzKinds[int(kind)%len(fuzzKinds)]
		r := Rule{Name: "f", When: when, Action: k}
		switch k {
		case Charge, Hold, Increment, Capture:
			r.Amount, r.Session = amount, aux
		case Bill:
			r.Amount, r.Reading = amount, aux
		case Refill:
			r.Quantity, r.Item, r.Supplier = amount, aux, "https://s.example/o"
		}
		p, err := Compile(Ruleset{Rules: []Rule{r}}, ReferenceTariffs(), "EUR")
		if err != nil {
			if iotpay.ErrorCode(err) != iotpay.EINVALID {
				t.Fatalf("compile: %v", err)
			}
			return
		}
		in := &Input{
			Event:       Event{Type: typ, Num: map[string]int64{key: num, "n": num}, Str: map[string]string{key: str, "session": str}},
			Device:      Device{ID: str, Battery: num, Reported: map[string]any{key: str, "n": num, "f": float64(num) / 3}},
			Session:     Session{Open: num > 0, Held: num, Captured: last},
			LastReading: last,
			Now:         time.Unix(unix%(1<<40), 0),
		}
		a, err := p.Eval(in)
		if err != nil {
			if a != nil || iotpay.ErrorCode(err) != iotpay.EINVALID {
				t.Fatalf("eval: %+v, %v", a, err)
			}
			return
		}
		checkAction(t, a, k, in)
	})
}

func checkAction(t *testing.T, a *Action, k ActionKind, in *Input) {
	t.Helper()
	if a.Kind == None {
		if *a != (Action{Kind: None, Rule: a.Rule}) || a.Rule != "" && k != None {
			t.Fatalf("none with more: %+v", a)
		}
		return
	}
	if a.Kind != k || a.Rule != "f" {
		t.Fatalf("action %+v from a %s rule", a, k)
	}
	least := int64(1)
	switch k {
	case Capture:
		least = 0
		fallthrough
	case Charge, Hold, Increment, Bill:
		if a.Amount < least || a.Amount > AmountMax || a.Currency != "EUR" {
			t.Fatalf("amount out of bounds: %+v", a)
		}
	case Refill:
		if a.Quantity < 1 || a.Quantity > QuantityMax || !validKey(a.Item) || a.Supplier != "https://s.example/o" || a.Amount != 0 {
			t.Fatalf("refill out of bounds: %+v", a)
		}
	}
	switch k {
	case Hold, Increment, Capture:
		if !validKey(a.Session) {
			t.Fatalf("session key %q", a.Session)
		}
	case Bill:
		if a.Reading < in.LastReading || in.LastReading < 0 {
			t.Fatalf("reading %d after %d", a.Reading, in.LastReading)
		}
	}
}

func validKey(s string) bool { return s != "" && len(s) <= KeyBytesMax && utf8.ValidString(s) }

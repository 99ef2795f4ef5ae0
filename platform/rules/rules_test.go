package rules

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iotpay/iotpay"
)

// winter is a Berlin winter afternoon (UTC+1), in the "ev" day band.
var winter = time.Date(2025, 1, 15, 14, 0, 0, 0, time.UTC)

func compile(t *testing.T, rules ...Rule) *Program {
	t.Helper()
	p, err := Compile(Ruleset{Version: 3, Rules: rules}, ReferenceTariffs(), "EUR")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func yes() *bool { b := true; return &b }
func no() *bool  { b := false; return &b }

func event(typ string, num map[string]int64, str map[string]string) *Input {
	return &Input{Event: Event{Type: typ, Num: num, Str: str}, Device: Device{Battery: -1}, Now: winter}
}

func TestActions(t *testing.T) {
	sess := map[string]string{"session": "s-1"}
	for _, c := range []struct {
		name string
		rule Rule
		in   *Input
		want Action
	}{
		{"charge", Rule{Name: "c", Action: Charge, Amount: `150`}, event("x", nil, nil),
			Action{Rule: "c", Kind: Charge, Amount: 150, Currency: "EUR"}},
		{"hold with the default session", Rule{Name: "h", Action: Hold, Amount: `3000`}, event("x", nil, sess),
			Action{Rule: "h", Kind: Hold, Amount: 3000, Currency: "EUR", Session: "s-1"}},
		{"hold with its own session", Rule{Name: "h", Action: Hold, Amount: `3000`, Session: `device.id + "/" + event.str.session`},
			&Input{Event: Event{Str: sess}, Device: Device{ID: "dev-1"}},
			Action{Rule: "h", Kind: Hold, Amount: 3000, Currency: "EUR", Session: "dev-1/s-1"}},
		{"increment", Rule{Name: "i", Action: Increment, Amount: `event.num.wh / 10 - session.held`},
			&Input{Event: Event{Num: map[string]int64{"wh": 50_000}, Str: sess}, Session: Session{Open: true, Held: 3000}},
			Action{Rule: "i", Kind: Increment, Amount: 2000, Currency: "EUR", Session: "s-1"}},
		{"capture, final by default", Rule{Name: "k", Action: Capture, Amount: `1234`}, event("x", nil, sess),
			Action{Rule: "k", Kind: Capture, Amount: 1234, Currency: "EUR", Session: "s-1", Final: true}},
		{"capture, not final", Rule{Name: "k", Action: Capture, Amount: `1234`, Final: no()}, event("x", nil, sess),
			Action{Rule: "k", Kind: Capture, Amount: 1234, Currency: "EUR", Session: "s-1"}},
		{"capture what is held", Rule{Name: "k", Action: Capture, Final: yes()},
			&Input{Event: Event{Str: sess}, Session: Session{Open: true, Held: 777, Captured: 10}},
			Action{Rule: "k", Kind: Capture, Amount: 777, Currency: "EUR", Session: "s-1", Final: true}},
		{"capture nothing", Rule{Name: "k", Action: Capture, Amount: `0`}, event("x", nil, sess),
			Action{Rule: "k", Kind: Capture, Currency: "EUR", Session: "s-1", Final: true}},
		{"bill the delta", Rule{Name: "b", Action: Bill, Reading: `event.num.total`, Amount: `delta * 2`},
			&Input{Event: Event{Num: map[string]int64{"total": 1500}}, LastReading: 1000},
			Action{Rule: "b", Kind: Bill, Amount: 1000, Currency: "EUR", Reading: 1500}},
		{"refill", Rule{Name: "r", Action: Refill, Quantity: `10 - event.num.left`, Item: `event.str.sku`, Supplier: "https://s.example/o?x=1"},
			event("x", map[string]int64{"left": 2}, map[string]string{"sku": "A1"}),
			Action{Rule: "r", Kind: Refill, Quantity: 8, Item: "A1", Supplier: "https://s.example/o?x=1"}},
		{"none by a rule", Rule{Name: "n", When: `event.type == "entry"`, Action: None}, event("entry", nil, nil),
			Action{Rule: "n", Kind: None}},
		{"none by no rule", Rule{Name: "n", When: `event.type == "entry"`, Action: Charge, Amount: `1`}, event("exit", nil, nil),
			Action{Kind: None}},
		{"device fields", Rule{Name: "d", When: `device.attested && !device.tamper && device.battery > 20 && device.firmware == "1.2"`,
			Action: Charge, Amount: `device.battery`},
			&Input{Device: Device{Firmware: "1.2", Attested: true, Battery: 55}},
			Action{Rule: "d", Kind: Charge, Amount: 55, Currency: "EUR"}},
		{"reported shadow, a JSON number", Rule{Name: "r", When: `device.reported.level > 3`, Action: Charge,
			Amount: `int(device.reported.level)`},
			&Input{Device: Device{Reported: map[string]any{"level": 4.0}}},
			Action{Rule: "r", Kind: Charge, Amount: 4, Currency: "EUR"}},
		{"hour and now", Rule{Name: "t", When: `hour == 14 && now.getHours("Europe/Berlin") == 15`, Action: Charge, Amount: `hour`},
			&Input{Now: winter}, Action{Rule: "t", Kind: Charge, Amount: 14, Currency: "EUR"}},
		{"a loop within the cost limit", Rule{Name: "l", Action: Charge,
			Amount: `[1, 2, 3].filter(x, x > 1).size() + (event.num.exists(k, k == "a") ? 10 : 0)`},
			event("x", map[string]int64{"a": 1}, nil), Action{Rule: "l", Kind: Charge, Amount: 12, Currency: "EUR"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, err := compile(t, c.rule).Eval(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(c.want, *a); d != "" {
				t.Errorf("action (-want +got):\n%s", d)
			}
		})
	}
}

func TestFirstMatch(t *testing.T) {
	p := compile(t,
		Rule{Name: "big", When: `event.num.n > 100`, Action: Charge, Amount: `3`},
		Rule{Name: "any", When: `event.num.n > 10`, Action: Charge, Amount: `2`},
		Rule{Name: "last", Action: Charge, Amount: `1`},
	)
	for n, want := range map[int64]string{1000: "big", 50: "any", 5: "last"} {
		a, err := p.Eval(event("x", map[string]int64{"n": n}, nil))
		if err != nil {
			t.Fatal(err)
		}
		if a.Rule != want {
			t.Errorf("n=%d: rule %q, want %q", n, a.Rule, want)
		}
	}
	if p.Version() != 3 {
		t.Errorf("version %d", p.Version())
	}
}

// TestErrorsStopTheRules: a rule whose when fails decides nothing, and
// later rules are not tried (they might move money the earlier rule
// meant to refuse).
func TestErrorsStopTheRules(t *testing.T) {
	p := compile(t,
		Rule{Name: "first", When: `event.num.missing > 0`, Action: None},
		Rule{Name: "second", Action: Charge, Amount: `100`},
	)
	a, err := p.Eval(event("x", nil, nil))
	if a != nil || iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Fatalf("got %v, %v", a, err)
	}
}

func TestPrice(t *testing.T) {
	tariffs := append(ReferenceTariffs(), Tariff{Name: "flat", Currency: "EUR", PerUnits: 1000,
		Bands: []Band{{From: "00:00", To: "12:00", PriceMinor: 7}, {From: "12:00", To: "24:00", PriceMinor: 9}}})
	p, err := Compile(Ruleset{Rules: []Rule{
		{Name: "ev", When: `event.type == "ev"`, Action: Charge, Amount: `price("ev", event.num.wh)`},
		{Name: "flat", When: `event.type == "flat"`, Action: Charge, Amount: `price("flat", event.num.wh)`},
		{Name: "named", Action: Charge, Amount: `price(event.str.tariff, event.num.wh)`},
	}}, tariffs, "EUR")
	if err != nil {
		t.Fatal(err)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		tariff string
		wh     int64
		now    time.Time
		want   int64
	}{
		{"winter 06:59 local is night", "ev", 1000, time.Date(2025, 1, 15, 6, 59, 59, 0, berlin), 20},
		{"winter 07:00 local is day", "ev", 1000, time.Date(2025, 1, 15, 7, 0, 0, 0, berlin), 35},
		{"winter 07:00 local is 06:00 UTC", "ev", 1000, time.Date(2025, 1, 15, 6, 0, 0, 0, time.UTC), 35},
		{"summer 07:00 local is 05:00 UTC", "ev", 1000, time.Date(2025, 7, 15, 5, 0, 0, 0, time.UTC), 35},
		{"summer 06:59 local is 04:59 UTC", "ev", 1000, time.Date(2025, 7, 15, 4, 59, 0, 0, time.UTC), 20},
		{"midnight local", "ev", 1000, time.Date(2025, 1, 15, 0, 0, 0, 0, berlin), 20},
		{"23:59 local", "ev", 1000, time.Date(2025, 1, 15, 23, 59, 59, 0, berlin), 35},
		{"ceil of 0.035", "ev", 1, time.Date(2025, 1, 15, 12, 0, 0, 0, berlin), 1},
		{"ceil of 35.035", "ev", 1001, time.Date(2025, 1, 15, 12, 0, 0, 0, berlin), 36},
		{"exact", "ev", 2000, time.Date(2025, 1, 15, 12, 0, 0, 0, berlin), 70},
		{"grid peak ends 22:00", "grid", 1000, time.Date(2025, 1, 15, 21, 59, 0, 0, berlin), 30},
		{"grid off-peak from 22:00", "grid", 1000, time.Date(2025, 1, 15, 22, 0, 0, 0, berlin), 15},
		{"UTC by default, 11:59", "flat", 1000, time.Date(2025, 1, 15, 11, 59, 0, 0, time.UTC), 7},
		{"UTC by default, 12:00", "flat", 1000, time.Date(2025, 1, 15, 12, 0, 0, 0, time.UTC), 9},
		{"input time in any zone", "flat", 1000, time.Date(2025, 1, 15, 12, 0, 0, 0, berlin), 7},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := &Input{Event: Event{Type: c.tariff, Num: map[string]int64{"wh": c.wh}, Str: map[string]string{"tariff": c.tariff}}, Now: c.now}
			a, err := p.Eval(in)
			if err != nil {
				t.Fatal(err)
			}
			in.Event.Type = ""
			b, err := p.Eval(in)
			if err != nil {
				t.Fatal(err)
			}
			if a.Amount != c.want || b.Amount != c.want {
				t.Errorf("price %d (by name: %d), want %d", a.Amount, b.Amount, c.want)
			}
		})
	}
}

func TestCeilDiv(t *testing.T) {
	p := compile(t, Rule{Name: "d", Action: Charge, Amount: `ceil_div(event.num.a, event.num.b) + 100`})
	for _, c := range [][3]int64{{0, 60, 0}, {1, 60, 1}, {60, 60, 1}, {61, 60, 2}, {-1, 60, 0}, {-61, 60, -1}, {-60, 60, -1}} {
		a, err := p.Eval(event("x", map[string]int64{"a": c[0], "b": c[1]}, nil))
		if err != nil {
			t.Fatal(err)
		}
		if a.Amount-100 != c[2] {
			t.Errorf("ceil_div(%d, %d) = %d, want %d", c[0], c[1], a.Amount-100, c[2])
		}
	}
}

// wantInvalid checks err is an EINVALID error whose message contains each
// of parts.
func wantInvalid(t *testing.T, err error, parts ...string) {
	t.Helper()
	if iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Fatalf("error %v, want code %s", err, iotpay.EINVALID)
	}
	for _, p := range parts {
		if !strings.Contains(iotpay.ErrorMessage(err), p) {
			t.Errorf("error %q does not say %q", iotpay.ErrorMessage(err), p)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	many := make([]Rule, RulesMax+1)
	for i := range many {
		many[i] = Rule{Name: "r" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Action: None}
	}
	usd := append(ReferenceTariffs(), Tariff{Name: "usd", Currency: "USD", PerUnits: 1, Bands: []Band{{From: "00:00", To: "24:00"}}})
	charge := func(amount string) []Rule { return []Rule{{Name: "c", Action: Charge, Amount: amount}} }
	for _, c := range []struct {
		name     string
		rules    []Rule
		tariffs  []Tariff
		currency iotpay.Currency
		want     []string
	}{
		{"syntax", []Rule{{Name: "s", When: `event.type ==`, Action: None}}, nil, "", []string{`rule "s": when:`, "Syntax error"}},
		{"when not bool", []Rule{{Name: "w", When: `1`, Action: None}}, nil, "", []string{`rule "w": when:`, "type int, want bool"}},
		{"amount string", charge(`"1"`), nil, "", []string{`rule "c": amount:`, "type string, want int"}},
		{"amount double", charge(`1.5`), nil, "", []string{`rule "c": amount:`, "type double, want int"}},
		{"amount through a double", charge(`int(double(event.num.a) * 1.1)`), nil, "", []string{`rule "c": amount:`, "double"}},
		{"amount uint", charge(`1u`), nil, "", []string{`rule "c": amount:`, "type uint, want int"}},
		{"session int", []Rule{{Name: "h", Action: Hold, Amount: `1`, Session: `1`}}, nil, "", []string{`rule "h": session:`, "want string"}},
		{"unknown variable", charge(`foo + 1`), nil, "", []string{`rule "c": amount:`, "undeclared reference to 'foo'"}},
		{"unknown field", charge(`event.nums.a`), nil, "", []string{`rule "c": amount:`, "undefined field 'nums'"}},
		{"delta outside bill", charge(`delta`), nil, "", []string{`rule "c": amount:`, "undeclared reference to 'delta'"}},
		{"delta in a bill's reading", []Rule{{Name: "b", Action: Bill, Reading: `delta`, Amount: `1`}}, nil, "",
			[]string{`rule "b": reading:`, "delta"}},
		{"unknown tariff", charge(`price("water", 1)`), nil, "", []string{`rule "c": amount:`, `unknown tariff "water"`}},
		{"tariff in another currency", charge(`price("usd", 1)`), usd, "", []string{`rule "c": amount:`, `tariff "usd" is in USD`}},
		{"price of a double", charge(`price("ev", 1.5)`), nil, "", []string{`rule "c": amount:`, "no matching overload for 'price' applied to '(string, double)'"}},
		{"internal names", charge(`@price(@ctx, "ev", 1)`), nil, "", []string{`rule "c": amount:`, "Syntax error"}},
		{"duplicate names", []Rule{{Name: "a", Action: None}, {Name: "a", Action: None}}, nil, "", []string{`rule "a": name: used by an earlier rule`}},
		{"empty name", []Rule{{Action: None}}, nil, "", []string{`rule 1: name:`}},
		{"long name", []Rule{{Name: strings.Repeat("x", NameMax+1), Action: None}}, nil, "", []string{"name:", "1..64"}},
		{"unprintable name", []Rule{{Name: "a\nb", Action: None}}, nil, "", []string{"name:", "not printable"}},
		{"unknown action", []Rule{{Name: "x", Action: "pay"}}, nil, "", []string{`rule "x": action: unknown action "pay"`}},
		{"no action", []Rule{{Name: "x"}}, nil, "", []string{`rule "x": action:`}},
		{"amount missing", []Rule{{Name: "x", Action: Charge}}, nil, "", []string{`rule "x": amount: required by a charge rule`}},
		{"reading missing", []Rule{{Name: "x", Action: Bill, Amount: `1`}}, nil, "", []string{`rule "x": reading: required`}},
		{"item missing", []Rule{{Name: "x", Action: Refill, Quantity: `1`, Supplier: "https://s.example"}}, nil, "", []string{`rule "x": item: required`}},
		{"amount on a refill", []Rule{{Name: "x", Action: Refill, Amount: `1`, Quantity: `1`, Item: `"a"`, Supplier: "https://s.example"}},
			nil, "", []string{`rule "x": amount: not used by a refill rule`}},
		{"final on a charge", []Rule{{Name: "x", Action: Charge, Amount: `1`, Final: yes()}}, nil, "", []string{`rule "x": final: not used`}},
		{"session on a charge", []Rule{{Name: "x", Action: Charge, Amount: `1`, Session: `"s"`}}, nil, "", []string{`rule "x": session: not used`}},
		{"supplier not http", refill("ftp://s.example/x"), nil, "", []string{`rule "r": supplier:`, "not an absolute http(s) URL"}},
		{"supplier relative", refill("/orders"), nil, "", []string{`rule "r": supplier:`, "not an absolute"}},
		{"supplier without host", refill("https:///orders"), nil, "", []string{`rule "r": supplier:`}},
		{"supplier with credentials", refill("https://u:secret@s.example/"), nil, "", []string{`rule "r": supplier:`, "credentials"}},
		{"supplier not a URL", refill("https://s.example/\x7f"), nil, "", []string{`rule "r": supplier: not a URL`}},
		{"supplier too long", refill("https://s.example/" + strings.Repeat("a", URLBytesMax)), nil, "", []string{`rule "r": supplier:`, "at most"}},
		{"too many rules", many, nil, "", []string{"33 rules, at most 32"}},
		{"expression too long", charge(strings.Repeat("1+", ExprBytesMax/2) + "1"), nil, "", []string{`rule "c": amount:`, "at most 1024"}},
		{"unknown currency", nil, nil, "XXX", []string{`unknown currency "XXX"`}},
		{"bad tariff", nil, []Tariff{{Name: "Bad"}}, "", []string{`tariff "Bad": name`}},
		{"tariff twice", nil, append(ReferenceTariffs(), ReferenceTariffs()[0]), "", []string{`tariff "ev": defined twice`}},
		{"too many tariffs", nil, make([]Tariff, TariffsMax+1), "", []string{"tariffs, at most"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.tariffs == nil {
				c.tariffs = ReferenceTariffs()
			}
			if c.currency == "" {
				c.currency = "EUR"
			}
			p, err := Compile(Ruleset{Rules: c.rules}, c.tariffs, c.currency)
			if p != nil {
				t.Fatal("a program despite the error")
			}
			wantInvalid(t, err, c.want...)
		})
	}
}

func refill(supplier string) []Rule {
	return []Rule{{Name: "r", Action: Refill, Quantity: `1`, Item: `"a"`, Supplier: supplier}}
}

func TestEvalErrors(t *testing.T) {
	usd := append(ReferenceTariffs(), Tariff{Name: "usd", Currency: "USD", PerUnits: 1, Bands: []Band{{From: "00:00", To: "24:00", PriceMinor: 1}}})
	charge := func(amount string) Rule { return Rule{Name: "c", Action: Charge, Amount: amount} }
	hold := func(session string) Rule { return Rule{Name: "h", Action: Hold, Amount: `1`, Session: session} }
	bill := Rule{Name: "b", Action: Bill, Reading: `event.num.total`, Amount: `delta + 1`}
	deep := `[1,2,3,4,5,6,7,8,9,10].map(a, [1,2,3,4,5,6,7,8,9,10].map(b, [1,2,3,4,5,6,7,8,9,10].map(c, a * b * c))).size()`
	for _, c := range []struct {
		name string
		rule Rule
		in   *Input
		want string // the whole message
	}{
		{"when on a missing key", Rule{Name: "w", When: `event.num.kwh > 1`, Action: None}, event("x", nil, nil),
			`rule "w": when: no such key: kwh`},
		{"amount on a missing key", Rule{Name: "ev-end", Action: Capture, Amount: `price("ev", event.num.kwh)`}, event("x", nil, nil),
			`rule "ev-end": amount: no such key: kwh`},
		{"negative amount", charge(`-5`), event("x", nil, nil), `rule "c": amount: -5 is not in 1..1000000000000`},
		{"zero charge", charge(`event.num.a`), event("x", map[string]int64{"a": 0}, nil), `rule "c": amount: 0 is not in 1..1000000000000`},
		{"zero hold", Rule{Name: "h", Action: Hold, Amount: `0`}, event("x", nil, nil), `rule "h": amount: 0 is not in 1..1000000000000`},
		{"zero bill", Rule{Name: "b", Action: Bill, Reading: `5`, Amount: `delta`}, &Input{LastReading: 5},
			`rule "b": amount: 0 is not in 1..1000000000000`},
		{"negative capture", Rule{Name: "k", Action: Capture, Amount: `-1`}, event("x", nil, nil), `rule "k": amount: -1 is not in 0..1000000000000`},
		{"amount over the bound", charge(`1000000000001`), event("x", nil, nil), `rule "c": amount: 1000000000001 is not in 1..1000000000000`},
		{"overflow", charge(`9223372036854775807 + event.num.a`), event("x", map[string]int64{"a": 1}, nil), `rule "c": amount: integer overflow`},
		{"division by zero", charge(`10 / event.num.a`), event("x", map[string]int64{"a": 0}, nil), `rule "c": amount: division by zero`},
		{"ceil_div by zero", charge(`ceil_div(10, event.num.a)`), event("x", map[string]int64{"a": 0}, nil),
			`rule "c": amount: ceil_div: divisor 0 is not positive`},
		{"price overflow", charge(`price("ev", 9223372036854775807)`), event("x", nil, nil),
			`rule "c": amount: price: 9223372036854775807 units of tariff "ev" overflow`},
		{"price of a negative quantity", charge(`price("ev", -1)`), event("x", nil, nil), `rule "c": amount: price: quantity -1 is negative`},
		{"price by an unknown name", charge(`price(event.str.t, 1)`), event("x", nil, map[string]string{"t": "gas"}),
			`rule "c": amount: price: unknown tariff "gas"`},
		{"price in another currency", charge(`price(event.str.t, 1)`), event("x", nil, map[string]string{"t": "usd"}),
			`rule "c": amount: price: tariff "usd" is in USD, the product in EUR`},
		{"dyn amount not an int", charge(`device.reported.level`), &Input{Device: Device{Reported: map[string]any{"level": "high"}}},
			`rule "c": amount: evaluated to string, want int`},
		{"dyn amount a double", charge(`device.reported.level`), &Input{Device: Device{Reported: map[string]any{"level": 2.5}}},
			`rule "c": amount: evaluated to double, want int`},
		{"dyn when not a bool", Rule{Name: "w", When: `device.reported.on`, Action: None}, &Input{Device: Device{Reported: map[string]any{"on": 1}}},
			`rule "w": when: evaluated to int, want bool`},
		{"no shadow", charge(`device.reported.level`), &Input{}, `rule "c": amount: no such key: level`},
		{"no session key", hold(""), event("x", nil, nil), `rule "h": session: no such key: session`},
		{"empty session key", hold(""), event("x", nil, map[string]string{"session": ""}), `rule "h": session: empty`},
		{"session key too long", hold(`event.str.s + event.str.s`), event("x", nil, map[string]string{"s": strings.Repeat("k", KeyBytesMax)}),
			`rule "h": session: 512 bytes, at most 256`},
		{"zero refill", Rule{Name: "r", Action: Refill, Quantity: `10 - event.num.left`, Item: `"a"`, Supplier: "https://s.example"},
			event("x", map[string]int64{"left": 10}, nil), `rule "r": quantity: 0 is not in 1..1000000`},
		{"negative refill", Rule{Name: "r", Action: Refill, Quantity: `-3`, Item: `"a"`, Supplier: "https://s.example"},
			event("x", nil, nil), `rule "r": quantity: -3 is not in 1..1000000`},
		{"empty item", Rule{Name: "r", Action: Refill, Quantity: `1`, Item: `event.str.sku`, Supplier: "https://s.example"},
			event("x", nil, map[string]string{"sku": ""}), `rule "r": item: empty`},
		{"meter went backwards", bill, &Input{Event: Event{Num: map[string]int64{"total": 900}}, LastReading: 1000},
			`rule "b": reading: 900 is below the last billed reading 1000: the meter went backwards`},
		{"negative last reading", bill, &Input{Event: Event{Num: map[string]int64{"total": 900}}, LastReading: -1},
			`rule "b": reading: the last billed reading -1 is negative`},
		{"cost limit", charge(deep), event("x", nil, nil), `rule "c": amount: operation cancelled: actual cost limit exceeded`},
		{"creating an input object", Rule{Name: "w", When: `rules.Session{open: true} == session`, Action: None}, event("x", nil, nil),
			`rule "w": when: cannot create rules.Session`},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := Compile(Ruleset{Rules: []Rule{c.rule}}, usd, "EUR")
			if err != nil {
				t.Fatal(err)
			}
			a, err := p.Eval(c.in)
			if a != nil {
				t.Fatalf("action %+v despite the error", a)
			}
			if iotpay.ErrorCode(err) != iotpay.EINVALID || iotpay.ErrorMessage(err) != c.want {
				t.Errorf("error %v,\nwant %s: %s", err, iotpay.EINVALID, c.want)
			}
		})
	}
	if _, err := compile(t, charge(`1`)).Eval(nil); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("nil input: %v", err)
	}
}

func TestNeeds(t *testing.T) {
	for _, c := range []struct {
		name string
		rule Rule
		want Needs
	}{
		{"nothing", Rule{Name: "n", When: `event.type == "x" && device.battery > 5 && device.id != ""`, Action: None}, Needs{}},
		{"session", Rule{Name: "n", When: `session.open`, Action: None}, Needs{Session: true}},
		{"capture what is held", Rule{Name: "k", Action: Capture}, Needs{Session: true}},
		{"capture an amount", Rule{Name: "k", Action: Capture, Amount: `1`}, Needs{}},
		{"last reading", Rule{Name: "n", When: `last_reading > 5`, Action: None}, Needs{LastReading: true}},
		{"bill", Rule{Name: "b", Action: Bill, Reading: `1`, Amount: `1`}, Needs{LastReading: true}},
		{"reported", Rule{Name: "n", When: `has(device.reported.x)`, Action: None}, Needs{Reported: true}},
		{"reported in a comprehension", Rule{Name: "n", When: `device.reported.exists(k, k == "x")`, Action: None}, Needs{Reported: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := compile(t, c.rule).Needs(); got != c.want {
				t.Errorf("needs %+v, want %+v", got, c.want)
			}
		})
	}
}

// TestConcurrent evaluates one program from many goroutines (run with
// -race): each evaluation sees its own time and input.
func TestConcurrent(t *testing.T) {
	p, err := Compile(EVChargerRules(), ReferenceTariffs(), "EUR")
	if err != nil {
		t.Fatal(err)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			hour, want := 3, int64(20) // night
			if g%2 == 1 {
				hour, want = 12, 35
			}
			for i := range 200 {
				in := &Input{Event: Event{Type: "session_end", Num: map[string]int64{"wh": 1000 * int64(i+1)},
					Str: map[string]string{"session": "s"}}, Now: time.Date(2025, 1, 15, hour, 0, 0, 0, berlin)}
				a, err := p.Eval(in)
				if err != nil || a.Amount != want*int64(i+1) {
					t.Errorf("goroutine %d: %+v, %v", g, a, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestJSON(t *testing.T) {
	r := Rule{Name: "k", When: `true`, Action: Capture, Amount: `1`, Final: no()}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"name":"k","when":"true","action":"capture","amount":"1","final":false}`; string(b) != want {
		t.Errorf("rule %s, want %s", b, want)
	}
	b, err = json.Marshal(Action{Rule: "b", Kind: Bill, Amount: 5, Currency: "EUR", Reading: 10})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"rule":"b","kind":"bill","amount":5,"currency":"EUR","reading":10}`; string(b) != want {
		t.Errorf("action %s, want %s", b, want)
	}
	b, err = json.Marshal(ReferenceTariffs()[0])
	if err != nil {
		t.Fatal(err)
	}
	var back Tariff
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(ReferenceTariffs()[0], back); d != "" || !strings.Contains(string(b), `"per_units":1000`) {
		t.Errorf("tariff %s (-want +got):\n%s", b, d)
	}
}

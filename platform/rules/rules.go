package rules

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/iotpay/iotpay"
)

// Bounds.
const (
	RulesMax     = 32                // rules in a ruleset
	NameMax      = 64                // characters of a rule's name
	ExprBytesMax = 1024              // bytes of one expression
	URLBytesMax  = 2048              // bytes of a supplier URL
	KeyBytesMax  = 256               // bytes of an evaluated session key or item
	AmountMax    = 1_000_000_000_000 // minor units of one action
	QuantityMax  = 1_000_000         // units of one refill
	// CostMax bounds the CEL cost (about one unit per operation, more for
	// long strings) of evaluating one expression that loops (all, exists,
	// map, filter), so a rule cannot spin over nested comprehensions.
	CostMax = 10_000
)

// ActionKind is what a rule does with an event.
type ActionKind string

// Action kinds.
const (
	Charge    ActionKind = "charge"    // take amount at once
	Hold      ActionKind = "hold"      // authorize amount, opening a session
	Increment ActionKind = "increment" // hold amount more on the session
	Capture   ActionKind = "capture"   // take amount of what the session holds
	Bill      ActionKind = "bill"      // take amount for a meter's reading
	Refill    ActionKind = "refill"    // order quantity of item from supplier
	None      ActionKind = "none"      // do nothing
)

// Rule is one business rule of a product.
type Rule struct {
	Name   string     `json:"name"`           // 1-64 printable characters, unique in the ruleset
	When   string     `json:"when,omitempty"` // CEL bool; empty: always
	Action ActionKind `json:"action"`
	// Amount is a CEL int of minor units: required for charge, hold,
	// increment and bill; for capture, absent captures what is held.
	Amount string `json:"amount,omitempty"`
	// Session is a CEL string, the session key of hold, increment and
	// capture; event.str.session when empty.
	Session string `json:"session,omitempty"`
	// Final, for capture, releases what is held beyond the amount
	// (default true).
	Final *bool `json:"final,omitempty"`
	// Reading, for bill, is a CEL int: the meter's cumulative reading.
	Reading string `json:"reading,omitempty"`
	// Quantity (CEL int > 0), Item (CEL string) and Supplier (an absolute
	// http(s) URL, not CEL) make a refill order.
	Quantity string `json:"quantity,omitempty"`
	Item     string `json:"item,omitempty"`
	Supplier string `json:"supplier,omitempty"`
}

// Ruleset is a product's rules, in the order they are tried.
type Ruleset struct {
	Version int    `json:"version"` // set by the store: 1, 2, ...
	Rules   []Rule `json:"rules"`
}

// Input is what the rules see of an event.
type Input struct {
	Event       Event
	Device      Device
	Session     Session // the open session the event names; zero when none
	LastReading int64   // the last billed meter reading, 0 if none
	Now         time.Time
}

// Event is a device's event: its type and its fields.
type Event struct {
	Type string            `json:"type"`
	Num  map[string]int64  `json:"num,omitempty"`
	Str  map[string]string `json:"str,omitempty"`
}

// Device is what the platform knows of the device's state.
type Device struct {
	ID       string         `json:"id"`
	Firmware string         `json:"firmware,omitempty"`
	Attested bool           `json:"attested"`
	Tamper   bool           `json:"tamper"`
	Battery  int64          `json:"battery"` // percent, -1 unknown
	Reported map[string]any `json:"reported,omitempty"`
}

// Session is an open session's money.
type Session struct {
	Open     bool  `json:"open"`
	Held     int64 `json:"held"`     // minor units held now
	Captured int64 `json:"captured"` // minor units captured so far
}

// Action is what the rules made of an event.
type Action struct {
	Rule     string          `json:"rule,omitempty"` // the rule that decided; "" when none did
	Kind     ActionKind      `json:"kind"`
	Amount   int64           `json:"amount,omitempty"`   // minor units of Currency
	Currency iotpay.Currency `json:"currency,omitempty"` // of a charge, hold, increment, capture or bill
	Session  string          `json:"session,omitempty"`
	Final    bool            `json:"final,omitempty"`
	Reading  int64           `json:"reading,omitempty"`
	Quantity int64           `json:"quantity,omitempty"`
	Item     string          `json:"item,omitempty"`
	Supplier string          `json:"supplier,omitempty"`
}

// Needs tells which inputs a program's rules read, so a caller can skip
// loading the others.
type Needs struct {
	Session     bool // Input.Session
	LastReading bool // Input.LastReading
	Reported    bool // Input.Device.Reported
}

// Program is a compiled ruleset. It is safe for concurrent use.
type Program struct {
	version  int
	currency iotpay.Currency
	tariffs  map[string]*tariff
	rules    []rule
	needs    Needs
}

// rule is a compiled Rule; a nil program is an absent expression.
type rule struct {
	name                                           string
	kind                                           ActionKind
	when, amount, session, reading, quantity, item cel.Program
	final                                          bool
	supplier                                       string
}

// Field use by action kind.
const (
	unused = iota
	optional
	required
)

type uses struct{ amount, session, final, reading, refill int }

func usesOf(k ActionKind) (uses, bool) {
	switch k {
	case Charge:
		return uses{amount: required}, true
	case Hold, Increment:
		return uses{amount: required, session: optional}, true
	case Capture:
		return uses{amount: optional, session: optional, final: optional}, true
	case Bill:
		return uses{amount: required, reading: required}, true
	case Refill:
		return uses{refill: required}, true
	case None:
		return uses{}, true
	}
	return uses{}, false
}

// defaultSession is the session key when a rule gives none.
const defaultSession = "event.str.session"

// Compile checks rs against the tenant's tariffs and the product's
// currency and returns a program ready to evaluate.
func Compile(rs Ruleset, tariffs []Tariff, currency iotpay.Currency) (*Program, error) {
	if !currency.Valid() {
		return nil, iotpay.Errorf(iotpay.EINVALID, "rules: unknown currency %q", string(currency))
	}
	if rs.Version < 0 {
		return nil, iotpay.Errorf(iotpay.EINVALID, "rules: version %d is negative", rs.Version)
	}
	if len(rs.Rules) > RulesMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "rules: %d rules, at most %d", len(rs.Rules), RulesMax)
	}
	if len(tariffs) > TariffsMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "rules: %d tariffs, at most %d", len(tariffs), TariffsMax)
	}
	envs, err := celEnvs()
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "rules: CEL environment", err)
	}
	p := &Program{version: rs.Version, currency: currency, tariffs: make(map[string]*tariff, len(tariffs))}
	for i := range tariffs {
		t, err := newTariff(&tariffs[i])
		if err != nil {
			return nil, err
		}
		if p.tariffs[t.name] != nil {
			return nil, iotpay.Errorf(iotpay.EINVALID, "tariff %q: defined twice", t.name)
		}
		p.tariffs[t.name] = t
	}
	seen := make(map[string]bool, len(rs.Rules))
	for i := range rs.Rules {
		r := &rs.Rules[i]
		if err := checkName(r.Name); err != nil {
			return nil, iotpay.Errorf(iotpay.EINVALID, "rule %d: name: %s", i+1, err)
		}
		if seen[r.Name] {
			return nil, iotpay.Errorf(iotpay.EINVALID, "rule %q: name: used by an earlier rule", r.Name)
		}
		seen[r.Name] = true
		cr, err := p.compileRule(envs, r)
		if err != nil {
			return nil, err
		}
		p.rules = append(p.rules, cr)
	}
	return p, nil
}

func checkName(name string) error {
	n := utf8.RuneCountInString(name)
	if n == 0 || n > NameMax {
		return fmt.Errorf("want 1..%d characters, have %d", NameMax, n)
	}
	for _, r := range name {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return fmt.Errorf("%q has a character that is not printable", name)
		}
	}
	return nil
}

func (p *Program) compileRule(e envs, r *Rule) (rule, error) {
	bad := func(field, format string, args ...any) (rule, error) {
		return rule{}, iotpay.Errorf(iotpay.EINVALID, "rule %q: %s: %s", r.Name, field, fmt.Sprintf(format, args...))
	}
	use, ok := usesOf(r.Action)
	if !ok {
		return bad("action", "unknown action %q (want charge, hold, increment, capture, bill, refill or none)", string(r.Action))
	}
	for _, f := range []struct {
		name    string
		present bool
		use     int
	}{
		{"amount", r.Amount != "", use.amount},
		{"session", r.Session != "", use.session},
		{"final", r.Final != nil, use.final},
		{"reading", r.Reading != "", use.reading},
		{"quantity", r.Quantity != "", use.refill},
		{"item", r.Item != "", use.refill},
		{"supplier", r.Supplier != "", use.refill},
	} {
		switch {
		case f.present && f.use == unused:
			return bad(f.name, "not used by a %s rule", r.Action)
		case !f.present && f.use == required:
			return bad(f.name, "required by a %s rule", r.Action)
		}
	}
	if r.Supplier != "" {
		if err := checkSupplier(r.Supplier); err != nil {
			return bad("supplier", "%s", err)
		}
	}
	out := rule{name: r.Name, kind: r.Action, final: r.Final == nil || *r.Final, supplier: r.Supplier}
	if r.Action == Bill {
		p.needs.LastReading = true // the reading is checked against it
	}
	if r.Action == Capture && r.Amount == "" {
		p.needs.Session = true // what is held is captured
	}
	session := r.Session
	if session == "" && use.session != unused {
		session = defaultSession
	}
	amountEnv := e.base
	if r.Action == Bill {
		amountEnv = e.bill
	}
	var err error
	for _, x := range []struct {
		field string
		src   string
		env   *cel.Env
		want  *types.Type
		prg   *cel.Program
	}{
		{"when", r.When, e.base, types.BoolType, &out.when},
		{"amount", r.Amount, amountEnv, types.IntType, &out.amount},
		{"session", session, e.base, types.StringType, &out.session},
		{"reading", r.Reading, e.base, types.IntType, &out.reading},
		{"quantity", r.Quantity, e.base, types.IntType, &out.quantity},
		{"item", r.Item, e.base, types.StringType, &out.item},
	} {
		if x.src == "" {
			continue
		}
		if *x.prg, err = p.compileExpr(x.env, x.src, x.want); err != nil {
			return bad(x.field, "%s", err)
		}
	}
	return out, nil
}

func checkSupplier(s string) error {
	if len(s) > URLBytesMax {
		return fmt.Errorf("%d bytes, at most %d", len(s), URLBytesMax)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %q", s)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	if u.User != nil {
		return fmt.Errorf("%q carries credentials", u.Redacted())
	}
	return nil
}

// compileExpr compiles src, checks its type is want (or dyn, checked when
// evaluated), and notes what it reads.
func (p *Program) compileExpr(env *cel.Env, src string, want *types.Type) (cel.Program, error) {
	if len(src) > ExprBytesMax {
		return nil, fmt.Errorf("expression of %d bytes, at most %d", len(src), ExprBytesMax)
	}
	a, iss := env.Compile(src)
	if err := iss.Err(); err != nil {
		// Speak of price as it was written, not as the macro made it.
		return nil, errors.New(strings.ReplaceAll(err.Error(), "'"+priceFunc+"' applied to '("+ctxType.String()+", ", "'price' applied to '("))
	}
	if t := a.OutputType(); t.Kind() != types.DynKind && !t.IsExactType(want) {
		return nil, fmt.Errorf("expression of type %s, want %s", t, want)
	}
	loops := false
	for _, n := range ast.MatchDescendants(ast.NavigateAST(a.NativeRep()), ast.AllMatcher()) {
		if err := p.inspect(n, want); err != nil {
			return nil, err
		}
		loops = loops || n.Kind() == ast.ComprehensionKind
	}
	// Without a comprehension (all, exists, map, filter) an expression
	// evaluates each of its nodes at most once, so its cost is bounded by
	// its size and its inputs'; only loops need the runtime cost limit,
	// whose tracking would otherwise quadruple the time of an evaluation.
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if loops {
		opts = append(opts, cel.CostLimit(CostMax))
	}
	prg, err := env.Program(a, opts...)
	if err != nil {
		return nil, err
	}
	return prg, nil
}

// inspect refuses doubles in integer expressions and price with an
// unknown tariff, and notes the inputs an expression node reads.
func (p *Program) inspect(n ast.NavigableExpr, want *types.Type) error {
	if want == types.IntType && n.Type().Kind() == types.DoubleKind {
		return fmt.Errorf("computes with a double (floating point): amounts, quantities and readings are int")
	}
	switch n.Kind() {
	case ast.IdentKind:
		switch n.AsIdent() {
		case "session":
			p.needs.Session = true
		case "last_reading", "delta":
			p.needs.LastReading = true
		case "device":
			// device.reported is the shadow a caller may skip loading;
			// the other fields come with the device.
			parent, ok := n.Parent()
			if !ok || parent.Kind() != ast.SelectKind || parent.AsSelect().FieldName() == "reported" {
				p.needs.Reported = true
			}
		}
	case ast.CallKind:
		c := n.AsCall()
		if c.FunctionName() != priceFunc || len(c.Args()) != 3 || c.Args()[1].Kind() != ast.LiteralKind {
			break
		}
		if name, ok := c.Args()[1].AsLiteral().(types.String); ok {
			if _, err := p.tariff(string(name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// tariff returns the tariff price names, in the program's currency.
func (p *Program) tariff(name string) (*tariff, error) {
	t := p.tariffs[name]
	if t == nil {
		return nil, fmt.Errorf("price: unknown tariff %q", name)
	}
	if t.currency != p.currency {
		return nil, fmt.Errorf("price: tariff %q is in %s, the product in %s", name, t.currency, p.currency)
	}
	return t, nil
}

// Version is the ruleset's version.
func (p *Program) Version() int { return p.version }

// Needs tells which inputs the rules read.
func (p *Program) Needs() Needs { return p.needs }

// Eval returns the action of the first rule whose `when` holds for in, or
// none. Any failure is an EINVALID error naming the rule and the field,
// and no action.
func (p *Program) Eval(in *Input) (a *Action, err error) {
	if in == nil {
		return nil, iotpay.Errorf(iotpay.EINVALID, "rules: no input")
	}
	defer func() {
		if r := recover(); r != nil {
			a, err = nil, iotpay.Wrap(iotpay.EINTERNAL, "rules: evaluation failed", fmt.Errorf("panic: %v", r))
		}
	}()
	act := &activation{in: in, p: p}
	for i := range p.rules {
		r := &p.rules[i]
		if r.when != nil {
			v, err := r.eval(r.when, act, "when")
			if err != nil {
				return nil, err
			}
			ok, isBool := v.(types.Bool)
			if !isBool {
				return nil, r.errorf("when", "evaluated to %s, want bool", v.Type().TypeName())
			}
			if !ok {
				continue
			}
		}
		return r.act(act)
	}
	return &Action{Kind: None}, nil
}

// act evaluates the action of r, which decided.
func (r *rule) act(x *activation) (*Action, error) {
	in := x.in
	a := &Action{Rule: r.name, Kind: r.kind}
	var err error
	switch r.kind {
	case Charge, Hold, Increment, Capture, Bill:
		a.Currency = x.p.currency
	case Refill:
		if a.Quantity, err = r.evalInt(r.quantity, x, "quantity"); err != nil {
			return nil, err
		}
		if a.Quantity <= 0 || a.Quantity > QuantityMax {
			return nil, r.errorf("quantity", "%d is not in 1..%d", a.Quantity, QuantityMax)
		}
		if a.Item, err = r.evalKey(r.item, x, "item"); err != nil {
			return nil, err
		}
		a.Supplier = r.supplier
		return a, nil
	case None:
		return a, nil
	}
	if r.kind == Bill {
		if a.Reading, err = r.evalInt(r.reading, x, "reading"); err != nil {
			return nil, err
		}
		switch {
		case in.LastReading < 0:
			return nil, r.errorf("reading", "the last billed reading %d is negative", in.LastReading)
		case a.Reading < in.LastReading:
			return nil, r.errorf("reading", "%d is below the last billed reading %d: the meter went backwards", a.Reading, in.LastReading)
		}
		x.delta = a.Reading - in.LastReading
	}
	least := int64(1)
	if r.kind == Capture {
		least = 0 // a session that used nothing captures nothing
	}
	if r.amount != nil {
		if a.Amount, err = r.evalInt(r.amount, x, "amount"); err != nil {
			return nil, err
		}
	} else {
		a.Amount = in.Session.Held // capture without an amount: what is held
	}
	if a.Amount < least || a.Amount > AmountMax {
		return nil, r.errorf("amount", "%d is not in %d..%d", a.Amount, least, int64(AmountMax))
	}
	if r.session != nil {
		if a.Session, err = r.evalKey(r.session, x, "session"); err != nil {
			return nil, err
		}
	}
	a.Final = r.kind == Capture && r.final
	return a, nil
}

func (r *rule) errorf(field, format string, args ...any) error {
	return iotpay.Errorf(iotpay.EINVALID, "rule %q: %s: %s", r.name, field, fmt.Sprintf(format, args...))
}

func (r *rule) eval(prg cel.Program, x *activation, field string) (ref.Val, error) {
	v, _, err := prg.Eval(x)
	if err != nil {
		return nil, r.errorf(field, "%s", err)
	}
	return v, nil
}

func (r *rule) evalInt(prg cel.Program, x *activation, field string) (int64, error) {
	v, err := r.eval(prg, x, field)
	if err != nil {
		return 0, err
	}
	i, ok := v.(types.Int)
	if !ok {
		return 0, r.errorf(field, "evaluated to %s, want int", v.Type().TypeName())
	}
	return int64(i), nil
}

// evalKey evaluates a session key or an item: a non-empty string.
func (r *rule) evalKey(prg cel.Program, x *activation, field string) (string, error) {
	v, err := r.eval(prg, x, field)
	if err != nil {
		return "", err
	}
	s, ok := v.(types.String)
	switch {
	case !ok:
		return "", r.errorf(field, "evaluated to %s, want string", v.Type().TypeName())
	case s == "":
		return "", r.errorf(field, "empty")
	case len(s) > KeyBytesMax:
		return "", r.errorf(field, "%d bytes, at most %d", len(s), KeyBytesMax)
	case !utf8.ValidString(string(s)):
		return "", r.errorf(field, "not UTF-8")
	}
	return string(s), nil
}

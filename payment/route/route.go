// Package route chooses which payment system a payment goes to, and fails
// over to the next when one cannot answer. A tenant's Table holds rules
// over currency, amount, product and payer account, each naming
// connectors in order of preference; a Router tries them in that order,
// skipping a connector whose circuit breaker is open, and moves to the
// next only on a retryable failure (connector.Retryable: a time-out, a
// network failure, a 5xx), with the same idempotency key, so a payment is
// never charged twice. A decline is an answer, not a failure: it does not
// fail over.
package route

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector"
)

// Bounds and defaults.
const (
	RulesMax          = 64
	ConnectorsPerRule = 8
	NameLenMax        = 64
	// BreakerFailures consecutive retryable failures open a connector's
	// breaker; after BreakerCooldown one call is let through (half-open):
	// its success closes the breaker, its failure opens it again.
	BreakerFailures = 5
	BreakerCooldown = 30 * time.Second
)

// Rule sends the payments it matches to its connectors, in order. An
// empty condition matches everything.
type Rule struct {
	Name       string             `json:"name"`
	Currencies []iotpay.Currency  `json:"currencies,omitempty"`
	AmountMin  int64              `json:"amount_min,omitempty"` // minor units, inclusive
	AmountMax  int64              `json:"amount_max,omitempty"` // inclusive; 0: no bound
	Products   []iotpay.ProductID `json:"products,omitempty"`
	Accounts   []iotpay.AccountID `json:"accounts,omitempty"` // payer accounts
	Connectors []string           `json:"connectors"`
}

// Table is a tenant's routing: the first rule that matches decides;
// without one, Default.
type Table struct {
	Rules   []Rule   `json:"rules"`
	Default []string `json:"default"`
}

// Payment is what a table routes on.
type Payment struct {
	Amount  iotpay.Money
	Product iotpay.ProductID
	Account iotpay.AccountID
}

func (r *Rule) matches(p Payment) bool {
	return (len(r.Currencies) == 0 || slices.Contains(r.Currencies, p.Amount.Currency)) &&
		p.Amount.Amount >= r.AmountMin && (r.AmountMax == 0 || p.Amount.Amount <= r.AmountMax) &&
		(len(r.Products) == 0 || slices.Contains(r.Products, p.Product)) &&
		(len(r.Accounts) == 0 || slices.Contains(r.Accounts, p.Account))
}

// Choose returns the connectors for p, in order, and the rule that chose
// them ("" for the default).
func (t *Table) Choose(p Payment) (connectors []string, rule string) {
	for i := range t.Rules {
		if t.Rules[i].matches(p) {
			return t.Rules[i].Connectors, t.Rules[i].Name
		}
	}
	return t.Default, ""
}

// Validate checks the table against the connectors that exist.
func (t *Table) Validate(known func(string) bool) error {
	bad := func(format string, args ...any) error {
		return iotpay.Errorf(iotpay.EINVALID, "routing: "+format, args...)
	}
	if len(t.Rules) > RulesMax {
		return bad("at most %d rules", RulesMax)
	}
	check := func(where string, cs []string) error {
		if len(cs) == 0 || len(cs) > ConnectorsPerRule {
			return bad("%s: 1 to %d connectors", where, ConnectorsPerRule)
		}
		for i, c := range cs {
			if !known(c) {
				return bad("%s: unknown connector %q", where, c)
			}
			if slices.Contains(cs[:i], c) {
				return bad("%s: connector %q twice", where, c)
			}
		}
		return nil
	}
	for i, r := range t.Rules {
		where := "rule " + r.Name
		if r.Name == "" || len(r.Name) > NameLenMax {
			return bad("rule %d: a name of 1 to %d characters", i, NameLenMax)
		}
		for _, c := range r.Currencies {
			if !c.Valid() {
				return bad("%s: unknown currency %q", where, c)
			}
		}
		if r.AmountMin < 0 || r.AmountMax < 0 || r.AmountMax != 0 && r.AmountMax < r.AmountMin {
			return bad("%s: amount bounds", where)
		}
		if err := check(where, r.Connectors); err != nil {
			return err
		}
	}
	return check("default", t.Default)
}

// ParseTable decodes a table strictly.
func ParseTable(b []byte, known func(string) bool) (*Table, error) {
	var t Table
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "routing: malformed table", err)
	}
	return &t, t.Validate(known)
}

// BreakerState is a circuit breaker's state.
type BreakerState string

// Breaker states.
const (
	Closed   BreakerState = "closed"    // calls go through
	Open     BreakerState = "open"      // calls are skipped until the cool-down ends
	HalfOpen BreakerState = "half_open" // one call goes through, to probe
)

// Health is a connector's state as the router saw it.
type Health struct {
	Name        string       `json:"name"`
	State       BreakerState `json:"state"`
	Failures    int          `json:"consecutive_failures"`
	Successes   int64        `json:"successes"`
	Errors      int64        `json:"errors"`
	LastError   string       `json:"last_error,omitempty"`
	LastSuccess time.Time    `json:"last_success,omitzero"`
	LastFailure time.Time    `json:"last_failure,omitzero"`
	OpenedAt    time.Time    `json:"opened_at,omitzero"`
}

// breaker is one connector's circuit breaker and counters.
type breaker struct {
	Health
	probing bool
}

// allow says whether a call may go to the connector now.
func (b *breaker) allow(now time.Time, cooldown time.Duration) bool {
	switch b.State {
	case Open:
		if now.Sub(b.OpenedAt) < cooldown {
			return false
		}
		b.State, b.probing = HalfOpen, true
		return true
	case HalfOpen:
		if b.probing {
			return false // one probe at a time
		}
		b.probing = true
		return true
	}
	return true
}

func (b *breaker) done(now time.Time, err error, failures int) {
	b.probing = false
	if err == nil {
		b.State, b.Failures, b.LastSuccess = Closed, 0, now
		b.Successes++
		return
	}
	b.Errors++
	b.Failures++
	b.LastError, b.LastFailure = err.Error(), now
	if b.State == HalfOpen || b.Failures >= failures {
		b.State, b.OpenedAt = Open, now
	}
}

// Attempt is one try of an operation at one connector.
type Attempt struct {
	Connector string        `json:"connector"`
	Error     string        `json:"error,omitempty"`
	Skipped   bool          `json:"skipped,omitempty"` // its breaker was open
	Took      time.Duration `json:"took"`
}

// Router holds the connectors, by name, and their breakers.
type Router struct {
	Connectors map[string]connector.Connector
	// Failures and Cooldown tune the breakers (BreakerFailures,
	// BreakerCooldown when zero).
	Failures int
	Cooldown time.Duration
	Now      func() time.Time

	mu       sync.Mutex
	breakers map[string]*breaker
}

func (r *Router) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// tuning is the breakers' failure count and cool-down.
func (r *Router) tuning() (int, time.Duration) {
	failures, cooldown := r.Failures, r.Cooldown
	if failures <= 0 {
		failures = BreakerFailures
	}
	if cooldown <= 0 {
		cooldown = BreakerCooldown
	}
	return failures, cooldown
}

// Known reports whether a connector of that name exists.
func (r *Router) Known(name string) bool { _, ok := r.Connectors[name]; return ok }

func (r *Router) breaker(name string) *breaker {
	if r.breakers == nil {
		r.breakers = map[string]*breaker{}
	}
	b := r.breakers[name]
	if b == nil {
		b = &breaker{Health: Health{Name: name, State: Closed}}
		r.breakers[name] = b
	}
	return b
}

// Call runs op at the connectors names, in order, until one answers:
// a connector whose breaker is open is skipped, a retryable failure moves
// to the next. It returns the connector that answered and every attempt;
// when none answered, the last retryable error (EUNAVAILABLE).
func (r *Router) Call(ctx context.Context, names []string, op func(context.Context, connector.Connector) error) (string, []Attempt, error) {
	failures, cooldown := r.tuning()
	var attempts []Attempt
	var last error = iotpay.Errorf(iotpay.EUNAVAILABLE, "no connector available")
	for _, name := range names {
		c, ok := r.Connectors[name]
		if !ok {
			return "", attempts, iotpay.Errorf(iotpay.EINVALID, "unknown connector %q", name)
		}
		r.mu.Lock()
		allowed := r.breaker(name).allow(r.now(), cooldown)
		r.mu.Unlock()
		if !allowed {
			attempts = append(attempts, Attempt{Connector: name, Skipped: true})
			continue
		}
		start := r.now()
		err := op(ctx, c)
		took := r.now().Sub(start)
		r.mu.Lock()
		if connector.Retryable(err) {
			r.breaker(name).done(r.now(), err, failures)
		} else {
			r.breaker(name).done(r.now(), nil, failures) // an answer, even a refusal, says it is up
		}
		r.mu.Unlock()
		a := Attempt{Connector: name, Took: took}
		if err != nil {
			a.Error = err.Error()
		}
		attempts = append(attempts, a)
		switch {
		case err == nil:
			return name, attempts, nil
		case !connector.Retryable(err):
			return name, attempts, err
		}
		last = err
	}
	return "", attempts, last
}

// Authorize authorizes a at the first of names that answers (approved or
// declined), failing over on retryable failures with a's key unchanged.
func (r *Router) Authorize(ctx context.Context, names []string, a *connector.Authorization) (*connector.Result, string, []Attempt, error) {
	var res *connector.Result
	name, attempts, err := r.Call(ctx, names, func(ctx context.Context, c connector.Connector) (err error) {
		res, err = c.Authorize(ctx, a)
		return err
	})
	if err != nil {
		return nil, name, attempts, err
	}
	return res, name, attempts, nil
}

// Health is every connector's state, by name.
func (r *Router) Health() []Health {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.Connectors))
	for n := range r.Connectors {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]Health, len(names))
	for i, n := range names {
		h := r.breaker(n).Health
		if _, cooldown := r.tuning(); h.State == Open && r.now().Sub(h.OpenedAt) >= cooldown {
			h.State = HalfOpen // due for a probe
		}
		out[i] = h
	}
	return out
}

// Ping checks every connector that can be pinged, feeding their breakers.
func (r *Router) Ping(ctx context.Context) {
	for name, c := range r.Connectors {
		p, ok := c.(connector.Pinger)
		if !ok {
			continue
		}
		_, _, _ = r.Call(ctx, []string{name}, func(ctx context.Context, _ connector.Connector) error { return p.Ping(ctx) })
	}
}

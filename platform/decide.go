package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/payment/ledger"
	"github.com/iotpay/iotpay/platform/decision"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/platform/risk"
	"github.com/iotpay/iotpay/platform/rules"
	"github.com/iotpay/iotpay/wire"
)

// ActReport is the action of a state event: the report is recorded,
// nothing else happens.
const ActReport = rules.ActionKind("report")

// SessionField is the event field that names the session whose state
// (session.held, session.captured) the rules see.
const SessionField = "session"

// OrderRetryMin is the first delay before a refill order is sent again.
const OrderRetryMin = time.Second

// Profile is a product's current profile, compiled: its rules program
// (nil: the product's fixed pricing decides), its risk policy (nil: no
// checks beyond the mandate) and the firmware it allows.
type Profile struct {
	Version  int
	Program  *rules.Program
	Risk     *risk.Policy
	Firmware []registry.Firmware
}

// Profiles compiles products' profiles against their tenant's tariffs and
// keeps them by product and version; a tariff change forgets the tenant's.
type Profiles struct {
	mu    sync.Mutex
	byKey map[iotpay.ProductID]*Profile
	// gen counts tariff changes, so a compilation that raced one is not kept.
	gen uint64
}

// Forget drops every compiled profile (after a tariff change).
func (ps *Profiles) Forget() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.byKey = nil
	ps.gen++
}

// Get returns a product's current profile, compiling it when it changed.
// A product read with its profile's version (registry.Product) whose
// compilation of that version is kept costs no read.
func (ps *Profiles) Get(ctx context.Context, tx registry.Tx, prod *registry.Product) (*Profile, error) {
	if prod.ProfileVersion > 0 {
		ps.mu.Lock()
		c := ps.byKey[prod.ID]
		ps.mu.Unlock()
		if c != nil && c.Version == prod.ProfileVersion {
			return c, nil
		}
	}
	pf, err := tx.Profile(ctx, prod.ID, 0)
	if iotpay.ErrorCode(err) == iotpay.ENOTFOUND {
		return &Profile{}, nil
	}
	if err != nil {
		return nil, err
	}
	ps.mu.Lock()
	c, gen := ps.byKey[prod.ID], ps.gen
	ps.mu.Unlock()
	if c != nil && c.Version == pf.Version {
		return c, nil
	}
	c, err = CompileProfile(ctx, tx, prod, pf)
	if err != nil {
		return nil, err
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.gen == gen {
		if ps.byKey == nil {
			ps.byKey = map[iotpay.ProductID]*Profile{}
		}
		ps.byKey[prod.ID] = c
	}
	return c, nil
}

// CompileProfile compiles a stored profile of prod with its tenant's
// tariffs as they are in tx.
func CompileProfile(ctx context.Context, tx registry.Tx, prod *registry.Product, pf *registry.Profile) (*Profile, error) {
	c := &Profile{Version: pf.Version, Firmware: pf.Firmware}
	tariffs, err := LoadTariffs(ctx, tx, prod.Tenant)
	if err != nil {
		return nil, err
	}
	var rs []rules.Rule
	if err := json.Unmarshal(pf.Rules, &rs); err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "product rules", err)
	}
	if len(rs) > 0 {
		if c.Program, err = rules.Compile(rules.Ruleset{Version: pf.Version, Rules: rs}, tariffs, prod.Pricing.Currency); err != nil {
			return nil, err
		}
	}
	if len(pf.Risk) > 0 && string(pf.Risk) != "null" {
		if c.Risk, err = risk.ParsePolicy(pf.Risk); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// LoadTariffs returns a tenant's tariffs.
func LoadTariffs(ctx context.Context, tx registry.Tx, tenant iotpay.TenantID) ([]rules.Tariff, error) {
	raw, err := tx.Tariffs(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := make([]rules.Tariff, len(raw))
	for i, b := range raw {
		if err := json.Unmarshal(b, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// decided is what the platform made of an admitted request, as its audit
// leaf records it.
type decided struct {
	Rule   string         `json:"rule,omitempty"`
	Action rules.Action   `json:"action"`
	Risk   *risk.Decision `json:"risk,omitempty"`
	State  *stateSummary  `json:"state,omitempty"`
	Order  string         `json:"order,omitempty"`
}

// stateSummary is the part of a device's state a decision read.
type stateSummary struct {
	Firmware string `json:"firmware,omitempty"`
	Attested bool   `json:"attested"`
	Tamper   bool   `json:"tamper,omitempty"`
}

func (d *decided) json() string {
	b, err := json.Marshal(d)
	if err != nil {
		return ""
	}
	return string(b)
}

// sessionOf returns the open session an event names (its "session"
// field) and its payment, nil when none.
func sessionOf(ctx context.Context, tx Tx, dev *registry.Device, key string) (*decision.Session, *payment.Payment, error) {
	if key == "" {
		return nil, nil, nil
	}
	s, err := tx.Session(ctx, dev.ID, key)
	if iotpay.ErrorCode(err) == iotpay.ENOTFOUND || err == nil && !s.Closed.IsZero() {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	p, err := tx.Payment(ctx, dev.Tenant, s.Payment)
	if err != nil {
		return nil, nil, err
	}
	return s, p, nil
}

// evaluateInSession evaluates the request with the session its event
// names (its "session" field), and returns the session the action names
// with its payment (nil when none is open).
func evaluateInSession(ctx context.Context, tx Tx, prof *Profile, prod *registry.Product, dev *registry.Device, st *registry.State,
	req *wire.Request, now time.Time) (*rules.Action, *decision.Session, *payment.Payment, error) {
	var key string
	if req.Event != nil {
		key = req.Event.Str[SessionField]
	}
	sess, pay, err := sessionOf(ctx, tx, dev, key)
	if err != nil {
		return nil, nil, nil, err
	}
	a, err := evaluate(prof, prod, dev, st, req, pay, now)
	if err == nil && a.Session != "" && a.Session != key {
		sess, pay, err = sessionOf(ctx, tx, dev, a.Session)
	}
	return a, sess, pay, err
}

// evaluate turns an admitted request into an action: a state report is
// recorded, a product without rules prices by its pricing, otherwise the
// product's rules decide. It writes nothing.
func evaluate(prof *Profile, prod *registry.Product, dev *registry.Device, st *registry.State, req *wire.Request,
	sess *payment.Payment, now time.Time) (*rules.Action, error) {
	if req.Event != nil && req.Event.Type == wire.EventState {
		return &rules.Action{Kind: ActReport}, nil
	}
	if req.Offline {
		// The device charged what it charged, within its offline limits;
		// the platform settles it (and checks it: countOffline, risk).
		if iotpay.Currency(req.Currency) != prod.Pricing.Currency {
			return nil, iotpay.Errorf(iotpay.EINVALID, "product %s charges in %s", prod.Name, prod.Pricing.Currency)
		}
		return &rules.Action{Kind: rules.Charge, Rule: "offline", Amount: req.AmountMinor, Currency: prod.Pricing.Currency}, nil
	}
	if prof.Program == nil {
		amount, err := Price(prod, req)
		if err != nil {
			return nil, err
		}
		return &rules.Action{Kind: rules.Charge, Amount: amount.Amount, Currency: amount.Currency}, nil
	}
	if req.Event == nil {
		return nil, iotpay.Errorf(iotpay.EINVALID, "product %s decides by rules on events, not on amounts", prod.Name)
	}
	in := &rules.Input{
		Event:       rules.Event{Type: req.Event.Type, Num: req.Event.Num, Str: req.Event.Str},
		Device:      rules.Device{ID: string(dev.ID), Firmware: st.Firmware, Attested: st.Attested, Tamper: st.Tamper, Battery: -1, Reported: st.Reported},
		LastReading: st.LastReading,
		Now:         now,
	}
	if st.Battery != nil {
		in.Device.Battery = *st.Battery
	}
	if sess != nil {
		in.Session = rules.Session{Open: true, Held: sess.Held, Captured: sess.Captured}
	}
	a, err := prof.Program.Eval(in)
	if err != nil {
		return nil, err
	}
	if a.Currency == "" {
		a.Currency = prod.Pricing.Currency
	}
	return a, nil
}

// riskInput gathers what the risk policy reads about this payment.
func riskInput(ctx context.Context, tx Tx, pol *risk.Policy, dev *registry.Device, st *registry.State, req *wire.Request,
	amount iotpay.Money, lastSeen, now time.Time) (*risk.Input, error) {
	in := &risk.Input{Now: now, Amount: amount.Amount, Currency: amount.Currency, DeviceTime: req.Time(), Enrolled: dev.Created,
		Firmware: risk.Firmware{Version: st.Firmware, Attested: st.Attested, Reported: st.Firmware != ""}, Tamper: st.Tamper}
	if st.Location != nil {
		in.Location = &risk.Point{LatE7: st.Location.LatE7, LonE7: st.Location.LonE7}
	}
	if !lastSeen.IsZero() && now.After(lastSeen) {
		in.OfflineFor = now.Sub(lastSeen)
	}
	if len(st.History) > 0 {
		if err := json.Unmarshal(st.History, &in.History); err != nil {
			return nil, err
		}
	}
	var payer iotpay.AccountID
	for _, w := range pol.Windows() {
		var c risk.Counted
		var err error
		if w.Scope == "account" {
			if payer == "" {
				m, err := tx.DeviceMandate(ctx, dev.ID)
				if err != nil && iotpay.ErrorCode(err) != iotpay.ENOTFOUND {
					return nil, err
				}
				if m != nil {
					payer = m.Payer
				}
			}
			if payer != "" {
				c.Count, c.Amount, err = tx.Velocity(ctx, "", payer, now.Add(-w.Window.Duration))
			}
		} else {
			c.Count, c.Amount, err = tx.Velocity(ctx, dev.ID, "", now.Add(-w.Window.Duration))
		}
		if err != nil {
			return nil, err
		}
		in.Velocity = append(in.Velocity, c)
	}
	return in, nil
}

// outcome is what a request ends as, for its leaf, receipt and record.
type outcome struct {
	status   wire.Outcome
	code     iotpay.Code
	reason   string
	pay      *payment.Payment // the payment made or moved, if any
	amount   int64            // what moved (or was held) for this request
	currency iotpay.Currency
	legs     []ledger.Transfer
	dec      *decided
}

// newEventID returns a fresh id for a device event or supply order.
func (p *Processor) newEventID(prefix string, now time.Time) string {
	return iotpay.NewID(prefix, now, p.rand())
}

// act carries out an admitted request's action in the writer's batch,
// after the device's counter moved on. st is saved by the caller after.
func (p *Processor) act(b *ledger.Batch[Tx], dev *registry.Device, prod *registry.Product, prof *Profile, st *registry.State,
	req *wire.Request, raw, rh []byte, a *rules.Action, sess *decision.Session, sessPay *payment.Payment, lastSeen time.Time,
	breach string) (Result, error) {
	ctx, tx, now := b.Context(), b.Tx, b.Now
	dec := &decided{Rule: a.Rule, Action: *a, State: &stateSummary{Firmware: st.Firmware, Attested: st.Attested, Tamper: st.Tamper}}
	out := &outcome{status: wire.Approved, dec: dec, currency: a.Currency}
	switch a.Kind {
	case rules.Charge, rules.Bill, rules.Hold:
		return p.authorize(b, dev, prod, prof, st, req, raw, rh, a, dec, lastSeen, breach)
	case rules.Increment, rules.Capture:
		if sessPay == nil {
			out.status, out.code, out.reason = wire.Declined, iotpay.EDECLINED, "no open session "+strconv.Quote(a.Session)
			break
		}
		if err := p.moveSession(b, dev, a, sess, sessPay, out); err != nil {
			return Result{}, err
		}
	case rules.Refill:
		o := &decision.Order{ID: p.newEventID(iotpay.PrefixOrder, now), Tenant: dev.Tenant, Device: dev.ID, Product: prod.ID, Rule: a.Rule,
			Item: a.Item, Quantity: a.Quantity, Supplier: a.Supplier, Status: decision.OrderPending, Next: now, Created: now}
		if err := tx.CreateOrder(ctx, o); err != nil {
			return Result{}, err
		}
		if err := RaiseEvent(ctx, tx, &decision.Event{ID: p.newEventID(iotpay.PrefixEvent, now), Tenant: dev.Tenant, Device: dev.ID,
			Kind: decision.EventOrderPlaced, Detail: o.ID + ": " + strconv.FormatInt(o.Quantity, 10) + " × " + o.Item, Created: now}); err != nil {
			return Result{}, err
		}
		dec.Order = o.ID
	case rules.None, ActReport:
	default:
		return Result{}, iotpay.Errorf(iotpay.EINTERNAL, "unknown action %q", a.Kind)
	}
	rc, err := p.evidence(ctx, tx, dev, st, req, raw, rh, out, now)
	if err != nil {
		return Result{}, err
	}
	r := &decision.Request{Device: dev.ID, RequestID: req.RequestID, RequestHash: rh, Action: string(a.Kind),
		Outcome: string(out.status), Receipt: rc.receipt, Created: now}
	if out.pay != nil {
		r.Payment = out.pay.ID
	}
	if err := tx.CreateDecisionRequest(ctx, r); err != nil {
		return Result{}, err
	}
	return Result{Receipt: rc.receipt, Outcome: out.status, Code: out.code, Reason: out.reason, Payment: r.Payment, Action: string(a.Kind)}, nil
}

// moveSession increments or captures a session's payment. A capture of
// more than is held first asks for the difference (incremental
// authorization); if that is declined, what is held is captured.
func (p *Processor) moveSession(b *ledger.Batch[Tx], dev *registry.Device, a *rules.Action, sess *decision.Session,
	pay *payment.Payment, out *outcome) error {
	ctx, tx, now := b.Context(), b.Tx, b.Now
	var declined error
	if a.Kind == rules.Increment || a.Amount > pay.Held {
		inc := a.Amount
		if a.Kind == rules.Capture {
			inc = a.Amount - pay.Held
		}
		var moved *payment.Payment
		var err, refused error
		if pay.Connector != "" {
			// Raised at its payment system first, outside the writer.
			var ok bool
			if ok, refused = raisedFor(ctx, pay.ID, inc); ok {
				refused = nil
			}
		}
		if refused == nil {
			moved, err = p.Engine.Increment(b, dev.Tenant, pay.ID, inc)
		}
		var d *payment.DeclineError
		switch {
		case errors.As(refused, &d):
			declined = refused // the mandate's, checked before asking
		case refused != nil:
			declined = iotpay.Errorf(iotpay.EDECLINED, "%s: %s", pay.Connector, iotpay.ErrorMessage(refused))
		case errors.As(err, &d):
			declined = err
		case err != nil:
			return err
		default:
			pay = moved
			out.legs = append(out.legs, moved.Legs...)
			if a.Kind == rules.Increment {
				out.amount = inc
			}
		}
	}
	out.pay, out.currency = pay, pay.Currency
	if a.Kind == rules.Increment {
		if declined != nil {
			out.status, out.code, out.reason = wire.Declined, iotpay.EDECLINED, iotpay.ErrorMessage(declined)
		}
		return nil
	}
	amount := min(a.Amount, pay.Held)
	final := a.Final
	var moved *payment.Payment
	var err error
	if amount == 0 {
		// Nothing to take (nothing was delivered): the hold is released.
		moved, err = p.Engine.Void(b, dev.Tenant, pay.ID)
		if err == nil {
			err = follow(b, moved, payment.OpVoid, 0, true, "session")
		}
		final = true
	} else {
		before := pay.Captured
		moved, err = p.Engine.Capture(b, dev.Tenant, pay.ID, amount, final)
		if err == nil {
			err = follow(b, moved, payment.OpCapture, amount, final, "session-"+strconv.FormatInt(before, 10))
		}
	}
	if err != nil {
		return err
	}
	out.pay, out.amount = moved, amount
	out.legs = append(out.legs, moved.Legs...)
	if declined != nil {
		out.reason = "captured " + strconv.FormatInt(amount, 10) + " held of " + strconv.FormatInt(a.Amount, 10) + ": " + iotpay.ErrorMessage(declined)
	}
	if final || !moved.Status.Open() {
		sess.Closed = now
		return tx.PutSession(ctx, sess)
	}
	return nil
}

// authorize makes a new payment: the risk policy decides first, then the
// mandate. A charge or a bill is captured at once, a hold opens a session,
// and a payment held for review is only authorized.
func (p *Processor) authorize(b *ledger.Batch[Tx], dev *registry.Device, prod *registry.Product, prof *Profile, st *registry.State,
	req *wire.Request, raw, rh []byte, a *rules.Action, dec *decided, lastSeen time.Time, breach string) (Result, error) {
	ctx, tx, now := b.Context(), b.Tx, b.Now
	amount := iotpay.Money{Amount: a.Amount, Currency: a.Currency}
	if amount.Amount <= 0 || amount.Amount > payment.AmountMax {
		return Result{}, iotpay.Errorf(iotpay.EINTERNAL, "rules gave amount %d", amount.Amount)
	}
	ar := &payment.AuthRequest{
		ID: iotpay.PaymentID(iotpay.NewID(iotpay.PrefixPayment, now, p.rand())), Tenant: dev.Tenant, Device: dev.ID,
		Product: prod.ID, Category: prod.Category, Merchant: prod.Merchant, Amount: amount, Capture: a.Kind != rules.Hold,
		RequestID: req.RequestID, RequestHash: rh,
	}
	r := routedFor(ctx, amount)
	if r != nil {
		ar.ID, ar.External = r.id, r.ext // authorized outside; captured there once booked
	}
	if prof.Risk != nil {
		in, err := riskInput(ctx, tx, prof.Risk, dev, st, req, amount, lastSeen, now)
		if err != nil {
			return Result{}, err
		}
		d := risk.Decide(prof.Risk, in)
		dec.Risk = &d
		if req.Offline && d.Outcome == risk.Decline {
			// After the fact: the goods were delivered; what the policy
			// would have refused is held for the operator.
			d.Outcome = risk.Review
			breach = joinBreach(breach, "the risk policy would have declined it")
		}
		switch d.Outcome {
		case risk.Decline:
			ar.Decline, ar.Detail = payment.DeclineRisk, riskDetail(&d)
		case risk.Review:
			ar.Capture = false
		}
	}
	if breach != "" {
		if dec.Risk == nil {
			dec.Risk = &risk.Decision{}
		}
		dec.Risk.Outcome = risk.Review
		dec.Risk.Reasons = append(dec.Risk.Reasons, risk.Reason{Code: "offline", Detail: breach})
		ar.Capture = false
	}
	var rc *receipted
	ar.Finish = func(pay *payment.Payment) (err error) {
		out := &outcome{status: outcomeOf(pay.Status), reason: pay.Reason, pay: pay, amount: pay.Amount, currency: pay.Currency,
			legs: pay.Legs, dec: dec}
		if pay.Status == payment.StatusDeclined {
			out.code = iotpay.EDECLINED
		} else if dec.Risk != nil && dec.Risk.Outcome == risk.Review {
			out.status, out.reason = wire.Review, riskDetail(dec.Risk)
		}
		rc, err = p.evidence(ctx, tx, dev, st, req, raw, rh, out, now)
		if err != nil {
			return err
		}
		pay.Receipt, pay.LogIndex = rc.receipt, rc.index
		return nil
	}
	pay, err := p.Engine.Authorize(b, ar)
	if err != nil {
		return Result{}, err
	}
	if r != nil && r.ext.Result.Status == connector.Authorized {
		// The payment system follows the ledger: a sale booked is captured
		// there, a declined one released; a hold or a review stays held.
		switch pay.Status {
		case payment.StatusCaptured:
			err = follow(b, pay, payment.OpCapture, pay.Captured, true, "sale")
		case payment.StatusDeclined:
			pay.Connector, pay.ConnectorRef = r.ext.Connector, r.ext.Result.Ref
			err = follow(b, pay, payment.OpVoid, 0, true, "declined")
		}
		if err != nil {
			return Result{}, err
		}
	}
	if pay.Status != payment.StatusDeclined {
		if err := p.afterApproval(ctx, tx, dev, st, a, dec, pay, now); err != nil {
			return Result{}, err
		}
	} else if req.Offline {
		breach = joinBreach(breach, "declined: "+pay.Reason)
	}
	if req.Offline && breach != "" {
		if err := RaiseEvent(ctx, tx, &decision.Event{ID: p.newEventID(iotpay.PrefixEvent, now), Tenant: dev.Tenant, Device: dev.ID,
			Kind: decision.EventOfflineBreach, Detail: string(pay.ID) + ": " + breach, Created: now}); err != nil {
			return Result{}, err
		}
	}
	if dec.Risk == nil || dec.Risk.Outcome != risk.Review { // a review is told as payment.review
		if err := NotifyPayment(ctx, tx, payment.EventAuthorize, pay, now); err != nil {
			return Result{}, err
		}
	}
	return Result{Receipt: pay.Receipt, Outcome: rc.outcome, Code: iotpay.Code(rc.code), Reason: pay.Reason, Payment: pay.ID,
		Action: string(a.Kind)}, nil
}

// afterApproval records what an approved (or held) payment changes: the
// device's history and meter, the session a hold opens, the review.
func (p *Processor) afterApproval(ctx context.Context, tx Tx, dev *registry.Device, st *registry.State, a *rules.Action,
	dec *decided, pay *payment.Payment, now time.Time) error {
	var hist risk.Stats
	if len(st.History) > 0 {
		if err := json.Unmarshal(st.History, &hist); err != nil {
			return err
		}
	}
	h, err := json.Marshal(hist.Add(pay.Amount))
	if err != nil {
		return err
	}
	st.History = h
	if a.Kind == rules.Bill {
		st.LastReading = a.Reading
	}
	if a.Kind == rules.Hold {
		if err := tx.PutSession(ctx, &decision.Session{Device: dev.ID, Key: a.Session, Payment: pay.ID, Created: now}); err != nil {
			return err
		}
	}
	if dec.Risk != nil && dec.Risk.Outcome == risk.Review {
		d, err := json.Marshal(dec)
		if err != nil {
			return err
		}
		if err := tx.CreateReview(ctx, &decision.Review{Payment: pay.ID, Tenant: dev.Tenant, Device: dev.ID, Status: decision.ReviewPending,
			Decision: d, Created: now}); err != nil {
			return err
		}
		return RaiseEvent(ctx, tx, &decision.Event{ID: p.newEventID(iotpay.PrefixEvent, now), Tenant: dev.Tenant, Device: dev.ID,
			Kind: decision.EventReviewHeld, Detail: string(pay.ID) + ": " + riskDetail(dec.Risk), Created: now})
	}
	return nil
}

// riskDetail is a risk decision's reasons in a line.
func riskDetail(d *risk.Decision) string {
	s := string(d.Outcome) + " (score " + strconv.Itoa(d.Score) + ")"
	for i, r := range d.Reasons {
		if i == 0 {
			s += ": "
		} else {
			s += "; "
		}
		s += r.Detail
	}
	return s
}

// OfflineAgeMax is how old an offline payment's request may be when it
// reaches the platform (through a gateway's store).
const OfflineAgeMax = 7 * 24 * time.Hour

// countOffline counts an offline payment against its product's limits
// and returns what it breaches (empty when nothing); an online request
// starts the count again. moved says st changed.
func countOffline(st *registry.State, prod *registry.Product, req *wire.Request) (breach string, moved bool) {
	if !req.Offline {
		moved = st.OfflineCount != 0 || st.OfflineAmount != 0
		st.OfflineCount, st.OfflineAmount = 0, 0
		return "", moved
	}
	st.OfflineCount++
	st.OfflineAmount += req.AmountMinor
	lim := prod.Offline
	if st.OfflineCount > lim.MaxCount {
		breach = joinBreach(breach, fmt.Sprintf("offline payment %d, the product allows %d", st.OfflineCount, lim.MaxCount))
	}
	if st.OfflineAmount > lim.MaxAmount {
		breach = joinBreach(breach, fmt.Sprintf("%d paid offline, the product allows %d", st.OfflineAmount, lim.MaxAmount))
	}
	return breach, true
}

func joinBreach(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

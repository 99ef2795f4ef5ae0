package payment

import (
	"context"
	"errors"
	"log/slog"
	"math/bits"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/payment/ledger"
	"github.com/iotpay/iotpay/payment/route"
)

// FeePlan is what each capture pays the operator and the platform, in
// basis points of the captured amount (rounded down); the merchant gets
// the rest.
type FeePlan struct {
	OperatorBps int64 `json:"operator_bps"`
	PlatformBps int64 `json:"platform_bps"`
}

// Valid reports whether the fees are between 0 and 100% together.
func (f FeePlan) Valid() bool {
	return f.OperatorBps >= 0 && f.PlatformBps >= 0 && f.OperatorBps+f.PlatformBps <= 10_000
}

// split divides a captured amount into the merchant's, operator's and
// platform's shares.
func (f FeePlan) split(amount int64) (merchant, operator, platform int64) {
	operator, platform = bpsOf(amount, f.OperatorBps), bpsOf(amount, f.PlatformBps)
	return amount - operator - platform, operator, platform
}

// bpsOf is amount*bps/10000 rounded down, without overflow.
func bpsOf(amount, bps int64) int64 { return mulDiv(amount, bps, 10_000) }

// Engine is the payment engine. Its operations take a ledger.Batch: they
// run as (part of) an operation of the ledger's Writer, so a payment's
// record and its transfers commit together. Do runs one on its own.
type Engine[T Tx] struct {
	W     *ledger.Writer[T]
	Store Store[T]
	Fees  FeePlan
	// Router reaches the external payment systems (nil: the wallet only).
	Router *route.Router
	// OnEvent, when set, is told of every change to a payment in the
	// operation (and transaction) that makes it, its transfers in p.Legs:
	// the platform writes it to the audit log. An authorization whose
	// caller records its own evidence (AuthRequest.Finish) is not told.
	// An error fails the operation.
	OnEvent func(ctx context.Context, tx T, kind string, p *Payment) error
	// Logger logs what the engine does outside a request's answer: the
	// follow-ups payment systems owe (nil: discarded).
	Logger *slog.Logger
}

func (e *Engine[T]) log() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

// ErrTransition is the code of a request a payment's or mandate's status
// does not allow.
func transition(what string, from any, action string) error {
	return iotpay.Errorf(iotpay.ECONFLICT, "%s is %s: cannot %s", what, from, action)
}

// SystemAccount returns the id of a tenant's own account of kind in cur
// (clearing, operator, platform, funding), opening it on first use.
func SystemAccount[T Tx](b *ledger.Batch[T], tenant iotpay.TenantID, kind string, cur iotpay.Currency) (iotpay.AccountID, error) {
	id := iotpay.AccountID(iotpay.DeriveID(iotpay.PrefixAccount, string(tenant), kind, string(cur)))
	if _, ok := b.Account(id); ok {
		return id, nil
	}
	normal := ledger.Credit
	if kind == KindFunding {
		normal = ledger.Debit
	}
	return id, b.CreateAccount(&ledger.Account{ID: id, Tenant: tenant, Currency: cur, Normal: normal, Kind: kind, Name: kind + " " + string(cur)})
}

// CreateAccount opens a payer or merchant account (credit-normal: the
// platform owes its holder the balance).
func CreateAccount[T Tx](b *ledger.Batch[T], tenant iotpay.TenantID, name, kind string, cur iotpay.Currency) (*ledger.Account, error) {
	return createAccount(b, tenant, name, kind, cur, 0)
}

func createAccount[T Tx](b *ledger.Batch[T], tenant iotpay.TenantID, name, kind string, cur iotpay.Currency, flags ledger.AccountFlags) (*ledger.Account, error) {
	if name == "" || len(name) > NameLenMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "name must be 1 to %d bytes", NameLenMax)
	}
	if kind != KindPayer && kind != KindMerchant {
		return nil, iotpay.Errorf(iotpay.EINVALID, "kind must be payer or merchant")
	}
	if !cur.Valid() {
		return nil, iotpay.Errorf(iotpay.EINVALID, "unknown currency %q", cur)
	}
	a := &ledger.Account{ID: iotpay.AccountID(iotpay.NewID(iotpay.PrefixAccount, b.Now, nil)), Tenant: tenant,
		Currency: cur, Normal: ledger.Credit, Kind: kind, Name: name, Flags: flags}
	if err := b.CreateAccount(a); err != nil {
		if errors.Is(err, ledger.ErrAccountInvalid) {
			return nil, iotpay.Errorf(iotpay.EINVALID, "account name must be printable text")
		}
		return nil, err
	}
	return a, nil
}

// Fund credits a payer account from the tenant's funding account: money
// that arrived at the bank for that payer.
func Fund[T Tx](b *ledger.Batch[T], tenant iotpay.TenantID, id iotpay.AccountID, amount int64) (*ledger.Transfer, error) {
	if amount <= 0 || amount > AmountMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "amount must be between 1 and %d minor units", AmountMax)
	}
	a, ok := b.Account(id)
	if !ok || a.Tenant != tenant {
		return nil, iotpay.Errorf(iotpay.ENOTFOUND, "account %s not found", id)
	}
	if a.Kind != KindPayer {
		return nil, iotpay.Errorf(iotpay.EINVALID, "only payer accounts are funded")
	}
	src, err := SystemAccount(b, tenant, KindFunding, a.Currency)
	if err != nil {
		return nil, err
	}
	t := &ledger.Transfer{ID: b.NewTransferID(), Tenant: tenant, Debit: src, Credit: id, Amount: amount,
		Currency: a.Currency, Kind: "fund"}
	if err := apply(b, t); err != nil {
		return nil, err
	}
	return t, nil
}

// applyFor applies a linked chain for p and records its legs on p.
func applyFor[T Tx](b *ledger.Batch[T], p *Payment, ts ...*ledger.Transfer) error {
	if err := apply(b, ts...); err != nil {
		return err
	}
	for _, t := range ts {
		p.Legs = append(p.Legs, *t)
	}
	return nil
}

// apply applies a linked chain of transfers and returns the first
// refusal, or the store's failure.
func apply[T Tx](b *ledger.Batch[T], ts ...*ledger.Transfer) error {
	for i := range len(ts) - 1 {
		ts[i].Flags |= ledger.Linked
	}
	errs, err := b.Apply(ts...)
	if err != nil {
		return err
	}
	for _, e := range errs {
		if e != nil && !errors.Is(e, ledger.ErrLinkedFailed) {
			return e
		}
	}
	return nil
}

// AuthRequest asks to authorize a payment.
type AuthRequest struct {
	ID       iotpay.PaymentID // when empty, a new id
	Tenant   iotpay.TenantID
	Device   iotpay.DeviceID
	Product  iotpay.ProductID
	Category string // the merchant's category (ISO 18245), when known
	Merchant iotpay.AccountID
	Amount   iotpay.Money
	// Capture captures the whole amount at once: a sale.
	Capture bool
	// HoldTimeout is how long the hold lasts (HoldTimeoutDefault when 0).
	HoldTimeout time.Duration
	RequestID   string
	RequestHash []byte
	// Key is the authorization's idempotency key at a payment system
	// (Engine.Route): the payment id's when empty.
	Key string
	// External is the answer of the payment system the payment was
	// routed to (Engine.Route), when the payer is an instrument there.
	External *External
	// Decline, when set, records the payment declined for that reason
	// without holding anything (the platform's risk control decided);
	// Detail, when set, replaces the reason's message.
	Decline Reason
	Detail  string
	// Finish, when set, completes the payment just before it is stored
	// (the platform attaches its audit log index and signed receipt).
	Finish func(p *Payment) error
}

// Authorize decides a payment: the device's mandate must allow it and the
// payer's account hold it. A declined payment is recorded too, with its
// reason; err is only for invalid requests and store failures.
func (e *Engine[T]) Authorize(b *ledger.Batch[T], req *AuthRequest) (*Payment, error) {
	ctx, now := b.Context(), b.Now
	amt := req.Amount.Amount
	if amt <= 0 || amt > AmountMax || !req.Amount.Currency.Valid() {
		return nil, iotpay.Errorf(iotpay.EINVALID, "amount must be between 1 and %d minor units of a known currency", AmountMax)
	}
	timeout := req.HoldTimeout
	if timeout == 0 {
		timeout = HoldTimeoutDefault
	}
	if timeout < time.Second || timeout > HoldTimeoutMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "hold timeout must be between 1s and %v", HoldTimeoutMax)
	}
	timeout = timeout.Truncate(time.Millisecond)
	id := req.ID
	if id == "" {
		id = iotpay.PaymentID(iotpay.NewID(iotpay.PrefixPayment, now, nil))
	}
	p := &Payment{ID: id, Tenant: req.Tenant, Device: req.Device, Product: req.Product, Category: req.Category,
		Status: StatusAuthorized, Currency: req.Amount.Currency, Amount: amt, Merchant: req.Merchant,
		RequestID: req.RequestID, RequestHash: req.RequestHash, Created: now, Updated: now}
	m, err := b.Tx.DeviceMandate(ctx, req.Device)
	var refusal error
	switch {
	case iotpay.ErrorCode(err) == iotpay.ENOTFOUND:
		refusal = decline(DeclineNoMandate)
	case err != nil:
		return nil, err
	case m.Tenant != req.Tenant:
		refusal = decline(DeclineNoMandate)
	case req.Decline != "":
		p.Mandate, p.Payer = m.ID, m.Payer
		refusal = decline(req.Decline)
	case req.External != nil && req.External.Result.Status == connector.Declined:
		p.Mandate, p.Payer = m.ID, m.Payer
		p.Connector, p.ConnectorRef = req.External.Connector, req.External.Result.Ref
		refusal = decline(DeclineConnector)
		req.Detail = connectorDetail(req.External)
	case req.External == nil && external(b, m.Payer):
		p.Mandate, p.Payer = m.ID, m.Payer
		refusal = decline(DeclineConnectorRequired)
	default:
		p.Mandate, p.Payer = m.ID, m.Payer
		refusal = m.admit(amt, amt, p.Currency, p.Product, p.Category, now)
		if req.External != nil {
			p.Connector, p.ConnectorRef = req.External.Connector, req.External.Result.Ref
		}
	}
	if refusal == nil {
		refusal = e.hold(b, p, timeout)
	}
	if refusal == nil && req.Capture {
		refusal = e.capture(b, p, 0, true)
	}
	var d *DeclineError
	switch {
	case errors.As(refusal, &d):
		p.Status, p.Decline, p.Reason = StatusDeclined, d.Reason, d.Reason.Message()
		if req.Detail != "" && (d.Reason == req.Decline || d.Reason == DeclineConnector) {
			p.Reason = req.Detail
		}
		p.Hold, p.Held, p.HoldExpires, p.Captured, p.Legs = "", 0, time.Time{}, 0, nil
	case refusal != nil:
		return nil, refusal
	default:
		m.use(amt, now)
		if err := b.Tx.UpdateMandate(ctx, m); err != nil {
			return nil, err
		}
	}
	if req.Finish != nil {
		if err := req.Finish(p); err != nil {
			return nil, err
		}
	} else if err := e.event(ctx, b.Tx, EventAuthorize, p); err != nil {
		return nil, err
	}
	return p, b.Tx.CreatePayment(ctx, p)
}

// Payment events, as OnEvent receives them.
const (
	EventAuthorize = "authorize" // an authorization (or sale) the operator asked for
	EventCapture   = "capture"
	EventIncrement = "increment"
	EventVoid      = "void"
	EventRefund    = "refund"
	EventExpire    = "expire" // the hold's time passed
)

// event tells OnEvent of a change to p; p.Legs are its transfers.
func (e *Engine[T]) event(ctx context.Context, tx T, kind string, p *Payment) error {
	if e.OnEvent == nil {
		return nil
	}
	return e.OnEvent(ctx, tx, kind, p)
}

// hold places the authorization's hold: from the payer to the merchant,
// pending.
func (e *Engine[T]) hold(b *ledger.Batch[T], p *Payment, timeout time.Duration) error {
	payer, ok1 := b.Account(p.Payer)
	mer, ok2 := b.Account(p.Merchant)
	if !ok1 || !ok2 || payer.Tenant != p.Tenant || mer.Tenant != p.Tenant || payer.Kind != KindPayer ||
		mer.Kind != KindMerchant || payer.Currency != p.Currency || mer.Currency != p.Currency {
		return decline(DeclineAccountUnavailable)
	}
	t := &ledger.Transfer{ID: b.NewTransferID(), Tenant: p.Tenant, Debit: p.Payer, Credit: p.Merchant, Amount: p.Amount,
		Currency: p.Currency, Flags: ledger.Pending, Timeout: timeout, Kind: "authorize", Ref: string(p.ID)}
	switch err := applyFor(b, p, t); {
	case errors.Is(err, ledger.ErrInsufficientFunds):
		return decline(DeclineInsufficientFunds)
	case err != nil:
		return err
	}
	p.Hold, p.Held, p.HoldExpires = t.ID, t.Amount, t.ExpiresAt
	return nil
}

// rehold is a new hold for amount on p's payer that ends when p's hold
// does.
func rehold[T Tx](b *ledger.Batch[T], p *Payment, amount int64) *ledger.Transfer {
	t := &ledger.Transfer{ID: b.NewTransferID(), Tenant: p.Tenant, Debit: p.Payer, Credit: p.Merchant, Amount: amount,
		Currency: p.Currency, Flags: ledger.Pending, Kind: "authorize", Ref: string(p.ID)}
	if !p.HoldExpires.IsZero() {
		t.Timeout = max(p.HoldExpires.Sub(b.Now), time.Millisecond)
	}
	return t
}

// capture captures amount (0: all that is held) of p's hold, split into
// its merchant, operator and platform legs. Unless final, a remainder
// stays held for later captures.
func (e *Engine[T]) capture(b *ledger.Batch[T], p *Payment, amount int64, final bool) error {
	if !p.Status.Open() {
		return transition("payment", p.Status, "capture")
	}
	if amount == 0 {
		amount = p.Held
	}
	if amount < 0 || amount > p.Held {
		return iotpay.Errorf(iotpay.EINVALID, "capture amount must be between 1 and the %d held", p.Held)
	}
	tenant, cur := p.Tenant, p.Currency
	_, op, pf := e.Fees.split(amount)
	// The hold's posting pays the merchant; the merchant pays the fees:
	// linked legs, all or nothing.
	legs := []*ledger.Transfer{{ID: b.NewTransferID(), Tenant: tenant, Flags: ledger.PostPending, PendingID: p.Hold,
		Amount: amount, Kind: "capture", Ref: string(p.ID)}}
	for _, fee := range []struct {
		kind   string
		amount int64
	}{{KindOperator, op}, {KindPlatform, pf}} {
		if fee.amount == 0 {
			continue
		}
		to, err := SystemAccount(b, tenant, fee.kind, cur)
		if err != nil {
			return err
		}
		legs = append(legs, &ledger.Transfer{ID: b.NewTransferID(), Tenant: tenant, Debit: p.Merchant, Credit: to,
			Amount: fee.amount, Currency: cur, Kind: "fee " + fee.kind, Ref: string(p.ID)})
	}
	var next *ledger.Transfer
	if rest := p.Held - amount; !final && rest > 0 {
		next = rehold(b, p, rest)
		legs = append(legs, next)
	}
	if err := applyFor(b, p, legs...); err != nil {
		return err
	}
	p.Captured += amount
	p.FeeOperator += op
	p.FeePlatform += pf
	p.Updated = b.Now
	if next != nil {
		p.Hold, p.Held, p.HoldExpires, p.Status = next.ID, next.Amount, next.ExpiresAt, StatusPartiallyCaptured
	} else {
		p.Hold, p.Held, p.HoldExpires, p.Status = "", 0, time.Time{}, StatusCaptured
	}
	return nil
}

func (e *Engine[T]) load(b *ledger.Batch[T], tenant iotpay.TenantID, id iotpay.PaymentID) (*Payment, error) {
	return b.Tx.Payment(b.Context(), tenant, id)
}

// Capture captures amount (0: all) of an open payment; final releases
// what is not captured, otherwise it stays held for further captures.
func (e *Engine[T]) Capture(b *ledger.Batch[T], tenant iotpay.TenantID, id iotpay.PaymentID, amount int64, final bool) (*Payment, error) {
	p, err := e.load(b, tenant, id)
	if err != nil {
		return nil, err
	}
	if err := e.capture(b, p, amount, final); err != nil {
		return nil, err
	}
	if err := e.event(b.Context(), b.Tx, EventCapture, p); err != nil {
		return nil, err
	}
	return p, b.Tx.UpdatePayment(b.Context(), p)
}

// Void releases an open payment's hold. A payment with captures keeps
// them and ends captured.
func (e *Engine[T]) Void(b *ledger.Batch[T], tenant iotpay.TenantID, id iotpay.PaymentID) (*Payment, error) {
	p, err := e.load(b, tenant, id)
	if err != nil {
		return nil, err
	}
	if !p.Status.Open() {
		return nil, transition("payment", p.Status, "void")
	}
	t := &ledger.Transfer{ID: b.NewTransferID(), Tenant: tenant, Flags: ledger.VoidPending, PendingID: p.Hold,
		Kind: "void", Ref: string(p.ID)}
	if err := applyFor(b, p, t); err != nil {
		return nil, err
	}
	p.release(StatusVoided, b.Now)
	if err := e.event(b.Context(), b.Tx, EventVoid, p); err != nil {
		return nil, err
	}
	return p, b.Tx.UpdatePayment(b.Context(), p)
}

// release records that p's hold is gone: ended is p's status when nothing
// was captured.
func (p *Payment) release(ended Status, now time.Time) {
	p.Hold, p.Held, p.HoldExpires, p.Updated = "", 0, time.Time{}, now
	p.Status = ended
	if p.Captured > 0 {
		p.Status = StatusCaptured
		if p.Refunded == p.Captured {
			p.Status = StatusRefunded
		}
	}
}

// Increment raises an open payment's authorization by amount (an EV
// session that goes on): the mandate must allow the new total, and the
// payer's account hold it. The hold keeps its expiry. A refusal is a
// *DeclineError and changes nothing.
func (e *Engine[T]) Increment(b *ledger.Batch[T], tenant iotpay.TenantID, id iotpay.PaymentID, amount int64) (*Payment, error) {
	ctx := b.Context()
	p, err := e.load(b, tenant, id)
	if err != nil {
		return nil, err
	}
	if !p.Status.Open() {
		return nil, transition("payment", p.Status, "increment")
	}
	if amount <= 0 || amount > AmountMax || p.Amount+amount > AmountMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "increment must be between 1 and %d minor units", AmountMax-p.Amount)
	}
	m, err := b.Tx.Mandate(ctx, tenant, p.Mandate)
	if err != nil {
		return nil, err
	}
	if err := m.admit(amount, p.Amount+amount, p.Currency, p.Product, p.Category, b.Now); err != nil {
		return nil, err
	}
	void := &ledger.Transfer{ID: b.NewTransferID(), Tenant: tenant, Flags: ledger.VoidPending, PendingID: p.Hold,
		Kind: "increment", Ref: string(p.ID)}
	next := rehold(b, p, p.Held+amount)
	switch err := applyFor(b, p, void, next); {
	case errors.Is(err, ledger.ErrInsufficientFunds):
		return nil, decline(DeclineInsufficientFunds)
	case err != nil:
		return nil, err
	}
	p.Amount += amount
	p.Hold, p.Held, p.HoldExpires, p.Updated = next.ID, next.Amount, next.ExpiresAt, b.Now
	m.use(amount, b.Now)
	if err := b.Tx.UpdateMandate(ctx, m); err != nil {
		return nil, err
	}
	if err := e.event(ctx, b.Tx, EventIncrement, p); err != nil {
		return nil, err
	}
	return p, b.Tx.UpdatePayment(ctx, p)
}

// Refund returns amount (0: all that is left) of what a payment captured
// to the payer. The operator and the platform give back their fees in
// proportion (all of them once everything is refunded), the merchant the
// rest: linked legs, all or nothing. Several partial
// refunds may follow one another up to the captured amount.
func (e *Engine[T]) Refund(b *ledger.Batch[T], tenant iotpay.TenantID, id iotpay.PaymentID, amount int64) (*Payment, error) {
	p, err := e.load(b, tenant, id)
	if err != nil {
		return nil, err
	}
	left := p.Captured - p.Refunded
	if left == 0 {
		return nil, transition("payment", p.Status, "refund (nothing captured is left to refund)")
	}
	if amount == 0 {
		amount = left
	}
	if amount < 0 || amount > left {
		return nil, iotpay.Errorf(iotpay.EINVALID, "refund amount must be between 1 and the %d left", left)
	}
	cur := p.Currency
	share := func(fee int64) int64 { // fee's part of the refunds so far and now, less what went back before
		return mulDiv(fee, p.Refunded+amount, p.Captured) - mulDiv(fee, p.Refunded, p.Captured)
	}
	op, pf := share(p.FeeOperator), share(p.FeePlatform)
	var legs []*ledger.Transfer
	for _, leg := range []struct {
		from   iotpay.AccountID
		kind   string
		amount int64
	}{{p.Merchant, "", amount - op - pf}, {"", KindOperator, op}, {"", KindPlatform, pf}} {
		if leg.amount == 0 {
			continue
		}
		from := leg.from
		if from == "" {
			if from, err = SystemAccount(b, tenant, leg.kind, cur); err != nil {
				return nil, err
			}
		}
		legs = append(legs, &ledger.Transfer{ID: b.NewTransferID(), Tenant: tenant, Debit: from, Credit: p.Payer,
			Amount: leg.amount, Currency: cur, Kind: "refund", Ref: string(p.ID)})
	}
	switch err := applyFor(b, p, legs...); {
	case errors.Is(err, ledger.ErrInsufficientFunds):
		return nil, iotpay.Errorf(iotpay.EDECLINED, "the merchant's (or a fee account's) balance does not cover the refund")
	case err != nil:
		return nil, err
	}
	p.Refunded += amount
	p.Updated = b.Now
	if p.Refunded == p.Captured && !p.Status.Open() {
		p.Status = StatusRefunded
	}
	if err := e.event(b.Context(), b.Tx, EventRefund, p); err != nil {
		return nil, err
	}
	return p, b.Tx.UpdatePayment(b.Context(), p)
}

// mulDiv is a*b/c rounded down, for 0 ≤ a, b and b ≤ c, without overflow.
func mulDiv(a, b, c int64) int64 {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	q, _ := bits.Div64(hi, lo, uint64(c))
	return int64(q)
}

// OnExpire records the expiry of payments' holds; the ledger's Writer
// calls it (ledger.Config.OnExpire) in the batch the holds expired in.
func (e *Engine[T]) OnExpire(ctx context.Context, tx T, expired []*ledger.Transfer) error {
	for _, t := range expired {
		p, err := tx.PaymentByHold(ctx, t.PendingID)
		if iotpay.ErrorCode(err) == iotpay.ENOTFOUND {
			continue // a hold that is not a payment's
		}
		if err != nil {
			return err
		}
		p.release(StatusExpired, t.Time)
		p.Legs = []ledger.Transfer{*t}
		if err := e.event(ctx, tx, EventExpire, p); err != nil {
			return err
		}
		if err := tx.UpdatePayment(ctx, p); err != nil {
			return err
		}
		if p.Connector != "" {
			// The ledger let the hold lapse: so does the payment system,
			// at the watcher's next round.
			f := &FollowUp{Tenant: p.Tenant, Payment: p.ID, Connector: p.Connector, Ref: p.ConnectorRef, Op: OpVoid,
				Key: string(p.ID) + ":" + OpVoid + ":expired", Next: t.Time}
			if err := tx.PutFollowUp(ctx, f.init(t.Time)); err != nil {
				return err
			}
		}
	}
	return nil
}

// bound clamps a listing's limit.
func bound(n int) int {
	if n <= 0 || n > ListLimitMax {
		return ListLimitMax
	}
	return n
}

package payment

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/payment/ledger"
	"github.com/iotpay/iotpay/payment/route"
)

// DeclineConnector: the payment system the payment was routed to declined
// it (the payment's reason gives its code).
const DeclineConnector Reason = "connector_declined"

// DeclineConnectorRequired: the payer's account is an instrument at an
// external payment system, and this payment did not go through one.
const DeclineConnectorRequired Reason = "connector_required"

// ConnectorTimeout bounds one connector operation, failover included.
const ConnectorTimeout = 30 * time.Second

// External is what a connector answered for a payment, before the writer
// records it: Authorize then books it like a wallet payment, from the
// payer account (an instrument outside, whose ledger balance may go
// below zero: what the payment system owes until it settles).
type External struct {
	Connector string            `json:"connector"`
	Result    *connector.Result `json:"result"`
	Attempts  []route.Attempt   `json:"attempts,omitempty"`
	Rule      string            `json:"rule,omitempty"`
}

// CreateExternalAccount opens a payer account whose money is an
// instrument at payment systems (a card, a PSP's payment method), by
// connector name: its balance may go below zero.
func CreateExternalAccount[T Tx](b *ledger.Batch[T], tenant iotpay.TenantID, name string, cur iotpay.Currency, sources map[string]string, known func(string) bool) (*ledger.Account, error) {
	if len(sources) == 0 {
		return nil, iotpay.Errorf(iotpay.EINVALID, "sources: at least one connector's instrument")
	}
	for c, src := range sources {
		if !known(c) || c == WalletConnector {
			return nil, iotpay.Errorf(iotpay.EINVALID, "sources: unknown external connector %q", c)
		}
		if src == "" || len(src) > SourceLenMax {
			return nil, iotpay.Errorf(iotpay.EINVALID, "sources: an instrument of 1 to %d bytes", SourceLenMax)
		}
	}
	a, err := createAccount(b, tenant, name, KindPayer, cur, ledger.Overdraft)
	if err != nil {
		return nil, err
	}
	for c, src := range sources {
		if err := b.Tx.PutAccountSource(b.Context(), tenant, a.ID, c, src); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// WalletConnector is the internal wallet's name in routing tables.
const WalletConnector = "wallet"

// SourceLenMax bounds an instrument's reference.
const SourceLenMax = 256

// Route authorizes req at an external payment system when the device's
// payer account is an instrument there, before the writer records the
// payment; it returns nil when the payment stays in the wallet (or the
// mandate will decline it: Authorize records that). The mandate is
// checked first, so nothing is authorized outside that it would refuse;
// the tenant's routing table orders the connectors the account has an
// instrument at, and the router fails over between them with one
// idempotency key (req.Key, or the payment id's).
func (e *Engine[T]) Route(ctx context.Context, req *AuthRequest) (*External, error) {
	if e.Router == nil {
		return nil, nil
	}
	var m *Mandate
	var sources map[string]string
	var table *route.Table
	err := e.Store.View(ctx, func(tx T) error {
		var err error
		m, err = tx.DeviceMandate(ctx, req.Device)
		if err != nil || m.Tenant != req.Tenant {
			m = nil
			return nil
		}
		if sources, err = tx.AccountSources(ctx, m.Payer); err != nil || len(sources) == 0 {
			return err
		}
		body, err := tx.RoutingTable(ctx, req.Tenant)
		switch {
		case iotpay.ErrorCode(err) == iotpay.ENOTFOUND:
			table = &route.Table{}
			for c := range sources {
				table.Default = append(table.Default, c)
			}
			slices.Sort(table.Default)
			return nil
		case err != nil:
			return err
		}
		table = &route.Table{}
		return json.Unmarshal(body, table)
	})
	if err != nil || m == nil || len(sources) == 0 {
		return nil, err
	}
	if m.admit(req.Amount.Amount, req.Amount.Amount, req.Amount.Currency, req.Product, req.Category, time.Now()) != nil {
		return nil, nil // Authorize records the decline
	}
	names, rule := table.Choose(route.Payment{Amount: req.Amount, Product: req.Product, Account: m.Payer})
	names = slices.DeleteFunc(slices.Clone(names), func(n string) bool { return sources[n] == "" })
	if len(names) == 0 {
		return nil, iotpay.Errorf(iotpay.EINVALID, "no connector the payer's account has an instrument at is routed this payment")
	}
	ctx, cancel := context.WithTimeout(ctx, ConnectorTimeout)
	defer cancel()
	key := req.Key
	if key == "" {
		key = string(req.ID) + ":authorize"
	}
	var res *connector.Result
	name, attempts, err := e.Router.Call(ctx, names, func(ctx context.Context, c connector.Connector) (err error) {
		res, err = c.Authorize(ctx, &connector.Authorization{Payment: req.ID, Key: key, Amount: req.Amount,
			Source: sources[c.Name()], Capture: req.Capture, Device: req.Device})
		return err
	})
	e.releaseLost(ctx, req, key, attempts, err)
	if err != nil {
		return nil, err
	}
	return &External{Connector: name, Result: res, Attempts: attempts, Rule: rule}, nil
}

// releaseLost records a release follow-up for every payment system an
// authorization got no answer from (connector.Releaser finds what it may
// have made there by key): at once when another system authorized it, or
// after ReleaseDelay when none did, since the device's retry with the
// same key gets that authorization back.
func (e *Engine[T]) releaseLost(ctx context.Context, req *AuthRequest, key string, attempts []route.Attempt, err error) {
	var lost []string
	for i, a := range attempts {
		if a.Skipped || a.Error == "" || i == len(attempts)-1 && err != nil && !connector.Retryable(err) {
			continue
		}
		if _, ok := e.Router.Connectors[a.Connector].(connector.Releaser); ok {
			lost = append(lost, a.Connector)
		}
	}
	if len(lost) == 0 {
		return
	}
	next := time.Now()
	if err != nil {
		next = next.Add(ReleaseDelay)
	}
	werr := e.Do(context.WithoutCancel(ctx), func(b *ledger.Batch[T]) error {
		for _, name := range lost {
			if err := EnqueueFollowUp(b, &FollowUp{Tenant: req.Tenant, Payment: req.ID, Connector: name, Op: OpRelease,
				Key: key, Next: next}); err != nil {
				return err
			}
		}
		return nil
	})
	if werr != nil {
		e.log().Error("authorizations an unanswered payment system may hold were not recorded for release",
			"payment", req.ID, "connectors", lost, "key", key, "err", werr)
	}
}

// external reports whether a payer account is an instrument at external
// payment systems (its balance may go below zero).
func external[T Tx](b *ledger.Batch[T], id iotpay.AccountID) bool {
	a, ok := b.Account(id)
	return ok && a.Flags&ledger.Overdraft != 0
}

// connectorDetail is a connector's decline in a line.
func connectorDetail(x *External) string {
	s := x.Connector + " declined"
	if x.Result.Code != "" {
		s += " (" + x.Result.Code + ")"
	}
	if x.Result.Message != "" {
		s += ": " + x.Result.Message
	}
	return s
}

// Connector operations a payment's later changes forward.
const (
	OpCapture   = "capture"
	OpVoid      = "void"
	OpRefund    = "refund"
	OpIncrement = "increment"
)

// Forward asks the payment system that authorized a payment to capture,
// void, refund or raise it, before the writer records the change: a
// wallet payment forwards nothing. key names the operation for the
// payment system's idempotency: the same key for a retry of the same
// change.
func (e *Engine[T]) Forward(ctx context.Context, tenant iotpay.TenantID, id iotpay.PaymentID, op string, amount int64, final bool, key string) error {
	if e.Router == nil {
		return nil
	}
	p, err := e.Payment(ctx, tenant, id)
	if err != nil || p.Connector == "" {
		return err
	}
	c, ok := e.Router.Connectors[p.Connector]
	if !ok {
		return iotpay.Errorf(iotpay.EUNAVAILABLE, "payment system %q is not configured", p.Connector)
	}
	if key == "" {
		// No key from the caller: the payment's state names the change.
		key = itoa(p.Captured) + "-" + itoa(p.Refunded) + "-" + itoa(p.Amount) + "-" + itoa(amount)
	}
	key = string(id) + ":" + op + ":" + key
	ctx, cancel := context.WithTimeout(ctx, ConnectorTimeout)
	defer cancel()
	_, _, err = e.Router.Call(ctx, []string{c.Name()}, func(ctx context.Context, c connector.Connector) error {
		return operate(ctx, c, op, p.ConnectorRef, amount, final, key)
	})
	return err
}

// operate asks connector c to capture, void, refund or raise the payment
// it knows as ref; a decline is an EDECLINED error.
func operate(ctx context.Context, c connector.Connector, op, ref string, amount int64, final bool, key string) error {
	var res *connector.Result
	var err error
	switch op {
	case OpCapture:
		res, err = c.Capture(ctx, ref, amount, final, key)
	case OpVoid:
		res, err = c.Void(ctx, ref, key)
	case OpRefund:
		res, err = c.Refund(ctx, ref, amount, key)
	case OpIncrement:
		inc, ok := c.(connector.Incrementer)
		if !ok {
			return iotpay.Errorf(iotpay.EINVALID, "%s cannot raise an authorization", c.Name())
		}
		res, err = inc.Increment(ctx, ref, amount, key)
	default:
		return iotpay.Errorf(iotpay.EINVALID, "unknown operation %q", op)
	}
	if err == nil && res != nil && res.Status == connector.Declined {
		return iotpay.Errorf(iotpay.EDECLINED, "%s declined the %s: %s %s", c.Name(), op, res.Code, res.Message)
	}
	return err
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// Told is what a payment system said on its own of a payment it holds
// (a webhook): its status now and the amount the status is about.
type Told struct {
	Connector, Ref string
	Status         connector.Status
	Amount         int64
}

// Apply books in the ledger what a payment system did on its own — an
// authorization it let lapse or cancelled, a capture or a refund made
// there — in the writer's batch b: the ledger follows the system that
// holds the money. It answers the payment, or nil when the ledger already
// agrees (or knows no such payment).
func (e *Engine[T]) Apply(b *ledger.Batch[T], t *Told) (*Payment, error) {
	p, err := b.Tx.PaymentByConnectorRef(b.Context(), t.Connector, t.Ref)
	if iotpay.ErrorCode(err) == iotpay.ENOTFOUND {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	switch {
	case t.Status == connector.Voided && p.Status.Open():
		return e.Void(b, p.Tenant, p.ID)
	case t.Status == connector.Captured && p.Status.Open() && t.Amount > p.Captured:
		return e.Capture(b, p.Tenant, p.ID, min(t.Amount-p.Captured, p.Held), true)
	case t.Status == connector.Refunded && t.Amount > p.Refunded && p.Captured > p.Refunded:
		return e.Refund(b, p.Tenant, p.ID, min(t.Amount, p.Captured)-p.Refunded)
	}
	return nil, nil
}

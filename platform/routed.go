package platform

import (
	"bytes"
	"context"
	"crypto/sha256"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/payment/ledger"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/platform/rules"
	"github.com/iotpay/iotpay/wire"
)

// routed is what a device's request asked of an external payment system
// before the writer decides it. For a sale or a session's hold: the
// payment's id, and the authorization the system answered; the writer
// books it (or declines it: risk, the mandate) and records the follow-up
// that captures or releases it there. For a session's increment (or a
// capture of more than is held): the session's payment, the increment
// asked for, and the system's refusal if it refused; the writer raises
// the ledger's hold only by an increment the system made.
type routed struct {
	tenant iotpay.TenantID
	id     iotpay.PaymentID
	amount iotpay.Money
	ext    *payment.External
	// increment is the amount the session's payment id was raised by at
	// its system, refused the refusal (a decline) when it was not.
	increment int64
	refused   error
}

type routedKey struct{}

// preflight asks an external payment system, outside the writer, what a
// device's request needs from it when the payer's account is an
// instrument there: the authorization of a sale (a charge, a bill) or of
// a session's hold, the increment of a session's authorization. The rules
// are evaluated on the state as it is now (the writer evaluates them
// again and uses what was asked only for the same action and amount), the
// mandate checked, the routing table followed, with idempotency keys from
// the device's request id, so the device's retries are one operation.
// nil: the request asks nothing outside (a wallet's, or a repeat).
func (p *Processor) preflight(ctx context.Context, dev *registry.Device, req *wire.Request) (*routed, error) {
	if p.Engine.Router == nil || req.Event == nil {
		return nil, nil
	}
	var ar *payment.AuthRequest
	var inc *routed
	err := p.Store.View(ctx, func(tx Tx) error {
		if _, err := tx.PaymentByRequest(ctx, dev.ID, req.RequestID); err == nil {
			return nil // answered already
		}
		if _, err := tx.DecisionRequest(ctx, dev.ID, req.RequestID); err == nil {
			return nil // answered already
		}
		m, err := tx.DeviceMandate(ctx, dev.ID)
		if err != nil {
			return nil // no mandate: declined in the writer
		}
		if srcs, err := tx.AccountSources(ctx, m.Payer); err != nil || len(srcs) == 0 {
			return err
		}
		prod, err := tx.Product(ctx, dev.Tenant, dev.Product)
		if err != nil {
			return err
		}
		prof, err := p.profiles().Get(ctx, tx, prod)
		if err != nil {
			return nil // the writer refuses it with the reason
		}
		st, err := registry.LoadState(ctx, tx, dev.ID)
		if err != nil {
			return err
		}
		if req.Report != nil {
			registry.ApplyReport(st, req.Report, prof.Firmware, p.now())
		}
		a, _, sessPay, err := evaluateInSession(ctx, tx, prof, prod, dev, st, req, p.now())
		if err != nil {
			return nil
		}
		switch a.Kind {
		case rules.Charge, rules.Bill:
		case rules.Hold:
			if sessPay != nil {
				return nil // already open: refused in the writer
			}
		case rules.Increment, rules.Capture:
			if sessPay == nil || sessPay.Connector == "" || !sessPay.Status.Open() {
				return nil
			}
			up := a.Amount
			if a.Kind == rules.Capture {
				up = a.Amount - sessPay.Held
			}
			if up > 0 {
				inc = &routed{tenant: dev.Tenant, id: sessPay.ID, amount: iotpay.Money{Amount: up, Currency: sessPay.Currency}}
				// Nothing is raised there that the mandate would refuse.
				inc.refused = m.Admits(up, sessPay.Amount+up, sessPay.Currency, sessPay.Product, sessPay.Category, p.now())
			}
			return nil
		default:
			return nil
		}
		// The payment's id derives from the signed request, so a retry
		// of it (every system failed) names the same payment at the
		// system: its idempotency key and its parameters are the same.
		seed := sha256.Sum256([]byte(string(dev.ID) + "\x00" + req.RequestID))
		id := iotpay.NewID(iotpay.PrefixPayment, req.Time(), bytes.NewReader(seed[:]))
		ar = &payment.AuthRequest{ID: iotpay.PaymentID(id), Tenant: dev.Tenant,
			Device: dev.ID, Product: prod.ID, Category: prod.Category, Merchant: prod.Merchant,
			Amount: iotpay.Money{Amount: a.Amount, Currency: a.Currency}, Key: string(dev.ID) + ":" + req.RequestID + ":authorize"}
		return nil
	})
	switch {
	case err != nil:
		return nil, err
	case inc != nil:
		return p.raise(ctx, inc, string(dev.ID)+":"+req.RequestID)
	case ar == nil:
		return nil, nil
	}
	ext, err := p.Engine.Route(ctx, ar) // authorization only: captured once booked
	if err != nil || ext == nil {
		return nil, err
	}
	return &routed{tenant: dev.Tenant, id: ar.ID, amount: ar.Amount, ext: ext}, nil
}

// raise asks the payment system of a session's payment for an increment
// of its authorization. A refusal (a decline, a system that cannot
// increment) is kept for the writer, which declines the increment; a
// system that did not answer fails the request (the device tries again,
// with the same key).
func (p *Processor) raise(ctx context.Context, r *routed, key string) (*routed, error) {
	if r.refused != nil {
		return r, nil
	}
	err := p.Engine.Forward(ctx, r.tenant, r.id, payment.OpIncrement, r.amount.Amount, false, key)
	switch {
	case err == nil:
		r.increment = r.amount.Amount
	case connector.Retryable(err):
		return nil, err
	default:
		r.refused = err
	}
	return r, nil
}

// routedFor is the preflight's authorization for a sale or hold of amount
// in the writer's operation, nil when there is none or it is for another
// amount (the state changed in between: the payment is then declined, and
// the authorization released).
func routedFor(ctx context.Context, amount iotpay.Money) *routed {
	r, _ := ctx.Value(routedKey{}).(*routed)
	if r == nil || r.ext == nil || r.amount != amount {
		return nil
	}
	return r
}

// raisedFor is what the preflight got of an increment of amount of the
// session's payment id: whether its system raised the authorization,
// and its refusal when it did not. Asked nothing (the state changed in
// between), the increment is refused.
func raisedFor(ctx context.Context, id iotpay.PaymentID, amount int64) (ok bool, refused error) {
	r, _ := ctx.Value(routedKey{}).(*routed)
	switch {
	case r == nil || r.ext != nil || r.id != id || r.amount.Amount != amount:
		return false, iotpay.Errorf(iotpay.EDECLINED, "the payment system was not asked for this increment; try again")
	case r.refused != nil:
		return false, r.refused
	}
	return r.increment == amount, nil
}

// follow records, in the writer's batch, what the payment system of a
// payment the writer just moved must do to follow the ledger: capture
// what the ledger captured, release what it declined or voided. Done
// right after the commit (payment.Engine.Do), retried until done.
func follow(b *ledger.Batch[Tx], pay *payment.Payment, op string, amount int64, final bool, key string) error {
	if pay.Connector == "" {
		return nil
	}
	return payment.EnqueueFollowUp(b, &payment.FollowUp{Tenant: pay.Tenant, Payment: pay.ID, Connector: pay.Connector,
		Ref: pay.ConnectorRef, Op: op, Amount: amount, Final: final, Key: string(pay.ID) + ":" + op + ":" + key})
}

// settle releases an authorization the preflight got that the writer did
// not book (the request was refused, or asked for another amount): the
// writer already recorded what a booked one needs.
func (p *Processor) settle(ctx context.Context, r *routed) {
	if r == nil || r.ext == nil || r.ext.Result.Status != connector.Authorized {
		return // declined there: nothing to release
	}
	ctx = context.WithoutCancel(ctx)
	pay, err := p.Engine.Payment(ctx, r.tenant, r.id)
	if err == nil && pay.Connector == r.ext.Connector {
		return
	}
	if err := p.Engine.ReleaseUnbooked(ctx, r.tenant, r.id, r.ext); err != nil {
		p.log().Error("an authorization the ledger did not book was not released at its payment system", "payment", r.id,
			"connector", r.ext.Connector, "ref", r.ext.Result.Ref, "err", err)
	}
}

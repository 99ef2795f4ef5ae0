package platform

import (
	"context"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/platform/rules"
	"github.com/iotpay/iotpay/wire"
)

// routed is a device payment authorized at an external payment system
// before the writer decides it: the payment's id, and what the system
// answered. The writer books it (or declines it: risk, the mandate);
// afterwards the authorization is captured there or released.
type routed struct {
	tenant iotpay.TenantID
	id     iotpay.PaymentID
	amount iotpay.Money
	ext    *payment.External
}

type routedKey struct{}

// preflight authorizes at an external payment system, outside the writer,
// a device's sale (a charge or a bill) whose payer account is an
// instrument there: the rules are evaluated on the state as it is now
// (the writer evaluates them again and books only the same amount), the
// mandate checked, the routing table followed, with an idempotency key of
// the device's request id, so the device's retries are one authorization.
// nil: the payment stays in the wallet (or is a session's, or a repeat).
func (p *Processor) preflight(ctx context.Context, dev *registry.Device, req *wire.Request) (*routed, error) {
	if p.Engine.Router == nil || req.Event == nil {
		return nil, nil
	}
	var ar *payment.AuthRequest
	err := p.Store.View(ctx, func(tx Tx) error {
		if _, err := tx.PaymentByRequest(ctx, dev.ID, req.RequestID); err == nil {
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
		a, err := evaluate(prof, prod, dev, st, req, nil, p.now())
		if err != nil || a.Kind != rules.Charge && a.Kind != rules.Bill {
			return nil
		}
		ar = &payment.AuthRequest{ID: iotpay.PaymentID(iotpay.NewID(iotpay.PrefixPayment, p.now(), p.rand())), Tenant: dev.Tenant,
			Device: dev.ID, Product: prod.ID, Category: prod.Category, Merchant: prod.Merchant,
			Amount: iotpay.Money{Amount: a.Amount, Currency: a.Currency}, Key: string(dev.ID) + ":" + req.RequestID + ":authorize"}
		return nil
	})
	if err != nil || ar == nil {
		return nil, err
	}
	ext, err := p.Engine.Route(ctx, ar) // authorization only: captured once booked
	if err != nil || ext == nil {
		return nil, err
	}
	return &routed{tenant: dev.Tenant, id: ar.ID, amount: ar.Amount, ext: ext}, nil
}

// routedFor is the preflight's authorization for a sale of amount in the
// writer's operation, nil when there is none or it is for another amount
// (the state changed in between: the payment is then declined, and the
// authorization released).
func routedFor(ctx context.Context, amount iotpay.Money) *routed {
	r, _ := ctx.Value(routedKey{}).(*routed)
	if r == nil || r.amount != amount {
		return nil
	}
	return r
}

// settle captures at the payment system a routed payment the writer
// booked as captured, and releases one it did not book or declined; one
// held for review waits for the operator's decision.
func (p *Processor) settle(ctx context.Context, r *routed) {
	if r == nil || r.ext.Result.Status != connector.Authorized {
		return // declined there: nothing to release
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), payment.ConnectorTimeout)
	defer cancel()
	pay, err := p.Engine.Payment(ctx, r.tenant, r.id)
	booked := err == nil && pay.Connector == r.ext.Connector
	switch {
	case booked && pay.Status == payment.StatusCaptured:
		err = p.Engine.Forward(ctx, r.tenant, r.id, payment.OpCapture, pay.Captured, true, "sale")
	case booked && pay.Status == payment.StatusAuthorized:
		return // held for review
	default:
		err = p.Engine.VoidAt(ctx, r.ext.Connector, r.ext.Result.Ref, string(r.id)+":void")
	}
	if err != nil {
		// The ledger and the payment system now differ until someone
		// acts: reconciliation reports it.
		p.log().Error("a routed payment was not settled at its payment system", "payment", r.id, "connector", r.ext.Connector,
			"ref", r.ext.Result.Ref, "err", err)
	}
}

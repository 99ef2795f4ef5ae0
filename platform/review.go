package platform

import (
	"context"
	"encoding/json"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/payment/ledger"
	"github.com/iotpay/iotpay/platform/decision"
	"github.com/iotpay/iotpay/platform/rules"
)

// ReviewNoteLenMax bounds an operator's note on a review.
const ReviewNoteLenMax = 500

// DecideReview is an operator's decision on a payment risk control held
// for review, in the writer's batch b: approved, a charge is captured (a
// hold stays open for its session); declined, the hold is released.
// Either way the review is closed and the payment's change logged.
func (p *Processor) DecideReview(b *ledger.Batch[Tx], tenant iotpay.TenantID, id iotpay.PaymentID, approve bool, note string) (*decision.Review, *payment.Payment, error) {
	if len(note) > ReviewNoteLenMax {
		return nil, nil, iotpay.Errorf(iotpay.EINVALID, "note longer than %d bytes", ReviewNoteLenMax)
	}
	ctx := b.Context()
	r, err := b.Tx.Review(ctx, tenant, id)
	if err != nil {
		return nil, nil, err
	}
	if r.Status != decision.ReviewPending {
		return nil, nil, iotpay.Errorf(iotpay.ECONFLICT, "review already %s", r.Status)
	}
	var d decided
	if err := json.Unmarshal(r.Decision, &d); err != nil {
		return nil, nil, err
	}
	var pay *payment.Payment
	switch {
	case approve && d.Action.Kind == rules.Hold:
		pay, err = b.Tx.Payment(ctx, tenant, id)
	case approve:
		pay, err = p.Engine.Capture(b, tenant, id, 0, true)
	default:
		pay, err = p.Engine.Void(b, tenant, id)
	}
	if err != nil {
		return nil, nil, err
	}
	r.Status, r.Note, r.Decided = decision.ReviewDeclined, note, b.Now
	if approve {
		r.Status = decision.ReviewApproved
	}
	return r, pay, b.Tx.UpdateReview(ctx, r)
}

// Reviews lists a tenant's reviews in status ("" for all), oldest first.
func (p *Processor) Reviews(ctx context.Context, tenant iotpay.TenantID, status decision.ReviewStatus, after iotpay.PaymentID, limit int) ([]*decision.Review, error) {
	var rs []*decision.Review
	err := p.Store.View(ctx, func(tx Tx) (err error) { rs, err = tx.Reviews(ctx, tenant, status, after, limit); return })
	return rs, err
}

// Review returns one of a tenant's reviews.
func (p *Processor) Review(ctx context.Context, tenant iotpay.TenantID, id iotpay.PaymentID) (*decision.Review, error) {
	var r *decision.Review
	err := p.Store.View(ctx, func(tx Tx) (err error) { r, err = tx.Review(ctx, tenant, id); return })
	return r, err
}

// Events lists a tenant's device events, newest first.
func (p *Processor) Events(ctx context.Context, tenant iotpay.TenantID, device iotpay.DeviceID, limit int) ([]*decision.Event, error) {
	var es []*decision.Event
	err := p.Store.View(ctx, func(tx Tx) (err error) { es, err = tx.Events(ctx, tenant, device, limit); return })
	return es, err
}

// Orders lists a tenant's supply orders, newest first.
func (p *Processor) Orders(ctx context.Context, tenant iotpay.TenantID, device iotpay.DeviceID, limit int) ([]*decision.Order, error) {
	var os []*decision.Order
	err := p.Store.View(ctx, func(tx Tx) (err error) { os, err = tx.Orders(ctx, tenant, device, limit); return })
	return os, err
}

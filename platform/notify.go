package platform

import (
	"context"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/platform/decision"
	"github.com/iotpay/iotpay/platform/webhook"
)

// PaymentEventType is the webhook event type of what happened to a
// payment (a payment.Engine event kind), "" when operators are not told.
func PaymentEventType(kind string, p *payment.Payment) string {
	switch {
	case p.Status == payment.StatusDeclined:
		return webhook.PaymentDeclined
	case kind == payment.EventRefund:
		return webhook.RefundSucceeded
	case kind == payment.EventVoid:
		return webhook.PaymentVoided
	case kind == payment.EventExpire:
		return webhook.PaymentExpired
	case kind == payment.EventCapture, kind == payment.EventAuthorize && p.Captured > 0:
		return webhook.PaymentSucceeded
	case kind == payment.EventAuthorize:
		return webhook.PaymentAuthorized
	}
	return ""
}

// NotifyPayment queues the webhook events of a payment's change, in its
// transaction.
func NotifyPayment(ctx context.Context, tx Tx, kind string, p *payment.Payment, now time.Time) error {
	typ := PaymentEventType(kind, p)
	if typ == "" {
		return nil
	}
	return webhook.Enqueue(ctx, tx, p.Tenant, typ, p, now, nil)
}

// RaiseEvent records a device event and queues its webhook, in tx.
func RaiseEvent(ctx context.Context, tx Tx, e *decision.Event) error {
	if e.ID == "" {
		e.ID = iotpay.NewID(iotpay.PrefixEvent, e.Created, nil)
	}
	if err := tx.CreateEvent(ctx, e); err != nil {
		return err
	}
	return webhook.Enqueue(ctx, tx, e.Tenant, e.Kind, e, e.Created, nil)
}

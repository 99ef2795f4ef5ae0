package daemon

import (
	"context"
	"net/http"

	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/payment/connector/stripe"
	"github.com/iotpay/iotpay/payment/ledger"
	"github.com/iotpay/iotpay/platform"
)

// StripeWebhookPath is where the operator HTTP listener takes Stripe's
// webhooks, when a Stripe connector with a webhook secret is configured.
const StripeWebhookPath = "/webhooks/stripe"

// stripeHook answers Stripe's signed webhooks: what Stripe did on its own
// to a payment (a cancellation, a capture, a refund made there) is booked
// in the ledger.
func (d *Daemon) stripeHook() http.Handler {
	if d.Payments.Router == nil {
		return nil
	}
	for _, c := range d.Payments.Router.Connectors {
		if s, ok := c.(*stripe.Connector); ok && s.HasWebhookSecret() {
			name := s.Name()
			return stripe.WebhookHandler(s, func(ctx context.Context, ev *stripe.Event) error {
				if ev.Status == "" || ev.Ref == "" && ev.PaymentIntent == "" {
					return nil // not about a payment's state
				}
				ref := ev.Ref
				if ref == "" {
					ref = ev.PaymentIntent
				}
				return d.Payments.Do(ctx, func(b *ledger.Batch[platform.Tx]) error {
					p, err := d.Payments.Apply(b, &payment.Told{Connector: name, Ref: ref, Status: connector.Status(ev.Status), Amount: ev.Amount})
					if p != nil {
						d.log.Info("payment changed by its payment system", "payment", p.ID, "connector", name, "event", ev.Type, "status", p.Status)
					}
					return err
				})
			})
		}
	}
	return nil
}

package stripe

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector"
	stripego "github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"
)

// Webhook bounds.
const (
	// WebhookTolerance is how old a signature may be: Stripe's default,
	// which bounds the replay of a captured delivery.
	WebhookTolerance = 5 * time.Minute
	// MaxWebhookBody bounds a webhook's payload, in bytes. Payment
	// events are a few KiB; subscribe the endpoint to the events below
	// only.
	MaxWebhookBody = 64 << 10
)

// Event types ParseWebhook maps to a status; any other is returned with
// its ID and Type only.
const (
	EventSucceeded         = string(stripego.EventTypePaymentIntentSucceeded)
	EventCapturableUpdated = string(stripego.EventTypePaymentIntentAmountCapturableUpdated)
	EventPaymentFailed     = string(stripego.EventTypePaymentIntentPaymentFailed)
	EventCanceled          = string(stripego.EventTypePaymentIntentCanceled)
	EventChargeRefunded    = string(stripego.EventTypeChargeRefunded)
)

// Event is a verified Stripe event about a payment.
type Event struct {
	ID, Type string
	// PaymentIntent is the PaymentIntent's id, Ref the payment's
	// reference as Authorize gave it (with the connected account, for
	// an event of one).
	PaymentIntent, Ref string
	// Status and Amount are where the payment is: Authorized with the
	// amount held, Captured with the amount received, Declined with
	// Code and Message, Voided, Refunded with all refunded so far.
	Status        connector.Status
	Amount        int64
	Code, Message string
}

// ParseWebhook verifies a webhook's Stripe-Signature header sigHeader
// with the connector's WebhookSecret and returns its event. A missing,
// wrong or too old signature is an *iotpay.Error EUNAUTHORIZED; a signed
// payload that is not an event EINVALID.
//
// The event's API version is not checked against stripe-go's: only the
// ids, statuses and amounts are read, which every version has, and a
// mismatch would refuse every delivery until the endpoint is recreated.
func (c *Connector) ParseWebhook(payload []byte, sigHeader string) (*Event, error) {
	if c.webhookSecret == "" {
		return nil, iotpay.Errorf(iotpay.EINTERNAL, "stripe: no webhook secret configured")
	}
	if len(payload) > MaxWebhookBody {
		return nil, iotpay.Errorf(iotpay.EINVALID, "stripe: webhook payload over %d bytes", MaxWebhookBody)
	}
	ev, err := webhook.ConstructEventWithOptions(payload, sigHeader, c.webhookSecret, webhook.ConstructEventOptions{
		Tolerance:                WebhookTolerance,
		IgnoreAPIVersionMismatch: true,
	})
	switch {
	case errors.Is(err, webhook.ErrNotSigned), errors.Is(err, webhook.ErrInvalidHeader),
		errors.Is(err, webhook.ErrNoValidSignature), errors.Is(err, webhook.ErrTooOld):
		return nil, iotpay.Wrap(iotpay.EUNAUTHORIZED, "stripe: bad webhook signature", err)
	case err != nil:
		return nil, iotpay.Wrap(iotpay.EINVALID, "stripe: bad webhook payload", err)
	case ev.ID == "" || ev.Type == "":
		return nil, iotpay.Errorf(iotpay.EINVALID, "stripe: webhook event without id or type")
	case ev.Account != "" && !validID(ev.Account, "acct_"):
		return nil, iotpay.Errorf(iotpay.EINVALID, "stripe: webhook event of a bad account")
	}
	e := &Event{ID: ev.ID, Type: string(ev.Type)}
	var raw json.RawMessage
	if ev.Data != nil {
		raw = ev.Data.Raw
	}
	switch e.Type {
	case EventSucceeded, EventCapturableUpdated, EventPaymentFailed, EventCanceled:
		var pi stripego.PaymentIntent
		if err := json.Unmarshal(raw, &pi); err != nil || !validID(pi.ID, "pi_") {
			return nil, iotpay.Wrap(iotpay.EINVALID, "stripe: webhook event without a payment intent", err)
		}
		e.PaymentIntent, e.Ref = pi.ID, makeRef(ev.Account, pi.ID)
		switch e.Type {
		case EventSucceeded:
			e.Status, e.Amount = connector.Captured, pi.AmountReceived
		case EventCapturableUpdated:
			e.Status, e.Amount = connector.Authorized, pi.AmountCapturable
		case EventPaymentFailed:
			e.Status, e.Code = connector.Declined, codeDeclined
			if pe := pi.LastPaymentError; pe != nil {
				e.Code, e.Message = declineCode(pe), pe.Msg
			}
		case EventCanceled:
			e.Status = connector.Voided
		}
	case EventChargeRefunded:
		var ch stripego.Charge
		if err := json.Unmarshal(raw, &ch); err != nil || ch.ID == "" {
			return nil, iotpay.Wrap(iotpay.EINVALID, "stripe: webhook event without a charge", err)
		}
		// A charge made without a PaymentIntent (the legacy Charges
		// API) is none of this connector's payments: no Ref.
		if ch.PaymentIntent != nil && validID(ch.PaymentIntent.ID, "pi_") {
			e.PaymentIntent, e.Ref = ch.PaymentIntent.ID, makeRef(ev.Account, ch.PaymentIntent.ID)
		}
		e.Status, e.Amount = connector.Refunded, ch.AmountRefunded
	}
	return e, nil
}

// WebhookHandler returns the handler of Stripe's webhook POSTs: it
// verifies each with c.ParseWebhook and hands the event to on. It answers
// 200 when on took it, 400 for a payload that is not an event, 401 for a
// bad signature, 413 past MaxWebhookBody, and 503 when on failed, so that
// Stripe delivers the event again later (on must therefore take an event
// twice without harm: Stripe delivers at least once).
func WebhookHandler(c *Connector, on func(context.Context, *Event) error) http.Handler {
	if c == nil || on == nil {
		panic("stripe: WebhookHandler needs a connector and a callback")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			reply(w, http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				reply(w, http.StatusRequestEntityTooLarge)
			} else {
				reply(w, http.StatusBadRequest)
			}
			return
		}
		ev, err := c.ParseWebhook(body, r.Header.Get("Stripe-Signature"))
		switch iotpay.ErrorCode(err) {
		case "":
		case iotpay.EUNAUTHORIZED:
			reply(w, http.StatusUnauthorized)
			return
		case iotpay.EINVALID:
			reply(w, http.StatusBadRequest)
			return
		default:
			reply(w, http.StatusInternalServerError)
			return
		}
		if err := on(r.Context(), ev); err != nil {
			reply(w, http.StatusServiceUnavailable)
			return
		}
		reply(w, http.StatusOK)
	})
}

// reply answers status with its text only: nothing about why goes back.
func reply(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	io.WriteString(w, http.StatusText(status)+"\n")
}

// HasWebhookSecret reports whether the connector can verify webhooks.
func (c *Connector) HasWebhookSecret() bool { return c.webhookSecret != "" }

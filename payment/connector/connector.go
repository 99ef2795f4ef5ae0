// Package connector is the payment engine's view of the payment systems
// that move money for it: the internal prepaid wallet, a card acquirer
// over ISO 8583, a Stripe-compatible PSP. A Connector authorizes, captures,
// voids, refunds and reports the status of a payment there; optional
// abilities (incremental authorization, a health check, webhooks) are
// separate interfaces found by type assertion.
//
// Every call carries an idempotency key that stays the same for one
// operation of one payment, whichever connector it is sent to and however
// often: a connector that supports keys passes it on (Stripe's
// Idempotency-Key), one that does not derives its own references from it
// (an ISO 8583 STAN and RRN), so a retry or a failover never charges
// twice.
//
// Errors say whether trying again (here or at the next connector) is safe:
// an *iotpay.Error with code EUNAVAILABLE is retryable — a time-out, a
// network failure, a 5xx — and the connector has made sure nothing is left
// authorized (an acquirer's authorization that timed out is reversed
// before the error is returned). A decline is not an error: it is a Result
// with Status Declined and the connector's code. Any other error (invalid
// request, configuration) is not retryable.
package connector

import (
	"context"
	"errors"
	"time"

	"github.com/iotpay/iotpay"
)

// Status is where a payment is at a connector.
type Status string

// Statuses.
const (
	Authorized Status = "authorized" // held, not yet captured
	Captured   Status = "captured"   // (partly) captured; Amount says how much
	Declined   Status = "declined"   // refused: Code and Message say why
	Voided     Status = "voided"     // the authorization was released (or reversed)
	Refunded   Status = "refunded"   // (partly) refunded
	Pending    Status = "pending"    // the connector has not decided yet
)

// Authorization asks a connector to authorize (and with Capture, capture
// at once) an amount.
type Authorization struct {
	Payment iotpay.PaymentID
	// Key is the operation's idempotency key: the same for every try of
	// this authorization, at this connector or the next.
	Key    string
	Amount iotpay.Money
	// Source is the payer's instrument at the connector: a wallet
	// account id, a Stripe PaymentMethod, a card token or PAN (test
	// cards only), as the connector understands it.
	Source string
	// Merchant is the merchant's id at the connector (a Stripe account,
	// an acquirer's merchant and terminal id), when it needs one.
	Merchant string
	Capture  bool
	// Descriptor is a short text for the payer's statement.
	Descriptor string
	Device     iotpay.DeviceID
}

// Result is what a connector answered.
type Result struct {
	// Ref is the connector's reference of the payment (a PaymentIntent
	// id, an acquirer's RRN, a ledger hold): what later calls name.
	Ref    string
	Status Status
	// Amount is what the status is about: authorized, captured or
	// refunded so far, in minor units.
	Amount int64
	// Code and Message explain a decline (an ISO 8583 response code,
	// a Stripe decline code).
	Code, Message string
	// Approval is the authorization code, when the connector gives one.
	Approval string
	At       time.Time
}

// Connector is one payment system.
type Connector interface {
	// Name is the connector's name in routing rules and reports.
	Name() string
	Authorize(ctx context.Context, a *Authorization) (*Result, error)
	// Capture captures amount (all that is authorized when 0) of the
	// payment ref; final releases the rest.
	Capture(ctx context.Context, ref string, amount int64, final bool, key string) (*Result, error)
	// Void releases an authorization that was not captured.
	Void(ctx context.Context, ref string, key string) (*Result, error)
	// Refund gives back amount (all that is captured when 0).
	Refund(ctx context.Context, ref string, amount int64, key string) (*Result, error)
	// Status reports where the payment is at the connector.
	Status(ctx context.Context, ref string) (*Result, error)
}

// Incrementer is a connector that can raise an authorization.
type Incrementer interface {
	Increment(ctx context.Context, ref string, amount int64, key string) (*Result, error)
}

// Pinger is a connector that can tell whether it is reachable (an ISO 8583
// echo, an API call that costs nothing).
type Pinger interface {
	Ping(ctx context.Context) error
}

// Unavailable wraps err as a retryable failure of connector name.
func Unavailable(name, what string, err error) error {
	return iotpay.Wrap(iotpay.EUNAVAILABLE, name+": "+what, err)
}

// Retryable reports whether err says the operation may be tried again,
// here or at the next connector, without risk of a double charge.
func Retryable(err error) bool {
	return err != nil && iotpay.ErrorCode(err) == iotpay.EUNAVAILABLE
}

// ErrUnsupported is returned by a connector for an operation it cannot do.
var ErrUnsupported = iotpay.Errorf(iotpay.EINVALID, "connector: operation not supported")

// IsUnsupported reports whether err is ErrUnsupported.
func IsUnsupported(err error) bool { return errors.Is(err, ErrUnsupported) }

// StateStore keeps, durably, what a connector must remember of a payment
// to act on it later — after a restart too: an acquirer's original data
// elements, which a completion, reversal or refund names. State is the
// connector's own encoding; LoadState answers an ENOTFOUND error when it
// has none for ref.
type StateStore interface {
	SaveState(ctx context.Context, connector, ref string, state []byte) error
	LoadState(ctx context.Context, connector, ref string) ([]byte, error)
}

// Stateful is a connector that keeps what it remembers of its payments in
// a StateStore once given one (before its first call).
type Stateful interface {
	KeepState(StateStore)
}

// Releaser is a connector that can find and release the authorizations an
// operation made under an idempotency key when its answer was lost (the
// payment then failed over elsewhere, or was abandoned). It answers how
// many it released; none found is not an error.
type Releaser interface {
	Release(ctx context.Context, key string) (int, error)
}

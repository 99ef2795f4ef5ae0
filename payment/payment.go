// Package payment is the payment layer: payment accounts on the double-entry
// ledger (payment/ledger), mandates that let a device pay from a payer's
// account within limits the payer consented to, and the payment engine —
// authorize (a hold), capture (in full or in parts, split into merchant,
// operator and platform legs), incremental authorization, void, refund and
// hold expiry.
//
// Every state change runs as an operation of the ledger's single Writer,
// so a payment's record, its mandate's usage and its ledger transfers
// commit in one database transaction, batched with other payments'.
//
// Every amount is integer minor units of one currency.
package payment

import (
	"context"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/ledger"
)

// Bounds.
const (
	NameLenMax   = 128
	ListLimitMax = 500
	// AmountMax bounds a single payment or funding.
	AmountMax = ledger.AmountMax
	// HoldTimeoutDefault is how long an authorization holds funds unless
	// the request says otherwise; HoldTimeoutMax bounds what it may say.
	HoldTimeoutDefault = 7 * 24 * time.Hour
	HoldTimeoutMax     = 30 * 24 * time.Hour
	// MandateProductsMax and MandateCategoriesMax bound a mandate's lists.
	MandateProductsMax   = 64
	MandateCategoriesMax = 64
)

// Account kinds. Payer and merchant accounts are opened by operators; the
// others are the tenant's own, one per currency, opened on first use.
// A capture pays the merchant, and the merchant the operator's and the
// platform's fees, in one linked chain.
const (
	KindPayer    = "payer"    // a prepaid wallet devices pay from
	KindMerchant = "merchant" // credited by captures
	KindFunding  = "funding"  // money held at the bank: debited when a wallet is funded
	KindOperator = "operator" // the operator's fee on each capture
	KindPlatform = "platform" // the platform's fee on each capture
)

// Status is where a payment is in its life.
type Status string

// Payment statuses. A payment starts authorized (or declined); captures
// move it to partially_captured (a hold remains for the rest) or captured;
// a void or an expired hold ends it voided or expired when nothing was
// captured; refunds of everything captured end it refunded.
const (
	StatusDeclined          Status = "declined"
	StatusAuthorized        Status = "authorized"
	StatusPartiallyCaptured Status = "partially_captured"
	StatusCaptured          Status = "captured"
	StatusRefunded          Status = "refunded"
	StatusVoided            Status = "voided"
	StatusExpired           Status = "expired"
)

// Open reports whether the payment still holds funds that may be captured.
func (s Status) Open() bool { return s == StatusAuthorized || s == StatusPartiallyCaptured }

// Payment is one payment: what was authorized, captured and refunded, and
// the hold still open.
type Payment struct {
	ID       iotpay.PaymentID `json:"id"`
	Tenant   iotpay.TenantID  `json:"tenant"`
	Device   iotpay.DeviceID  `json:"device,omitempty"`
	Mandate  iotpay.MandateID `json:"mandate,omitempty"`
	Product  iotpay.ProductID `json:"product,omitempty"`
	Category string           `json:"category,omitempty"`
	Status   Status           `json:"status"`
	Decline  Reason           `json:"decline_code,omitempty"`
	Reason   string           `json:"reason,omitempty"`
	Currency iotpay.Currency  `json:"currency"`
	// Amount is what was authorized, increments included; Captured and
	// Refunded what moved; Held what the open hold still holds.
	Amount   int64 `json:"amount"`
	Captured int64 `json:"captured"`
	Refunded int64 `json:"refunded"`
	Held     int64 `json:"held"`
	// FeeOperator and FeePlatform are the fees taken from the captures.
	FeeOperator int64             `json:"fee_operator"`
	FeePlatform int64             `json:"fee_platform"`
	Payer       iotpay.AccountID  `json:"payer,omitempty"`
	Merchant    iotpay.AccountID  `json:"merchant,omitempty"`
	Hold        iotpay.TransferID `json:"hold,omitempty"`
	HoldExpires time.Time         `json:"hold_expires,omitzero"`
	// RequestID and RequestHash identify the device request that made the
	// payment; a redelivery gets Receipt back.
	RequestID   string `json:"request_id,omitempty"`
	RequestHash []byte `json:"request_hash,omitempty"`
	LogIndex    uint64 `json:"log_index"`
	Receipt     []byte `json:"receipt,omitempty"`
	// Connector is the payment system that authorized the payment ("":
	// the internal wallet, in the ledger) and ConnectorRef its reference
	// there (a PaymentIntent, an RRN).
	Connector    string    `json:"connector,omitempty"`
	ConnectorRef string    `json:"connector_ref,omitempty"`
	Created      time.Time `json:"created"`
	Updated      time.Time `json:"updated"`
	// Legs are the ledger transfers the last operation on the payment
	// applied (not stored with it: the ledger keeps them, by Ref).
	Legs []ledger.Transfer `json:"-"`
}

// Filter selects payments in a listing, newest first.
type Filter struct {
	Device  iotpay.DeviceID
	Mandate iotpay.MandateID
	Status  Status
	Since   time.Time        // created at or after, when set
	Until   time.Time        // created before, when set
	Before  iotpay.PaymentID // cursor: payments with a smaller id
	Limit   int
}

// Tx is what the payment layer needs from a store in one transaction: the
// ledger's own needs, and its records.
type Tx interface {
	ledger.Tx
	ledger.ReadTx
	CreateMandate(ctx context.Context, m *Mandate) error
	UpdateMandate(ctx context.Context, m *Mandate) error
	// Mandate returns one of a tenant's mandates, ENOTFOUND otherwise.
	Mandate(ctx context.Context, tenant iotpay.TenantID, id iotpay.MandateID) (*Mandate, error)
	// DeviceMandate returns the device's latest mandate, ENOTFOUND when
	// it has none.
	DeviceMandate(ctx context.Context, device iotpay.DeviceID) (*Mandate, error)
	Mandates(ctx context.Context, tenant iotpay.TenantID, f MandateFilter) ([]*Mandate, error)
	CreatePayment(ctx context.Context, p *Payment) error
	UpdatePayment(ctx context.Context, p *Payment) error
	Payment(ctx context.Context, tenant iotpay.TenantID, id iotpay.PaymentID) (*Payment, error)
	PaymentByRequest(ctx context.Context, device iotpay.DeviceID, requestID string) (*Payment, error)
	// PaymentByHold returns the payment whose open hold is hold.
	PaymentByHold(ctx context.Context, hold iotpay.TransferID) (*Payment, error)
	Payments(ctx context.Context, tenant iotpay.TenantID, f Filter) ([]*Payment, error)
	// Idempotency returns the result recorded under an idempotency key,
	// ENOTFOUND when none; PutIdempotency records one.
	Idempotency(ctx context.Context, tenant iotpay.TenantID, key string) (*IdempotencyRecord, error)
	PutIdempotency(ctx context.Context, r *IdempotencyRecord) error
	// PurgeIdempotency forgets the records made before an instant and
	// says how many.
	PurgeIdempotency(ctx context.Context, before time.Time) (int64, error)
	// AccountSources are a payer account's instruments at external
	// connectors, by connector name (none: the account is a wallet, its
	// money in the ledger); PutAccountSource sets one.
	AccountSources(ctx context.Context, account iotpay.AccountID) (map[string]string, error)
	PutAccountSource(ctx context.Context, tenant iotpay.TenantID, account iotpay.AccountID, connector, source string) error
	// RoutingTable is a tenant's routing table as JSON, ENOTFOUND when it
	// has none; PutRoutingTable replaces it.
	RoutingTable(ctx context.Context, tenant iotpay.TenantID) ([]byte, error)
	// PaymentByConnectorRef returns the payment a connector knows by ref,
	// ENOTFOUND when none.
	PaymentByConnectorRef(ctx context.Context, connector, ref string) (*Payment, error)
	// ConnectorPayments are a tenant's payments at a connector created in
	// [from, until), by id, at most limit.
	ConnectorPayments(ctx context.Context, tenant iotpay.TenantID, connector string, from, until time.Time, limit int) ([]*Payment, error)
	PutRoutingTable(ctx context.Context, tenant iotpay.TenantID, body []byte, at time.Time) error
	// PutFollowUp records (or updates) an operation a payment system owes
	// what the ledger booked; DeleteFollowUp forgets one done (none is
	// not an error); DueFollowUps are the pending ones due at or before
	// an instant, soonest first; FollowUps lists a tenant's of a status,
	// newest first.
	PutFollowUp(ctx context.Context, f *FollowUp) error
	DeleteFollowUp(ctx context.Context, id string) error
	DueFollowUps(ctx context.Context, at time.Time, limit int) ([]*FollowUp, error)
	FollowUp(ctx context.Context, tenant iotpay.TenantID, id string) (*FollowUp, error)
	FollowUps(ctx context.Context, tenant iotpay.TenantID, status FollowUpStatus, limit int) ([]*FollowUp, error)
	// ConnectorState is what a connector keeps of one of its payments,
	// ENOTFOUND when none; PutConnectorState replaces it.
	ConnectorState(ctx context.Context, connector, ref string) ([]byte, error)
	PutConnectorState(ctx context.Context, connector, ref string, state []byte, at time.Time) error
}

// Store runs read-only functions; writes go through the ledger's Writer.
type Store[T Tx] interface {
	View(ctx context.Context, fn func(T) error) error
}

// IdempotencyRecord is the result of a request made with an idempotency
// key: a repeat with the same request gets Body back.
type IdempotencyRecord struct {
	Tenant      iotpay.TenantID
	Key         string
	RequestHash []byte // method, path and body
	Status      int
	Body        []byte
	Created     time.Time
}

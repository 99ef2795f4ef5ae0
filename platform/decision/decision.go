// Package decision keeps what the platform decided about its devices'
// events beyond the payments themselves: the answer to every admitted
// request that made no new payment (for idempotency), the open sessions
// (an EV charge's hold, found again by the session key its events carry),
// the payments held for an operator's review, the refill orders the rules
// placed with suppliers, and the events the platform raised about devices.
// The processor writes them in the same transaction as the payment.
package decision

import (
	"context"
	"encoding/json"
	"time"

	"github.com/iotpay/iotpay"
)

// Request is an admitted device request that created no payment of its
// own (a state report, an increment or capture of a session, a refill,
// nothing): a redelivery gets Receipt back.
type Request struct {
	Device      iotpay.DeviceID  `json:"device"`
	RequestID   string           `json:"request_id"`
	RequestHash []byte           `json:"request_hash"`
	Action      string           `json:"action"`
	Outcome     string           `json:"outcome"`
	Payment     iotpay.PaymentID `json:"payment,omitempty"` // the session's payment it moved, if any
	Receipt     []byte           `json:"-"`
	Created     time.Time        `json:"created"`
}

// Session is an open (or closed) device session: the payment whose hold
// the session's events increment and finally capture.
type Session struct {
	Device  iotpay.DeviceID  `json:"device"`
	Key     string           `json:"key"`
	Payment iotpay.PaymentID `json:"payment"`
	Created time.Time        `json:"created"`
	Closed  time.Time        `json:"closed,omitzero"`
}

// ReviewStatus is where a review is.
type ReviewStatus string

// Review statuses.
const (
	ReviewPending  ReviewStatus = "pending"
	ReviewApproved ReviewStatus = "approved"
	ReviewDeclined ReviewStatus = "declined"
)

// Review is a payment risk control held for an operator: its amount is
// authorized (held) until the operator approves (captured) or declines
// (voided) it.
type Review struct {
	Payment iotpay.PaymentID `json:"payment"`
	Tenant  iotpay.TenantID  `json:"tenant"`
	Device  iotpay.DeviceID  `json:"device"`
	Status  ReviewStatus     `json:"status"`
	// Decision is the risk decision, as JSON (score, reasons).
	Decision json.RawMessage `json:"decision"`
	Note     string          `json:"note,omitempty"`
	Created  time.Time       `json:"created"`
	Decided  time.Time       `json:"decided,omitzero"`
}

// OrderStatus is where a supply order's delivery is.
type OrderStatus string

// Order statuses.
const (
	OrderPending   OrderStatus = "pending"   // to be sent (again)
	OrderDelivered OrderStatus = "delivered" // the supplier answered 2xx
	OrderFailed    OrderStatus = "failed"    // given up after OrderAttemptsMax
)

// Order is a refill order a rule placed with a supplier, delivered as a
// signed webhook.
type Order struct {
	ID        string           `json:"id"`
	Tenant    iotpay.TenantID  `json:"tenant"`
	Device    iotpay.DeviceID  `json:"device"`
	Product   iotpay.ProductID `json:"product"`
	Rule      string           `json:"rule"`
	Item      string           `json:"item"`
	Quantity  int64            `json:"quantity"`
	Supplier  string           `json:"supplier"`
	Status    OrderStatus      `json:"status"`
	Attempts  int              `json:"attempts"`
	LastError string           `json:"last_error,omitempty"`
	Next      time.Time        `json:"next_attempt,omitzero"`
	Created   time.Time        `json:"created"`
	Delivered time.Time        `json:"delivered,omitzero"`
}

// Event is something the platform noticed about a device (it went
// inactive, its firmware is not attested, it reported tampering).
type Event struct {
	ID      string          `json:"id"`
	Tenant  iotpay.TenantID `json:"tenant"`
	Device  iotpay.DeviceID `json:"device"`
	Kind    string          `json:"kind"`
	Detail  string          `json:"detail,omitempty"`
	Created time.Time       `json:"created"`
}

// Device event kinds.
const (
	EventInactive   = "device.inactive"
	EventTamper     = "device.tamper"
	EventFirmware   = "device.firmware_not_attested"
	EventReviewHeld = "payment.review"
	// EventOfflineBreach: a device paid offline beyond its product's
	// offline limits, or the risk policy would have refused an offline
	// payment; the payment is held for review.
	EventOfflineBreach = "payment.offline_breach"
	EventOrderPlaced   = "supply.order"
)

// Tx is what decisions need from a store inside one transaction. Reads
// of a missing object return ENOTFOUND.
type Tx interface {
	DecisionRequest(ctx context.Context, device iotpay.DeviceID, requestID string) (*Request, error)
	CreateDecisionRequest(ctx context.Context, r *Request) error
	Session(ctx context.Context, device iotpay.DeviceID, key string) (*Session, error)
	PutSession(ctx context.Context, s *Session) error
	CreateReview(ctx context.Context, r *Review) error
	Review(ctx context.Context, tenant iotpay.TenantID, payment iotpay.PaymentID) (*Review, error)
	UpdateReview(ctx context.Context, r *Review) error
	// Reviews lists a tenant's reviews in status (all when ""), oldest
	// first, after the cursor.
	Reviews(ctx context.Context, tenant iotpay.TenantID, status ReviewStatus, after iotpay.PaymentID, limit int) ([]*Review, error)
	CreateOrder(ctx context.Context, o *Order) error
	UpdateOrder(ctx context.Context, o *Order) error
	Order(ctx context.Context, tenant iotpay.TenantID, id string) (*Order, error)
	// DueOrders are pending orders whose next attempt is due at now.
	DueOrders(ctx context.Context, now time.Time, limit int) ([]*Order, error)
	Orders(ctx context.Context, tenant iotpay.TenantID, device iotpay.DeviceID, limit int) ([]*Order, error)
	CreateEvent(ctx context.Context, e *Event) error
	// Events lists a tenant's device events, newest first (of one device
	// when device is set).
	Events(ctx context.Context, tenant iotpay.TenantID, device iotpay.DeviceID, limit int) ([]*Event, error)
	// Velocity counts the payments (declined ones aside) of a device, or
	// of a payer account, created at or after since, and their amounts.
	Velocity(ctx context.Context, device iotpay.DeviceID, payer iotpay.AccountID, since time.Time) (count, amount int64, err error)
}

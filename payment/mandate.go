package payment

import (
	"github.com/iotpay/iotpay/payment/ledger"
	"slices"
	"time"

	"github.com/iotpay/iotpay"
)

// MandateStatus is where a mandate is in its life, as a network token's:
// active, suspended (and resumable), or revoked for good.
type MandateStatus string

// Mandate statuses.
const (
	MandateActive    MandateStatus = "active"
	MandateSuspended MandateStatus = "suspended"
	MandateRevoked   MandateStatus = "revoked"
)

// Mandate is a payer's consent that a device may pay from the payer's
// account, within limits. The device never holds the account's details:
// the mandate's id is the token that stands for them, and the platform
// resolves it at every authorization.
type Mandate struct {
	ID       iotpay.MandateID `json:"id"`
	Tenant   iotpay.TenantID  `json:"tenant"`
	Device   iotpay.DeviceID  `json:"device"`
	Payer    iotpay.AccountID `json:"payer"`
	Currency iotpay.Currency  `json:"currency"`
	// Limits, in minor units: per payment (the authorized amount,
	// increments included), per UTC day and per UTC month (the amounts
	// authorized in it).
	PerPayment int64 `json:"per_payment_limit"`
	PerDay     int64 `json:"daily_limit"`
	PerMonth   int64 `json:"monthly_limit"`
	// Products and Categories, when not empty, are the only products and
	// merchant categories (ISO 18245 codes) the device may pay for.
	Products   []iotpay.ProductID `json:"products,omitempty"`
	Categories []string           `json:"categories,omitempty"`
	ValidFrom  time.Time          `json:"valid_from"`
	ValidTo    time.Time          `json:"valid_to,omitzero"` // zero: no end
	Status     MandateStatus      `json:"status"`
	// Usage: what was authorized on Day (YYYY-MM-DD) and in Month (YYYY-MM).
	Day       string    `json:"usage_day,omitempty"`
	DayUsed   int64     `json:"usage_day_amount"`
	Month     string    `json:"usage_month,omitempty"`
	MonthUsed int64     `json:"usage_month_amount"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
}

// MandateFilter selects mandates in a listing, by id.
type MandateFilter struct {
	Device iotpay.DeviceID
	Status MandateStatus
	After  iotpay.MandateID // cursor
	Limit  int
}

// Reason is why a payment was declined: a stable code for programs, with
// a message for people (Message).
type Reason string

// Decline reasons.
const (
	DeclineNoMandate          Reason = "no_mandate"
	DeclineMandateSuspended   Reason = "mandate_suspended"
	DeclineMandateRevoked     Reason = "mandate_revoked"
	DeclineMandateNotYetValid Reason = "mandate_not_yet_valid"
	DeclineMandateExpired     Reason = "mandate_expired"
	DeclineCurrencyNotAllowed Reason = "currency_not_allowed"
	DeclineProductNotAllowed  Reason = "product_not_allowed"
	DeclineCategoryNotAllowed Reason = "category_not_allowed"
	DeclineOverPaymentLimit   Reason = "over_payment_limit"
	DeclineOverDailyLimit     Reason = "over_daily_limit"
	DeclineOverMonthlyLimit   Reason = "over_monthly_limit"
	DeclineInsufficientFunds  Reason = "insufficient_funds"
	DeclineAccountUnavailable Reason = "account_unavailable"
	// DeclineRisk: the platform's risk control declined the payment
	// before the mandate was asked (the payment's reason says why).
	DeclineRisk Reason = "risk_declined"
)

var reasonMessages = map[Reason]string{
	DeclineNoMandate:          "device has no mandate to pay",
	DeclineRisk:               "declined by risk control",
	DeclineConnector:          "declined by the payment system",
	DeclineConnectorRequired:  "the payer's account is at a payment system this payment did not go through",
	DeclineMandateSuspended:   "mandate suspended",
	DeclineMandateRevoked:     "mandate revoked",
	DeclineMandateNotYetValid: "mandate not yet valid",
	DeclineMandateExpired:     "mandate expired",
	DeclineCurrencyNotAllowed: "currency not allowed by the mandate",
	DeclineProductNotAllowed:  "product not allowed by the mandate",
	DeclineCategoryNotAllowed: "merchant category not allowed by the mandate",
	DeclineOverPaymentLimit:   "amount over the mandate's per-payment limit",
	DeclineOverDailyLimit:     "over the mandate's daily limit",
	DeclineOverMonthlyLimit:   "over the mandate's monthly limit",
	DeclineInsufficientFunds:  "insufficient funds",
	DeclineAccountUnavailable: "payer or merchant account unavailable",
}

// Message is the reason in words.
func (r Reason) Message() string { return reasonMessages[r] }

// DeclineError is the error of a declined authorization: EDECLINED, with its
// reason.
type DeclineError struct{ Reason Reason }

func (d *DeclineError) Error() string { return string(iotpay.EDECLINED) + ": " + d.Reason.Message() }

// Unwrap gives the decline its code.
func (d *DeclineError) Unwrap() error {
	return iotpay.Errorf(iotpay.EDECLINED, "%s", d.Reason.Message())
}

func decline(r Reason) error { return &DeclineError{Reason: r} }

// usage returns what the mandate has used on now's day and month.
func (m *Mandate) usage(now time.Time) (day, month int64) {
	if m.Day == now.UTC().Format(time.DateOnly) {
		day = m.DayUsed
	}
	if m.Month == now.UTC().Format("2006-01") {
		month = m.MonthUsed
	}
	return day, month
}

// use records amount authorized at now.
func (m *Mandate) use(amount int64, now time.Time) {
	day, month := m.usage(now)
	m.Day, m.DayUsed = now.UTC().Format(time.DateOnly), day+amount
	m.Month, m.MonthUsed = now.UTC().Format("2006-01"), month+amount
	m.Updated = now
}

// admit checks the mandate lets the device authorize amount more (total
// being the payment's authorized amount after it) for product in
// category at now.
// Admits reports whether the mandate allows a payment of amount (total
// with what the payment already holds) now: nil, or a *DeclineError. It
// is what the engine checks in the writer, for a caller that must know
// before (a payment system asked first).
func (m *Mandate) Admits(amount, total int64, cur iotpay.Currency, product iotpay.ProductID, category string, now time.Time) error {
	return m.admit(amount, total, cur, product, category, now)
}

func (m *Mandate) admit(amount, total int64, cur iotpay.Currency, product iotpay.ProductID, category string, now time.Time) error {
	switch {
	case m.Status == MandateRevoked:
		return decline(DeclineMandateRevoked)
	case m.Status == MandateSuspended:
		return decline(DeclineMandateSuspended)
	case now.Before(m.ValidFrom):
		return decline(DeclineMandateNotYetValid)
	case !m.ValidTo.IsZero() && !now.Before(m.ValidTo):
		return decline(DeclineMandateExpired)
	case cur != m.Currency:
		return decline(DeclineCurrencyNotAllowed)
	case len(m.Products) > 0 && !slices.Contains(m.Products, product):
		return decline(DeclineProductNotAllowed)
	case len(m.Categories) > 0 && !slices.Contains(m.Categories, category):
		return decline(DeclineCategoryNotAllowed)
	case total > m.PerPayment:
		return decline(DeclineOverPaymentLimit)
	}
	day, month := m.usage(now)
	if day+amount > m.PerDay {
		return decline(DeclineOverDailyLimit)
	}
	if month+amount > m.PerMonth {
		return decline(DeclineOverMonthlyLimit)
	}
	return nil
}

// validCategory reports whether c is an ISO 18245 merchant category code.
func validCategory(c string) bool {
	if len(c) != 4 {
		return false
	}
	for i := range 4 {
		if c[i] < '0' || c[i] > '9' {
			return false
		}
	}
	return true
}

// CreateMandate records a payer's consent for a device. The device must
// have no mandate that is not revoked; the payer account fixes the
// currency.
func CreateMandate[T Tx](b *ledger.Batch[T], m *Mandate) error {
	ctx, now := b.Context(), b.Now
	payer, ok := b.Account(m.Payer)
	if !ok || payer.Tenant != m.Tenant || payer.Kind != KindPayer {
		return iotpay.Errorf(iotpay.EINVALID, "payer must be one of your payer accounts")
	}
	if m.Currency == "" {
		m.Currency = payer.Currency
	}
	if m.Currency != payer.Currency {
		return iotpay.Errorf(iotpay.EINVALID, "mandate currency %s differs from the payer account's %s", m.Currency, payer.Currency)
	}
	if m.PerPayment <= 0 || m.PerDay < m.PerPayment || m.PerMonth < m.PerDay || m.PerMonth > AmountMax {
		return iotpay.Errorf(iotpay.EINVALID, "limits must be positive, per payment ≤ daily ≤ monthly ≤ %d", AmountMax)
	}
	if len(m.Products) > MandateProductsMax || len(m.Categories) > MandateCategoriesMax {
		return iotpay.Errorf(iotpay.EINVALID, "at most %d products and %d categories", MandateProductsMax, MandateCategoriesMax)
	}
	for _, p := range m.Products {
		if !iotpay.ValidID(iotpay.PrefixProduct, string(p)) {
			return iotpay.Errorf(iotpay.EINVALID, "invalid product id %q", p)
		}
	}
	for _, c := range m.Categories {
		if !validCategory(c) {
			return iotpay.Errorf(iotpay.EINVALID, "merchant category %q is not a 4-digit ISO 18245 code", c)
		}
	}
	if m.ValidFrom.IsZero() {
		m.ValidFrom = now
	}
	if !m.ValidTo.IsZero() && !m.ValidTo.After(m.ValidFrom) {
		return iotpay.Errorf(iotpay.EINVALID, "valid_to must be after valid_from")
	}
	m.ValidFrom, m.ValidTo = m.ValidFrom.Truncate(time.Millisecond).UTC(), truncMs(m.ValidTo)
	prev, err := b.Tx.DeviceMandate(ctx, m.Device)
	switch {
	case err == nil && prev.Status != MandateRevoked:
		return iotpay.Errorf(iotpay.ECONFLICT, "device already has mandate %s; revoke it first", prev.ID)
	case err != nil && iotpay.ErrorCode(err) != iotpay.ENOTFOUND:
		return err
	}
	m.ID = iotpay.MandateID(iotpay.NewID(iotpay.PrefixMandate, now, nil))
	m.Status, m.Created, m.Updated = MandateActive, now, now
	m.Day, m.DayUsed, m.Month, m.MonthUsed = "", 0, "", 0
	return b.Tx.CreateMandate(ctx, m)
}

func truncMs(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.Truncate(time.Millisecond).UTC()
}

// SetMandateStatus suspends, resumes or revokes a mandate. Revocation is
// final; asking for the status a mandate has is a no-op.
func SetMandateStatus[T Tx](b *ledger.Batch[T], tenant iotpay.TenantID, id iotpay.MandateID, to MandateStatus) (*Mandate, error) {
	ctx := b.Context()
	m, err := b.Tx.Mandate(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	switch {
	case m.Status == to:
		return m, nil
	case m.Status == MandateRevoked:
		return nil, transition("mandate", m.Status, "change")
	case to != MandateActive && to != MandateSuspended && to != MandateRevoked:
		return nil, iotpay.Errorf(iotpay.EINVALID, "status must be active, suspended or revoked")
	}
	m.Status, m.Updated = to, b.Now
	return m, b.Tx.UpdateMandate(ctx, m)
}

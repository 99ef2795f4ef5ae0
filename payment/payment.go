// Package payment is the payment layer: payment accounts, the binding of a
// device to the account it pays from (with limits), payments, and the
// double-entry ledger they post to.
//
// Every amount is integer minor units of one currency. A transfer moves an
// amount from a debit account to a credit account, so the balances of all
// accounts of a currency always sum to zero; money never appears or vanishes.
package payment

import (
	"context"
	"time"

	"github.com/iotpay/iotpay"
)

// AccountKind is what an account is for.
type AccountKind string

// Account kinds.
const (
	// Payer accounts are prepaid wallets devices pay from.
	Payer AccountKind = "payer"
	// Merchant accounts are credited by payments.
	Merchant AccountKind = "merchant"
	// Funding is the tenant's outside world (bank, card top-ups): the only
	// kind allowed a negative balance, it is debited when a wallet is funded.
	Funding AccountKind = "funding"
)

// Account is a ledger account. Balance is credits minus debits: what the
// platform owes the account holder.
type Account struct {
	ID       iotpay.AccountID `json:"id"`
	Tenant   iotpay.TenantID  `json:"tenant"`
	Name     string           `json:"name"`
	Kind     AccountKind      `json:"kind"`
	Currency iotpay.Currency  `json:"currency"`
	Balance  int64            `json:"balance"` // minor units
	Created  time.Time        `json:"created"`
}

// MayGoNegative reports whether debits may exceed credits.
func (a *Account) MayGoNegative() bool { return a.Kind == Funding }

// TransferKind says why money moved.
type TransferKind string

// Transfer kinds.
const (
	TransferFund    TransferKind = "fund"
	TransferPayment TransferKind = "payment"
)

// Transfer is an immutable ledger entry.
type Transfer struct {
	ID       iotpay.TransferID `json:"id"`
	Tenant   iotpay.TenantID   `json:"tenant"`
	Kind     TransferKind      `json:"kind"`
	Debit    iotpay.AccountID  `json:"debit_account"`
	Credit   iotpay.AccountID  `json:"credit_account"`
	Amount   int64             `json:"amount"`
	Currency iotpay.Currency   `json:"currency"`
	Payment  iotpay.PaymentID  `json:"payment,omitempty"`
	Created  time.Time         `json:"created"`
}

// Binding ties a device to the payer account it pays from, with limits.
type Binding struct {
	ID              iotpay.BindingID `json:"id"`
	Tenant          iotpay.TenantID  `json:"tenant"`
	Device          iotpay.DeviceID  `json:"device"`
	Account         iotpay.AccountID `json:"account"`
	Currency        iotpay.Currency  `json:"currency"`
	PerPaymentLimit int64            `json:"per_payment_limit"` // minor units
	DailyLimit      int64            `json:"daily_limit"`       // minor units per UTC day
	Created         time.Time        `json:"created"`
}

// Status is where a payment ended.
type Status string

// Payment statuses.
const (
	StatusApproved Status = "approved"
	StatusDeclined Status = "declined"
)

// Payment is the platform's record of one device request it decided on.
// A request id is used once per device: its payment and receipt are what
// any redelivery of that request gets back.
type Payment struct {
	ID          iotpay.PaymentID    `json:"id"`
	Tenant      iotpay.TenantID     `json:"tenant"`
	Device      iotpay.DeviceID     `json:"device"`
	RequestID   string              `json:"request_id"`
	RequestHash []byte              `json:"request_hash"`
	Status      Status              `json:"status"`
	Reason      string              `json:"reason,omitempty"`
	Amount      int64               `json:"amount"`
	Currency    iotpay.Currency     `json:"currency"`
	Payer       iotpay.AccountID    `json:"payer,omitempty"`
	Merchant    iotpay.AccountID    `json:"merchant,omitempty"`
	Transfers   []iotpay.TransferID `json:"transfers,omitempty"`
	LogIndex    uint64              `json:"log_index"`
	Receipt     []byte              `json:"receipt"` // the signed receipt, COSE_Sign1
	Created     time.Time           `json:"created"`
}

// Filter selects payments in a listing.
type Filter struct {
	Device iotpay.DeviceID
	After  iotpay.PaymentID // cursor: payments with a greater id
	Limit  int
}

// Tx is what the payment layer needs from a store inside one transaction.
type Tx interface {
	CreateAccount(ctx context.Context, a *Account) error
	// Account returns an account of a tenant, ENOTFOUND for another's.
	Account(ctx context.Context, tenant iotpay.TenantID, id iotpay.AccountID) (*Account, error)
	Accounts(ctx context.Context, tenant iotpay.TenantID) ([]*Account, error)
	// PostTransfer applies t to both balances, refusing with EDECLINED a
	// debit that would take an account that may not go negative below zero.
	PostTransfer(ctx context.Context, t *Transfer) error
	Transfers(ctx context.Context, tenant iotpay.TenantID, account iotpay.AccountID) ([]*Transfer, error)
	CreateBinding(ctx context.Context, b *Binding) error
	Binding(ctx context.Context, device iotpay.DeviceID) (*Binding, error)
	CreatePayment(ctx context.Context, p *Payment) error
	Payment(ctx context.Context, tenant iotpay.TenantID, id iotpay.PaymentID) (*Payment, error)
	PaymentByRequest(ctx context.Context, device iotpay.DeviceID, requestID string) (*Payment, error)
	Payments(ctx context.Context, tenant iotpay.TenantID, f Filter) ([]*Payment, error)
	// ApprovedSince sums a device's approved payments created at or after since.
	ApprovedSince(ctx context.Context, device iotpay.DeviceID, since time.Time) (int64, error)
	// LedgerCheck returns, per currency, the sum of all account balances
	// across every tenant, and the accounts whose balance differs from the
	// sum of their transfers.
	LedgerCheck(ctx context.Context) (map[iotpay.Currency]int64, []iotpay.AccountID, error)
}

// Store runs functions in transactions.
type Store interface {
	Update(ctx context.Context, fn func(Tx) error) error
	View(ctx context.Context, fn func(Tx) error) error
}

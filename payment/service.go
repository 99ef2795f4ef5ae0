package payment

import (
	"context"
	"crypto/rand"
	"io"
	"time"

	"github.com/iotpay/iotpay"
)

// Bounds.
const (
	NameLenMax   = 128
	ListLimitMax = 500
	// AmountMax bounds a single funding or payment so sums stay far from
	// int64 overflow.
	AmountMax = int64(1) << 50
)

// Service is the payment layer's operator operations.
type Service struct {
	Store Store
	Now   func() time.Time
	Rand  io.Reader
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) rand() io.Reader {
	if s.Rand != nil {
		return s.Rand
	}
	return rand.Reader
}

// CreateAccount opens an account with a zero balance.
func (s *Service) CreateAccount(ctx context.Context, tenant iotpay.TenantID, name string, kind AccountKind, cur iotpay.Currency) (*Account, error) {
	if name == "" || len(name) > NameLenMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "name must be 1 to %d bytes", NameLenMax)
	}
	switch kind {
	case Payer, Merchant, Funding:
	default:
		return nil, iotpay.Errorf(iotpay.EINVALID, "kind must be payer, merchant or funding")
	}
	if !cur.Valid() {
		return nil, iotpay.Errorf(iotpay.EINVALID, "unknown currency %q", cur)
	}
	now := s.now()
	a := &Account{ID: iotpay.AccountID(iotpay.NewID(iotpay.PrefixAccount, now, s.rand())), Tenant: tenant, Name: name, Kind: kind, Currency: cur, Created: now}
	return a, s.Store.Update(ctx, func(tx Tx) error { return tx.CreateAccount(ctx, a) })
}

// Fund credits a payer wallet from the tenant's funding account of that
// currency, opening the funding account on first use.
func (s *Service) Fund(ctx context.Context, tenant iotpay.TenantID, id iotpay.AccountID, amount int64) (*Transfer, error) {
	if amount <= 0 || amount > AmountMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "amount must be between 1 and %d minor units", AmountMax)
	}
	var t *Transfer
	err := s.Store.Update(ctx, func(tx Tx) error {
		a, err := tx.Account(ctx, tenant, id)
		if err != nil {
			return err
		}
		if a.Kind != Payer {
			return iotpay.Errorf(iotpay.EINVALID, "only payer accounts are funded")
		}
		src, err := s.fundingAccount(ctx, tx, tenant, a.Currency)
		if err != nil {
			return err
		}
		now := s.now()
		t = &Transfer{ID: iotpay.TransferID(iotpay.NewID(iotpay.PrefixTransfer, now, s.rand())), Tenant: tenant, Kind: TransferFund,
			Debit: src.ID, Credit: a.ID, Amount: amount, Currency: a.Currency, Created: now}
		return tx.PostTransfer(ctx, t)
	})
	return t, err
}

func (s *Service) fundingAccount(ctx context.Context, tx Tx, tenant iotpay.TenantID, cur iotpay.Currency) (*Account, error) {
	as, err := tx.Accounts(ctx, tenant)
	if err != nil {
		return nil, err
	}
	for _, a := range as {
		if a.Kind == Funding && a.Currency == cur {
			return a, nil
		}
	}
	now := s.now()
	a := &Account{ID: iotpay.AccountID(iotpay.NewID(iotpay.PrefixAccount, now, s.rand())), Tenant: tenant,
		Name: "funding " + string(cur), Kind: Funding, Currency: cur, Created: now}
	return a, tx.CreateAccount(ctx, a)
}

// Bind ties a device to a payer account with limits. A device has one
// binding; binding it again is a conflict.
func (s *Service) Bind(ctx context.Context, b *Binding) error {
	if b.PerPaymentLimit <= 0 || b.DailyLimit <= 0 || b.PerPaymentLimit > AmountMax || b.DailyLimit > AmountMax {
		return iotpay.Errorf(iotpay.EINVALID, "limits must be positive minor-unit amounts")
	}
	if b.PerPaymentLimit > b.DailyLimit {
		return iotpay.Errorf(iotpay.EINVALID, "per-payment limit exceeds the daily limit")
	}
	return s.Store.Update(ctx, func(tx Tx) error {
		a, err := tx.Account(ctx, b.Tenant, b.Account)
		if err != nil {
			return err
		}
		if a.Kind != Payer {
			return iotpay.Errorf(iotpay.EINVALID, "a device binds to a payer account")
		}
		b.Currency = a.Currency
		b.Created = s.now()
		b.ID = iotpay.BindingID(iotpay.NewID(iotpay.PrefixBinding, b.Created, s.rand()))
		return tx.CreateBinding(ctx, b)
	})
}

// Account returns one of a tenant's accounts.
func (s *Service) Account(ctx context.Context, tenant iotpay.TenantID, id iotpay.AccountID) (*Account, error) {
	var a *Account
	return a, s.Store.View(ctx, func(tx Tx) (err error) { a, err = tx.Account(ctx, tenant, id); return })
}

// Accounts lists a tenant's accounts.
func (s *Service) Accounts(ctx context.Context, tenant iotpay.TenantID) ([]*Account, error) {
	var as []*Account
	return as, s.Store.View(ctx, func(tx Tx) (err error) { as, err = tx.Accounts(ctx, tenant); return })
}

// Transfers lists the transfers touching one of a tenant's accounts.
func (s *Service) Transfers(ctx context.Context, tenant iotpay.TenantID, id iotpay.AccountID) ([]*Transfer, error) {
	var ts []*Transfer
	return ts, s.Store.View(ctx, func(tx Tx) (err error) {
		if _, err = tx.Account(ctx, tenant, id); err != nil {
			return err
		}
		ts, err = tx.Transfers(ctx, tenant, id)
		return
	})
}

// Payment returns one of a tenant's payments.
func (s *Service) Payment(ctx context.Context, tenant iotpay.TenantID, id iotpay.PaymentID) (*Payment, error) {
	var p *Payment
	return p, s.Store.View(ctx, func(tx Tx) (err error) { p, err = tx.Payment(ctx, tenant, id); return })
}

// Payments lists a tenant's payments, oldest first, after the filter's cursor.
func (s *Service) Payments(ctx context.Context, tenant iotpay.TenantID, f Filter) ([]*Payment, error) {
	if f.Limit <= 0 || f.Limit > ListLimitMax {
		f.Limit = ListLimitMax
	}
	var ps []*Payment
	return ps, s.Store.View(ctx, func(tx Tx) (err error) { ps, err = tx.Payments(ctx, tenant, f); return })
}

// LedgerReport is the result of checking the whole ledger.
type LedgerReport struct {
	Balanced bool `json:"balanced"`
	// Sums is the sum of all balances per currency: zero when balanced.
	Sums map[iotpay.Currency]int64 `json:"sums"`
	// Mismatched lists accounts whose balance is not the sum of their transfers.
	Mismatched []iotpay.AccountID `json:"mismatched,omitempty"`
}

// LedgerCheck checks that every currency sums to zero and that every
// balance equals its account's transfer history.
func (s *Service) LedgerCheck(ctx context.Context) (*LedgerReport, error) {
	r := &LedgerReport{}
	err := s.Store.View(ctx, func(tx Tx) (err error) { r.Sums, r.Mismatched, err = tx.LedgerCheck(ctx); return })
	if err != nil {
		return nil, err
	}
	r.Balanced = len(r.Mismatched) == 0
	for _, v := range r.Sums {
		if v != 0 {
			r.Balanced = false
		}
	}
	return r, nil
}

// Charge moves m from the device's bound payer account to merchant, within
// tx, after the binding's limits and the payer's balance allow it. A refusal
// is an EDECLINED error.
func Charge(ctx context.Context, tx Tx, tenant iotpay.TenantID, device iotpay.DeviceID, merchant iotpay.AccountID,
	m iotpay.Money, t *Transfer) (*Binding, error) {
	b, err := tx.Binding(ctx, device)
	if iotpay.ErrorCode(err) == iotpay.ENOTFOUND {
		return nil, iotpay.Errorf(iotpay.EDECLINED, "device is not bound to a payment account")
	}
	if err != nil {
		return nil, err
	}
	if m.Amount <= 0 || m.Amount > AmountMax {
		return b, iotpay.Errorf(iotpay.EDECLINED, "amount out of range")
	}
	spent, err := tx.ApprovedSince(ctx, device, DayStart(t.Created))
	if err != nil {
		return b, err
	}
	if err := CheckLimits(b, m, spent); err != nil {
		return b, err
	}
	mer, err := tx.Account(ctx, tenant, merchant)
	if err != nil {
		return b, iotpay.Wrap(iotpay.EDECLINED, "merchant account unavailable", err)
	}
	if mer.Currency != m.Currency {
		return b, iotpay.Errorf(iotpay.EDECLINED, "merchant account does not take %s", m.Currency)
	}
	t.Tenant, t.Kind, t.Debit, t.Credit, t.Amount, t.Currency = tenant, TransferPayment, b.Account, merchant, m.Amount, m.Currency
	return b, tx.PostTransfer(ctx, t)
}

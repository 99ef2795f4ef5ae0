package payment

import (
	"context"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/ledger"
)

// view runs fn in a read-only transaction and returns what it returns.
func view[T Tx, R any](ctx context.Context, s Store[T], fn func(T) (R, error)) (R, error) {
	var r R
	err := s.View(ctx, func(tx T) (err error) { r, err = fn(tx); return })
	return r, err
}

// Payment returns one of a tenant's payments.
func (e *Engine[T]) Payment(ctx context.Context, tenant iotpay.TenantID, id iotpay.PaymentID) (*Payment, error) {
	return view(ctx, e.Store, func(tx T) (*Payment, error) { return tx.Payment(ctx, tenant, id) })
}

// Payments lists a tenant's payments, newest first, before the filter's cursor.
func (e *Engine[T]) Payments(ctx context.Context, tenant iotpay.TenantID, f Filter) ([]*Payment, error) {
	f.Limit = bound(f.Limit)
	return view(ctx, e.Store, func(tx T) ([]*Payment, error) { return tx.Payments(ctx, tenant, f) })
}

// Mandate returns one of a tenant's mandates.
func (e *Engine[T]) Mandate(ctx context.Context, tenant iotpay.TenantID, id iotpay.MandateID) (*Mandate, error) {
	return view(ctx, e.Store, func(tx T) (*Mandate, error) { return tx.Mandate(ctx, tenant, id) })
}

// Mandates lists a tenant's mandates by id, after the filter's cursor.
func (e *Engine[T]) Mandates(ctx context.Context, tenant iotpay.TenantID, f MandateFilter) ([]*Mandate, error) {
	f.Limit = bound(f.Limit)
	return view(ctx, e.Store, func(tx T) ([]*Mandate, error) { return tx.Mandates(ctx, tenant, f) })
}

// Account returns one of a tenant's accounts with its committed balance.
func (e *Engine[T]) Account(ctx context.Context, tenant iotpay.TenantID, id iotpay.AccountID) (*ledger.Account, error) {
	return view(ctx, e.Store, func(tx T) (*ledger.Account, error) { return tx.Account(ctx, tenant, id) })
}

// Accounts lists a tenant's accounts by id, after the filter's cursor.
func (e *Engine[T]) Accounts(ctx context.Context, tenant iotpay.TenantID, f ledger.AccountFilter) ([]*ledger.Account, error) {
	f.Limit = bound(f.Limit)
	return view(ctx, e.Store, func(tx T) ([]*ledger.Account, error) { return tx.Accounts(ctx, tenant, f) })
}

// Transfers lists a tenant's transfers, oldest first, after the filter's cursor.
func (e *Engine[T]) Transfers(ctx context.Context, tenant iotpay.TenantID, f ledger.TransferFilter) ([]*ledger.Transfer, error) {
	f.Limit = bound(f.Limit)
	return view(ctx, e.Store, func(tx T) ([]*ledger.Transfer, error) { return tx.Transfers(ctx, tenant, f) })
}

// BalanceAt returns an account's balance at a point of its history.
func (e *Engine[T]) BalanceAt(ctx context.Context, tenant iotpay.TenantID, id iotpay.AccountID, asOf ledger.AsOf) (ledger.Balance, error) {
	return view(ctx, e.Store, func(tx T) (ledger.Balance, error) { return ledger.BalanceAt(ctx, tx, tenant, id, asOf) })
}

// Check verifies the whole ledger.
func (e *Engine[T]) Check(ctx context.Context) (*ledger.Report, error) {
	return view(ctx, e.Store, func(tx T) (*ledger.Report, error) { return ledger.Check(ctx, tx) })
}

// Package ledgertest is the conformance suite every ledger store runs
// (Run), and an in-memory store (Mem) for unit tests of the ledger's logic.
package ledgertest

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/ledger"
)

// Mem is a ledger store in memory: each Update works on a copy that
// replaces the state only when fn succeeds. It is for tests of logic; the
// conformance suite runs it beside the real stores.
type Mem struct {
	mu sync.Mutex
	d  *memData
	// FailCommit, when it returns an error, fails the next commit.
	FailCommit func() error
}

type memData struct {
	accounts  map[iotpay.AccountID]*ledger.Account
	transfers []*ledger.Transfer
	byID      map[iotpay.TransferID]*ledger.Transfer
	resolved  map[iotpay.TransferID]*ledger.Transfer
}

// NewMem returns an empty store.
func NewMem() *Mem {
	return &Mem{d: &memData{accounts: map[iotpay.AccountID]*ledger.Account{}, byID: map[iotpay.TransferID]*ledger.Transfer{},
		resolved: map[iotpay.TransferID]*ledger.Transfer{}}}
}

func (d *memData) clone() *memData {
	c := &memData{accounts: make(map[iotpay.AccountID]*ledger.Account, len(d.accounts)), transfers: slices.Clip(d.transfers),
		byID: maps.Clone(d.byID), resolved: maps.Clone(d.resolved)}
	for id, a := range d.accounts {
		a2 := *a
		c.accounts[id] = &a2
	}
	return c
}

// MemTx is a transaction of Mem.
type MemTx struct{ d *memData }

// Update runs fn on a copy of the state and keeps the copy if fn succeeds.
func (m *Mem) Update(ctx context.Context, fn func(*MemTx) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.d.clone()
	if err := fn(&MemTx{c}); err != nil {
		return err
	}
	if m.FailCommit != nil {
		if err := m.FailCommit(); err != nil {
			return err
		}
	}
	m.d = c
	return nil
}

// View runs fn on the committed state.
func (m *Mem) View(ctx context.Context, fn func(*MemTx) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return fn(&MemTx{m.d})
}

func copyT(t *ledger.Transfer) *ledger.Transfer { c := *t; return &c }
func copyA(a *ledger.Account) *ledger.Account   { c := *a; return &c }

// LookupTransfers implements ledger.Tx.
func (tx *MemTx) LookupTransfers(ctx context.Context, ids []iotpay.TransferID) ([]*ledger.Transfer, error) {
	var out []*ledger.Transfer
	for _, id := range ids {
		if t, ok := tx.d.byID[id]; ok {
			out = append(out, copyT(t))
		}
	}
	return out, nil
}

// Resolution implements ledger.Tx.
func (tx *MemTx) Resolution(ctx context.Context, pending iotpay.TransferID) (*ledger.Transfer, error) {
	if t, ok := tx.d.resolved[pending]; ok {
		return copyT(t), nil
	}
	return nil, iotpay.Errorf(iotpay.ENOTFOUND, "no resolution")
}

// InsertAccounts implements ledger.Tx.
func (tx *MemTx) InsertAccounts(ctx context.Context, as []*ledger.Account) error {
	for _, a := range as {
		if _, ok := tx.d.accounts[a.ID]; ok {
			return iotpay.Errorf(iotpay.ECONFLICT, "account exists")
		}
		tx.d.accounts[a.ID] = copyA(a)
	}
	return nil
}

// InsertTransfers implements ledger.Tx.
func (tx *MemTx) InsertTransfers(ctx context.Context, ts []*ledger.Transfer) error {
	for _, t := range ts {
		if _, ok := tx.d.byID[t.ID]; ok {
			return iotpay.Errorf(iotpay.ECONFLICT, "transfer exists")
		}
		if n := len(tx.d.transfers); n > 0 && tx.d.transfers[n-1].Seq >= t.Seq {
			return iotpay.Errorf(iotpay.EINTERNAL, "transfers out of order")
		}
		c := copyT(t)
		tx.d.transfers = append(tx.d.transfers, c)
		tx.d.byID[t.ID] = c
		if t.PendingID != "" {
			tx.d.resolved[t.PendingID] = c
		}
	}
	return nil
}

// UpdateBalances implements ledger.Tx.
func (tx *MemTx) UpdateBalances(ctx context.Context, as []*ledger.Account) error {
	for _, a := range as {
		if have, ok := tx.d.accounts[a.ID]; ok {
			have.Balance = a.Balance
		}
	}
	return nil
}

// LoadLedger implements ledger.Tx.
func (tx *MemTx) LoadLedger(ctx context.Context) ([]*ledger.Account, []*ledger.Transfer, int64, error) {
	var as []*ledger.Account
	for _, a := range tx.d.accounts {
		as = append(as, copyA(a))
	}
	var open []*ledger.Transfer
	var seq int64
	for _, t := range tx.d.transfers {
		seq = t.Seq
		if _, done := tx.d.resolved[t.ID]; t.Flags&ledger.Pending != 0 && !done {
			open = append(open, copyT(t))
		}
	}
	return as, open, seq, nil
}

// Account implements ledger.ReadTx.
func (tx *MemTx) Account(ctx context.Context, tenant iotpay.TenantID, id iotpay.AccountID) (*ledger.Account, error) {
	a, ok := tx.d.accounts[id]
	if !ok || a.Tenant != tenant {
		return nil, iotpay.Errorf(iotpay.ENOTFOUND, "account %s not found", id)
	}
	return copyA(a), nil
}

// Accounts implements ledger.ReadTx.
func (tx *MemTx) Accounts(ctx context.Context, tenant iotpay.TenantID, f ledger.AccountFilter) ([]*ledger.Account, error) {
	var out []*ledger.Account
	for _, a := range tx.d.accounts {
		if a.Tenant == tenant && a.ID > f.After && (f.Kind == "" || a.Kind == f.Kind) {
			out = append(out, copyA(a))
		}
	}
	slices.SortFunc(out, func(a, b *ledger.Account) int { return cmp.Compare(a.ID, b.ID) })
	return out[:min(len(out), limit(f.Limit))], nil
}

func limit(n int) int {
	if n <= 0 || n > ledger.ListLimitMax {
		return ledger.ListLimitMax
	}
	return n
}

// Transfer implements ledger.ReadTx.
func (tx *MemTx) Transfer(ctx context.Context, tenant iotpay.TenantID, id iotpay.TransferID) (*ledger.Transfer, error) {
	t, ok := tx.d.byID[id]
	if !ok || t.Tenant != tenant {
		return nil, iotpay.Errorf(iotpay.ENOTFOUND, "transfer %s not found", id)
	}
	return copyT(t), nil
}

// Transfers implements ledger.ReadTx.
func (tx *MemTx) Transfers(ctx context.Context, tenant iotpay.TenantID, f ledger.TransferFilter) ([]*ledger.Transfer, error) {
	var out []*ledger.Transfer
	for _, t := range tx.d.transfers {
		if t.Tenant != tenant || t.Seq <= f.AfterSeq || (f.Ref != "" && t.Ref != f.Ref) ||
			(f.Account != "" && t.Debit != f.Account && t.Credit != f.Account) {
			continue
		}
		out = append(out, copyT(t))
		if len(out) == limit(f.Limit) {
			break
		}
	}
	return out, nil
}

// LastTransferOf implements ledger.ReadTx.
func (tx *MemTx) LastTransferOf(ctx context.Context, account iotpay.AccountID, asOf ledger.AsOf) (*ledger.Transfer, error) {
	for i := len(tx.d.transfers) - 1; i >= 0; i-- {
		t := tx.d.transfers[i]
		if (asOf.Seq != 0 && t.Seq > asOf.Seq) || (!asOf.Time.IsZero() && t.Time.After(asOf.Time)) {
			continue
		}
		if t.Debit == account || t.Credit == account {
			return copyT(t), nil
		}
	}
	return nil, iotpay.Errorf(iotpay.ENOTFOUND, "no transfer")
}

// Totals implements ledger.ReadTx.
func (tx *MemTx) Totals(ctx context.Context) (map[iotpay.Currency]ledger.Balance, error) {
	out := map[iotpay.Currency]ledger.Balance{}
	for _, a := range tx.d.accounts {
		b := out[a.Currency]
		b.DebitsPending += a.DebitsPending
		b.DebitsPosted += a.DebitsPosted
		b.CreditsPending += a.CreditsPending
		b.CreditsPosted += a.CreditsPosted
		out[a.Currency] = b
	}
	return out, nil
}

// Replayed implements ledger.ReadTx.
func (tx *MemTx) Replayed(ctx context.Context) ([]iotpay.AccountID, error) {
	bal := map[iotpay.AccountID]*ledger.Balance{}
	for id := range tx.d.accounts {
		bal[id] = &ledger.Balance{}
	}
	for _, t := range tx.d.transfers {
		d, c := bal[t.Debit], bal[t.Credit]
		if d == nil || c == nil {
			continue
		}
		switch {
		case t.Flags&ledger.Pending != 0:
			if _, done := tx.d.resolved[t.ID]; !done {
				d.DebitsPending += t.Amount
				c.CreditsPending += t.Amount
			}
		case t.Posts():
			d.DebitsPosted += t.Amount
			c.CreditsPosted += t.Amount
		}
	}
	var out []iotpay.AccountID
	for id, a := range tx.d.accounts {
		if a.Balance != *bal[id] {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out, nil
}

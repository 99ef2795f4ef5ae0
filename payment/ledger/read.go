package ledger

import (
	"context"
	"time"

	"github.com/iotpay/iotpay"
)

// ListLimitMax bounds one page of a listing.
const ListLimitMax = 500

// TransferFilter selects transfers in a listing, oldest first.
type TransferFilter struct {
	Account  iotpay.AccountID // touching this account (debit or credit), when set
	Ref      string           // with this ref, when set
	AfterSeq int64            // cursor: transfers with a greater Seq
	Limit    int              // at most this many (ListLimitMax when 0 or above)
}

// AccountFilter selects accounts in a listing, by id.
type AccountFilter struct {
	Kind  string           // of this kind, when set
	After iotpay.AccountID // cursor: accounts with a greater id
	Limit int
}

// AsOf names a point in the ledger's history: just after the transfer
// with sequence number Seq, or at instant Time (the later transfers not
// counted). Exactly one is set.
type AsOf struct {
	Seq  int64
	Time time.Time
}

// ReadTx is what reading the ledger needs from a store; it reads committed
// state.
type ReadTx interface {
	// Account returns one of a tenant's accounts; ENOTFOUND for an
	// unknown id or another tenant's.
	Account(ctx context.Context, tenant iotpay.TenantID, id iotpay.AccountID) (*Account, error)
	Accounts(ctx context.Context, tenant iotpay.TenantID, f AccountFilter) ([]*Account, error)
	Transfer(ctx context.Context, tenant iotpay.TenantID, id iotpay.TransferID) (*Transfer, error)
	Transfers(ctx context.Context, tenant iotpay.TenantID, f TransferFilter) ([]*Transfer, error)
	// LastTransferOf returns the last transfer touching account at or
	// before asOf, ENOTFOUND when there is none.
	LastTransferOf(ctx context.Context, account iotpay.AccountID, asOf AsOf) (*Transfer, error)
	// Totals sums the balances of all accounts, per currency.
	Totals(ctx context.Context) (map[iotpay.Currency]Balance, error)
	// Replayed recomputes every account's balance from its transfers and
	// returns the accounts whose stored balance differs.
	Replayed(ctx context.Context) ([]iotpay.AccountID, error)
}

// BalanceAt returns an account's balance at a point in its history: from
// the balances each transfer records, so it costs one indexed read.
func BalanceAt(ctx context.Context, tx ReadTx, tenant iotpay.TenantID, id iotpay.AccountID, asOf AsOf) (Balance, error) {
	if (asOf.Seq == 0) == asOf.Time.IsZero() {
		return Balance{}, iotpay.Errorf(iotpay.EINVALID, "give either a transfer sequence number or an instant")
	}
	a, err := tx.Account(ctx, tenant, id)
	if err != nil {
		return Balance{}, err
	}
	t, err := tx.LastTransferOf(ctx, a.ID, asOf)
	if iotpay.ErrorCode(err) == iotpay.ENOTFOUND {
		return Balance{}, nil
	}
	if err != nil {
		return Balance{}, err
	}
	if t.Debit == a.ID {
		return t.DebitBalance, nil
	}
	return t.CreditBalance, nil
}

// Report is the result of checking the whole ledger.
type Report struct {
	Balanced bool `json:"balanced"`
	// Totals sums every account's balance per currency: when balanced,
	// debits equal credits, posted and pending.
	Totals map[iotpay.Currency]Balance `json:"totals"`
	// Net is, per currency, the sum of all accounts' credits minus debits
	// posted: zero when balanced.
	Net map[iotpay.Currency]int64 `json:"net"`
	// Mismatched lists accounts whose balance is not what their transfers
	// add up to.
	Mismatched []iotpay.AccountID `json:"mismatched,omitempty"`
}

// Check verifies the ledger's invariants on committed state: per currency,
// debits equal credits (posted and pending) across all accounts, and every
// account's balance is the sum of its transfers.
func Check(ctx context.Context, tx ReadTx) (*Report, error) {
	tot, err := tx.Totals(ctx)
	if err != nil {
		return nil, err
	}
	mm, err := tx.Replayed(ctx)
	if err != nil {
		return nil, err
	}
	r := &Report{Balanced: len(mm) == 0, Totals: tot, Net: map[iotpay.Currency]int64{}, Mismatched: mm}
	for c, b := range tot {
		r.Net[c] = b.CreditsPosted - b.DebitsPosted
		if b.CreditsPosted != b.DebitsPosted || b.CreditsPending != b.DebitsPending {
			r.Balanced = false
		}
	}
	return r, nil
}

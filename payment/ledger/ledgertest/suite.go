package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/ledger"
)

// TxAll is a store transaction that both writes and reads the ledger.
type TxAll interface {
	ledger.Tx
	ledger.ReadTx
}

// DB is a store under test.
type DB[T TxAll] interface {
	ledger.Store[T]
	View(ctx context.Context, fn func(T) error) error
}

// Clock is a settable clock for tests.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock at a fixed instant.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Add moves the clock on.
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// h is one scenario's harness: a store, a writer on it, a clock.
type h[T TxAll] struct {
	t       *testing.T
	db      DB[T]
	w       *ledger.Writer[T]
	clock   *Clock
	tenant  iotpay.TenantID
	expired atomic.Int64
}

func newH[T TxAll](t *testing.T, open func(t *testing.T) DB[T]) *h[T] {
	x := &h[T]{t: t, db: open(t), clock: NewClock(), tenant: iotpay.TenantID(iotpay.NewID(iotpay.PrefixTenant, time.Now(), nil))}
	x.start()
	t.Cleanup(func() {
		defer func() { x.w.Close() }() // even when check fails the test
		x.check()
	})
	return x
}

func (x *h[T]) start() {
	x.t.Helper()
	w, err := ledger.Open(context.Background(), x.db, ledger.Config[T]{
		Now: x.clock.Now, BatchOpsMax: 64,
		OnExpire: func(ctx context.Context, tx T, ts []*ledger.Transfer) error {
			x.expired.Add(int64(len(ts)))
			return nil
		},
	})
	if err != nil {
		x.t.Fatal(err)
	}
	x.w = w
}

// restart closes the writer and opens a new one on the same store, which
// reloads its state.
func (x *h[T]) restart() {
	x.t.Helper()
	x.w.Close()
	x.start()
}

// check asserts the ledger's invariants on the committed state, and that
// the writer's memory agrees with the store.
func (x *h[T]) check() {
	x.t.Helper()
	ctx := context.Background()
	// Holds due at the clock's time expire in the first batch that runs:
	// commit that first, so that the comparison's own batch changes nothing
	// the store has not seen.
	if err := x.w.Expire(ctx); err != nil {
		x.t.Fatal(err)
	}
	var r *ledger.Report
	var stored []*ledger.Account
	err := x.db.View(ctx, func(tx T) (err error) {
		if r, err = ledger.Check(ctx, tx); err != nil {
			return err
		}
		stored, err = tx.Accounts(ctx, x.tenant, ledger.AccountFilter{})
		return err
	})
	if err != nil {
		x.t.Fatal(err)
	}
	if !r.Balanced {
		x.t.Fatalf("ledger not balanced: %+v", r)
	}
	for c, n := range r.Net {
		if n != 0 {
			x.t.Fatalf("%s balances sum to %d", c, n)
		}
	}
	err = x.w.Do(ctx, func(b *ledger.Batch[T]) error {
		for _, s := range stored {
			m, ok := b.Account(s.ID)
			if !ok || m.Balance != s.Balance {
				return fmt.Errorf("account %s: memory %+v, store %+v", s.ID, m.Balance, s.Balance)
			}
		}
		return nil
	})
	if err != nil {
		x.t.Fatal(err)
	}
}

func (x *h[T]) account(kind string, normal ledger.Side, cur iotpay.Currency) iotpay.AccountID {
	x.t.Helper()
	a := &ledger.Account{ID: iotpay.AccountID(iotpay.NewID(iotpay.PrefixAccount, time.Now(), nil)), Tenant: x.tenant,
		Currency: cur, Normal: normal, Kind: kind, Name: kind}
	if err := x.w.CreateAccounts(context.Background(), a); err != nil {
		x.t.Fatal(err)
	}
	return a.ID
}

func newXfr() iotpay.TransferID {
	return iotpay.TransferID(iotpay.NewID(iotpay.PrefixTransfer, time.Now(), nil))
}

func (x *h[T]) xfr(from, to iotpay.AccountID, amount int64) *ledger.Transfer {
	return &ledger.Transfer{ID: newXfr(), Tenant: x.tenant, Debit: from, Credit: to, Amount: amount, Currency: "EUR", Kind: "test"}
}

// submit applies ts and returns the per-transfer errors.
func (x *h[T]) submit(ts ...*ledger.Transfer) []error {
	x.t.Helper()
	errs, err := x.w.Transfer(context.Background(), ts)
	if err != nil {
		x.t.Fatalf("transfer: %v", err)
	}
	return errs
}

func (x *h[T]) ok(ts ...*ledger.Transfer) {
	x.t.Helper()
	for i, err := range x.submit(ts...) {
		if err != nil {
			x.t.Fatalf("transfer %d: %v", i, err)
		}
	}
}

func (x *h[T]) fails(want error, ts ...*ledger.Transfer) []error {
	x.t.Helper()
	errs := x.submit(ts...)
	for _, err := range errs {
		if errors.Is(err, want) {
			return errs
		}
	}
	x.t.Fatalf("want %v, got %v", want, errs)
	return nil
}

func (x *h[T]) balance(id iotpay.AccountID) ledger.Balance {
	x.t.Helper()
	var a *ledger.Account
	err := x.db.View(context.Background(), func(tx T) (err error) {
		a, err = tx.Account(context.Background(), x.tenant, id)
		return err
	})
	if err != nil {
		x.t.Fatal(err)
	}
	return a.Balance
}

func (x *h[T]) wantBalance(id iotpay.AccountID, want ledger.Balance) {
	x.t.Helper()
	if got := x.balance(id); got != want {
		x.t.Fatalf("balance of %s: got %+v, want %+v", id, got, want)
	}
}

// fund returns a funding (debit-normal) account and a wallet holding amount.
func (x *h[T]) fund(amount int64) (bank, wallet iotpay.AccountID) {
	bank = x.account("funding", ledger.Debit, "EUR")
	wallet = x.account("payer", ledger.Credit, "EUR")
	// Debiting a debit-normal account raises its balance: money arrives
	// at the bank and the platform owes it to the wallet.
	x.ok(x.xfr(bank, wallet, amount))
	return bank, wallet
}

// Run runs the conformance suite against stores made by open, each
// subtest on a fresh one.
func Run[T TxAll](t *testing.T, open func(t *testing.T) DB[T]) {
	for _, tc := range []struct {
		name string
		fn   func(*h[T])
	}{
		{"Accounts", testAccounts[T]},
		{"Transfers", testTransfers[T]},
		{"Idempotency", testIdempotency[T]},
		{"Linked", testLinked[T]},
		{"Pending", testPending[T]},
		{"Expiry", testExpiry[T]},
		{"PointInTime", testPointInTime[T]},
		{"Listing", testListing[T]},
		{"Concurrent", testConcurrent[T]},
		{"FailingOperation", testFailingOperation[T]},
		{"RandomOperations", testRandom[T]},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(newH(t, open)) })
	}
}

package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/payment/ledger"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/store/sqlstore"
)

// openWriter starts the ledger's real Writer on db; it is closed when the
// test ends.
func openWriter(t *testing.T, db *sqlstore.DB) *ledger.Writer[*sqlstore.Tx] {
	t.Helper()
	w, err := ledger.Open(context.Background(), db, ledger.Config[*sqlstore.Tx]{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// books is a tenant's EUR accounts on a writer: a funding account
// (debit-normal: money at the bank), a payer's wallet and a merchant's
// (credit-normal: money the platform owes).
type books struct {
	w                     *ledger.Writer[*sqlstore.Tx]
	tenant                iotpay.TenantID
	bank, payer, merchant iotpay.AccountID
}

func openBooks(t *testing.T, w *ledger.Writer[*sqlstore.Tx], ten iotpay.TenantID) *books {
	t.Helper()
	b := &books{w: w, tenant: ten}
	var as []*ledger.Account
	for _, a := range []struct {
		id     *iotpay.AccountID
		kind   string
		normal ledger.Side
	}{{&b.bank, payment.KindFunding, ledger.Debit}, {&b.payer, payment.KindPayer, ledger.Credit}, {&b.merchant, payment.KindMerchant, ledger.Credit}} {
		*a.id = iotpay.AccountID(newID(iotpay.PrefixAccount))
		as = append(as, &ledger.Account{ID: *a.id, Tenant: ten, Currency: "EUR", Normal: a.normal, Kind: a.kind, Name: a.kind})
	}
	if err := w.CreateAccounts(context.Background(), as...); err != nil {
		t.Fatal(err)
	}
	return b
}

func newXfr() iotpay.TransferID { return iotpay.TransferID(newID(iotpay.PrefixTransfer)) }

func (b *books) xfr(debit, credit iotpay.AccountID, amount int64) *ledger.Transfer {
	return &ledger.Transfer{ID: newXfr(), Tenant: b.tenant, Debit: debit, Credit: credit, Amount: amount, Currency: "EUR", Kind: "test"}
}

// apply applies ts in one writer operation; each must be applied.
func (b *books) apply(t *testing.T, ts ...*ledger.Transfer) {
	t.Helper()
	errs, err := b.w.Transfer(context.Background(), ts)
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("transfer %d: %v", i, err)
		}
	}
}

func balance(t *testing.T, db *sqlstore.DB, ten iotpay.TenantID, id iotpay.AccountID) ledger.Balance {
	t.Helper()
	var a *ledger.Account
	view(t, db, func(tx *sqlstore.Tx) (err error) { a, err = tx.Account(context.Background(), ten, id); return })
	return a.Balance
}

func (b *books) wantBalance(t *testing.T, db *sqlstore.DB, id iotpay.AccountID, want ledger.Balance) {
	t.Helper()
	if got := balance(t, db, b.tenant, id); got != want {
		t.Errorf("balance of %s: %+v, want %+v", b.name(id), got, want)
	}
}

func (b *books) name(id iotpay.AccountID) string {
	switch id {
	case b.bank:
		return "the funding account"
	case b.payer:
		return "the payer"
	case b.merchant:
		return "the merchant"
	}
	return string(id)
}

// check runs ledger.Check on the committed state.
func check(t *testing.T, db *sqlstore.DB) *ledger.Report {
	t.Helper()
	var r *ledger.Report
	view(t, db, func(tx *sqlstore.Tx) (err error) { r, err = ledger.Check(context.Background(), tx); return })
	return r
}

// checkBalanced asserts the ledger's invariants: per currency debits
// equal credits, and every balance is what its transfers add up to.
func checkBalanced(t *testing.T, db *sqlstore.DB) {
	t.Helper()
	r := check(t, db)
	if !r.Balanced || len(r.Mismatched) > 0 {
		t.Errorf("ledger not balanced: totals %+v, accounts that disagree with their transfers %v", r.Totals, r.Mismatched)
	}
	for c, n := range r.Net {
		if n != 0 {
			t.Errorf("%s balances sum to %d", c, n)
		}
	}
}

// testLedger writes through the real Writer — plain transfers, a hold
// posted in part — and then checks what the store does with the result:
// it keeps each transfer's balances for point-in-time reads, refuses to
// change or drop a transfer or audit leaf, commits nothing of a failed
// transaction, and lets ledger.Check find a tampered balance.
func testLedger(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	w := openWriter(t, db)
	b := openBooks(t, w, newTenant(t, db))
	hold := b.xfr(b.payer, b.merchant, 200)
	hold.Flags = ledger.Pending
	b.apply(t, b.xfr(b.bank, b.payer, 1000))
	b.apply(t, b.xfr(b.payer, b.merchant, 300), hold)
	b.apply(t, &ledger.Transfer{ID: newXfr(), Tenant: b.tenant, Flags: ledger.PostPending, PendingID: hold.ID, Amount: 150})
	b.wantBalance(t, db, b.bank, ledger.Balance{DebitsPosted: 1000})
	b.wantBalance(t, db, b.payer, ledger.Balance{CreditsPosted: 1000, DebitsPosted: 450})
	b.wantBalance(t, db, b.merchant, ledger.Balance{CreditsPosted: 450})
	checkBalanced(t, db)

	// The payer's history, and its balance after each transfer.
	wantHistory := []ledger.Balance{
		{CreditsPosted: 1000},
		{CreditsPosted: 1000, DebitsPosted: 300},
		{CreditsPosted: 1000, DebitsPosted: 300, DebitsPending: 200},
		{CreditsPosted: 1000, DebitsPosted: 450},
	}
	view(t, db, func(tx *sqlstore.Tx) error {
		ts, err := tx.Transfers(ctx, b.tenant, ledger.TransferFilter{Account: b.payer})
		if err != nil {
			return err
		}
		if len(ts) != len(wantHistory) {
			t.Fatalf("the payer has %d transfers, want %d", len(ts), len(wantHistory))
		}
		for i, x := range ts {
			if i > 0 && x.Seq <= ts[i-1].Seq {
				t.Errorf("transfer %d has sequence number %d after %d", i, x.Seq, ts[i-1].Seq)
			}
			got, err := ledger.BalanceAt(ctx, tx, b.tenant, b.payer, ledger.AsOf{Seq: x.Seq})
			if err != nil {
				return err
			}
			if got != wantHistory[i] {
				t.Errorf("the payer's balance after transfer %d: %+v, want %+v", i, got, wantHistory[i])
			}
		}
		return nil
	})

	testAppendOnly(t, db, b)
	testFailedUpdate(t, db, b)

	// Tampering last: one posted credit more than the transfers made.
	if err := exec(db, `UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE id = ?`, b.payer); err != nil {
		t.Fatal(err)
	}
	r := check(t, db)
	if r.Balanced || !slices.Equal(r.Mismatched, []iotpay.AccountID{b.payer}) || r.Net["EUR"] != 1 {
		t.Errorf("tampering not found: balanced %v, mismatched %v, net %v; want unbalanced, the payer, EUR 1", r.Balanced, r.Mismatched, r.Net)
	}
}

// testAppendOnly: UPDATE, DELETE and (on PostgreSQL) TRUNCATE of the
// ledger's transfers and the audit log are refused by their triggers.
func testAppendOnly(t *testing.T, db *sqlstore.DB, b *books) {
	ctx := context.Background()
	for i := range 3 {
		mustUpdate(t, db, func(tx *sqlstore.Tx) error {
			_, err := tx.AppendLeaf(ctx, []byte{byte(i)}, audit.LeafHash([]byte{byte(i)}), time.Now())
			return err
		})
	}
	const xfrs, leaves = "ledger transfers are immutable", "the audit log is append-only"
	type refusal struct {
		stmt string
		args []any
		want string // the trigger's message
	}
	refused := []refusal{
		{`UPDATE ledger_transfers SET amount = 1`, nil, xfrs},
		{`UPDATE ledger_transfers SET d_dpo = d_dpo + 1 WHERE debit = ?`, []any{b.payer}, xfrs},
		{`DELETE FROM ledger_transfers`, nil, xfrs},
		{`UPDATE audit_leaves SET data = ? WHERE idx = 1`, []any{[]byte{0}}, leaves},
		{`DELETE FROM audit_leaves WHERE idx = 2`, nil, leaves},
	}
	if onPostgres(db) { // row triggers do not see TRUNCATE: a statement trigger must
		refused = append(refused, refusal{`TRUNCATE ledger_transfers`, nil, xfrs}, refusal{`TRUNCATE audit_leaves`, nil, leaves})
	}
	for _, c := range refused {
		if err := exec(db, c.stmt, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want refused: %s", c.stmt, err, c.want)
		}
	}
	view(t, db, func(tx *sqlstore.Tx) error {
		for i := range uint64(3) {
			e, err := tx.Leaf(ctx, i)
			if err != nil {
				return err
			}
			if !bytes.Equal(e.Data, []byte{byte(i)}) {
				t.Errorf("leaf %d changed: %x", i, e.Data)
			}
		}
		ts, err := tx.Transfers(ctx, b.tenant, ledger.TransferFilter{})
		if len(ts) != 4 {
			t.Errorf("%d transfers after refused changes, want 4", len(ts))
		}
		return err
	})
	b.wantBalance(t, db, b.payer, ledger.Balance{CreditsPosted: 1000, DebitsPosted: 450})
	checkBalanced(t, db)
}

// testFailedUpdate writes to every table in a transaction whose function
// fails: none of it is committed.
func testFailedUpdate(t *testing.T, db *sqlstore.DB, b *books) {
	ctx := context.Background()
	now := ms(time.Now())
	boom := errors.New("boom")
	ghost := &ledger.Account{ID: iotpay.AccountID(newID(iotpay.PrefixAccount)), Tenant: b.tenant, Currency: "EUR",
		Normal: ledger.Credit, Kind: payment.KindPayer, Name: "ghost", Created: now}
	x := &ledger.Transfer{Seq: 1 << 40, ID: newXfr(), Tenant: b.tenant, Debit: b.payer, Credit: ghost.ID, Amount: 5,
		Currency: "EUR", Time: now, DebitBalance: ledger.Balance{CreditsPosted: 1000, DebitsPosted: 455}}
	payer := &ledger.Account{ID: b.payer, Balance: x.DebitBalance}
	ten := iotpay.TenantID(newID(iotpay.PrefixTenant))
	pay := newPayment(b.tenant, iotpay.DeviceID(newID(iotpay.PrefixDevice)), "", iotpay.PaymentID(newID(iotpay.PrefixPayment)), now)
	idem := &payment.IdempotencyRecord{Tenant: b.tenant, Key: "k", RequestHash: []byte{1}, Body: []byte{2}, Created: now}
	err := update(db, func(tx *sqlstore.Tx) error {
		_, err := tx.AppendLeaf(ctx, []byte("x"), audit.LeafHash([]byte("x")), now)
		for _, err := range []error{err, tx.InsertAccounts(ctx, []*ledger.Account{ghost}), tx.InsertTransfers(ctx, []*ledger.Transfer{x}),
			tx.UpdateBalances(ctx, []*ledger.Account{payer}), tx.CreateTenant(ctx, &registry.Tenant{ID: ten, Name: "t", Created: now}),
			tx.CreatePayment(ctx, pay), tx.PutIdempotency(ctx, idem)} {
			if err != nil {
				return err
			}
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want fn's error", err)
	}
	view(t, db, func(tx *sqlstore.Tx) error {
		_, errA := tx.Account(ctx, b.tenant, ghost.ID)
		_, errX := tx.Transfer(ctx, b.tenant, x.ID)
		_, errP := tx.Payment(ctx, b.tenant, pay.ID)
		_, errI := tx.Idempotency(ctx, b.tenant, idem.Key)
		for what, err := range map[string]error{"account": errA, "transfer": errX, "payment": errP, "idempotency record": errI} {
			wantCode(t, "the rolled back "+what, err, iotpay.ENOTFOUND)
		}
		n, err := tx.LogSize(ctx)
		if n != 3 {
			t.Errorf("log size %d after a rolled back append, want 3", n)
		}
		return err
	})
	if n, err := db.TenantCount(ctx); err != nil || n != 1 {
		t.Errorf("tenants = %d, %v after a rolled back create", n, err)
	}
	b.wantBalance(t, db, b.payer, ledger.Balance{CreditsPosted: 1000, DebitsPosted: 450})
	checkBalanced(t, db)
}

// testConcurrentWriters pays from many goroutines through one Writer, each
// payment's transfer and record in one operation: the writer neither loses
// an update nor lets the payer overdraw, and every record has its
// transfer.
func testConcurrentWriters(t *testing.T, db *sqlstore.DB) {
	const writers, each, amount = 16, 25, 7
	const funded = writers * each * amount / 2 // enough for half of the payments
	ctx := context.Background()
	w := openWriter(t, db)
	b := openBooks(t, w, newTenant(t, db))
	b.apply(t, b.xfr(b.bank, b.payer, funded))
	dev := iotpay.DeviceID(newID(iotpay.PrefixDevice))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var paid []iotpay.PaymentID
	declined := 0
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				p := newPayment(b.tenant, dev, "", iotpay.PaymentID(newID(iotpay.PrefixPayment)), ms(time.Now()))
				p.RequestID, p.Payer, p.Merchant = fmt.Sprintf("rq-%d-%d", g, i), b.payer, b.merchant
				p.Status, p.Amount, p.Captured, p.Held, p.Hold = payment.StatusCaptured, amount, amount, 0, ""
				err := w.Do(ctx, func(bt *ledger.Batch[*sqlstore.Tx]) error {
					x := b.xfr(b.payer, b.merchant, amount)
					x.Ref = string(p.ID)
					errs, err := bt.Apply(x)
					if err != nil {
						return err
					}
					if errs[0] != nil {
						return errs[0] // a refusal, before anything is written
					}
					return bt.Tx.CreatePayment(bt.Context(), p)
				})
				mu.Lock()
				switch {
				case err == nil:
					paid = append(paid, p.ID)
				case errors.Is(err, ledger.ErrInsufficientFunds):
					declined++
				default:
					t.Errorf("payment: %v", err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(paid) != funded/amount || len(paid)+declined != writers*each {
		t.Errorf("paid %d, declined %d; want %d paid of %d", len(paid), declined, funded/amount, writers*each)
	}
	b.wantBalance(t, db, b.payer, ledger.Balance{CreditsPosted: funded, DebitsPosted: funded})
	b.wantBalance(t, db, b.merchant, ledger.Balance{CreditsPosted: funded})
	checkBalanced(t, db)
	// The merchant's transfers are for exactly the recorded payments.
	view(t, db, func(tx *sqlstore.Tx) error {
		ps, err := tx.Payments(ctx, b.tenant, payment.Filter{})
		if err != nil {
			return err
		}
		ts, err := tx.Transfers(ctx, b.tenant, ledger.TransferFilter{Account: b.merchant})
		if err != nil {
			return err
		}
		var recorded, refs []iotpay.PaymentID
		for _, p := range ps {
			recorded = append(recorded, p.ID)
		}
		for _, x := range ts {
			refs = append(refs, iotpay.PaymentID(x.Ref))
		}
		slices.Sort(paid)
		slices.Sort(recorded)
		slices.Sort(refs)
		same(t, "payments recorded (want: those paid)", paid, recorded)
		same(t, "payments the merchant's transfers are for (want: those paid)", paid, refs)
		return nil
	})
	s := w.Stats()
	t.Logf("%d operations in %d batches", s.Ops, s.Batches)
}

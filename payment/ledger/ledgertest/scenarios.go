package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/ledger"
)

var bg = context.Background()

func testAccounts[T TxAll](x *h[T]) {
	a := &ledger.Account{ID: iotpay.AccountID(iotpay.NewID(iotpay.PrefixAccount, time.Now(), nil)), Tenant: x.tenant,
		Currency: "EUR", Normal: ledger.Credit, Kind: "payer", Name: "Alice's wallet"}
	if err := x.w.CreateAccounts(bg, a); err != nil {
		x.t.Fatal(err)
	}
	if a.Created.IsZero() {
		x.t.Fatal("created time not set")
	}
	again := *a
	again.Created = time.Time{}
	if err := x.w.CreateAccounts(bg, &again); err != nil {
		x.t.Fatalf("same account again: %v", err)
	}
	other := again
	other.Name = "Bob"
	if err := x.w.CreateAccounts(bg, &other); !errors.Is(err, ledger.ErrAccountExists) {
		x.t.Fatalf("same id, other fields: %v", err)
	}
	bad := []ledger.Account{
		{ID: "acc_x", Tenant: x.tenant, Currency: "EUR", Normal: ledger.Credit},
		{Tenant: x.tenant, Currency: "XXX", Normal: ledger.Credit},
		{Tenant: x.tenant, Currency: "EUR"},
		{Tenant: x.tenant, Currency: "EUR", Normal: ledger.Credit, Name: "nul\x00"},
		{Tenant: x.tenant, Currency: "EUR", Normal: ledger.Credit, Flags: 1 << 9},
		{Currency: "EUR", Normal: ledger.Credit},
		{Tenant: x.tenant, Currency: "EUR", Normal: ledger.Credit, Balance: ledger.Balance{CreditsPosted: 5}},
	}
	for i, b := range bad {
		if b.ID == "" {
			b.ID = iotpay.AccountID(iotpay.NewID(iotpay.PrefixAccount, time.Now(), nil))
		}
		if err := x.w.CreateAccounts(bg, &b); iotpay.ErrorCode(err) != iotpay.EINVALID {
			x.t.Fatalf("bad account %d: %v", i, err)
		}
	}
	x.restart()
	var got *ledger.Account
	err := x.db.View(bg, func(tx T) (err error) { got, err = tx.Account(bg, x.tenant, a.ID); return })
	if err != nil || got.Name != a.Name || got.Normal != ledger.Credit || got.Kind != "payer" || !got.Created.Equal(a.Created) {
		x.t.Fatalf("stored account %+v, %v", got, err)
	}
	err = x.db.View(bg, func(tx T) (err error) { _, err = tx.Account(bg, "ten_other", a.ID); return })
	if iotpay.ErrorCode(err) != iotpay.ENOTFOUND {
		x.t.Fatalf("another tenant's account: %v", err)
	}
}

func testTransfers[T TxAll](x *h[T]) {
	bank, wallet := x.fund(1000)
	merchant := x.account("merchant", ledger.Credit, "EUR")
	x.wantBalance(bank, ledger.Balance{DebitsPosted: 1000})
	x.wantBalance(wallet, ledger.Balance{CreditsPosted: 1000})
	t := x.xfr(wallet, merchant, 300)
	x.ok(t)
	if t.Seq == 0 || t.Time.IsZero() || t.DebitBalance != (ledger.Balance{CreditsPosted: 1000, DebitsPosted: 300}) {
		x.t.Fatalf("applied transfer not filled in: %+v", t)
	}
	x.fails(ledger.ErrInsufficientFunds, x.xfr(wallet, merchant, 701))
	x.wantBalance(wallet, ledger.Balance{CreditsPosted: 1000, DebitsPosted: 300})
	x.wantBalance(merchant, ledger.Balance{CreditsPosted: 300})

	bank2 := x.account("funding", ledger.Debit, "EUR")
	x.fails(ledger.ErrExceedsDebits, x.xfr(wallet, bank2, 1))
	usd := x.account("payer", ledger.Credit, "USD")
	x.fails(ledger.ErrCurrencyMismatch, x.xfr(wallet, usd, 1))
	x.fails(ledger.ErrSameAccount, x.xfr(wallet, wallet, 1))
	x.fails(ledger.ErrAmountInvalid, x.xfr(wallet, merchant, 0))
	x.fails(ledger.ErrAmountInvalid, x.xfr(wallet, merchant, -5))
	x.fails(ledger.ErrAmountInvalid, x.xfr(wallet, merchant, ledger.AmountMax+1))
	x.fails(ledger.ErrAccountNotFound, x.xfr(wallet, iotpay.AccountID(iotpay.NewID(iotpay.PrefixAccount, time.Now(), nil)), 1))
	t = x.xfr(wallet, merchant, 1)
	t.ID = "xfr_bad"
	x.fails(ledger.ErrIDInvalid, t)
	t = x.xfr(wallet, merchant, 1)
	t.Flags = ledger.Expired
	x.fails(ledger.ErrFlagsInvalid, t)
	t = x.xfr(wallet, merchant, 1)
	t.Flags = ledger.Pending | ledger.PostPending
	x.fails(ledger.ErrFlagsInvalid, t)
	t = x.xfr(wallet, merchant, 1)
	t.Kind = "tab\there"
	x.fails(ledger.ErrFieldInvalid, t)
	t = x.xfr(wallet, merchant, 1)
	t.Timeout = time.Minute
	x.fails(ledger.ErrFieldInvalid, t)
	t = x.xfr(wallet, merchant, 1)
	t.Tenant = "ten_someone_else"
	x.fails(ledger.ErrAccountNotFound, t)

	over := &ledger.Account{ID: iotpay.AccountID(iotpay.NewID(iotpay.PrefixAccount, time.Now(), nil)), Tenant: x.tenant,
		Currency: "EUR", Normal: ledger.Credit, Flags: ledger.Overdraft, Kind: "settlement", Name: "settlement"}
	if err := x.w.CreateAccounts(bg, over); err != nil {
		x.t.Fatal(err)
	}
	x.ok(x.xfr(over.ID, merchant, 5000))
	x.wantBalance(over.ID, ledger.Balance{DebitsPosted: 5000})
	x.wantBalance(wallet, ledger.Balance{CreditsPosted: 1000, DebitsPosted: 300})
}

func testIdempotency[T TxAll](x *h[T]) {
	_, wallet := x.fund(1000)
	merchant := x.account("merchant", ledger.Credit, "EUR")
	t1 := x.xfr(wallet, merchant, 100)
	t1.Ref = "pay_1"
	req := *t1
	x.ok(t1)
	again := req
	x.ok(&again)
	if again.Seq != t1.Seq {
		x.t.Fatalf("repeat got seq %d, original %d", again.Seq, t1.Seq)
	}
	diff := req
	diff.Amount = 101
	x.fails(ledger.ErrExists, &diff)
	diff = req
	diff.Ref = "pay_2"
	x.fails(ledger.ErrExists, &diff)

	t2 := x.xfr(wallet, merchant, 50)
	dup := *t2
	x.ok(t2, &dup)
	if dup.Seq != t2.Seq {
		x.t.Fatalf("repeat in one call: seq %d and %d", t2.Seq, dup.Seq)
	}
	x.wantBalance(wallet, ledger.Balance{CreditsPosted: 1000, DebitsPosted: 150})

	x.restart()
	again = req
	x.ok(&again)
	if again.Seq != t1.Seq {
		x.t.Fatalf("repeat after restart got seq %d, original %d", again.Seq, t1.Seq)
	}
	x.wantBalance(wallet, ledger.Balance{CreditsPosted: 1000, DebitsPosted: 150})

	// A refused transfer is not recorded: the same id may succeed later.
	t3 := x.xfr(wallet, merchant, 900)
	req3 := *t3
	x.fails(ledger.ErrInsufficientFunds, t3)
	bank := x.account("funding", ledger.Debit, "EUR")
	x.ok(x.xfr(bank, wallet, 100))
	t3 = &req3
	x.ok(t3)
	x.wantBalance(wallet, ledger.Balance{CreditsPosted: 1100, DebitsPosted: 1050})
}

func testLinked[T TxAll](x *h[T]) {
	_, wallet := x.fund(1000)
	merchant := x.account("merchant", ledger.Credit, "EUR")
	fees := x.account("fees", ledger.Credit, "EUR")
	a, b, c := x.xfr(wallet, merchant, 100), x.xfr(wallet, fees, 10), x.xfr(wallet, merchant, 1_000_000)
	a.Flags, b.Flags = ledger.Linked, ledger.Linked
	errs := x.fails(ledger.ErrInsufficientFunds, a, b, c)
	if !errors.Is(errs[0], ledger.ErrLinkedFailed) || !errors.Is(errs[1], ledger.ErrLinkedFailed) {
		x.t.Fatalf("chain errors %v", errs)
	}
	if a.Seq != 0 || b.Seq != 0 {
		x.t.Fatal("a refused chain's transfers were filled in")
	}
	x.wantBalance(wallet, ledger.Balance{CreditsPosted: 1000})
	x.wantBalance(fees, ledger.Balance{})

	a, b, c = x.xfr(wallet, merchant, 90), x.xfr(wallet, fees, 7), x.xfr(wallet, fees, 3)
	a.Flags, b.Flags = ledger.Linked, ledger.Linked
	x.ok(a, b, c)
	if b.Seq != a.Seq+1 || c.Seq != b.Seq+1 {
		x.t.Fatalf("chain seqs %d %d %d", a.Seq, b.Seq, c.Seq)
	}
	x.wantBalance(wallet, ledger.Balance{CreditsPosted: 1000, DebitsPosted: 100})
	x.wantBalance(fees, ledger.Balance{CreditsPosted: 10})

	open := x.xfr(wallet, merchant, 1)
	open.Flags = ledger.Linked
	x.fails(ledger.ErrLinkedOpen, x.xfr(wallet, merchant, 1), open)
	x.wantBalance(wallet, ledger.Balance{CreditsPosted: 1000, DebitsPosted: 101})

	// Two chains in one call stand alone; an id repeated inside a chain
	// with other flags fails the chain and leaves nothing behind.
	d := x.xfr(wallet, merchant, 5)
	d.Flags = ledger.Linked
	d2 := *d
	d2.Flags = 0
	e := x.xfr(wallet, merchant, 6)
	errs = x.submit(d, &d2, e)
	if !errors.Is(errs[0], ledger.ErrLinkedFailed) || !errors.Is(errs[1], ledger.ErrExists) || errs[2] != nil {
		x.t.Fatalf("errors %v", errs)
	}
	x.wantBalance(wallet, ledger.Balance{CreditsPosted: 1000, DebitsPosted: 107})
	d.Flags = 0
	x.ok(d)
	x.wantBalance(wallet, ledger.Balance{CreditsPosted: 1000, DebitsPosted: 112})
}

func (x *h[T]) hold(from, to iotpay.AccountID, amount int64, timeout time.Duration) *ledger.Transfer {
	t := x.xfr(from, to, amount)
	t.Flags, t.Timeout = ledger.Pending, timeout
	return t
}

func (x *h[T]) resolve(p *ledger.Transfer, flag ledger.TransferFlags, amount int64) *ledger.Transfer {
	return &ledger.Transfer{ID: newXfr(), Tenant: x.tenant, Flags: flag, PendingID: p.ID, Amount: amount, Kind: "test"}
}

func testPending[T TxAll](x *h[T]) {
	_, wallet := x.fund(1000)
	merchant := x.account("merchant", ledger.Credit, "EUR")
	h1 := x.hold(wallet, merchant, 400, 0)
	x.ok(h1)
	x.wantBalance(wallet, ledger.Balance{CreditsPosted: 1000, DebitsPending: 400})
	x.wantBalance(merchant, ledger.Balance{CreditsPending: 400})
	x.fails(ledger.ErrInsufficientFunds, x.xfr(wallet, merchant, 601))
	p := x.resolve(h1, ledger.PostPending, 250)
	x.ok(p)
	if p.Debit != wallet || p.Credit != merchant || p.Currency != "EUR" {
		x.t.Fatalf("post not filled from its hold: %+v", p)
	}
	x.wantBalance(wallet, ledger.Balance{CreditsPosted: 1000, DebitsPosted: 250})
	x.wantBalance(merchant, ledger.Balance{CreditsPosted: 250})
	x.fails(ledger.ErrPendingPosted, x.resolve(h1, ledger.PostPending, 0))
	x.fails(ledger.ErrPendingPosted, x.resolve(h1, ledger.VoidPending, 0))

	h2 := x.hold(wallet, merchant, 100, 0)
	x.ok(h2)
	x.ok(x.resolve(h2, ledger.VoidPending, 0))
	x.fails(ledger.ErrPendingVoided, x.resolve(h2, ledger.PostPending, 0))
	x.wantBalance(wallet, ledger.Balance{CreditsPosted: 1000, DebitsPosted: 250})

	h3 := x.hold(wallet, merchant, 100, 0)
	x.ok(h3)
	x.fails(ledger.ErrExceedsPending, x.resolve(h3, ledger.PostPending, 150))
	wrong := x.resolve(h3, ledger.PostPending, 50)
	wrong.Debit = merchant
	x.fails(ledger.ErrPendingMismatch, wrong)
	x.fails(ledger.ErrPendingMismatch, x.resolve(h3, ledger.VoidPending, 40))
	x.fails(ledger.ErrPendingNotFound, x.resolve(&ledger.Transfer{ID: newXfr()}, ledger.PostPending, 0))
	other := x.resolve(h3, ledger.PostPending, 0)
	other.Tenant = "ten_other"
	x.fails(ledger.ErrPendingNotFound, other)
	p3 := x.resolve(h3, ledger.PostPending, 0)
	req := *p3
	x.ok(p3)
	if p3.Amount != 100 {
		x.t.Fatalf("full post amount %d", p3.Amount)
	}
	x.ok(&req) // the same post again: the original result
	x.wantBalance(wallet, ledger.Balance{CreditsPosted: 1000, DebitsPosted: 350})

	h4 := x.hold(wallet, merchant, 100, 0)
	x.ok(h4)
	x.restart()
	x.fails(ledger.ErrInsufficientFunds, x.xfr(wallet, merchant, 551))
	x.ok(x.resolve(h4, ledger.PostPending, 60))
	x.restart()
	x.fails(ledger.ErrPendingPosted, x.resolve(h4, ledger.PostPending, 0))
	x.wantBalance(wallet, ledger.Balance{CreditsPosted: 1000, DebitsPosted: 410})
	x.wantBalance(merchant, ledger.Balance{CreditsPosted: 410})
}

func testExpiry[T TxAll](x *h[T]) {
	_, wallet := x.fund(1000)
	merchant := x.account("merchant", ledger.Credit, "EUR")
	h1 := x.hold(wallet, merchant, 200, time.Minute)
	h1.Ref = "pay_h1"
	x.ok(h1)
	if !h1.ExpiresAt.Equal(x.clock.Now().Add(time.Minute)) {
		x.t.Fatalf("expires at %v", h1.ExpiresAt)
	}
	x.clock.Add(30 * time.Second)
	if err := x.w.Expire(bg); err != nil {
		x.t.Fatal(err)
	}
	x.wantBalance(wallet, ledger.Balance{CreditsPosted: 1000, DebitsPending: 200})
	x.clock.Add(31 * time.Second)
	if err := x.w.Expire(bg); err != nil {
		x.t.Fatal(err)
	}
	if x.expired.Load() != 1 {
		x.t.Fatalf("%d expired", x.expired.Load())
	}
	x.wantBalance(wallet, ledger.Balance{CreditsPosted: 1000})
	x.fails(ledger.ErrPendingExpired, x.resolve(h1, ledger.PostPending, 0))
	var ts []*ledger.Transfer
	err := x.db.View(bg, func(tx T) (err error) {
		ts, err = tx.Transfers(bg, x.tenant, ledger.TransferFilter{Ref: "pay_h1"})
		return
	})
	if err != nil || len(ts) != 2 || ts[1].Flags != ledger.Expired || ts[1].PendingID != h1.ID || ts[1].Amount != 200 {
		x.t.Fatalf("expiry record %+v %v", ts, err)
	}

	h2 := x.hold(wallet, merchant, 300, time.Minute)
	x.ok(h2)
	x.restart()
	x.clock.Add(2 * time.Minute)
	// Any batch expires what is due before its operations run.
	x.fails(ledger.ErrPendingExpired, x.resolve(h2, ledger.PostPending, 0))
	x.wantBalance(wallet, ledger.Balance{CreditsPosted: 1000})
	if x.expired.Load() != 2 {
		x.t.Fatalf("%d expired after restart", x.expired.Load())
	}
}

func testPointInTime[T TxAll](x *h[T]) {
	start := x.clock.Now()
	_, wallet := x.fund(1000)
	merchant := x.account("merchant", ledger.Credit, "EUR")
	x.clock.Add(time.Hour)
	t2 := x.xfr(wallet, merchant, 100)
	x.ok(t2)
	x.clock.Add(time.Hour)
	h := x.hold(wallet, merchant, 50, 0)
	x.ok(h)
	x.clock.Add(time.Hour)
	t3 := x.xfr(wallet, merchant, 200)
	x.ok(t3)
	at := func(asOf ledger.AsOf) ledger.Balance {
		x.t.Helper()
		var b ledger.Balance
		err := x.db.View(bg, func(tx T) (err error) { b, err = ledger.BalanceAt(bg, tx, x.tenant, wallet, asOf); return })
		if err != nil {
			x.t.Fatal(err)
		}
		return b
	}
	for _, c := range []struct {
		asOf ledger.AsOf
		want ledger.Balance
	}{
		{ledger.AsOf{Seq: t2.Seq - 1}, ledger.Balance{CreditsPosted: 1000}},
		{ledger.AsOf{Seq: t2.Seq}, ledger.Balance{CreditsPosted: 1000, DebitsPosted: 100}},
		{ledger.AsOf{Seq: h.Seq}, ledger.Balance{CreditsPosted: 1000, DebitsPosted: 100, DebitsPending: 50}},
		{ledger.AsOf{Seq: t3.Seq}, ledger.Balance{CreditsPosted: 1000, DebitsPosted: 300, DebitsPending: 50}},
		{ledger.AsOf{Time: start.Add(-time.Second)}, ledger.Balance{}},
		{ledger.AsOf{Time: start}, ledger.Balance{CreditsPosted: 1000}},
		{ledger.AsOf{Time: start.Add(90 * time.Minute)}, ledger.Balance{CreditsPosted: 1000, DebitsPosted: 100}},
		{ledger.AsOf{Time: start.Add(24 * time.Hour)}, ledger.Balance{CreditsPosted: 1000, DebitsPosted: 300, DebitsPending: 50}},
	} {
		if got := at(c.asOf); got != c.want {
			x.t.Errorf("as of %+v: got %+v, want %+v", c.asOf, got, c.want)
		}
	}
	err := x.db.View(bg, func(tx T) (err error) {
		_, err = ledger.BalanceAt(bg, tx, x.tenant, wallet, ledger.AsOf{Seq: 1, Time: start})
		return
	})
	if iotpay.ErrorCode(err) != iotpay.EINVALID {
		x.t.Fatalf("both seq and time: %v", err)
	}
}

func testListing[T TxAll](x *h[T]) {
	_, wallet := x.fund(1000)
	merchant := x.account("merchant", ledger.Credit, "EUR")
	other := x.account("merchant", ledger.Credit, "EUR")
	var want []iotpay.TransferID
	for i := range 7 {
		t := x.xfr(wallet, merchant, int64(i+1))
		t.Ref = fmt.Sprintf("pay_%d", i%2)
		x.ok(t)
		want = append(want, t.ID)
	}
	x.ok(x.xfr(wallet, other, 1))
	var got []iotpay.TransferID
	var after int64
	for pages := 0; ; pages++ {
		var ts []*ledger.Transfer
		err := x.db.View(bg, func(tx T) (err error) {
			ts, err = tx.Transfers(bg, x.tenant, ledger.TransferFilter{Account: merchant, AfterSeq: after, Limit: 3})
			return
		})
		if err != nil {
			x.t.Fatal(err)
		}
		if len(ts) == 0 {
			if pages != 3 {
				x.t.Fatalf("%d pages", pages)
			}
			break
		}
		for _, t := range ts {
			got = append(got, t.ID)
		}
		after = ts[len(ts)-1].Seq
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		x.t.Fatalf("paged %v, want %v", got, want)
	}
	var ts []*ledger.Transfer
	var as []*ledger.Account
	err := x.db.View(bg, func(tx T) (err error) {
		if ts, err = tx.Transfers(bg, x.tenant, ledger.TransferFilter{Ref: "pay_1"}); err != nil {
			return err
		}
		if _, err = tx.Transfer(bg, x.tenant, want[0]); err != nil {
			return err
		}
		if _, err = tx.Transfer(bg, "ten_other", want[0]); iotpay.ErrorCode(err) != iotpay.ENOTFOUND {
			return fmt.Errorf("another tenant's transfer: %v", err)
		}
		as, err = tx.Accounts(bg, x.tenant, ledger.AccountFilter{Kind: "merchant", Limit: 1})
		if err != nil || len(as) != 1 {
			return fmt.Errorf("accounts %v %v", as, err)
		}
		as, err = tx.Accounts(bg, x.tenant, ledger.AccountFilter{Kind: "merchant", After: as[0].ID})
		return err
	})
	if err != nil {
		x.t.Fatal(err)
	}
	if len(ts) != 3 || len(as) != 1 {
		x.t.Fatalf("%d transfers with ref, %d accounts on page 2", len(ts), len(as))
	}
}

func testConcurrent[T TxAll](x *h[T]) {
	bank := x.account("funding", ledger.Debit, "EUR")
	hot := x.account("merchant", ledger.Credit, "EUR")
	var wallets []iotpay.AccountID
	for range 20 {
		w := x.account("payer", ledger.Credit, "EUR")
		x.ok(x.xfr(bank, w, 10_000))
		wallets = append(wallets, w)
	}
	const workers, each = 16, 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	var total int64
	for g := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range each {
				amt := r.Int64N(200) + 1
				errs, err := x.w.Transfer(bg, []*ledger.Transfer{x.xfr(wallets[r.IntN(len(wallets))], hot, amt)})
				if err != nil {
					x.t.Error(err)
					return
				}
				if errs[0] == nil {
					mu.Lock()
					total += amt
					mu.Unlock()
				} else if !errors.Is(errs[0], ledger.ErrInsufficientFunds) {
					x.t.Error(errs[0])
				}
			}
		})
	}
	wg.Wait()
	x.wantBalance(hot, ledger.Balance{CreditsPosted: total})
	s := x.w.Stats()
	x.t.Logf("%d operations in %d batches", s.Ops, s.Batches)
}

func testFailingOperation[T TxAll](x *h[T]) {
	_, wallet := x.fund(1000)
	merchant := x.account("merchant", ledger.Credit, "EUR")
	var wg sync.WaitGroup
	errs := make([]error, 30)
	for i := range errs {
		wg.Go(func() {
			errs[i] = x.w.Do(bg, func(b *ledger.Batch[T]) error {
				es, err := b.Apply(x.xfr(wallet, merchant, 1))
				if err != nil {
					return err
				}
				if es[0] != nil {
					return es[0]
				}
				switch i % 10 {
				case 3:
					return errors.New("boom") // an operating failure: fails its batch
				case 5:
					panic("bug")
				case 7:
					return iotpay.Errorf(iotpay.EDECLINED, "changed its mind") // a refusal
				}
				return nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		switch i % 10 {
		case 3, 5:
			if iotpay.ErrorCode(err) != iotpay.EINTERNAL {
				x.t.Fatalf("op %d: %v", i, err)
			}
		case 7:
			if iotpay.ErrorCode(err) != iotpay.EDECLINED {
				x.t.Fatalf("op %d: %v", i, err)
			}
		default:
			if err != nil {
				x.t.Fatalf("op %d: %v", i, err)
			}
		}
	}
	x.wantBalance(merchant, ledger.Balance{CreditsPosted: 21})
}

package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/ledger"
)

// discard is a store that keeps nothing: it isolates the writer's own cost.
type discard struct{}

func (discard) Update(ctx context.Context, fn func(discard) error) error { return fn(discard{}) }
func (discard) LookupTransfers(context.Context, []iotpay.TransferID) ([]*ledger.Transfer, error) {
	return nil, nil
}
func (discard) Resolution(context.Context, iotpay.TransferID) (*ledger.Transfer, error) {
	return nil, iotpay.Errorf(iotpay.ENOTFOUND, "none")
}
func (discard) InsertAccounts(context.Context, []*ledger.Account) error   { return nil }
func (discard) InsertTransfers(context.Context, []*ledger.Transfer) error { return nil }
func (discard) UpdateBalances(context.Context, []*ledger.Account) error   { return nil }
func (discard) LoadLedger(context.Context) ([]*ledger.Account, []*ledger.Transfer, int64, error) {
	return nil, nil, 0, nil
}

// BenchmarkWriterApply measures the writer's own work for one transfer —
// submission, the in-memory decision, journaling and batching — with a
// store that keeps nothing, from many goroutines so batches form as they
// would. What a real store adds is in BENCHMARKS.md (iotpay bench ledger).
func BenchmarkWriterApply(b *testing.B) {
	ctx := context.Background()
	w, err := ledger.Open(ctx, discard{}, ledger.Config[discard]{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	ten := iotpay.TenantID("ten_bench")
	acct := func(normal ledger.Side) iotpay.AccountID {
		a := &ledger.Account{ID: iotpay.AccountID(iotpay.NewID(iotpay.PrefixAccount, time.Now(), nil)), Tenant: ten,
			Currency: "EUR", Normal: normal, Kind: "k", Name: "n"}
		if err := w.CreateAccounts(ctx, a); err != nil {
			b.Fatal(err)
		}
		return a.ID
	}
	bank, wallet, shop := acct(ledger.Debit), acct(ledger.Credit), acct(ledger.Credit)
	if _, err := w.Transfer(ctx, []*ledger.Transfer{{ID: iotpay.TransferID(iotpay.NewID(iotpay.PrefixTransfer, time.Now(), nil)),
		Tenant: ten, Debit: bank, Credit: wallet, Amount: 1 << 45, Currency: "EUR"}}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t := &ledger.Transfer{ID: iotpay.TransferID(iotpay.NewID(iotpay.PrefixTransfer, time.Now(), nil)), Tenant: ten,
				Debit: wallet, Credit: shop, Amount: 1, Currency: "EUR"}
			errs, err := w.Transfer(ctx, []*ledger.Transfer{t})
			if err != nil || errs[0] != nil {
				b.Fatal(err, errs)
			}
		}
	})
}

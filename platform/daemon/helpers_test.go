package daemon_test

import (
	"context"
	"testing"

	"github.com/iotpay/iotpay/device"
	"github.com/iotpay/iotpay/wire"
)

// assertUnmoved fails unless the payer's and merchant's balances are payer
// and merchant and the ledger balances.
func (f *fixture) assertUnmoved(t *testing.T, payer, merchant int64) {
	t.Helper()
	if got := f.balance(f.payer); got != payer {
		t.Errorf("payer balance moved: %d, want %d", got, payer)
	}
	if got := f.balance(f.merchant); got != merchant {
		t.Errorf("merchant balance moved: %d, want %d", got, merchant)
	}
	f.assertBalanced()
}

// exchange delivers raw bytes over tr on id's channel and returns the
// platform's answer: a receipt signed in id's suite with its receipt key,
// for the hash of raw and id's device (every answer is one, garbage's
// too).
func exchange(ctx context.Context, tr device.Transport, id *device.Identity, raw []byte) (*wire.Receipt, error) {
	hash := id.Suite.Hash(raw)
	answer, err := tr.Exchange(ctx, raw, func(a []byte) bool {
		rc, err := wire.OpenReceipt(id.Suite, id.PlatformKey, a)
		return err == nil && rc.For(hash, string(id.ID))
	})
	if err != nil {
		return nil, err
	}
	return wire.OpenReceipt(id.Suite, id.PlatformKey, answer)
}

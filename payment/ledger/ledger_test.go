package ledger_test

import (
	"context"
	"testing"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/ledger"

	"github.com/iotpay/iotpay/payment/ledger/ledgertest"
)

func TestMemConformance(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) ledgertest.DB[*ledgertest.MemTx] { return ledgertest.NewMem() })
}

func TestDoInsideAnOperationFails(t *testing.T) {
	ctx := context.Background()
	w, err := ledger.Open(ctx, ledgertest.NewMem(), ledger.Config[*ledgertest.MemTx]{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var inner error
	err = w.Do(ctx, func(b *ledger.Batch[*ledgertest.MemTx]) error {
		inner = w.Do(b.Context(), func(*ledger.Batch[*ledgertest.MemTx]) error { return nil })
		return nil
	})
	if err != nil || iotpay.ErrorCode(inner) != iotpay.EINTERNAL {
		t.Fatalf("outer %v, inner %v: want the inner call refused, not a deadlock", err, inner)
	}
}

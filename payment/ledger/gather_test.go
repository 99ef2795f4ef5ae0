package ledger_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/iotpay/iotpay/payment/ledger"
	"github.com/iotpay/iotpay/payment/ledger/ledgertest"
)

// batchesOf submits n operations one after another, spaced by gap, each
// from a goroutine of its own, and returns the batches they took.
func batchesOf(t *testing.T, cfg ledger.Config[*ledgertest.MemTx], n int, gap time.Duration) int64 {
	t.Helper()
	ctx := context.Background()
	w, err := ledger.Open(ctx, ledgertest.NewMem(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	before := w.Stats().Batches
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if err := w.Do(ctx, func(*ledger.Batch[*ledgertest.MemTx]) error { return nil }); err != nil {
				t.Error(err)
			}
		})
		time.Sleep(gap)
	}
	wg.Wait()
	if got := w.Stats().Ops; got != int64(n) {
		t.Fatalf("%d operations run, want %d", got, n)
	}
	return w.Stats().Batches - before
}

// TestCommitDelayGathers: under a light load (operations arriving a few
// milliseconds apart) the writer waits CommitDelay for CommitGatherOps of
// them and commits them together; without a delay they are not gathered
// (a batch each, but for one slow enough to find another waiting); and the
// delay ends as soon as the batch is gathered.
func TestCommitDelayGathers(t *testing.T) {
	const gap = 5 * time.Millisecond
	if b := batchesOf(t, ledger.Config[*ledgertest.MemTx]{}, 4, gap); b < 2 {
		t.Errorf("without a delay: %d batches for 4 operations %v apart, want about 4", b, gap)
	}
	// A delay far longer than the gaps: all four in one batch, at once
	// the fourth is there.
	start := time.Now()
	cfg := ledger.Config[*ledgertest.MemTx]{CommitDelay: time.Minute, CommitGatherOps: 4}
	if b := batchesOf(t, cfg, 4, gap); b != 1 {
		t.Errorf("with a delay: %d batches, want 1", b)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the gathered batch waited out the delay (%v)", took)
	}
	// A delay shorter than the gaps gathers nothing more.
	cfg = ledger.Config[*ledgertest.MemTx]{CommitDelay: time.Microsecond, CommitGatherOps: 4}
	if b := batchesOf(t, cfg, 3, 20*time.Millisecond); b < 2 {
		t.Errorf("with a delay shorter than the gaps: %d batches, want about 3", b)
	}
}

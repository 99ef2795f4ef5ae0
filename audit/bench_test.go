package audit_test

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/iotpay/iotpay/audit"
	"github.com/iotpay/iotpay/audit/tlog"
	"github.com/iotpay/iotpay/store/sqlite"
	"github.com/iotpay/iotpay/store/sqlstore"
)

// BenchmarkLogSQLite measures the audit log on SQLite (synchronous=FULL):
// leaves of a payment's size appended in batches of 4096 (one commit, as
// the writer's group commit makes them), then integrated into stored tiles
// and a signed checkpoint (another commit). leaves/s counts both.
func BenchmarkLogSQLite(b *testing.B) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "iotpay.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	skey, _, _ := tlog.GenerateLogKey(origin)
	signer, _ := note.NewSigner(skey)
	c := &audit.Checkpointer{Store: sqlstore.For[audit.LogTx](db), Origin: origin, Signers: []note.Signer{signer}}
	leaf := &audit.Leaf{Kind: audit.KindPayment, Tenant: "ten_01JBENCHMARKTENANT0000000", Device: "dev_01JBENCHMARKDEVICE0000000",
		RequestID: "rq_1_01JBENCHMARK", RequestHash: make([]byte, 32), Request: make([]byte, 211), Outcome: "approved", Payment: "pay_01JBENCHMARKPAYMENT000000",
		Amount: 250, Currency: "EUR", Postings: []audit.Posting{
			{Transfer: "xfr_01JBENCHMARKTRANSFER00001", Debit: "acc_01JBENCHMARKPAYER0000000", Credit: "acc_01JBENCHMARKMERCHANT00000", Amount: 250, Currency: "EUR"},
			{Transfer: "xfr_01JBENCHMARKTRANSFER00002", Debit: "acc_01JBENCHMARKPAYER0000000", Credit: "acc_01JBENCHMARKMERCHANT00000", Amount: 250, Currency: "EUR"}}}
	const batch = 4096
	b.ResetTimer()
	start := time.Now()
	n := 0
	for n < b.N {
		err := db.Update(ctx, func(tx *sqlstore.Tx) error {
			for range batch {
				if _, err := audit.Append(ctx, tx, leaf, time.Now()); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Step(ctx); err != nil {
			b.Fatal(err)
		}
		n += batch
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "leaves/s")
}

// BenchmarkProofSQLite10M measures serving an inclusion and a consistency
// proof at 10 million leaves from the tiles stored in SQLite, as the log's
// HTTP handler does: one read transaction, the tiles read by the store.
// The tree's tiles are built once (leaf hashes only: proofs need no leaf
// data).
func BenchmarkProofSQLite10M(b *testing.B) {
	const size = 10_000_000
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "iotpay.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	in := tlog.NewIntegrator()
	batch := make([][]byte, 0, 1<<16)
	for i := uint64(0); i < size; i++ {
		batch = append(batch, audit.LeafHash(binary.BigEndian.AppendUint64(nil, i)))
		if len(batch) == cap(batch) || i == size-1 {
			tiles, err := in.Append(batch)
			if err != nil {
				b.Fatal(err)
			}
			if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.PutTiles(ctx, tiles) }); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	src := (&audit.Checkpointer{Store: sqlstore.For[audit.LogTx](db)}).Source()
	b.Run("inclusion", func(b *testing.B) {
		for i := range b.N {
			if _, err := tlog.InclusionProof(ctx, src, uint64(i*7919)%size, size); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("consistency", func(b *testing.B) {
		for i := range b.N {
			if _, err := tlog.ConsistencyProof(ctx, src, size-1-uint64(i%100000), size); err != nil {
				b.Fatal(err)
			}
		}
	})
}

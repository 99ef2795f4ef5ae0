package storetest

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit"
	"github.com/iotpay/iotpay/audit/tlog"
	"github.com/iotpay/iotpay/store/sqlstore"
)

// testAuditLog: leaves read back in order, tiles integrated from them and
// stored give the root a fresh integrator computes, a growing partial tile
// replaces its earlier width, and checkpoints are kept by size, a second
// root for a size refused.
func testAuditLog(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	now := ms(time.Now())
	const n = 600
	mustUpdate(t, db, func(tx *sqlstore.Tx) error {
		for i := range n {
			data := fmt.Appendf(nil, "leaf %d", i)
			if _, err := tx.AppendLeaf(ctx, data, audit.LeafHash(data), now); err != nil {
				return err
			}
		}
		return nil
	})
	in := tlog.NewIntegrator()
	for _, step := range []struct{ from, to uint64 }{{0, 100}, {100, 300}, {300, n}} {
		var hashes, data [][]byte
		view(t, db, func(tx *sqlstore.Tx) error {
			var err error
			if hashes, err = tx.LeafHashes(ctx, step.from, int(step.to-step.from)); err != nil {
				return err
			}
			data, err = tx.Leaves(ctx, step.from, int(step.to-step.from)+50) // asking for more is fine
			return err
		})
		if uint64(len(hashes)) != step.to-step.from || !bytes.Equal(hashes[0], audit.LeafHash(fmt.Appendf(nil, "leaf %d", step.from))) {
			t.Fatalf("leaf hashes from %d: %d of them", step.from, len(hashes))
		}
		if want := min(step.to-step.from+50, n-step.from); uint64(len(data)) != want {
			t.Fatalf("leaves from %d: %d, want %d", step.from, len(data), want)
		}
		tiles, err := in.Append(hashes)
		if err != nil {
			t.Fatal(err)
		}
		cp := audit.Checkpoint{Size: in.Size(), Root: in.Root(), Signed: fmt.Appendf(nil, "note %d\n", in.Size()), Created: now}
		mustUpdate(t, db, func(tx *sqlstore.Tx) error {
			if err := tx.PutTiles(ctx, tiles); err != nil {
				return err
			}
			return tx.PutCheckpoint(ctx, cp)
		})
		view(t, db, func(tx *sqlstore.Tx) error {
			root, err := tlog.RootHash(ctx, tx, in.Size())
			if err != nil {
				return err
			}
			if !bytes.Equal(root, in.Root()) {
				t.Errorf("size %d: root from stored tiles differs", in.Size())
			}
			latest, err := tx.LatestCheckpoint(ctx)
			if err != nil {
				return err
			}
			same(t, "latest checkpoint", &cp, latest)
			return nil
		})
	}
	// Co-signatures replace the note; another root for a size is refused.
	cosigned := audit.Checkpoint{Size: n, Root: in.Root(), Signed: []byte("note 600\n— witness sig\n"), Created: now}
	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.PutCheckpoint(ctx, cosigned) })
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.PutCheckpoint(ctx, audit.Checkpoint{Size: n, Root: make([]byte, 32), Signed: []byte("forged"), Created: now})
	})
	if iotpay.ErrorCode(err) != iotpay.ECONFLICT {
		t.Fatalf("another root for a stored size: %v, want conflict", err)
	}
	view(t, db, func(tx *sqlstore.Tx) error {
		latest, err := tx.LatestCheckpoint(ctx)
		if err == nil {
			same(t, "co-signed checkpoint", &cosigned, latest)
		}
		if _, err := tx.ReadTile(ctx, 0, 2, 89); iotpay.ErrorCode(err) != iotpay.ENOTFOUND {
			t.Errorf("a tile wider than stored: %v", err)
		}
		_, err = tx.ReadTile(ctx, 0, 2, 88)
		return err
	})
}

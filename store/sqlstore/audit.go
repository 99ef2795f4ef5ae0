package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit"
	"github.com/iotpay/iotpay/audit/tlog"
)

// AppendLeaf implements audit.Tx: leaves are numbered from 0 with no gap.
func (tx *Tx) AppendLeaf(ctx context.Context, data, hash []byte, created time.Time) (uint64, error) {
	if !tx.nextLeafKnown {
		if err := tx.row(ctx, qNextLeaf).Scan(&tx.nextLeaf); err != nil {
			return 0, err
		}
		tx.nextLeafKnown = true
	}
	next := tx.nextLeaf
	if _, err := tx.exec(ctx, qInsertLeaf, next, data, hash, ms(created)); err != nil {
		return 0, err
	}
	tx.nextLeaf++
	return uint64(next), nil
}

// Leaf returns the audit leaf at index i.
func (tx *Tx) Leaf(ctx context.Context, i uint64) (*audit.Entry, error) {
	e := &audit.Entry{Index: i}
	var created int64
	err := tx.row(ctx, `SELECT data, hash, created_ms FROM audit_leaves WHERE idx = ?`, int64(i)).Scan(&e.Data, &e.Hash, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, iotpay.Errorf(iotpay.ENOTFOUND, "leaf %d not found", i)
	}
	e.Created = fromMs(created)
	return e, err
}

// LogSize returns the number of leaves in the audit log.
func (tx *Tx) LogSize(ctx context.Context) (uint64, error) {
	var n int64
	err := tx.row(ctx, `SELECT COUNT(*) FROM audit_leaves`).Scan(&n)
	return uint64(n), err
}

var (
	qNextLeaf   = hot(`SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_leaves`)
	qInsertLeaf = hot(`INSERT INTO audit_leaves (idx, data, hash, created_ms) VALUES (?, ?, ?, ?)`)
)

// schemaLog holds the audit log's Merkle tree as C2SP hash tiles (each
// level's rightmost tile rewritten as it grows) and its signed checkpoints
// (a checkpoint's note gains witnesses' co-signatures after it is made).
const schemaLog = `
CREATE TABLE audit_tiles (
	level INT64 NOT NULL, idx INT64 NOT NULL, hashes BYTES NOT NULL,
	PRIMARY KEY (level, idx)
);
CREATE TABLE audit_checkpoints (
	size INT64 PRIMARY KEY, root BYTES NOT NULL, signed BYTES NOT NULL, created_ms INT64 NOT NULL
);
`

// ReadTile implements tlog.TileReader from the stored tiles.
func (tx *Tx) ReadTile(ctx context.Context, level uint8, index uint64, width int) ([]byte, error) {
	var hashes []byte
	err := tx.row(ctx, qReadTile, int64(level), int64(index)).Scan(&hashes)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && len(hashes) < width*tlog.HashSize) {
		return nil, iotpay.Errorf(iotpay.ENOTFOUND, "tile %d/%d of width %d not stored", level, index, width)
	}
	if err != nil {
		return nil, err
	}
	return hashes[:width*tlog.HashSize], nil
}

// PutTiles stores tiles, replacing a stored tile of the same level and
// index (a partial tile that grew).
func (tx *Tx) PutTiles(ctx context.Context, tiles []tlog.Tile) error {
	for _, t := range tiles {
		if _, err := tx.exec(ctx, qPutTile, int64(t.Level), int64(t.Index), t.Hashes); err != nil {
			return tx.mapErr(err)
		}
	}
	return nil
}

// PutCheckpoint stores a signed checkpoint, or replaces the note of the one
// of that size (with co-signatures added; the root must be the same).
func (tx *Tx) PutCheckpoint(ctx context.Context, c audit.Checkpoint) error {
	res, err := tx.exec(ctx, qPutCheckpoint, int64(c.Size), c.Root, c.Signed, ms(c.Created))
	if err != nil {
		return tx.mapErr(err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return iotpay.Errorf(iotpay.ECONFLICT, "a checkpoint of size %d with another root is stored", c.Size)
	}
	return nil
}

// LatestCheckpoint returns the stored checkpoint of the largest size, nil
// if none is.
func (tx *Tx) LatestCheckpoint(ctx context.Context) (*audit.Checkpoint, error) {
	c := &audit.Checkpoint{}
	var size, created int64
	err := tx.row(ctx, qLatestCheckpoint).Scan(&size, &c.Root, &c.Signed, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c.Size, c.Created = uint64(size), fromMs(created)
	return c, nil
}

// LeafHashes returns the hashes of at most n leaves from index from, in
// order.
func (tx *Tx) LeafHashes(ctx context.Context, from uint64, n int) ([][]byte, error) {
	return tx.leafColumn(ctx, qLeafHashes, from, n)
}

// Leaves returns the data of at most n leaves from index from, in order;
// both stop at a gap in the indexes.
func (tx *Tx) Leaves(ctx context.Context, from uint64, n int) ([][]byte, error) {
	return tx.leafColumn(ctx, qLeafData, from, n)
}

func (tx *Tx) leafColumn(ctx context.Context, q string, from uint64, n int) ([][]byte, error) {
	rows, err := tx.query(ctx, q, int64(from), int64(from)+int64(n))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([][]byte, 0, n)
	for want := int64(from); rows.Next(); want++ {
		var idx int64
		var b []byte
		if err := rows.Scan(&idx, &b); err != nil {
			return nil, err
		}
		if idx != want {
			break // a gap (the log was tampered with): what is contiguous, the caller sees fewer
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

var (
	qReadTile = hot(`SELECT hashes FROM audit_tiles WHERE level = ? AND idx = ?`)
	qPutTile  = hot(`INSERT INTO audit_tiles (level, idx, hashes) VALUES (?, ?, ?)
		ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes`)
	qPutCheckpoint = hot(`INSERT INTO audit_checkpoints (size, root, signed, created_ms) VALUES (?, ?, ?, ?)
		ON CONFLICT (size) DO UPDATE SET signed = excluded.signed WHERE audit_checkpoints.root = excluded.root`)
	qLatestCheckpoint = hot(`SELECT size, root, signed, created_ms FROM audit_checkpoints ORDER BY size DESC LIMIT 1`)
	qLeafHashes       = hot(`SELECT idx, hash FROM audit_leaves WHERE idx >= ? AND idx < ? ORDER BY idx`)
	qLeafData         = hot(`SELECT idx, data FROM audit_leaves WHERE idx >= ? AND idx < ? ORDER BY idx`)
)

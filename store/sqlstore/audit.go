package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit"
)

// AppendLeaf implements audit.Tx: leaves are numbered from 0 with no gap.
func (tx *Tx) AppendLeaf(ctx context.Context, data, hash []byte, created time.Time) (uint64, error) {
	var next int64
	if err := tx.row(ctx, qNextLeaf).Scan(&next); err != nil {
		return 0, err
	}
	_, err := tx.exec(ctx, qInsertLeaf, next, data, hash, ms(created))
	return uint64(next), err
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

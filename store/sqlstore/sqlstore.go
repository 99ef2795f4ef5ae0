// Package sqlstore is the one SQL implementation of the store, shared by
// the SQLite and PostgreSQL adapters: it implements the transactions of the
// registry, the payment layer, the audit log and the platform's processor
// over database/sql, whatever the driver.
//
// Queries are written once, with ? placeholders; a Dialect rebinds them
// for its database, maps its driver's errors to iotpay error codes and
// supplies the few pieces of DDL that differ. An adapter opens two pools —
// writes through a single connection, so that a store transaction is the
// single writer, and reads through a separate pool that sees committed
// data — and hands them to New, which migrates the schema.
//
// sqlstore imports no driver: the adapters (store/sqlite, store/postgres)
// are the only packages that do.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/platform"
	"github.com/iotpay/iotpay/platform/decision"
	"github.com/iotpay/iotpay/platform/registry"
)

// Compile-time checks that *Tx serves every consumer.
var (
	_ registry.Tx      = (*Tx)(nil)
	_ payment.Tx       = (*Tx)(nil)
	_ audit.Tx         = (*Tx)(nil)
	_ audit.LogTx      = (*Tx)(nil)
	_ platform.Tx      = (*Tx)(nil)
	_ registry.StateTx = (*Tx)(nil)
	_ decision.Tx      = (*Tx)(nil)
)

// DB is an open store.
type DB struct {
	d      *Dialect
	write  *sql.DB // one connection: the single writer
	read   *sql.DB
	wstmts *stmtCache // prepared on write, on read
	rstmts *stmtCache
	// onClose run first in Close.
	onClose []func() error
}

// New returns the store over write, a pool the adapter limits to one
// connection, and read, a pool for read-only transactions, after migrating
// the schema to the latest version. New takes ownership of both pools:
// Close closes them. On error the caller still owns them.
func New(ctx context.Context, d *Dialect, write, read *sql.DB) (*DB, error) {
	db := &DB{d: d, write: write, read: read, wstmts: newStmtCache(), rstmts: newStmtCache()}
	if err := db.Migrate(ctx); err != nil {
		return nil, err
	}
	if err := db.prepare(ctx); err != nil {
		return nil, err
	}
	return db, nil
}

// Close stops what the adapter started with the store (OnClose), then
// closes both pools.
func (db *DB) Close() error {
	var errs []error
	for _, fn := range db.onClose {
		errs = append(errs, fn())
	}
	db.wstmts.close()
	db.rstmts.close()
	return errors.Join(append(errs, db.read.Close(), db.write.Close())...)
}

// OnClose has Close call fn first: an adapter's own work beside the store
// (SQLite's checkpointer) stops with it. Call it before the store is used.
func (db *DB) OnClose(fn func() error) { db.onClose = append(db.onClose, fn) }

// WriteConn returns the writer's connection for work that needs the driver
// itself, such as PostgreSQL's COPY through (*sql.Conn).Raw. Every write
// transaction waits until the returned connection is closed.
func (db *DB) WriteConn(ctx context.Context) (*sql.Conn, error) {
	c, err := db.write.Conn(ctx)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "store unavailable", err)
	}
	return c, nil
}

// Tx is a store transaction.
type Tx struct {
	tx    *sql.Tx
	d     *Dialect
	stmts *stmtCache // its pool's prepared statements
	// nextLeaf is the audit log's next index once read in this
	// transaction (nextLeafKnown): a transaction is never partly undone
	// (a refused writer operation writes nothing; a failure rolls back
	// the whole transaction), so counting on from it is safe.
	nextLeaf      int64
	nextLeafKnown bool
}

// Update runs fn in a write transaction, committed when fn returns nil.
func (db *DB) Update(ctx context.Context, fn func(*Tx) error) error {
	return db.run(ctx, db.write, nil, fn)
}

// stmt returns query as prepared on the transaction's pool, nil when it
// is not prepared yet (it is once the transaction ends: stmtCache).
func (tx *Tx) stmt(ctx context.Context, query string) *sql.Stmt {
	if tx.stmts == nil {
		return nil
	}
	if s := tx.stmts.get(query); s != nil {
		return tx.tx.StmtContext(ctx, s)
	}
	return nil
}

// prepare prepares the writer's hot statements, while no transaction
// holds its connection: the long bulk statements are never parsed in a
// batch.
func (db *DB) prepare(ctx context.Context) error {
	for _, q := range hotStatements(db.d) {
		s, err := db.write.PrepareContext(ctx, db.d.bind(q))
		if err != nil {
			return fmt.Errorf("prepare %.60s…: %w", q, err)
		}
		db.wstmts.stmts[q] = s
	}
	return nil
}

// readOnly is a snapshot: SQLite's read transactions are one already, and
// PostgreSQL's default, READ COMMITTED, would let a check that reads twice
// (LedgerCheck) see two states of the database.
var readOnly = &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}

// View runs fn in a read-only transaction.
func (db *DB) View(ctx context.Context, fn func(*Tx) error) error {
	return db.run(ctx, db.read, readOnly, fn)
}

func (db *DB) run(ctx context.Context, conn *sql.DB, opts *sql.TxOptions, fn func(*Tx) error) error {
	tx, err := conn.BeginTx(ctx, opts)
	if err != nil {
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "store unavailable", err)
	}
	t := &Tx{tx: tx, d: db.d, stmts: db.rstmts}
	if conn == db.write {
		t.stmts = db.wstmts
	}
	// Statements first run in this transaction are prepared once it has
	// ended, for the next ones.
	defer t.stmts.prepare(ctx, conn, db.d.bind)
	if err := fn(t); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "store unavailable", err)
	}
	return nil
}

// Exec runs one statement written with ? placeholders. It is for
// maintenance and tests; the domain uses the typed methods.
func (tx *Tx) Exec(ctx context.Context, query string, args ...any) error {
	_, err := tx.tx.ExecContext(ctx, tx.d.rebind(query), args...)
	return tx.mapErr(err)
}

func (tx *Tx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := tx.stmt(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return tx.tx.ExecContext(ctx, tx.d.bind(query), args...)
}

func (tx *Tx) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s := tx.stmt(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return tx.tx.QueryContext(ctx, tx.d.bind(query), args...)
}

func (tx *Tx) row(ctx context.Context, query string, args ...any) *sql.Row {
	if s := tx.stmt(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return tx.tx.QueryRowContext(ctx, tx.d.bind(query), args...)
}

func (tx *Tx) mapErr(err error) error { return tx.d.mapErr(err) }

// Store adapts db to the Store interface of a package whose Tx interface T
// *Tx implements: For[payment.Tx](db) is a payment.Store.
type Store[T any] struct{ DB *DB }

// For returns db as a store of transactions of type T.
func For[T any](db *DB) Store[T] { return Store[T]{DB: db} }

// Update runs fn in a write transaction.
func (s Store[T]) Update(ctx context.Context, fn func(T) error) error {
	return s.DB.Update(ctx, func(tx *Tx) error { return fn(any(tx).(T)) })
}

// View runs fn in a read-only transaction.
func (s Store[T]) View(ctx context.Context, fn func(T) error) error {
	return s.DB.View(ctx, func(tx *Tx) error { return fn(any(tx).(T)) })
}

func notFound(what string, id any) error {
	return iotpay.Errorf(iotpay.ENOTFOUND, "%s %v not found", what, id)
}

// ms and fromMs store times as Unix milliseconds, the zero time as 0.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMs(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

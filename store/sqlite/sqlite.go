// Package sqlite is the embedded store: one SQLite database file (WAL mode,
// synchronous commits) that implements the transactions of the registry,
// the payment layer, the audit log and the platform's processor.
//
// Writes go through a single connection, so a store transaction is the
// single writer; reads use a separate pool and see committed data.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/platform"
	"github.com/iotpay/iotpay/platform/registry"
	_ "modernc.org/sqlite" // the database/sql driver "sqlite"
)

// ReadConnsMax bounds the read pool.
const ReadConnsMax = 4

// Compile-time checks that *Tx serves every consumer.
var (
	_ registry.Tx = (*Tx)(nil)
	_ payment.Tx  = (*Tx)(nil)
	_ audit.Tx    = (*Tx)(nil)
	_ platform.Tx = (*Tx)(nil)
)

// DB is an open store.
type DB struct {
	write *sql.DB
	read  *sql.DB
	Path  string
}

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string) (*DB, error) {
	dsn := func(extra string) string {
		q := url.Values{}
		for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(ON)"} {
			q.Add("_pragma", p)
		}
		return "file:" + path + "?" + q.Encode() + extra
	}
	w, err := sql.Open("sqlite", dsn("&_txlock=immediate"))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxLifetime(0)
	w.SetMaxIdleConns(1)
	db := &DB{write: w, Path: path}
	if err := db.migrate(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: migrate %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn(""))
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(ReadConnsMax)
	db.read = r
	return db, nil
}

// Close closes the database.
func (db *DB) Close() error {
	return errors.Join(db.read.Close(), db.write.Close())
}

// Tx is a store transaction.
type Tx struct {
	tx *sql.Tx
}

// Update runs fn in a write transaction, committed when fn returns nil.
func (db *DB) Update(ctx context.Context, fn func(*Tx) error) error {
	return db.run(ctx, db.write, false, fn)
}

// View runs fn in a read-only transaction.
func (db *DB) View(ctx context.Context, fn func(*Tx) error) error {
	return db.run(ctx, db.read, true, fn)
}

func (db *DB) run(ctx context.Context, conn *sql.DB, readOnly bool, fn func(*Tx) error) error {
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: readOnly})
	if err != nil {
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "store unavailable", err)
	}
	if err := fn(&Tx{tx: tx}); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "store unavailable", err)
	}
	return nil
}

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

// mapErr turns driver errors into typed ones.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return iotpay.Wrap(iotpay.ECONFLICT, "already exists", err)
	}
	if strings.Contains(err.Error(), "FOREIGN KEY constraint failed") {
		return iotpay.Wrap(iotpay.EINVALID, "refers to an unknown object", err)
	}
	return err
}

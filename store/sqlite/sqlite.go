// Package sqlite is the embedded store: one SQLite database file (WAL mode,
// synchronous commits) behind the shared SQL implementation of
// store/sqlstore.
//
// Writes go through a single connection that begins every transaction
// IMMEDIATE, so a store transaction is the single writer; reads use a
// separate pool and see committed data.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/iotpay/iotpay/store/sqlstore"
	_ "modernc.org/sqlite" // the database/sql driver "sqlite"
)

// ReadConnsMax bounds the read pool.
const ReadConnsMax = 4

// BusyTimeoutMs is how long a connection waits for a lock another holds.
const BusyTimeoutMs = 10000

// DB and Tx are the shared store's: sqlite only opens it.
type (
	DB = sqlstore.DB
	Tx = sqlstore.Tx
)

// For returns db as a store of transactions of type T: For[payment.Tx](db)
// is a payment.Store.
func For[T any](db *DB) sqlstore.Store[T] { return sqlstore.For[T](db) }

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string) (*DB, error) {
	w, err := sql.Open("sqlite", dsn(path, "_txlock=immediate"))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	r, err := sql.Open("sqlite", dsn(path, "_pragma=query_only(1)"))
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(ReadConnsMax)
	r.SetMaxIdleConns(ReadConnsMax)
	db, err := sqlstore.New(ctx, sqlstore.SQLite, w, r)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: open %s: %w", path, err), r.Close(), w.Close())
	}
	cp, err := sql.Open("sqlite", dsn(path, ""))
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	cp.SetMaxOpenConns(1)
	stop := make(chan struct{})
	done := make(chan struct{})
	go checkpoint(cp, stop, done)
	db.OnClose(func() error {
		close(stop)
		<-done
		return cp.Close()
	})
	return db, nil
}

// walFramesMax is the WAL's length (pages) past which the checkpointer
// waits for readers to start it over: 1 GiB of 4 KiB pages.
const walFramesMax = 1 << 18

// CheckpointInterval is how often the checkpointer copies the WAL's
// committed pages back into the database file.
const CheckpointInterval = 250 * time.Millisecond

// checkpoint copies the WAL into the database every CheckpointInterval
// on a connection of its own, PASSIVE: without waiting for a lock, so it
// never holds the writer up; the writer starts the WAL over once it has
// all been copied. Left to SQLite (wal_autocheckpoint) the copy, with its
// fsync of the database file, would run in the writer's commit, every few
// seconds under load, and hold every payment of the next batch up for
// hundreds of milliseconds.
func checkpoint(cp *sql.DB, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			var busy, frames, copied int64
			if cp.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied) == nil && frames > walFramesMax {
				// Readers kept the WAL from being started over: wait for
				// them once (the writer waits too), rather than let it grow.
				_, _ = cp.Exec(`PRAGMA wal_checkpoint(RESTART)`)
			}
		}
	}
}

// CacheKiB is each connection's page cache.
const CacheKiB = 64 << 10

// dsn is the driver's name for the file at path with our pragmas and then
// extra, a query parameter of the pool: the writer begins its transactions
// IMMEDIATE (taking the write lock at once rather than failing to upgrade
// later); readers are query_only, so a write inside View fails rather than
// bypass the single writer.
func dsn(path, extra string) string {
	q := url.Values{}
	for _, p := range []string{fmt.Sprintf("busy_timeout(%d)", BusyTimeoutMs), "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(ON)",
		// A page cache big enough that a batch's index pages stay in memory
		// until commit instead of spilling to the WAL mid-transaction.
		fmt.Sprintf("cache_size(%d)", -CacheKiB),
		// Statement journals (one per multi-row statement) in memory, not
		// in temporary files.
		"temp_store(MEMORY)",
		// No checkpoint in a commit: the checkpointer does them (Open).
		"wal_autocheckpoint(0)"} {
		q.Add("_pragma", p)
	}
	// The path is a URI path: a %, ? or # in it must be escaped.
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode() + "&" + extra
}

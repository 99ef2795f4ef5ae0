// Package postgres is the store on PostgreSQL (13 or later), through pgx's
// database/sql driver, behind the shared SQL implementation of
// store/sqlstore.
//
// Like the embedded store it has a single writer: every write transaction
// goes through one connection, so writes are serialized with respect to each
// other and a read-modify-write (a balance, a device's counter) needs no
// stronger isolation. That connection holds a session advisory lock on the
// database, so a second iotpayd pointed at the same database fails at Open
// rather than write beside the first. Reads use a pool of their own, each
// a read-only REPEATABLE READ snapshot. Commits are synchronous (the
// server's synchronous_commit stays on).
package postgres

import (
	"context"
	"errors"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/store/sqlstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// ReadConnsMax bounds the read pool.
const ReadConnsMax = 8

// WriterLockKey is the session advisory lock the writer's connection holds:
// one iotpayd a database.
const WriterLockKey int64 = 0x696f_7470_6179_0002 // "iotpay" 0 2

// Open connects to the database at url (postgres://user@host:port/db?…),
// takes the writer's lock and migrates the schema.
func Open(ctx context.Context, url string) (*sqlstore.DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		// pgx leaves the password out of its parse errors.
		return nil, iotpay.Wrap(iotpay.EINVALID, "bad PostgreSQL URL", err)
	}
	w := stdlib.OpenDB(*cfg, stdlib.OptionAfterConnect(lockWriter))
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	r := stdlib.OpenDB(*cfg)
	r.SetMaxOpenConns(ReadConnsMax)
	r.SetMaxIdleConns(ReadConnsMax)
	closeBoth := func(err error) error { return errors.Join(err, r.Close(), w.Close()) }
	// Connect the writer first, so that a database in use is said plainly.
	if err := w.PingContext(ctx); err != nil {
		if iotpay.ErrorCode(err) != iotpay.EINTERNAL {
			return nil, closeBoth(err)
		}
		return nil, closeBoth(iotpay.Wrap(iotpay.EUNAVAILABLE, "cannot reach PostgreSQL", err))
	}
	db, err := sqlstore.New(ctx, sqlstore.Postgres, w, r)
	if err != nil {
		return nil, closeBoth(err)
	}
	return db, nil
}

// lockWriter runs on each new writer connection: it takes the writer's
// lock or refuses the connection.
func lockWriter(ctx context.Context, c *pgx.Conn) error {
	var ok bool
	err := c.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, WriterLockKey).Scan(&ok)
	if err == nil && !ok {
		err = iotpay.Errorf(iotpay.EUNAVAILABLE, "database is in use by another iotpayd")
	}
	if err != nil {
		c.Close(ctx) // stdlib does not close a connection it then refuses
		return err
	}
	return nil
}

// Raw runs fn with the writer's own pgx connection, for what database/sql
// cannot say, such as COPY; every write transaction waits until fn returns.
func Raw(ctx context.Context, db *sqlstore.DB, fn func(*pgx.Conn) error) error {
	c, err := db.WriteConn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return iotpay.Errorf(iotpay.EINTERNAL, "not a PostgreSQL store")
		}
		return fn(sc.Conn())
	})
}

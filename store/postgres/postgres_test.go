package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/store/postgres"
	"github.com/iotpay/iotpay/store/postgres/pgtest"
	"github.com/iotpay/iotpay/store/sqlstore"
	"github.com/iotpay/iotpay/store/storetest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

func open(t *testing.T, url string) *sqlstore.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *sqlstore.DB { return open(t, pgtest.New(t)) })
}

func TestOneIotpaydADatabase(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t)
	first, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = postgres.Open(ctx, url)
	if iotpay.ErrorCode(err) != iotpay.EUNAVAILABLE || !strings.Contains(err.Error(), "database is in use by another iotpayd") {
		t.Fatalf("second Open: %v, want in use", err)
	}
	err = first.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.CreateTenant(ctx, &registry.Tenant{ID: iotpay.TenantID(iotpay.NewID(iotpay.PrefixTenant, time.Now(), nil)), Name: "t", Created: time.Now()})
	})
	if err != nil {
		t.Fatalf("the first store after a refused second: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	// Closed, the lock is free: the next one opens, migrates nothing, and
	// finds the data.
	second := open(t, url)
	if n, err := second.TenantCount(ctx); err != nil || n != 1 {
		t.Fatalf("tenants after reopening = %d, %v", n, err)
	}
	if v, err := second.Version(ctx); err != nil || v != sqlstore.LatestVersion() {
		t.Fatalf("version after reopening = %d, %v", v, err)
	}
}

func TestOpenRefusesBadURLsAndUnreachableServers(t *testing.T) {
	ctx := context.Background()
	if _, err := postgres.Open(ctx, "postgres://u:secret@127.0.0.1:notaport/x"); iotpay.ErrorCode(err) != iotpay.EINVALID || strings.Contains(err.Error(), "secret") {
		t.Errorf("bad URL: %v, want invalid without the password", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := postgres.Open(ctx, "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=5"); iotpay.ErrorCode(err) != iotpay.EUNAVAILABLE {
		t.Errorf("no server: %v, want unavailable", err)
	}
}

// TestRawReachesPgx shows the way to pgx's own API (for COPY): a bulk load
// through the writer's connection.
func TestRawReachesPgx(t *testing.T) {
	ctx := context.Background()
	db := open(t, pgtest.New(t))
	err := postgres.Raw(ctx, db, func(c *pgx.Conn) error {
		if _, err := c.Exec(ctx, `CREATE TEMPORARY TABLE copied (n BIGINT)`); err != nil {
			return err
		}
		n, err := c.CopyFrom(ctx, pgx.Identifier{"copied"}, []string{"n"}, pgx.CopyFromRows([][]any{{int64(1)}, {int64(2)}, {int64(3)}}))
		if err == nil && n != 3 {
			t.Errorf("copied %d rows, want 3", n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentMigratorsAreSerialized migrates one fresh database from
// several pools at once (without the writer's lock, as a tool might): each
// version is applied once.
func TestConcurrentMigratorsAreSerialized(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	const migrators = 4
	errs := make(chan error, migrators)
	for i := 0; i < migrators; i++ {
		go func() {
			w, r := stdlib.OpenDB(*cfg), stdlib.OpenDB(*cfg)
			w.SetMaxOpenConns(1)
			db, err := sqlstore.New(ctx, sqlstore.Postgres, w, r)
			if err == nil {
				err = db.Close()
			}
			errs <- err
		}()
	}
	for i := 0; i < migrators; i++ {
		if err := <-errs; err != nil {
			t.Errorf("migrator: %v", err)
		}
	}
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var rows, max int
	if err := c.QueryRow(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&rows, &max); err != nil {
		t.Fatal(err)
	}
	if rows != sqlstore.LatestVersion() || max != sqlstore.LatestVersion() {
		t.Errorf("schema_migrations: %d rows up to version %d, want one a version up to %d", rows, max, sqlstore.LatestVersion())
	}
}

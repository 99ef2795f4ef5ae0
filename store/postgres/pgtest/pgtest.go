// Package pgtest gives each test a throw-away PostgreSQL database on the
// server named by IOTPAY_TEST_POSTGRES (default: trust auth as postgres on
// 127.0.0.1:5432, which scripts/setup.sh prepares).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvServer names the environment variable holding the server's URL.
const EnvServer = "IOTPAY_TEST_POSTGRES"

// DefaultServer is the server used when EnvServer is unset.
const DefaultServer = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Prefix starts the name of every test database.
const Prefix = "iotpay_test_"

// ConnectTimeout bounds each connection to the server.
const ConnectTimeout = 10 * time.Second

// StaleAfter is the age past which a test database some crashed run left
// behind is dropped by the next New.
const StaleAfter = time.Hour

// Server returns the URL of the test server.
func Server() string {
	if v := os.Getenv(EnvServer); v != "" {
		return v
	}
	return DefaultServer
}

// New creates an empty database iotpay_test_<time>_<random> for tb,
// returns its URL, and drops it when tb ends. An unreachable server fails
// the test: PostgreSQL is part of the test environment, never skipped.
func New(tb testing.TB) string {
	tb.Helper()
	server := Server()
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		tb.Fatalf("pgtest: %s must be a postgres:// URL", EnvServer)
	}
	admin := connect(tb, server)
	defer admin.Close(context.Background())
	dropStale(tb, admin)

	var b [6]byte
	rand.Read(b[:])
	name := Prefix + strconv.FormatInt(time.Now().Unix(), 10) + "_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), ConnectTimeout)
	defer cancel()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		c := connect(tb, server)
		defer c.Close(context.Background())
		if err := drop(c, name); err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

func connect(tb testing.TB, server string) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ConnectTimeout)
	defer cancel()
	c, err := pgx.Connect(ctx, server)
	if err != nil {
		tb.Fatalf("pgtest: PostgreSQL for the tests is not reachable (%v); run scripts/setup.sh (as root), "+
			"or point %s at a server where the user may create databases", err, EnvServer)
	}
	return c
}

// drop ends the database's sessions and drops it.
func drop(c *pgx.Conn, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), ConnectTimeout)
	defer cancel()
	if _, err := c.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, name); err != nil {
		return err
	}
	_, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// dropStale drops test databases older than StaleAfter, left by runs that
// were killed before their cleanup.
func dropStale(tb testing.TB, c *pgx.Conn) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ConnectTimeout)
	defer cancel()
	rows, err := c.Query(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, Prefix)
	if err != nil {
		tb.Fatalf("pgtest: list databases: %v", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatalf("pgtest: list databases: %v", err)
	}
	for _, n := range names {
		created, _, _ := strings.Cut(strings.TrimPrefix(n, Prefix), "_")
		sec, err := strconv.ParseInt(created, 10, 64)
		if err != nil || time.Since(time.Unix(sec, 0)) < StaleAfter {
			continue
		}
		if err := drop(c, n); err != nil {
			tb.Logf("pgtest: drop stale database %s: %v", n, err)
		}
	}
}

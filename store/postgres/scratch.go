package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"strconv"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/jackc/pgx/v5"
)

// Scratch creates an empty database on the server of serverURL, named
// prefix<unix time>_<random>, and returns its URL and a function that drops
// it. Benchmarks and tests run in one so they never touch real data.
func Scratch(ctx context.Context, serverURL, prefix string) (string, func() error, error) {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", nil, iotpay.Errorf(iotpay.EINVALID, "not a postgres:// URL")
	}
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return "", nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "cannot reach PostgreSQL", err)
	}
	defer admin.Close(context.Background())
	var b [6]byte
	rand.Read(b[:])
	name := prefix + strconv.FormatInt(time.Now().Unix(), 10) + "_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "cannot create a scratch database", err)
	}
	drop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, serverURL)
		if err != nil {
			return err
		}
		defer c.Close(context.Background())
		return DropDatabase(ctx, c, name)
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

// DropDatabase drops database name, ending its sessions first.
func DropDatabase(ctx context.Context, c *pgx.Conn, name string) error {
	_, err1 := c.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, name)
	_, err2 := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return errors.Join(err1, err2)
}

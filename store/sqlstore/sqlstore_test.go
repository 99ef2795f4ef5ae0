package sqlstore

import (
	"errors"
	"strings"
	"testing"

	"github.com/iotpay/iotpay"
)

func TestRebind(t *testing.T) {
	for _, c := range []struct {
		d        *Dialect
		in, want string
	}{
		{SQLite, `SELECT a FROM t WHERE b = ? AND c = ?`, `SELECT a FROM t WHERE b = ? AND c = ?`},
		{Postgres, `SELECT a FROM t WHERE b = ? AND c = ?`, `SELECT a FROM t WHERE b = $1 AND c = $2`},
		{Postgres, `SELECT 1`, `SELECT 1`},
		{Postgres, `x = '?' AND y = ?`, `x = '?' AND y = $1`},
		{Postgres, `x = 'it''s ?' AND y = ?`, `x = 'it''s ?' AND y = $1`},
		{Postgres, `"odd?name" = ? AND z IN (?, ?)`, `"odd?name" = $1 AND z IN ($2, $3)`},
		{Postgres, `x = 'unterminated ?`, `x = 'unterminated ?`},
	} {
		if got := c.d.rebind(c.in); got != c.want {
			t.Errorf("%s.rebind(%q) = %q, want %q", c.d, c.in, got, c.want)
		}
		if got := c.d.bind(c.in); got != c.want {
			t.Errorf("%s.bind(%q) = %q, want %q", c.d, c.in, got, c.want)
		}
	}
}

func TestMigrationsAreNumberedInOrder(t *testing.T) {
	for i, m := range migrations {
		if m.version != i+1 {
			t.Errorf("migration %d has version %d", i, m.version)
		}
		for _, d := range []*Dialect{SQLite, Postgres} {
			if sql := m.sql(d); strings.Contains(sql, "INT64") || strings.Contains(sql, "BYTES") {
				t.Errorf("version %d for %s keeps a portable type name", m.version, d)
			}
		}
	}
}

type sqliteErr int

func (e sqliteErr) Error() string { return "sqlite error" }
func (e sqliteErr) Code() int     { return int(e) }

type pgErr string

func (e pgErr) Error() string    { return "pg error " + string(e) }
func (e pgErr) SQLState() string { return string(e) }

func TestMapErr(t *testing.T) {
	other := errors.New("disk on fire")
	for _, c := range []struct {
		d    *Dialect
		err  error
		want iotpay.Code
	}{
		{SQLite, sqliteErr(2067), iotpay.ECONFLICT},
		{SQLite, sqliteErr(1555), iotpay.ECONFLICT},
		{SQLite, sqliteErr(787), iotpay.EINVALID},
		{SQLite, sqliteErr(5), iotpay.EINTERNAL},
		{SQLite, pgErr("23505"), iotpay.EINTERNAL},
		{Postgres, pgErr("23505"), iotpay.ECONFLICT},
		{Postgres, pgErr("23503"), iotpay.EINVALID},
		{Postgres, pgErr("22021"), iotpay.EINVALID},
		{Postgres, pgErr("40001"), iotpay.EINTERNAL},
		{Postgres, other, iotpay.EINTERNAL},
		{Postgres, nil, ""},
	} {
		err := c.d.mapErr(c.err)
		if got := iotpay.ErrorCode(err); got != c.want {
			t.Errorf("%s.mapErr(%v) = %v, want %s", c.d, c.err, err, c.want)
		}
		if c.err != nil && !errors.Is(err, c.err) {
			t.Errorf("%s.mapErr(%v) lost the driver's error", c.d, c.err)
		}
	}
}

func BenchmarkBind(b *testing.B) {
	q := `SELECT ` + paymentCols + ` FROM payments WHERE device = ? AND request_id = ?`
	b.ReportAllocs()
	for b.Loop() {
		Postgres.bind(q)
	}
}

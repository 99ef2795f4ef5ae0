package sqlstore

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/iotpay/iotpay"
)

// Dialect is what differs between the databases the store runs on: how
// placeholders are written, how the driver reports a broken constraint, and
// the few pieces of DDL that are not standard. Everything else is shared.
type Dialect struct {
	name string
	// numbered: placeholders are $1, $2… rather than ?.
	numbered bool
	// types turns the schema's portable type names (INT64, BYTES) into
	// the database's.
	types *strings.Replacer
	// appendOnly returns DDL that makes table refuse UPDATE and DELETE
	// with message; trigger names the triggers.
	appendOnly func(table, trigger, message string) string
	// lockMigrations, when set, runs first in each migration transaction
	// to serialize concurrent migrators.
	lockMigrations string
	// hasColumn counts the columns named ? (2nd) of table ? (1st).
	hasColumn string
	// classify says what kind of failure a driver error is.
	classify func(error) failure

	bound sync.Map // query → rebound query
}

func (d *Dialect) String() string { return d.name }

type failure int

const (
	failOther      failure = iota
	failUnique             // unique or primary key violated
	failForeignKey         // foreign key violated
	failData               // a value the database cannot store
)

// SQLite is the dialect of SQLite (modernc.org/sqlite, extended result
// codes on).
var SQLite = &Dialect{
	name:  "sqlite",
	types: strings.NewReplacer("INT64", "INTEGER", "BYTES", "BLOB"),
	appendOnly: func(table, trigger, message string) string {
		mustPlain(message)
		var b strings.Builder
		for _, op := range [][2]string{{"u", "UPDATE"}, {"d", "DELETE"}} {
			fmt.Fprintf(&b, "CREATE TRIGGER %s_%s BEFORE %s ON %s BEGIN SELECT RAISE(ABORT, '%s'); END;\n",
				trigger, op[0], op[1], table, message)
		}
		return b.String()
	},
	hasColumn: `SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?`,
	classify: func(err error) failure {
		var e interface{ Code() int }
		if !errors.As(err, &e) {
			return failOther
		}
		switch e.Code() {
		case 2067, 1555: // SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY
			return failUnique
		case 787: // SQLITE_CONSTRAINT_FOREIGNKEY
			return failForeignKey
		}
		return failOther
	},
}

// Postgres is the dialect of PostgreSQL (13 or later) through a driver
// whose errors report their SQLSTATE, as pgx's do.
var Postgres = &Dialect{
	name:     "postgres",
	numbered: true,
	types:    strings.NewReplacer("INT64", "BIGINT", "BYTES", "BYTEA"),
	appendOnly: func(table, trigger, message string) string {
		mustPlain(message)
		// Row triggers do not see TRUNCATE; a statement trigger does.
		return fmt.Sprintf(`CREATE OR REPLACE FUNCTION iotpay_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION '%%', TG_ARGV[0];
END $$;
CREATE TRIGGER %[1]s BEFORE UPDATE OR DELETE ON %[2]s FOR EACH ROW EXECUTE FUNCTION iotpay_refuse_change('%[3]s');
CREATE TRIGGER %[1]s_t BEFORE TRUNCATE ON %[2]s FOR EACH STATEMENT EXECUTE FUNCTION iotpay_refuse_change('%[3]s');
`, trigger, table, message)
	},
	lockMigrations: `SELECT pg_advisory_xact_lock(` + strconv.FormatInt(migrateLockKey, 10) + `)`,
	hasColumn: `SELECT COUNT(*) FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = ? AND column_name = ?`,
	classify: func(err error) failure {
		var e interface{ SQLState() string }
		if !errors.As(err, &e) {
			return failOther
		}
		switch s := e.SQLState(); {
		case s == "23505": // unique_violation
			return failUnique
		case s == "23503": // foreign_key_violation
			return failForeignKey
		case strings.HasPrefix(s, "22"): // data exception: NUL in text, bad UTF-8, out of range
			return failData
		}
		return failOther
	},
}

// migrateLockKey is the PostgreSQL advisory lock that serializes migrators.
const migrateLockKey int64 = 0x696f_7470_6179_0001 // "iotpay" 0 1

// mustPlain asserts that s can stand inside a quoted SQL literal as is.
func mustPlain(s string) {
	if strings.ContainsAny(s, `'\`) {
		panic(fmt.Sprintf("sqlstore: %q is not a plain literal", s))
	}
}

// mapErr turns driver errors into typed ones.
func (d *Dialect) mapErr(err error) error {
	if err == nil {
		return nil
	}
	switch d.classify(err) {
	case failUnique:
		return iotpay.Wrap(iotpay.ECONFLICT, "already exists", err)
	case failForeignKey:
		return iotpay.Wrap(iotpay.EINVALID, "refers to an unknown object", err)
	case failData:
		return iotpay.Wrap(iotpay.EINVALID, "a value the store cannot keep", err)
	}
	return err
}

// bind is rebind, remembered: the store's queries are a fixed set, so the
// hot path scans each once.
func (d *Dialect) bind(query string) string {
	if !d.numbered {
		return query
	}
	if q, ok := d.bound.Load(query); ok {
		return q.(string)
	}
	q := d.rebind(query)
	d.bound.Store(query, q)
	return q
}

// rebind numbers the ? placeholders of query ($1, $2…) when the dialect
// wants that, leaving quoted literals and identifiers alone.
func (d *Dialect) rebind(query string) string {
	if !d.numbered || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote { // a doubled quote closes and reopens: still inside
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

package sqlite

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/store/sqlstore"
	"github.com/iotpay/iotpay/store/storetest"
)

func open(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) { storetest.Run(t, open) }

// schema lists the database's tables, indexes and triggers with their SQL,
// white space folded, schema_migrations left out.
func schema(t *testing.T, path string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name <> 'schema_migrations' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var typ, name, text string
		if err := rows.Scan(&typ, &name, &text); err != nil {
			t.Fatal(err)
		}
		out = append(out, typ+" "+name+": "+strings.Join(strings.Fields(text), " "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOpensADatabaseOfTheFirstRelease opens testdata/v1.db, written by the
// store before versioned migrations had applied_ms: its data stays, it
// reaches the latest version, and its schema is the one a fresh database
// gets.
func TestOpensADatabaseOfTheFirstRelease(t *testing.T) {
	ctx := context.Background()
	legacy, err := os.ReadFile("testdata/v1.db")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "v1.db")
	if err := os.WriteFile(path, legacy, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, err := db.Version(ctx); err != nil || v != sqlstore.LatestVersion() {
		t.Fatalf("version = %d, %v; want %d", v, err, sqlstore.LatestVersion())
	}
	if n, err := db.TenantCount(ctx); err != nil || n != 1 {
		t.Fatalf("tenants = %d, %v; want the one the file holds", n, err)
	}
	err = db.Update(ctx, func(tx *Tx) error {
		return tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_ms) VALUES (?, ?)`, 1000, 1)
	})
	if err != nil {
		t.Fatalf("schema_migrations lacks applied_ms: %v", err)
	}
	if err := db.Update(ctx, func(tx *Tx) error { return tx.Exec(ctx, `DELETE FROM schema_migrations WHERE version = 1000`) }); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(t.TempDir(), "fresh.db")
	db2, err := Open(ctx, fresh)
	if err != nil {
		t.Fatal(err)
	}
	db2.Close()
	if got, want := schema(t, path), schema(t, fresh); !slices.Equal(got, want) {
		t.Errorf("schema of the first release:\n%s\nfresh schema:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestReopenKeepsDataAndMigratesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(ctx, func(tx *Tx) error {
			return tx.CreateTenant(ctx, &registry.Tenant{ID: iotpay.TenantID(iotpay.NewID(iotpay.PrefixTenant, time.Now(), nil)), Name: "t", Created: time.Now()})
		})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := db.TenantCount(ctx); err != nil || n != i {
			t.Fatalf("open %d: tenants = %d, %v", i, n, err)
		}
		db.Close()
	}
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var n int
	if err := raw.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != sqlstore.LatestVersion() {
		t.Fatalf("schema_migrations rows = %d, %v; want one a version", n, err)
	}
}

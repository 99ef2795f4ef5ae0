package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/iotpay/iotpay"
)

// migration is one version of the schema, as SQL for a dialect. Versions
// are 1, 2, 3… in order; each is applied once, in its own transaction, and
// recorded in schema_migrations. Never edit a released migration: add one.
type migration struct {
	version int
	sql     func(*Dialect) string
}

var migrations = []migration{
	{1, func(d *Dialect) string { // registry, payment, audit
		return d.types.Replace(schemaV1) +
			d.appendOnly("transfers", "transfers_immutable", "transfers are immutable") +
			d.appendOnly("audit_leaves", "audit_append_only", "the audit log is append-only")
	}},
	{2, func(d *Dialect) string { // the ledger
		return d.types.Replace(schemaLedger) +
			d.appendOnly("ledger_transfers", "ledger_transfers_immutable", "ledger transfers are immutable")
	}},
	{3, func(d *Dialect) string { // mandates and the payment engine; the foundation's wallet carried over
		return d.types.Replace(schemaPayments) + migrateV1Payments
	}},
	{4, func(d *Dialect) string { // device presence (MQTT online/offline)
		return d.types.Replace(schemaPresence)
	}},
	{5, func(d *Dialect) string { // the audit log's tiles and checkpoints
		return d.types.Replace(schemaLog)
	}},
	{6, func(d *Dialect) string { // device state, product profiles, tariffs, decisions
		return d.types.Replace(schemaIntel)
	}},
	{7, func(d *Dialect) string { // operators' webhooks
		return d.types.Replace(schemaWebhooks)
	}},
	{8, func(d *Dialect) string { // connectors: where payments went, payers' instruments, routing tables
		return d.types.Replace(schemaRouting)
	}},
	{9, func(d *Dialect) string { // follow-ups owed by payment systems, connectors' state
		return d.types.Replace(schemaFollowUps)
	}},
	{10, func(d *Dialect) string { // the edge: gateway products, offline limits
		return d.types.Replace(schemaEdge)
	}},
}

// LatestVersion is the schema version this build migrates to.
func LatestVersion() int { return migrations[len(migrations)-1].version }

// schemaV1 is written with portable type names, INT64 (a 64-bit integer)
// and BYTES (a byte string), which the dialect turns into its own.
const schemaV1 = `
CREATE TABLE tenants (
	id TEXT PRIMARY KEY, name TEXT NOT NULL, created_ms INT64 NOT NULL
);
CREATE TABLE api_keys (
	id TEXT PRIMARY KEY, tenant TEXT NOT NULL REFERENCES tenants(id),
	hash BYTES NOT NULL, created_ms INT64 NOT NULL
);
CREATE TABLE products (
	id TEXT PRIMARY KEY, tenant TEXT NOT NULL REFERENCES tenants(id), name TEXT NOT NULL,
	pricing TEXT NOT NULL, merchant TEXT NOT NULL, created_ms INT64 NOT NULL
);
CREATE TABLE devices (
	id TEXT PRIMARY KEY, tenant TEXT NOT NULL REFERENCES tenants(id),
	product TEXT NOT NULL REFERENCES products(id), name TEXT NOT NULL,
	status TEXT NOT NULL CHECK (status IN ('pending','active','revoked')), suite TEXT NOT NULL,
	public_key BYTES, cert_serial TEXT NOT NULL DEFAULT '', cert_not_after_ms INT64 NOT NULL DEFAULT 0,
	counter INT64 NOT NULL DEFAULT 0, challenge BYTES,
	token_hash BYTES, token_expires_ms INT64 NOT NULL DEFAULT 0,
	created_ms INT64 NOT NULL, last_seen_ms INT64 NOT NULL DEFAULT 0
);
CREATE INDEX devices_tenant ON devices(tenant, id);
CREATE TABLE accounts (
	id TEXT PRIMARY KEY, tenant TEXT NOT NULL REFERENCES tenants(id), name TEXT NOT NULL,
	kind TEXT NOT NULL CHECK (kind IN ('payer','merchant','funding')), currency TEXT NOT NULL,
	balance INT64 NOT NULL DEFAULT 0, created_ms INT64 NOT NULL,
	CHECK (kind = 'funding' OR balance >= 0)
);
CREATE INDEX accounts_tenant ON accounts(tenant, id);
CREATE TABLE transfers (
	id TEXT PRIMARY KEY, tenant TEXT NOT NULL, kind TEXT NOT NULL,
	debit TEXT NOT NULL REFERENCES accounts(id), credit TEXT NOT NULL REFERENCES accounts(id),
	amount INT64 NOT NULL CHECK (amount > 0), currency TEXT NOT NULL,
	payment TEXT NOT NULL DEFAULT '', created_ms INT64 NOT NULL,
	CHECK (debit <> credit)
);
CREATE INDEX transfers_debit ON transfers(debit);
CREATE INDEX transfers_credit ON transfers(credit);
CREATE TABLE bindings (
	id TEXT PRIMARY KEY, tenant TEXT NOT NULL REFERENCES tenants(id),
	device TEXT NOT NULL UNIQUE REFERENCES devices(id), account TEXT NOT NULL REFERENCES accounts(id),
	currency TEXT NOT NULL, per_payment_limit INT64 NOT NULL, daily_limit INT64 NOT NULL,
	created_ms INT64 NOT NULL
);
CREATE TABLE payments (
	id TEXT PRIMARY KEY, tenant TEXT NOT NULL, device TEXT NOT NULL REFERENCES devices(id),
	request_id TEXT NOT NULL, request_hash BYTES NOT NULL,
	status TEXT NOT NULL CHECK (status IN ('approved','declined')), reason TEXT NOT NULL DEFAULT '',
	amount INT64 NOT NULL, currency TEXT NOT NULL, payer TEXT NOT NULL DEFAULT '', merchant TEXT NOT NULL DEFAULT '',
	transfers TEXT NOT NULL DEFAULT '', log_index INT64 NOT NULL, receipt BYTES NOT NULL,
	created_ms INT64 NOT NULL,
	UNIQUE (device, request_id)
);
CREATE INDEX payments_tenant ON payments(tenant, id);
CREATE INDEX payments_device_day ON payments(device, status, created_ms);
CREATE TABLE audit_leaves (
	idx INT64 PRIMARY KEY, data BYTES NOT NULL, hash BYTES NOT NULL, created_ms INT64 NOT NULL
);
`

// Migrate brings the schema to LatestVersion, one migration per
// transaction, in order. A database at a later version than this build
// knows is refused. New calls it; calling it again changes nothing.
func (db *DB) Migrate(ctx context.Context) error {
	for {
		done, err := db.migrateOnce(ctx)
		if err != nil || done {
			return err
		}
	}
}

// migrateOnce applies the next migration, if there is one.
func (db *DB) migrateOnce(ctx context.Context) (done bool, err error) {
	err = db.Update(ctx, func(tx *Tx) error {
		have, err := tx.lockSchema(ctx)
		switch {
		case err != nil:
			return err
		case have > LatestVersion():
			return iotpay.Errorf(iotpay.ECONFLICT, "the database schema is at version %d, newer than this build knows (%d): run a newer iotpayd",
				have, LatestVersion())
		case have == LatestVersion():
			done = true
			return nil
		}
		m := migrations[have] // the one after have
		if _, err := tx.tx.ExecContext(ctx, m.sql(tx.d)); err != nil {
			return fmt.Errorf("schema version %d: %w", m.version, err)
		}
		_, err = tx.exec(ctx, `INSERT INTO schema_migrations (version, applied_ms) VALUES (?, ?)`, m.version, ms(time.Now()))
		return err
	})
	return done, err
}

// lockSchema serializes migrators where the dialect needs it, makes sure
// schema_migrations exists with its applied_ms column, and returns the
// version the database is at.
func (tx *Tx) lockSchema(ctx context.Context) (int, error) {
	if tx.d.lockMigrations != "" {
		if _, err := tx.tx.ExecContext(ctx, tx.d.lockMigrations); err != nil {
			return 0, err
		}
	}
	if _, err := tx.tx.ExecContext(ctx, tx.d.types.Replace(
		`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_ms INT64 NOT NULL DEFAULT 0)`)); err != nil {
		return 0, err
	}
	// Databases made before applied_ms existed have the table without it;
	// their rows keep applied_ms 0, unknown.
	var n int
	if err := tx.row(ctx, tx.d.hasColumn, "schema_migrations", "applied_ms").Scan(&n); err != nil {
		return 0, err
	}
	if n == 0 {
		if _, err := tx.tx.ExecContext(ctx, tx.d.types.Replace(
			`ALTER TABLE schema_migrations ADD COLUMN applied_ms INT64 NOT NULL DEFAULT 0`)); err != nil {
			return 0, err
		}
	}
	return tx.version(ctx)
}

func (tx *Tx) version(ctx context.Context) (int, error) {
	var v int
	err := tx.row(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// Version returns the schema version the database is at.
func (db *DB) Version(ctx context.Context) (int, error) {
	var v int
	err := db.View(ctx, func(tx *Tx) (err error) { v, err = tx.version(ctx); return })
	return v, err
}

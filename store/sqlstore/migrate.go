package sqlite

import (
	"context"
)

// migrations are applied in order, each once, in one transaction each.
// Never edit a released migration: add a new one.
var migrations = []string{
	// 1: registry, payment, audit.
	`
CREATE TABLE tenants (
	id TEXT PRIMARY KEY, name TEXT NOT NULL, created_ms INTEGER NOT NULL
);
CREATE TABLE api_keys (
	id TEXT PRIMARY KEY, tenant TEXT NOT NULL REFERENCES tenants(id),
	hash BLOB NOT NULL, created_ms INTEGER NOT NULL
);
CREATE TABLE products (
	id TEXT PRIMARY KEY, tenant TEXT NOT NULL REFERENCES tenants(id), name TEXT NOT NULL,
	pricing TEXT NOT NULL, merchant TEXT NOT NULL, created_ms INTEGER NOT NULL
);
CREATE TABLE devices (
	id TEXT PRIMARY KEY, tenant TEXT NOT NULL REFERENCES tenants(id),
	product TEXT NOT NULL REFERENCES products(id), name TEXT NOT NULL,
	status TEXT NOT NULL CHECK (status IN ('pending','active','revoked')), suite TEXT NOT NULL,
	public_key BLOB, cert_serial TEXT NOT NULL DEFAULT '', cert_not_after_ms INTEGER NOT NULL DEFAULT 0,
	counter INTEGER NOT NULL DEFAULT 0, challenge BLOB,
	token_hash BLOB, token_expires_ms INTEGER NOT NULL DEFAULT 0,
	created_ms INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX devices_tenant ON devices(tenant, id);
CREATE TABLE accounts (
	id TEXT PRIMARY KEY, tenant TEXT NOT NULL REFERENCES tenants(id), name TEXT NOT NULL,
	kind TEXT NOT NULL CHECK (kind IN ('payer','merchant','funding')), currency TEXT NOT NULL,
	balance INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL,
	CHECK (kind = 'funding' OR balance >= 0)
);
CREATE INDEX accounts_tenant ON accounts(tenant, id);
CREATE TABLE transfers (
	id TEXT PRIMARY KEY, tenant TEXT NOT NULL, kind TEXT NOT NULL,
	debit TEXT NOT NULL REFERENCES accounts(id), credit TEXT NOT NULL REFERENCES accounts(id),
	amount INTEGER NOT NULL CHECK (amount > 0), currency TEXT NOT NULL,
	payment TEXT NOT NULL DEFAULT '', created_ms INTEGER NOT NULL,
	CHECK (debit <> credit)
);
CREATE INDEX transfers_debit ON transfers(debit);
CREATE INDEX transfers_credit ON transfers(credit);
CREATE TRIGGER transfers_immutable_u BEFORE UPDATE ON transfers BEGIN SELECT RAISE(ABORT, 'transfers are immutable'); END;
CREATE TRIGGER transfers_immutable_d BEFORE DELETE ON transfers BEGIN SELECT RAISE(ABORT, 'transfers are immutable'); END;
CREATE TABLE bindings (
	id TEXT PRIMARY KEY, tenant TEXT NOT NULL REFERENCES tenants(id),
	device TEXT NOT NULL UNIQUE REFERENCES devices(id), account TEXT NOT NULL REFERENCES accounts(id),
	currency TEXT NOT NULL, per_payment_limit INTEGER NOT NULL, daily_limit INTEGER NOT NULL,
	created_ms INTEGER NOT NULL
);
CREATE TABLE payments (
	id TEXT PRIMARY KEY, tenant TEXT NOT NULL, device TEXT NOT NULL REFERENCES devices(id),
	request_id TEXT NOT NULL, request_hash BLOB NOT NULL,
	status TEXT NOT NULL CHECK (status IN ('approved','declined')), reason TEXT NOT NULL DEFAULT '',
	amount INTEGER NOT NULL, currency TEXT NOT NULL, payer TEXT NOT NULL DEFAULT '', merchant TEXT NOT NULL DEFAULT '',
	transfers TEXT NOT NULL DEFAULT '', log_index INTEGER NOT NULL, receipt BLOB NOT NULL,
	created_ms INTEGER NOT NULL,
	UNIQUE (device, request_id)
);
CREATE INDEX payments_tenant ON payments(tenant, id);
CREATE INDEX payments_device_day ON payments(device, status, created_ms);
CREATE TABLE audit_leaves (
	idx INTEGER PRIMARY KEY, data BLOB NOT NULL, hash BLOB NOT NULL, created_ms INTEGER NOT NULL
);
CREATE TRIGGER audit_append_only_u BEFORE UPDATE ON audit_leaves BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_append_only_d BEFORE DELETE ON audit_leaves BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
`,
}

func (db *DB) migrate(ctx context.Context) error {
	return db.Update(ctx, func(tx *Tx) error {
		if _, err := tx.tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)`); err != nil {
			return err
		}
		var have int
		if err := tx.tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
			return err
		}
		for v := have + 1; v <= len(migrations); v++ {
			if _, err := tx.tx.ExecContext(ctx, migrations[v-1]); err != nil {
				return err
			}
			if _, err := tx.tx.ExecContext(ctx, `INSERT INTO schema_migrations (version) VALUES (?)`, v); err != nil {
				return err
			}
		}
		return nil
	})
}

package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/registry"
)

// CreateTenant implements registry.Tx.
func (tx *Tx) CreateTenant(ctx context.Context, t *registry.Tenant) error {
	_, err := tx.exec(ctx, `INSERT INTO tenants (id, name, created_ms) VALUES (?, ?, ?)`, t.ID, t.Name, ms(t.Created))
	return tx.mapErr(err)
}

// CreateAPIKey implements registry.Tx.
func (tx *Tx) CreateAPIKey(ctx context.Context, k *registry.APIKey) error {
	_, err := tx.exec(ctx, `INSERT INTO api_keys (id, tenant, hash, created_ms) VALUES (?, ?, ?, ?)`,
		k.ID, k.Tenant, k.Hash, ms(k.Created))
	return tx.mapErr(err)
}

// APIKey implements registry.Tx.
func (tx *Tx) APIKey(ctx context.Context, id iotpay.APIKeyID) (*registry.APIKey, error) {
	k := &registry.APIKey{ID: id}
	var created int64
	err := tx.row(ctx, `SELECT tenant, hash, created_ms FROM api_keys WHERE id = ?`, id).Scan(&k.Tenant, &k.Hash, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("API key", id)
	}
	k.Created = fromMs(created)
	return k, err
}

// CreateProduct implements registry.Tx.
func (tx *Tx) CreateProduct(ctx context.Context, p *registry.Product) error {
	pricing, err := json.Marshal(p.Pricing)
	if err != nil {
		return err
	}
	offline := ""
	if p.Offline != nil {
		b, err := json.Marshal(p.Offline)
		if err != nil {
			return err
		}
		offline = string(b)
	}
	if p.Kind == "" {
		p.Kind = registry.ProductDevice
	}
	_, err = tx.exec(ctx, `INSERT INTO products (id, tenant, name, pricing, merchant, category, kind, offline, created_ms)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, p.ID, p.Tenant, p.Name, string(pricing), p.Merchant, p.Category, p.Kind, offline, ms(p.Created))
	return tx.mapErr(err)
}

// Product implements registry.Tx.
func (tx *Tx) Product(ctx context.Context, tenant iotpay.TenantID, id iotpay.ProductID) (*registry.Product, error) {
	p := &registry.Product{ID: id, Tenant: tenant}
	var pricing, offline string
	var created int64
	var version int64
	err := tx.row(ctx, `SELECT name, pricing, merchant, category, kind, offline, created_ms, profile_version FROM products WHERE id = ? AND tenant = ?`, id, tenant).
		Scan(&p.Name, &pricing, &p.Merchant, &p.Category, &p.Kind, &offline, &created, &version)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("product", id)
	}
	if err != nil {
		return nil, err
	}
	p.Created, p.ProfileVersion = fromMs(created), int(version)
	if offline != "" {
		p.Offline = &registry.OfflineLimits{}
		if err := json.Unmarshal([]byte(offline), p.Offline); err != nil {
			return nil, err
		}
	}
	return p, json.Unmarshal([]byte(pricing), &p.Pricing)
}

const deviceCols = `id, tenant, product, name, status, suite, public_key, cert_serial, cert_not_after_ms,
	counter, challenge, token_hash, token_expires_ms, created_ms, last_seen_ms`

func scanDevice(row interface{ Scan(...any) error }) (*registry.Device, error) {
	d := &registry.Device{}
	var notAfter, expires, created, seen int64
	var counter int64
	err := row.Scan(&d.ID, &d.Tenant, &d.Product, &d.Name, &d.Status, &d.Suite, &d.PublicKey, &d.CertSerial, &notAfter,
		&counter, &d.Challenge, &d.TokenHash, &expires, &created, &seen)
	if err != nil {
		return nil, err
	}
	d.Counter = uint64(counter)
	d.CertNotAfter, d.TokenExpires, d.Created, d.LastSeen = fromMs(notAfter), fromMs(expires), fromMs(created), fromMs(seen)
	return d, nil
}

// CreateDevice implements registry.Tx.
func (tx *Tx) CreateDevice(ctx context.Context, d *registry.Device) error {
	_, err := tx.exec(ctx, `INSERT INTO devices (`+deviceCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.Tenant, d.Product, d.Name, d.Status, d.Suite, d.PublicKey, d.CertSerial, ms(d.CertNotAfter),
		int64(d.Counter), d.Challenge, d.TokenHash, ms(d.TokenExpires), ms(d.Created), ms(d.LastSeen))
	return tx.mapErr(err)
}

// Device implements registry.Tx.
func (tx *Tx) Device(ctx context.Context, id iotpay.DeviceID) (*registry.Device, error) {
	d, err := scanDevice(tx.row(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("device", id)
	}
	return d, err
}

// Devices implements registry.Tx.
func (tx *Tx) Devices(ctx context.Context, tenant iotpay.TenantID, after iotpay.DeviceID, limit int) ([]*registry.Device, error) {
	rows, err := tx.query(ctx, `SELECT `+deviceCols+` FROM devices WHERE tenant = ? AND id > ? ORDER BY id LIMIT ?`, tenant, after, limit)
	return collect(rows, err, scanDevice)
}

// UpdateDevice implements registry.Tx.
func (tx *Tx) UpdateDevice(ctx context.Context, d *registry.Device) error {
	res, err := tx.exec(ctx, `UPDATE devices SET name = ?, status = ?, suite = ?, public_key = ?, cert_serial = ?,
		cert_not_after_ms = ?, counter = ?, challenge = ?, token_hash = ?, token_expires_ms = ?, last_seen_ms = ? WHERE id = ?`,
		d.Name, d.Status, d.Suite, d.PublicKey, d.CertSerial, ms(d.CertNotAfter), int64(d.Counter), d.Challenge,
		d.TokenHash, ms(d.TokenExpires), ms(d.LastSeen), d.ID)
	if err != nil {
		return tx.mapErr(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return notFound("device", d.ID)
	}
	return nil
}

// TenantCount returns how many tenants exist, to tell a first start.
func (db *DB) TenantCount(ctx context.Context) (int, error) {
	var n int
	err := db.View(ctx, func(tx *Tx) error {
		return tx.row(ctx, `SELECT COUNT(*) FROM tenants`).Scan(&n)
	})
	return n, err
}

package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/webhook"
)

// schemaWebhooks (version 7): operators' webhook endpoints and every
// delivery of an event to one of them.
const schemaWebhooks = `
CREATE TABLE webhook_endpoints (
	id TEXT PRIMARY KEY, tenant TEXT NOT NULL REFERENCES tenants(id), url TEXT NOT NULL, secret TEXT NOT NULL,
	events TEXT NOT NULL, created_ms INT64 NOT NULL
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints(tenant, id);
CREATE TABLE webhook_deliveries (
	id TEXT PRIMARY KEY, tenant TEXT NOT NULL, endpoint TEXT NOT NULL, event_id TEXT NOT NULL, type TEXT NOT NULL,
	payload TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN ('pending','delivered','failed')),
	attempts INT64 NOT NULL, last_status INT64 NOT NULL, last_error TEXT NOT NULL, next_ms INT64 NOT NULL,
	created_ms INT64 NOT NULL, delivered_ms INT64 NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_ms);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries(endpoint, id);
`

// CreateEndpoint implements webhook.Tx.
func (tx *Tx) CreateEndpoint(ctx context.Context, e *webhook.Endpoint) error {
	_, err := tx.exec(ctx, `INSERT INTO webhook_endpoints (id, tenant, url, secret, events, created_ms) VALUES (?, ?, ?, ?, ?, ?)`,
		e.ID, e.Tenant, e.URL, e.Secret, strings.Join(e.Events, ","), ms(e.Created))
	return tx.mapErr(err)
}

// Endpoints implements webhook.Tx.
func (tx *Tx) Endpoints(ctx context.Context, tenant iotpay.TenantID) ([]*webhook.Endpoint, error) {
	rows, err := tx.query(ctx, `SELECT id, tenant, url, secret, events, created_ms FROM webhook_endpoints WHERE tenant = ? ORDER BY id`, tenant)
	return collect(rows, err, func(r interface{ Scan(...any) error }) (*webhook.Endpoint, error) {
		e := &webhook.Endpoint{}
		var events string
		var created int64
		err := r.Scan(&e.ID, &e.Tenant, &e.URL, &e.Secret, &events, &created)
		e.Events, e.Created = strings.Split(events, ","), fromMs(created)
		return e, err
	})
}

// DeleteEndpoint implements webhook.Tx; its pending deliveries fail.
func (tx *Tx) DeleteEndpoint(ctx context.Context, tenant iotpay.TenantID, id string) error {
	res, err := tx.exec(ctx, `DELETE FROM webhook_endpoints WHERE id = ? AND tenant = ?`, id, tenant)
	if err != nil {
		return tx.mapErr(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("webhook endpoint", id)
	}
	_, err = tx.exec(ctx, `UPDATE webhook_deliveries SET status = 'failed', last_error = 'endpoint deleted', next_ms = 0
		WHERE endpoint = ? AND status = 'pending'`, id)
	return tx.mapErr(err)
}

const deliveryCols = `id, tenant, endpoint, event_id, type, payload, status, attempts, last_status, last_error, next_ms, created_ms, delivered_ms`

func scanDelivery(r interface{ Scan(...any) error }) (*webhook.Delivery, error) {
	d := &webhook.Delivery{}
	var payload string
	var attempts, status, next, created, delivered int64
	if err := r.Scan(&d.ID, &d.Tenant, &d.Endpoint, &d.EventID, &d.Type, &payload, &d.Status, &attempts, &status, &d.LastError,
		&next, &created, &delivered); err != nil {
		return nil, err
	}
	d.Payload, d.Attempts, d.LastStatus = json.RawMessage(payload), int(attempts), int(status)
	d.Next, d.Created, d.Delivered = fromMs(next), fromMs(created), fromMs(delivered)
	return d, nil
}

// CreateDelivery implements webhook.Tx.
func (tx *Tx) CreateDelivery(ctx context.Context, d *webhook.Delivery) error {
	_, err := tx.exec(ctx, `INSERT INTO webhook_deliveries (`+deliveryCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.Tenant, d.Endpoint, d.EventID, d.Type, string(d.Payload), d.Status, d.Attempts, d.LastStatus, d.LastError,
		ms(d.Next), ms(d.Created), ms(d.Delivered))
	return tx.mapErr(err)
}

// UpdateDelivery implements webhook.Tx.
func (tx *Tx) UpdateDelivery(ctx context.Context, d *webhook.Delivery) error {
	_, err := tx.exec(ctx, `UPDATE webhook_deliveries SET status = ?, attempts = ?, last_status = ?, last_error = ?, next_ms = ?,
		delivered_ms = ? WHERE id = ?`, d.Status, d.Attempts, d.LastStatus, d.LastError, ms(d.Next), ms(d.Delivered), d.ID)
	return tx.mapErr(err)
}

// Delivery implements webhook.Tx.
func (tx *Tx) Delivery(ctx context.Context, tenant iotpay.TenantID, id string) (*webhook.Delivery, error) {
	d, err := scanDelivery(tx.row(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries WHERE id = ? AND tenant = ?`, id, tenant))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("webhook delivery", id)
	}
	return d, err
}

// Deliveries implements webhook.Tx.
func (tx *Tx) Deliveries(ctx context.Context, tenant iotpay.TenantID, endpoint string, status webhook.DeliveryStatus, limit int) ([]*webhook.Delivery, error) {
	rows, err := tx.query(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries WHERE tenant = ? AND endpoint = ? AND (? = '' OR status = ?)
		ORDER BY id DESC LIMIT ?`, tenant, endpoint, status, status, limit)
	return collect(rows, err, scanDelivery)
}

// DueDeliveries implements webhook.Tx.
func (tx *Tx) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]*webhook.Delivery, error) {
	rows, err := tx.query(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries WHERE status = 'pending' AND next_ms <= ?
		ORDER BY next_ms, id LIMIT ?`, ms(now), limit)
	return collect(rows, err, scanDelivery)
}

package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment"
)

// schemaRouting (version 8): which payment system each payment went to,
// payer accounts' instruments at external connectors, and tenants'
// routing tables.
const schemaRouting = `
ALTER TABLE payments ADD COLUMN connector TEXT NOT NULL DEFAULT '';
ALTER TABLE payments ADD COLUMN connector_ref TEXT NOT NULL DEFAULT '';
CREATE INDEX payments_connector_ref ON payments(connector, connector_ref) WHERE connector <> '';
CREATE TABLE account_sources (
	account TEXT NOT NULL, connector TEXT NOT NULL, tenant TEXT NOT NULL, source TEXT NOT NULL,
	PRIMARY KEY (account, connector)
);
CREATE TABLE routing_tables (
	tenant TEXT PRIMARY KEY REFERENCES tenants(id), body TEXT NOT NULL, updated_ms INT64 NOT NULL
);
`

// AccountSources implements payment.Tx.
func (tx *Tx) AccountSources(ctx context.Context, account iotpay.AccountID) (map[string]string, error) {
	rows, err := tx.query(ctx, `SELECT connector, source FROM account_sources WHERE account = ? ORDER BY connector`, account)
	pairs, err := collect(rows, err, func(r interface{ Scan(...any) error }) ([2]string, error) {
		var p [2]string
		return p, r.Scan(&p[0], &p[1])
	})
	if err != nil || len(pairs) == 0 {
		return nil, err
	}
	out := make(map[string]string, len(pairs))
	for _, p := range pairs {
		out[p[0]] = p[1]
	}
	return out, nil
}

// PutAccountSource implements payment.Tx: an upsert.
func (tx *Tx) PutAccountSource(ctx context.Context, tenant iotpay.TenantID, account iotpay.AccountID, connector, source string) error {
	_, err := tx.exec(ctx, `INSERT INTO account_sources (account, connector, tenant, source) VALUES (?, ?, ?, ?)
		ON CONFLICT (account, connector) DO UPDATE SET source = excluded.source`, account, connector, tenant, source)
	return tx.mapErr(err)
}

// RoutingTable implements payment.Tx.
func (tx *Tx) RoutingTable(ctx context.Context, tenant iotpay.TenantID) ([]byte, error) {
	var body string
	err := tx.row(ctx, `SELECT body FROM routing_tables WHERE tenant = ?`, tenant).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("routing table of tenant", tenant)
	}
	return []byte(body), err
}

// PutRoutingTable implements payment.Tx.
func (tx *Tx) PutRoutingTable(ctx context.Context, tenant iotpay.TenantID, body []byte, at time.Time) error {
	_, err := tx.exec(ctx, `INSERT INTO routing_tables (tenant, body, updated_ms) VALUES (?, ?, ?)
		ON CONFLICT (tenant) DO UPDATE SET body = excluded.body, updated_ms = excluded.updated_ms`, tenant, string(body), ms(at))
	return tx.mapErr(err)
}

// ConnectorPayments implements payment.Tx: payment ids are time-ordered,
// so the window is a range of the (tenant, id) index.
func (tx *Tx) ConnectorPayments(ctx context.Context, tenant iotpay.TenantID, connector string, from, until time.Time, limit int) ([]*payment.Payment, error) {
	rows, err := tx.query(ctx, `SELECT `+paymentCols+` FROM payments WHERE tenant = ? AND connector = ? AND id >= ? AND id < ?
		ORDER BY id LIMIT ?`, tenant, connector, iotpay.NewID(iotpay.PrefixPayment, from, zeroReader{}),
		iotpay.NewID(iotpay.PrefixPayment, until, zeroReader{}), limit)
	return collect(rows, err, scanPayment)
}

// PaymentByConnectorRef implements payment.Tx.
func (tx *Tx) PaymentByConnectorRef(ctx context.Context, connector, ref string) (*payment.Payment, error) {
	p, err := scanPayment(tx.row(ctx, `SELECT `+paymentCols+` FROM payments WHERE connector = ? AND connector_ref = ? AND connector <> ''
		ORDER BY id LIMIT 1`, connector, ref))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("payment at "+connector, ref)
	}
	return p, err
}

package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment"
)

// schemaFollowUps (version 9): the operations payment systems owe what
// the ledger booked (a transactional outbox), and what connectors keep of
// their payments across restarts.
const schemaFollowUps = `
CREATE TABLE follow_ups (
	id TEXT PRIMARY KEY, tenant TEXT NOT NULL, payment TEXT NOT NULL, connector TEXT NOT NULL, ref TEXT NOT NULL,
	op TEXT NOT NULL, amount INT64 NOT NULL, final BOOLEAN NOT NULL, op_key TEXT NOT NULL,
	status TEXT NOT NULL CHECK (status IN ('pending','failed')), attempts INT64 NOT NULL, last_error TEXT NOT NULL,
	next_ms INT64 NOT NULL, created_ms INT64 NOT NULL
);
CREATE INDEX follow_ups_due ON follow_ups(status, next_ms);
CREATE INDEX follow_ups_tenant ON follow_ups(tenant, status, created_ms);
CREATE TABLE connector_state (
	connector TEXT NOT NULL, ref TEXT NOT NULL, state BYTES NOT NULL, updated_ms INT64 NOT NULL,
	PRIMARY KEY (connector, ref)
);
`

const followUpCols = `id, tenant, payment, connector, ref, op, amount, final, op_key, status, attempts, last_error, next_ms, created_ms`

func scanFollowUp(r interface{ Scan(...any) error }) (*payment.FollowUp, error) {
	f := &payment.FollowUp{}
	var attempts, next, created int64
	if err := r.Scan(&f.ID, &f.Tenant, &f.Payment, &f.Connector, &f.Ref, &f.Op, &f.Amount, &f.Final, &f.Key, &f.Status,
		&attempts, &f.LastError, &next, &created); err != nil {
		return nil, err
	}
	f.Attempts, f.Next, f.Created = int(attempts), fromMs(next), fromMs(created)
	return f, nil
}

// PutFollowUp implements payment.Tx: an upsert by id.
func (tx *Tx) PutFollowUp(ctx context.Context, f *payment.FollowUp) error {
	_, err := tx.exec(ctx, `INSERT INTO follow_ups (`+followUpCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET ref = excluded.ref, amount = excluded.amount, final = excluded.final,
		status = excluded.status, attempts = excluded.attempts, last_error = excluded.last_error, next_ms = excluded.next_ms`,
		f.ID, f.Tenant, f.Payment, f.Connector, f.Ref, f.Op, f.Amount, f.Final, f.Key, f.Status, f.Attempts, f.LastError,
		ms(f.Next), ms(f.Created))
	return tx.mapErr(err)
}

// DeleteFollowUp implements payment.Tx.
func (tx *Tx) DeleteFollowUp(ctx context.Context, id string) error {
	_, err := tx.exec(ctx, `DELETE FROM follow_ups WHERE id = ?`, id)
	return tx.mapErr(err)
}

// DueFollowUps implements payment.Tx.
func (tx *Tx) DueFollowUps(ctx context.Context, at time.Time, limit int) ([]*payment.FollowUp, error) {
	rows, err := tx.query(ctx, `SELECT `+followUpCols+` FROM follow_ups WHERE status = 'pending' AND next_ms <= ?
		ORDER BY next_ms, id LIMIT ?`, ms(at), limit)
	return collect(rows, err, scanFollowUp)
}

// FollowUp implements payment.Tx.
func (tx *Tx) FollowUp(ctx context.Context, tenant iotpay.TenantID, id string) (*payment.FollowUp, error) {
	f, err := scanFollowUp(tx.row(ctx, `SELECT `+followUpCols+` FROM follow_ups WHERE id = ? AND tenant = ?`, id, tenant))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("follow-up", id)
	}
	return f, err
}

// FollowUps implements payment.Tx.
func (tx *Tx) FollowUps(ctx context.Context, tenant iotpay.TenantID, status payment.FollowUpStatus, limit int) ([]*payment.FollowUp, error) {
	rows, err := tx.query(ctx, `SELECT `+followUpCols+` FROM follow_ups WHERE tenant = ? AND status = ?
		ORDER BY created_ms DESC, id DESC LIMIT ?`, tenant, status, limit)
	return collect(rows, err, scanFollowUp)
}

// ConnectorState implements payment.Tx.
func (tx *Tx) ConnectorState(ctx context.Context, connector, ref string) ([]byte, error) {
	var state []byte
	err := tx.row(ctx, `SELECT state FROM connector_state WHERE connector = ? AND ref = ?`, connector, ref).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("state of "+connector+" payment", ref)
	}
	return state, err
}

// PutConnectorState implements payment.Tx: an upsert.
func (tx *Tx) PutConnectorState(ctx context.Context, connector, ref string, state []byte, at time.Time) error {
	_, err := tx.exec(ctx, `INSERT INTO connector_state (connector, ref, state, updated_ms) VALUES (?, ?, ?, ?)
		ON CONFLICT (connector, ref) DO UPDATE SET state = excluded.state, updated_ms = excluded.updated_ms`,
		connector, ref, state, ms(at))
	return tx.mapErr(err)
}

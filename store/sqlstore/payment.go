package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment"
)

// schemaPayments is the payment layer's, version 3: mandates, payments
// with their amounts authorized, captured, refunded and held, and the
// results kept for idempotency keys.
const schemaPayments = `
ALTER TABLE products ADD COLUMN category TEXT NOT NULL DEFAULT '';
CREATE TABLE mandates (
	id TEXT PRIMARY KEY, tenant TEXT NOT NULL REFERENCES tenants(id), device TEXT NOT NULL REFERENCES devices(id),
	payer TEXT NOT NULL, currency TEXT NOT NULL,
	per_payment INT64 NOT NULL, per_day INT64 NOT NULL, per_month INT64 NOT NULL,
	products TEXT NOT NULL, categories TEXT NOT NULL, valid_from_ms INT64 NOT NULL, valid_to_ms INT64 NOT NULL,
	status TEXT NOT NULL CHECK (status IN ('active','suspended','revoked')),
	day TEXT NOT NULL, day_used INT64 NOT NULL, month TEXT NOT NULL, month_used INT64 NOT NULL,
	created_ms INT64 NOT NULL, updated_ms INT64 NOT NULL
);
CREATE INDEX mandates_device ON mandates(device, id);
CREATE INDEX mandates_tenant ON mandates(tenant, id);
ALTER TABLE payments RENAME TO payments_v1;
CREATE TABLE payments (
	id TEXT PRIMARY KEY, tenant TEXT NOT NULL, device TEXT NOT NULL, mandate TEXT NOT NULL,
	product TEXT NOT NULL, category TEXT NOT NULL,
	status TEXT NOT NULL CHECK (status IN ('declined','authorized','partially_captured','captured','refunded','voided','expired')),
	decline_code TEXT NOT NULL, reason TEXT NOT NULL, currency TEXT NOT NULL,
	amount INT64 NOT NULL, captured INT64 NOT NULL, refunded INT64 NOT NULL, held INT64 NOT NULL,
	fee_operator INT64 NOT NULL, fee_platform INT64 NOT NULL, payer TEXT NOT NULL, merchant TEXT NOT NULL,
	hold TEXT NOT NULL, hold_expires_ms INT64 NOT NULL, request_id TEXT NOT NULL, request_hash BYTES,
	log_index INT64 NOT NULL, receipt BYTES, created_ms INT64 NOT NULL, updated_ms INT64 NOT NULL,
	CHECK (captured <= amount AND refunded <= captured AND held <= amount - captured)
);
CREATE TABLE idempotency_keys (
	tenant TEXT NOT NULL, key TEXT NOT NULL, request_hash BYTES NOT NULL, status INT64 NOT NULL, body BYTES NOT NULL,
	created_ms INT64 NOT NULL, PRIMARY KEY (tenant, key)
);
`

// migrateV1Payments carries the foundation's wallet over: its accounts
// and transfers into the ledger (balances after each transfer recomputed),
// its bindings into mandates (the daily limit 31 times over as the monthly
// one, which adds no limit the payer did not set), its payments into the
// new table (approved ones as captured), and then drops the old tables.
const migrateV1Payments = `
INSERT INTO ledger_accounts (id, tenant, currency, normal, flags, kind, name, created_ms,
	debits_pending, debits_posted, credits_pending, credits_posted)
SELECT a.id, a.tenant, a.currency, CASE WHEN a.kind = 'funding' THEN 1 ELSE 2 END, 0, a.kind, a.name, a.created_ms,
	0, COALESCE((SELECT SUM(t.amount) FROM transfers t WHERE t.debit = a.id), 0),
	0, COALESCE((SELECT SUM(t.amount) FROM transfers t WHERE t.credit = a.id), 0)
FROM accounts a;
INSERT INTO ledger_transfers (` + transferCols + `)
SELECT ROW_NUMBER() OVER (ORDER BY t.created_ms, t.id), t.id, t.tenant, t.debit, t.credit, t.amount, t.currency,
	0, '', 0, 0, t.kind, t.payment, t.created_ms,
	0, COALESCE((SELECT SUM(x.amount) FROM transfers x WHERE x.debit = t.debit AND (x.created_ms < t.created_ms OR (x.created_ms = t.created_ms AND x.id <= t.id))), 0),
	0, COALESCE((SELECT SUM(x.amount) FROM transfers x WHERE x.credit = t.debit AND (x.created_ms < t.created_ms OR (x.created_ms = t.created_ms AND x.id <= t.id))), 0),
	0, COALESCE((SELECT SUM(x.amount) FROM transfers x WHERE x.debit = t.credit AND (x.created_ms < t.created_ms OR (x.created_ms = t.created_ms AND x.id <= t.id))), 0),
	0, COALESCE((SELECT SUM(x.amount) FROM transfers x WHERE x.credit = t.credit AND (x.created_ms < t.created_ms OR (x.created_ms = t.created_ms AND x.id <= t.id))), 0)
FROM transfers t;
INSERT INTO mandates (id, tenant, device, payer, currency, per_payment, per_day, per_month, products, categories,
	valid_from_ms, valid_to_ms, status, day, day_used, month, month_used, created_ms, updated_ms)
SELECT 'mdt_' || substr(b.id, 5), b.tenant, b.device, b.account, b.currency, b.per_payment_limit, b.daily_limit,
	b.daily_limit * 31, '', '', b.created_ms, 0, 'active', '', 0, '', 0, b.created_ms, b.created_ms
FROM bindings b;
INSERT INTO payments (id, tenant, device, mandate, product, category, status, decline_code, reason, currency,
	amount, captured, refunded, held, fee_operator, fee_platform, payer, merchant, hold, hold_expires_ms,
	request_id, request_hash, log_index, receipt, created_ms, updated_ms)
SELECT p.id, p.tenant, p.device, COALESCE((SELECT 'mdt_' || substr(b.id, 5) FROM bindings b WHERE b.device = p.device), ''),
	'', '', CASE WHEN p.status = 'approved' THEN 'captured' ELSE 'declined' END, '', p.reason, p.currency,
	p.amount, CASE WHEN p.status = 'approved' THEN p.amount ELSE 0 END, 0, 0, 0, 0, p.payer, p.merchant, '', 0,
	p.request_id, p.request_hash, p.log_index, p.receipt, p.created_ms, p.created_ms
FROM payments_v1 p;
DROP TABLE payments_v1;
DROP TABLE transfers;
DROP TABLE bindings;
DROP TABLE accounts;
CREATE UNIQUE INDEX payments_request ON payments(device, request_id) WHERE request_id <> '';
CREATE INDEX payments_tenant ON payments(tenant, id);
CREATE INDEX payments_device ON payments(device, id);
CREATE INDEX payments_mandate ON payments(mandate, id);
CREATE INDEX payments_hold ON payments(hold) WHERE hold <> '';
`

const mandateCols = `id, tenant, device, payer, currency, per_payment, per_day, per_month, products, categories,
	valid_from_ms, valid_to_ms, status, day, day_used, month, month_used, created_ms, updated_ms`

func joinList[S ~string](xs []S) string {
	ss := make([]string, len(xs))
	for i, x := range xs {
		ss[i] = string(x)
	}
	return strings.Join(ss, ",")
}

func splitList[S ~string](s string) []S {
	if s == "" {
		return nil
	}
	var out []S
	for _, x := range strings.Split(s, ",") {
		out = append(out, S(x))
	}
	return out
}

func mandateArgs(m *payment.Mandate) []any {
	return []any{m.ID, m.Tenant, m.Device, m.Payer, m.Currency, m.PerPayment, m.PerDay, m.PerMonth,
		joinList(m.Products), joinList(m.Categories), ms(m.ValidFrom), ms(m.ValidTo), m.Status,
		m.Day, m.DayUsed, m.Month, m.MonthUsed, ms(m.Created), ms(m.Updated)}
}

func scanMandate(row interface{ Scan(...any) error }) (*payment.Mandate, error) {
	m := &payment.Mandate{}
	var products, categories string
	var from, to, created, updated int64
	err := row.Scan(&m.ID, &m.Tenant, &m.Device, &m.Payer, &m.Currency, &m.PerPayment, &m.PerDay, &m.PerMonth,
		&products, &categories, &from, &to, &m.Status, &m.Day, &m.DayUsed, &m.Month, &m.MonthUsed, &created, &updated)
	m.Products, m.Categories = splitList[iotpay.ProductID](products), splitList[string](categories)
	m.ValidFrom, m.ValidTo, m.Created, m.Updated = fromMs(from), fromMs(to), fromMs(created), fromMs(updated)
	return m, err
}

// CreateMandate implements payment.Tx.
func (tx *Tx) CreateMandate(ctx context.Context, m *payment.Mandate) error {
	_, err := tx.exec(ctx, qInsertMandate, mandateArgs(m)...)
	return tx.mapErr(err)
}

// UpdateMandate implements payment.Tx.
func (tx *Tx) UpdateMandate(ctx context.Context, m *payment.Mandate) error {
	res, err := tx.exec(ctx, qUpdateMandate, m.Status, m.Day, m.DayUsed, m.Month, m.MonthUsed, ms(m.Updated), m.ID)
	return tx.updated(res, err, "mandate", m.ID)
}

// Mandate implements payment.Tx.
func (tx *Tx) Mandate(ctx context.Context, tenant iotpay.TenantID, id iotpay.MandateID) (*payment.Mandate, error) {
	m, err := scanMandate(tx.row(ctx, qMandate, id, tenant))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("mandate", id)
	}
	return m, err
}

// DeviceMandate implements payment.Tx.
func (tx *Tx) DeviceMandate(ctx context.Context, device iotpay.DeviceID) (*payment.Mandate, error) {
	m, err := scanMandate(tx.row(ctx, qDeviceMandate, device))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("mandate of device", device)
	}
	return m, err
}

// Mandates implements payment.Tx.
func (tx *Tx) Mandates(ctx context.Context, tenant iotpay.TenantID, f payment.MandateFilter) ([]*payment.Mandate, error) {
	rows, err := tx.query(ctx, `SELECT `+mandateCols+` FROM mandates WHERE tenant = ? AND id > ?
		AND (? = '' OR device = ?) AND (? = '' OR status = ?) ORDER BY id LIMIT ?`,
		tenant, f.After, f.Device, f.Device, f.Status, f.Status, listLimit(f.Limit))
	return collect(rows, err, scanMandate)
}

const paymentCols = `id, tenant, device, mandate, product, category, status, decline_code, reason, currency,
	amount, captured, refunded, held, fee_operator, fee_platform, payer, merchant, hold, hold_expires_ms,
	request_id, request_hash, log_index, receipt, created_ms, updated_ms, connector, connector_ref`

func paymentArgs(p *payment.Payment) []any {
	return []any{p.ID, p.Tenant, p.Device, p.Mandate, p.Product, p.Category, p.Status, p.Decline, p.Reason, p.Currency,
		p.Amount, p.Captured, p.Refunded, p.Held, p.FeeOperator, p.FeePlatform, p.Payer, p.Merchant, p.Hold,
		ms(p.HoldExpires), p.RequestID, p.RequestHash, int64(p.LogIndex), p.Receipt, ms(p.Created), ms(p.Updated), p.Connector, p.ConnectorRef}
}

func scanPayment(row interface{ Scan(...any) error }) (*payment.Payment, error) {
	p := &payment.Payment{}
	var expires, logIndex, created, updated int64
	err := row.Scan(&p.ID, &p.Tenant, &p.Device, &p.Mandate, &p.Product, &p.Category, &p.Status, &p.Decline, &p.Reason,
		&p.Currency, &p.Amount, &p.Captured, &p.Refunded, &p.Held, &p.FeeOperator, &p.FeePlatform, &p.Payer, &p.Merchant,
		&p.Hold, &expires, &p.RequestID, &p.RequestHash, &logIndex, &p.Receipt, &created, &updated, &p.Connector, &p.ConnectorRef)
	p.HoldExpires, p.LogIndex, p.Created, p.Updated = fromMs(expires), uint64(logIndex), fromMs(created), fromMs(updated)
	return p, err
}

func placeholders(n int) string { return strings.Repeat("?, ", n-1) + "?" }

// The payment layer's statements the writer runs for every payment.
var (
	qInsertMandate = hot(`INSERT INTO mandates (` + mandateCols + `) VALUES (` + placeholders(19) + `)`)
	qUpdateMandate = hot(`UPDATE mandates SET status = ?, day = ?, day_used = ?, month = ?, month_used = ?, updated_ms = ?
		WHERE id = ?`)
	qMandate       = hot(`SELECT ` + mandateCols + ` FROM mandates WHERE id = ? AND tenant = ?`)
	qDeviceMandate = hot(`SELECT ` + mandateCols + ` FROM mandates WHERE device = ? ORDER BY id DESC LIMIT 1`)
	qInsertPayment = hot(`INSERT INTO payments (` + paymentCols + `) VALUES (` + placeholders(28) + `)`)
	qUpdatePayment = hot(`UPDATE payments SET status = ?, amount = ?, captured = ?, refunded = ?, held = ?,
		fee_operator = ?, fee_platform = ?, hold = ?, hold_expires_ms = ?, updated_ms = ? WHERE id = ?`)
	qPayment          = hot(`SELECT ` + paymentCols + ` FROM payments WHERE id = ? AND tenant = ?`)
	qPaymentByRequest = hot(`SELECT ` + paymentCols + ` FROM payments WHERE device = ? AND request_id = ? AND request_id <> ''`)
	qPaymentByHold    = hot(`SELECT ` + paymentCols + ` FROM payments WHERE hold = ? AND hold <> ''`)
)

// CreatePayment implements payment.Tx.
func (tx *Tx) CreatePayment(ctx context.Context, p *payment.Payment) error {
	_, err := tx.exec(ctx, qInsertPayment, paymentArgs(p)...)
	return tx.mapErr(err)
}

// UpdatePayment implements payment.Tx.
func (tx *Tx) UpdatePayment(ctx context.Context, p *payment.Payment) error {
	res, err := tx.exec(ctx, qUpdatePayment,
		p.Status, p.Amount, p.Captured, p.Refunded, p.Held, p.FeeOperator, p.FeePlatform, p.Hold, ms(p.HoldExpires),
		ms(p.Updated), p.ID)
	return tx.updated(res, err, "payment", p.ID)
}

// updated is an UPDATE's outcome: ENOTFOUND when no row had the id.
func (tx *Tx) updated(res sql.Result, err error, what string, id any) error {
	if err != nil {
		return tx.mapErr(err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return notFound(what, id)
	}
	return nil
}

func (tx *Tx) onePayment(ctx context.Context, what any, query string, args ...any) (*payment.Payment, error) {
	p, err := scanPayment(tx.row(ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("payment", what)
	}
	return p, err
}

// Payment implements payment.Tx.
func (tx *Tx) Payment(ctx context.Context, tenant iotpay.TenantID, id iotpay.PaymentID) (*payment.Payment, error) {
	return tx.onePayment(ctx, id, qPayment, id, tenant)
}

// PaymentByRequest implements payment.Tx.
func (tx *Tx) PaymentByRequest(ctx context.Context, device iotpay.DeviceID, requestID string) (*payment.Payment, error) {
	return tx.onePayment(ctx, requestID, qPaymentByRequest, device, requestID)
}

// PaymentByHold implements payment.Tx.
func (tx *Tx) PaymentByHold(ctx context.Context, hold iotpay.TransferID) (*payment.Payment, error) {
	return tx.onePayment(ctx, hold, qPaymentByHold, hold)
}

// Payments implements payment.Tx: newest first, before the cursor.
func (tx *Tx) Payments(ctx context.Context, tenant iotpay.TenantID, f payment.Filter) ([]*payment.Payment, error) {
	var since, until int64 = 0, 1 << 62
	if !f.Since.IsZero() {
		since = f.Since.UnixMilli()
	}
	if !f.Until.IsZero() {
		until = f.Until.UnixMilli()
	}
	// No cursor is no bound, not a sentinel id: how "~" compares with an
	// id depends on the database's collation (under ICU's en-US it sorts
	// first, and nothing would be listed).
	rows, err := tx.query(ctx, `SELECT `+paymentCols+` FROM payments WHERE tenant = ? AND (? = '' OR id < ?)
		AND (? = '' OR device = ?) AND (? = '' OR mandate = ?) AND (? = '' OR status = ?)
		AND created_ms >= ? AND created_ms < ? ORDER BY id DESC LIMIT ?`,
		tenant, f.Before, f.Before, f.Device, f.Device, f.Mandate, f.Mandate, f.Status, f.Status, since, until, listLimit(f.Limit))
	return collect(rows, err, scanPayment)
}

// Idempotency implements payment.Tx.
func (tx *Tx) Idempotency(ctx context.Context, tenant iotpay.TenantID, key string) (*payment.IdempotencyRecord, error) {
	r := &payment.IdempotencyRecord{Tenant: tenant, Key: key}
	var status, created int64
	err := tx.row(ctx, `SELECT request_hash, status, body, created_ms FROM idempotency_keys WHERE tenant = ? AND key = ?`,
		tenant, key).Scan(&r.RequestHash, &status, &r.Body, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("idempotency key", key)
	}
	r.Status, r.Created = int(status), fromMs(created)
	return r, err
}

// PutIdempotency implements payment.Tx: a key's record replaces an
// expired one.
func (tx *Tx) PutIdempotency(ctx context.Context, r *payment.IdempotencyRecord) error {
	_, err := tx.exec(ctx, `DELETE FROM idempotency_keys WHERE tenant = ? AND key = ?`, r.Tenant, r.Key)
	if err == nil {
		_, err = tx.exec(ctx, `INSERT INTO idempotency_keys (tenant, key, request_hash, status, body, created_ms)
			VALUES (?, ?, ?, ?, ?, ?)`, r.Tenant, r.Key, r.RequestHash, int64(r.Status), r.Body, ms(r.Created))
	}
	return tx.mapErr(err)
}

// PurgeIdempotency implements payment.Tx.
func (tx *Tx) PurgeIdempotency(ctx context.Context, before time.Time) (int64, error) {
	res, err := tx.exec(ctx, `DELETE FROM idempotency_keys WHERE created_ms < ?`, before.UnixMilli())
	if err != nil {
		return 0, tx.mapErr(err)
	}
	return res.RowsAffected()
}

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

const accountCols = `id, tenant, name, kind, currency, balance, created_ms`

func scanAccount(row interface{ Scan(...any) error }) (*payment.Account, error) {
	a := &payment.Account{}
	var created int64
	if err := row.Scan(&a.ID, &a.Tenant, &a.Name, &a.Kind, &a.Currency, &a.Balance, &created); err != nil {
		return nil, err
	}
	a.Created = fromMs(created)
	return a, nil
}

// CreateAccount implements payment.Tx.
func (tx *Tx) CreateAccount(ctx context.Context, a *payment.Account) error {
	_, err := tx.exec(ctx, `INSERT INTO accounts (`+accountCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.Tenant, a.Name, a.Kind, a.Currency, a.Balance, ms(a.Created))
	return tx.mapErr(err)
}

// Account implements payment.Tx.
func (tx *Tx) Account(ctx context.Context, tenant iotpay.TenantID, id iotpay.AccountID) (*payment.Account, error) {
	a, err := scanAccount(tx.row(ctx, `SELECT `+accountCols+` FROM accounts WHERE id = ? AND tenant = ?`, id, tenant))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("account", id)
	}
	return a, err
}

// Accounts implements payment.Tx.
func (tx *Tx) Accounts(ctx context.Context, tenant iotpay.TenantID) ([]*payment.Account, error) {
	rows, err := tx.query(ctx, `SELECT `+accountCols+` FROM accounts WHERE tenant = ? ORDER BY id`, tenant)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*payment.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// PostTransfer implements payment.Tx. Both accounts are read and checked
// before either balance changes, so a refusal leaves nothing half-applied.
func (tx *Tx) PostTransfer(ctx context.Context, t *payment.Transfer) error {
	if t.Amount <= 0 {
		return iotpay.Errorf(iotpay.EINVALID, "transfer amount must be positive")
	}
	if t.Debit == t.Credit {
		return iotpay.Errorf(iotpay.EINVALID, "transfer to the same account")
	}
	deb, err := tx.Account(ctx, t.Tenant, t.Debit)
	if err != nil {
		return err
	}
	cre, err := tx.Account(ctx, t.Tenant, t.Credit)
	if err != nil {
		return err
	}
	if deb.Currency != t.Currency || cre.Currency != t.Currency {
		return iotpay.Errorf(iotpay.EINVALID, "transfer currency %s does not match its accounts", t.Currency)
	}
	newDeb, ok1 := iotpay.AddInt64(deb.Balance, -t.Amount)
	newCre, ok2 := iotpay.AddInt64(cre.Balance, t.Amount)
	if !ok1 || !ok2 {
		return iotpay.Errorf(iotpay.EDECLINED, "balance out of range")
	}
	if newDeb < 0 && !deb.MayGoNegative() {
		return iotpay.Errorf(iotpay.EDECLINED, "insufficient funds")
	}
	for _, u := range []struct {
		id  iotpay.AccountID
		bal int64
	}{{deb.ID, newDeb}, {cre.ID, newCre}} {
		if _, err := tx.exec(ctx, `UPDATE accounts SET balance = ? WHERE id = ?`, u.bal, u.id); err != nil {
			return err
		}
	}
	_, err = tx.exec(ctx, `INSERT INTO transfers (id, tenant, kind, debit, credit, amount, currency, payment, created_ms)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, t.ID, t.Tenant, t.Kind, t.Debit, t.Credit, t.Amount, t.Currency, t.Payment, ms(t.Created))
	return tx.mapErr(err)
}

// Transfers implements payment.Tx.
func (tx *Tx) Transfers(ctx context.Context, tenant iotpay.TenantID, account iotpay.AccountID) ([]*payment.Transfer, error) {
	rows, err := tx.query(ctx, `SELECT id, kind, debit, credit, amount, currency, payment, created_ms FROM transfers
		WHERE tenant = ? AND (debit = ? OR credit = ?) ORDER BY id`, tenant, account, account)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*payment.Transfer
	for rows.Next() {
		t := &payment.Transfer{Tenant: tenant}
		var created int64
		if err := rows.Scan(&t.ID, &t.Kind, &t.Debit, &t.Credit, &t.Amount, &t.Currency, &t.Payment, &created); err != nil {
			return nil, err
		}
		t.Created = fromMs(created)
		out = append(out, t)
	}
	return out, rows.Err()
}

// CreateBinding implements payment.Tx.
func (tx *Tx) CreateBinding(ctx context.Context, b *payment.Binding) error {
	var devTenant iotpay.TenantID
	err := tx.row(ctx, `SELECT tenant FROM devices WHERE id = ?`, b.Device).Scan(&devTenant)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && devTenant != b.Tenant) {
		return notFound("device", b.Device)
	}
	if err != nil {
		return err
	}
	_, err = tx.exec(ctx, `INSERT INTO bindings (id, tenant, device, account, currency, per_payment_limit, daily_limit, created_ms)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, b.ID, b.Tenant, b.Device, b.Account, b.Currency, b.PerPaymentLimit, b.DailyLimit, ms(b.Created))
	if err = tx.mapErr(err); iotpay.ErrorCode(err) == iotpay.ECONFLICT {
		return iotpay.Errorf(iotpay.ECONFLICT, "device %s is already bound", b.Device)
	}
	return err
}

// Binding implements payment.Tx.
func (tx *Tx) Binding(ctx context.Context, device iotpay.DeviceID) (*payment.Binding, error) {
	b := &payment.Binding{Device: device}
	var created int64
	err := tx.row(ctx, `SELECT id, tenant, account, currency, per_payment_limit, daily_limit, created_ms
		FROM bindings WHERE device = ?`, device).Scan(&b.ID, &b.Tenant, &b.Account, &b.Currency, &b.PerPaymentLimit, &b.DailyLimit, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("binding for device", device)
	}
	b.Created = fromMs(created)
	return b, err
}

const paymentCols = `id, tenant, device, request_id, request_hash, status, reason, amount, currency, payer, merchant,
	transfers, log_index, receipt, created_ms`

func scanPayment(row interface{ Scan(...any) error }) (*payment.Payment, error) {
	p := &payment.Payment{}
	var xfrs string
	var idx, created int64
	err := row.Scan(&p.ID, &p.Tenant, &p.Device, &p.RequestID, &p.RequestHash, &p.Status, &p.Reason, &p.Amount, &p.Currency,
		&p.Payer, &p.Merchant, &xfrs, &idx, &p.Receipt, &created)
	if err != nil {
		return nil, err
	}
	if xfrs != "" {
		for _, x := range strings.Split(xfrs, ",") {
			p.Transfers = append(p.Transfers, iotpay.TransferID(x))
		}
	}
	p.LogIndex, p.Created = uint64(idx), fromMs(created)
	return p, nil
}

// CreatePayment implements payment.Tx.
func (tx *Tx) CreatePayment(ctx context.Context, p *payment.Payment) error {
	xfrs := make([]string, len(p.Transfers))
	for i, x := range p.Transfers {
		xfrs[i] = string(x)
	}
	_, err := tx.exec(ctx, `INSERT INTO payments (`+paymentCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, p.Tenant, p.Device, p.RequestID, p.RequestHash, p.Status, p.Reason, p.Amount, p.Currency, p.Payer, p.Merchant,
		strings.Join(xfrs, ","), int64(p.LogIndex), p.Receipt, ms(p.Created))
	return tx.mapErr(err)
}

// Payment implements payment.Tx.
func (tx *Tx) Payment(ctx context.Context, tenant iotpay.TenantID, id iotpay.PaymentID) (*payment.Payment, error) {
	p, err := scanPayment(tx.row(ctx, `SELECT `+paymentCols+` FROM payments WHERE id = ? AND tenant = ?`, id, tenant))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("payment", id)
	}
	return p, err
}

// PaymentByRequest implements payment.Tx.
func (tx *Tx) PaymentByRequest(ctx context.Context, device iotpay.DeviceID, requestID string) (*payment.Payment, error) {
	p, err := scanPayment(tx.row(ctx, `SELECT `+paymentCols+` FROM payments WHERE device = ? AND request_id = ?`, device, requestID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("request", requestID)
	}
	return p, err
}

// Payments implements payment.Tx.
func (tx *Tx) Payments(ctx context.Context, tenant iotpay.TenantID, f payment.Filter) ([]*payment.Payment, error) {
	q := `SELECT ` + paymentCols + ` FROM payments WHERE tenant = ? AND id > ?`
	args := []any{tenant, f.After}
	if f.Device != "" {
		q += ` AND device = ?`
		args = append(args, f.Device)
	}
	q += ` ORDER BY id LIMIT ?`
	args = append(args, f.Limit)
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*payment.Payment
	for rows.Next() {
		p, err := scanPayment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// ApprovedSince implements payment.Tx.
func (tx *Tx) ApprovedSince(ctx context.Context, device iotpay.DeviceID, since time.Time) (int64, error) {
	var sum int64
	err := tx.row(ctx, `SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM payments
		WHERE device = ? AND status = 'approved' AND created_ms >= ?`,
		device, ms(since)).Scan(&sum)
	return sum, err
}

// LedgerCheck implements payment.Tx.
func (tx *Tx) LedgerCheck(ctx context.Context) (map[iotpay.Currency]int64, []iotpay.AccountID, error) {
	sums := map[iotpay.Currency]int64{}
	rows, err := tx.query(ctx, `SELECT currency, CAST(SUM(balance) AS BIGINT) FROM accounts GROUP BY currency`)
	if err != nil {
		return nil, nil, err
	}
	for rows.Next() {
		var c iotpay.Currency
		var s int64
		if err := rows.Scan(&c, &s); err != nil {
			rows.Close()
			return nil, nil, err
		}
		sums[c] = s
	}
	rows.Close()
	rows, err = tx.query(ctx, `SELECT a.id FROM accounts a WHERE a.balance <>
		COALESCE((SELECT SUM(amount) FROM transfers WHERE credit = a.id), 0) -
		COALESCE((SELECT SUM(amount) FROM transfers WHERE debit = a.id), 0) ORDER BY a.id`)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var bad []iotpay.AccountID
	for rows.Next() {
		var id iotpay.AccountID
		if err := rows.Scan(&id); err != nil {
			return nil, nil, err
		}
		bad = append(bad, id)
	}
	return sums, bad, rows.Err()
}

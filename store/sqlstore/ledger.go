package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/ledger"
)

// schemaLedger is the ledger's: accounts with their four running totals,
// transfers (append-only, each with both accounts' balances after it, for
// point-in-time reads), and the set of holds still open, which the writer
// loads at start instead of scanning every hold ever made.
const schemaLedger = `
CREATE TABLE ledger_accounts (
	id TEXT PRIMARY KEY, tenant TEXT NOT NULL, currency TEXT NOT NULL, normal INT64 NOT NULL,
	flags INT64 NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, created_ms INT64 NOT NULL,
	debits_pending INT64 NOT NULL DEFAULT 0, debits_posted INT64 NOT NULL DEFAULT 0,
	credits_pending INT64 NOT NULL DEFAULT 0, credits_posted INT64 NOT NULL DEFAULT 0
);
CREATE INDEX ledger_accounts_tenant ON ledger_accounts(tenant, id);
CREATE TABLE ledger_transfers (
	seq INT64 PRIMARY KEY, id TEXT NOT NULL UNIQUE, tenant TEXT NOT NULL,
	debit TEXT NOT NULL, credit TEXT NOT NULL, amount INT64 NOT NULL, currency TEXT NOT NULL,
	flags INT64 NOT NULL, pending_id TEXT NOT NULL, timeout_ms INT64 NOT NULL, expires_ms INT64 NOT NULL,
	kind TEXT NOT NULL, ref TEXT NOT NULL, time_ms INT64 NOT NULL,
	d_dpe INT64 NOT NULL, d_dpo INT64 NOT NULL, d_cpe INT64 NOT NULL, d_cpo INT64 NOT NULL,
	c_dpe INT64 NOT NULL, c_dpo INT64 NOT NULL, c_cpe INT64 NOT NULL, c_cpo INT64 NOT NULL
);
CREATE INDEX ledger_transfers_debit ON ledger_transfers(debit, seq);
CREATE INDEX ledger_transfers_credit ON ledger_transfers(credit, seq);
CREATE INDEX ledger_transfers_pending ON ledger_transfers(pending_id) WHERE pending_id <> '';
CREATE INDEX ledger_transfers_ref ON ledger_transfers(tenant, ref, seq) WHERE ref <> '';
CREATE INDEX ledger_transfers_time ON ledger_transfers(time_ms, seq);
CREATE TABLE ledger_open_holds (seq INT64 PRIMARY KEY, id TEXT NOT NULL UNIQUE);
`

const ledgerAccountCols = `id, tenant, currency, normal, flags, kind, name, created_ms,
	debits_pending, debits_posted, credits_pending, credits_posted`

func scanLedgerAccount(row interface{ Scan(...any) error }) (*ledger.Account, error) {
	a := &ledger.Account{}
	var created int64
	err := row.Scan(&a.ID, &a.Tenant, &a.Currency, &a.Normal, &a.Flags, &a.Kind, &a.Name, &created,
		&a.DebitsPending, &a.DebitsPosted, &a.CreditsPending, &a.CreditsPosted)
	a.Created = fromMs(created)
	return a, err
}

const transferColsN = 22

const transferCols = `seq, id, tenant, debit, credit, amount, currency, flags, pending_id, timeout_ms, expires_ms,
	kind, ref, time_ms, d_dpe, d_dpo, d_cpe, d_cpo, c_dpe, c_dpo, c_cpe, c_cpo`

func transferArgs(t *ledger.Transfer) []any {
	return []any{t.Seq, t.ID, t.Tenant, t.Debit, t.Credit, t.Amount, t.Currency, int64(t.Flags), t.PendingID,
		t.Timeout.Milliseconds(), ms(t.ExpiresAt), t.Kind, t.Ref, ms(t.Time),
		t.DebitBalance.DebitsPending, t.DebitBalance.DebitsPosted, t.DebitBalance.CreditsPending, t.DebitBalance.CreditsPosted,
		t.CreditBalance.DebitsPending, t.CreditBalance.DebitsPosted, t.CreditBalance.CreditsPending, t.CreditBalance.CreditsPosted}
}

func scanTransfer(row interface{ Scan(...any) error }) (*ledger.Transfer, error) {
	t := &ledger.Transfer{}
	var flags, timeout, expires, at int64
	d, c := &t.DebitBalance, &t.CreditBalance
	err := row.Scan(&t.Seq, &t.ID, &t.Tenant, &t.Debit, &t.Credit, &t.Amount, &t.Currency, &flags, &t.PendingID,
		&timeout, &expires, &t.Kind, &t.Ref, &at,
		&d.DebitsPending, &d.DebitsPosted, &d.CreditsPending, &d.CreditsPosted,
		&c.DebitsPending, &c.DebitsPosted, &c.CreditsPending, &c.CreditsPosted)
	t.Flags, t.Timeout, t.ExpiresAt, t.Time = ledger.TransferFlags(flags), time.Duration(timeout)*time.Millisecond, fromMs(expires), fromMs(at)
	return t, err
}

func collect[R any](rows *sql.Rows, err error, scan func(interface{ Scan(...any) error }) (R, error)) ([]R, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []R
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// usesArrays reports whether the dialect takes whole columns as array
// parameters (PostgreSQL's unnest), which makes a bulk write one fixed
// statement; otherwise bulk writes are multi-row VALUES lists.
func (d *Dialect) usesArrays() bool { return d.numbered }

// bulkInsert begins a bulk INSERT. On SQLite a failure rolls the whole
// transaction back (the writer then retries its operations one by one), so
// a statement needs no statement journal of its own: building and freeing
// one for every multi-row statement was a third of the writer's time.
func (d *Dialect) bulkInsert() string {
	if d.usesArrays() {
		return "INSERT INTO"
	}
	return "INSERT OR ROLLBACK INTO"
}

// bulkSizes are the row counts of the writer's prepared bulk statements:
// n rows go as the fewest statements of these sizes.
var bulkSizes = []int{256, 64, 16, 4, 1}

// chunks calls fn with consecutive [start, start+size) ranges covering n
// rows, each size one of bulkSizes.
func chunks(n int, fn func(start, size int) error) error {
	start := 0
	for _, size := range bulkSizes {
		for ; n-start >= size; start += size {
			if err := fn(start, size); err != nil {
				return err
			}
		}
	}
	return nil
}

// memo remembers the bulk statements' texts, built once for each shape.
var memo sync.Map

func memoized(key string, build func() string) string {
	if q, ok := memo.Load(key); ok {
		return q.(string)
	}
	q := build()
	memo.Store(key, q)
	return q
}

// tuples is n parenthesized groups of k placeholders.
func tuples(n, k int) string {
	row := "(" + strings.Repeat("?, ", k-1) + "?)"
	return strings.Repeat(row+", ", n-1) + row
}

func insertSQL(d *Dialect, table, cols string, ncols, rows int) string {
	return memoized(d.name+" insert "+table+" "+strconv.Itoa(rows), func() string {
		return d.bulkInsert() + " " + table + " (" + cols + ") VALUES " + tuples(rows, ncols)
	})
}

func updateBalancesSQL(rows int) string {
	return memoized("update balances "+strconv.Itoa(rows), func() string { return updateBalancesSQLOf(rows) })
}

func updateBalancesSQLOf(rows int) string {
	return `WITH u(id, dpe, dpo, cpe, cpo) AS (VALUES ` + tuples(rows, 5) + `)
		UPDATE OR ROLLBACK ledger_accounts SET debits_pending = u.dpe, debits_posted = u.dpo, credits_pending = u.cpe,
		credits_posted = u.cpo FROM u WHERE ledger_accounts.id = u.id`
}

func lookupSQL(rows int) string {
	return `SELECT ` + transferCols + ` FROM ledger_transfers WHERE id IN (?` + strings.Repeat(", ?", rows-1) + `)`
}

const (
	insertTransfersArraysSQL = `INSERT INTO ledger_transfers (` + transferCols + `) SELECT * FROM unnest(
		?::bigint[], ?::text[], ?::text[], ?::text[], ?::text[], ?::bigint[], ?::text[], ?::bigint[], ?::text[],
		?::bigint[], ?::bigint[], ?::text[], ?::text[], ?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[],
		?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[])`
	updateBalancesArraysSQL = `UPDATE ledger_accounts AS a SET debits_pending = u.dpe, debits_posted = u.dpo,
		credits_pending = u.cpe, credits_posted = u.cpo
		FROM unnest(?::text[], ?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[]) AS u(id, dpe, dpo, cpe, cpo)
		WHERE a.id = u.id`
	lookupArraysSQL = `SELECT ` + transferCols + ` FROM ledger_transfers WHERE id = ANY(?::text[])`
)

// hotQueries are the statements registered with hot.
var hotQueries []string

// hot registers query as one the writer runs often, to be prepared once;
// package-level variables call it, so the list is complete before any
// database opens.
func hot(query string) string {
	hotQueries = append(hotQueries, query)
	return query
}

// hotStatements are the writer's statements worth preparing once.
func hotStatements(d *Dialect) []string {
	qs := append([]string{}, hotQueries...)
	if d.usesArrays() {
		qs = append(qs, insertTransfersArraysSQL, updateBalancesArraysSQL, lookupArraysSQL)
	}
	for _, n := range bulkSizes {
		qs = append(qs, insertSQL(d, "ledger_open_holds", "seq, id", 2, n), deleteHoldsSQL(n))
		if !d.usesArrays() {
			qs = append(qs, insertSQL(d, "ledger_transfers", transferCols, transferColsN, n), updateBalancesSQL(n), lookupSQL(n))
		}
	}
	return qs
}

// insertValues inserts rows (each ncols values) in prepared multi-row
// statements.
func (tx *Tx) insertValues(ctx context.Context, table string, ncols int, cols string, rows int, arg func(i int) []any) error {
	return chunks(rows, func(start, n int) error {
		args := make([]any, 0, n*ncols)
		for i := start; i < start+n; i++ {
			args = append(args, arg(i)...)
		}
		_, err := tx.exec(ctx, insertSQL(tx.d, table, cols, ncols, n), args...)
		return tx.mapErr(err)
	})
}

// InsertAccounts implements ledger.Tx.
func (tx *Tx) InsertAccounts(ctx context.Context, as []*ledger.Account) error {
	return tx.insertValues(ctx, "ledger_accounts", 12, ledgerAccountCols, len(as), func(i int) []any {
		a := as[i]
		return []any{a.ID, a.Tenant, a.Currency, int64(a.Normal), int64(a.Flags), a.Kind, a.Name, ms(a.Created),
			a.DebitsPending, a.DebitsPosted, a.CreditsPending, a.CreditsPosted}
	})
}

// InsertTransfers implements ledger.Tx, and keeps the open holds' table.
func (tx *Tx) InsertTransfers(ctx context.Context, ts []*ledger.Transfer) error {
	var opened, closed []*ledger.Transfer
	for _, t := range ts {
		if t.Flags&ledger.Pending != 0 {
			opened = append(opened, t)
		}
		if t.PendingID != "" {
			closed = append(closed, t)
		}
	}
	if tx.d.usesArrays() {
		if err := tx.insertTransfersArrays(ctx, ts); err != nil {
			return err
		}
	} else if err := tx.insertValues(ctx, "ledger_transfers", transferColsN, transferCols, len(ts), func(i int) []any {
		return transferArgs(ts[i])
	}); err != nil {
		return err
	}
	if len(opened) > 0 {
		if err := tx.insertValues(ctx, "ledger_open_holds", 2, "seq, id", len(opened), func(i int) []any {
			return []any{opened[i].Seq, opened[i].ID}
		}); err != nil {
			return err
		}
	}
	return chunks(len(closed), func(start, n int) error {
		args := make([]any, n)
		for i, t := range closed[start : start+n] {
			args[i] = t.PendingID
		}
		_, err := tx.exec(ctx, deleteHoldsSQL(n), args...)
		return err
	})
}

func deleteHoldsSQL(rows int) string {
	return memoized("delete holds "+strconv.Itoa(rows), func() string { return deleteHoldsSQLOf(rows) })
}

func deleteHoldsSQLOf(rows int) string {
	return `DELETE FROM ledger_open_holds WHERE id IN (?` + strings.Repeat(", ?", rows-1) + `)`
}

// insertTransfersArrays is one INSERT … SELECT FROM unnest of 22 arrays.
func (tx *Tx) insertTransfersArrays(ctx context.Context, ts []*ledger.Transfer) error {
	_, err := tx.exec(ctx, insertTransfersArraysSQL, transferArrays(ts)...)
	return tx.mapErr(err)
}

// transferArrays is ts column by column, in transferCols' order (as
// transferArgs gives a row), as the typed arrays the driver sends to
// unnest.
func transferArrays(ts []*ledger.Transfer) []any {
	n := len(ts)
	ints := func() []int64 { return make([]int64, n) }
	strs := func() []string { return make([]string, n) }
	seq, amount, flags, timeout, expires, at := ints(), ints(), ints(), ints(), ints(), ints()
	id, tenant, debit, credit, cur, pending, kind, ref := strs(), strs(), strs(), strs(), strs(), strs(), strs(), strs()
	var bal [8][]int64
	for k := range bal {
		bal[k] = ints()
	}
	for j, t := range ts {
		seq[j], amount[j], flags[j], timeout[j], expires[j], at[j] = t.Seq, t.Amount, int64(t.Flags),
			t.Timeout.Milliseconds(), ms(t.ExpiresAt), ms(t.Time)
		id[j], tenant[j], debit[j], credit[j] = string(t.ID), string(t.Tenant), string(t.Debit), string(t.Credit)
		cur[j], pending[j], kind[j], ref[j] = string(t.Currency), string(t.PendingID), t.Kind, t.Ref
		d, c := t.DebitBalance, t.CreditBalance
		for k, v := range [8]int64{d.DebitsPending, d.DebitsPosted, d.CreditsPending, d.CreditsPosted,
			c.DebitsPending, c.DebitsPosted, c.CreditsPending, c.CreditsPosted} {
			bal[k][j] = v
		}
	}
	return []any{seq, id, tenant, debit, credit, amount, cur, flags, pending, timeout, expires, kind, ref, at,
		bal[0], bal[1], bal[2], bal[3], bal[4], bal[5], bal[6], bal[7]}
}

// UpdateBalances implements ledger.Tx.
func (tx *Tx) UpdateBalances(ctx context.Context, as []*ledger.Account) error {
	if tx.d.usesArrays() {
		ids := make([]string, len(as))
		var dpe, dpo, cpe, cpo = make([]int64, len(as)), make([]int64, len(as)), make([]int64, len(as)), make([]int64, len(as))
		for i, a := range as {
			ids[i], dpe[i], dpo[i], cpe[i], cpo[i] = string(a.ID), a.DebitsPending, a.DebitsPosted, a.CreditsPending, a.CreditsPosted
		}
		_, err := tx.exec(ctx, updateBalancesArraysSQL, ids, dpe, dpo, cpe, cpo)
		return tx.mapErr(err)
	}
	// One statement a chunk: a VALUES list joined to the accounts.
	return chunks(len(as), func(start, n int) error {
		args := make([]any, 0, 5*n)
		for _, a := range as[start : start+n] {
			args = append(args, a.ID, a.DebitsPending, a.DebitsPosted, a.CreditsPending, a.CreditsPosted)
		}
		_, err := tx.exec(ctx, updateBalancesSQL(n), args...)
		return tx.mapErr(err)
	})
}

// LookupTransfers implements ledger.Tx.
func (tx *Tx) LookupTransfers(ctx context.Context, ids []iotpay.TransferID) ([]*ledger.Transfer, error) {
	if tx.d.usesArrays() {
		s := make([]string, len(ids))
		for i, id := range ids {
			s[i] = string(id)
		}
		rows, err := tx.query(ctx, lookupArraysSQL, s)
		return collect(rows, err, scanTransfer)
	}
	var out []*ledger.Transfer
	err := chunks(len(ids), func(start, n int) error {
		args := make([]any, n)
		for i, id := range ids[start : start+n] {
			args[i] = id
		}
		rows, err := tx.query(ctx, lookupSQL(n), args...)
		ts, err := collect(rows, err, scanTransfer)
		out = append(out, ts...)
		return err
	})
	return out, err
}

// Resolution implements ledger.Tx.
func (tx *Tx) Resolution(ctx context.Context, pending iotpay.TransferID) (*ledger.Transfer, error) {
	t, err := scanTransfer(tx.row(ctx, `SELECT `+transferCols+` FROM ledger_transfers WHERE pending_id = ? AND pending_id <> '' ORDER BY seq LIMIT 1`, pending))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("resolution of", pending)
	}
	return t, err
}

// LoadLedger implements ledger.Tx.
func (tx *Tx) LoadLedger(ctx context.Context) ([]*ledger.Account, []*ledger.Transfer, int64, error) {
	rows, err := tx.query(ctx, `SELECT `+ledgerAccountCols+` FROM ledger_accounts`)
	as, err := collect(rows, err, scanLedgerAccount)
	if err != nil {
		return nil, nil, 0, err
	}
	rows, err = tx.query(ctx, `SELECT `+prefixed("t.", transferCols)+` FROM ledger_open_holds h
		JOIN ledger_transfers t ON t.seq = h.seq ORDER BY t.seq`)
	open, err := collect(rows, err, scanTransfer)
	if err != nil {
		return nil, nil, 0, err
	}
	var seq int64
	err = tx.row(ctx, `SELECT COALESCE(MAX(seq), 0) FROM ledger_transfers`).Scan(&seq)
	return as, open, seq, err
}

// prefixed qualifies each column of a list.
func prefixed(p, cols string) string {
	fs := strings.Split(cols, ",")
	for i, f := range fs {
		fs[i] = p + strings.TrimSpace(f)
	}
	return strings.Join(fs, ", ")
}

// Account implements ledger.ReadTx.
func (tx *Tx) Account(ctx context.Context, tenant iotpay.TenantID, id iotpay.AccountID) (*ledger.Account, error) {
	a, err := scanLedgerAccount(tx.row(ctx, `SELECT `+ledgerAccountCols+` FROM ledger_accounts WHERE id = ? AND tenant = ?`, id, tenant))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("account", id)
	}
	return a, err
}

func listLimit(n int) int {
	if n <= 0 || n > ledger.ListLimitMax {
		return ledger.ListLimitMax
	}
	return n
}

// Accounts implements ledger.ReadTx.
func (tx *Tx) Accounts(ctx context.Context, tenant iotpay.TenantID, f ledger.AccountFilter) ([]*ledger.Account, error) {
	rows, err := tx.query(ctx, `SELECT `+ledgerAccountCols+` FROM ledger_accounts
		WHERE tenant = ? AND id > ? AND (? = '' OR kind = ?) ORDER BY id LIMIT ?`,
		tenant, f.After, f.Kind, f.Kind, listLimit(f.Limit))
	return collect(rows, err, scanLedgerAccount)
}

// Transfer implements ledger.ReadTx.
func (tx *Tx) Transfer(ctx context.Context, tenant iotpay.TenantID, id iotpay.TransferID) (*ledger.Transfer, error) {
	t, err := scanTransfer(tx.row(ctx, `SELECT `+transferCols+` FROM ledger_transfers WHERE id = ? AND tenant = ?`, id, tenant))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("transfer", id)
	}
	return t, err
}

// Transfers implements ledger.ReadTx. Each filter has its own query so
// that each uses its index.
func (tx *Tx) Transfers(ctx context.Context, tenant iotpay.TenantID, f ledger.TransferFilter) ([]*ledger.Transfer, error) {
	var rows *sql.Rows
	var err error
	limit := listLimit(f.Limit)
	switch {
	case f.Account != "":
		// Two index ranges merged: transfers debiting and crediting it.
		rows, err = tx.query(ctx, `SELECT `+transferCols+` FROM (
			SELECT `+transferCols+` FROM ledger_transfers WHERE debit = ? AND seq > ? AND tenant = ?
			UNION ALL
			SELECT `+transferCols+` FROM ledger_transfers WHERE credit = ? AND seq > ? AND tenant = ?
		) x WHERE ? = '' OR ref = ? ORDER BY seq LIMIT ?`,
			f.Account, f.AfterSeq, tenant, f.Account, f.AfterSeq, tenant, f.Ref, f.Ref, limit)
	case f.Ref != "":
		rows, err = tx.query(ctx, `SELECT `+transferCols+` FROM ledger_transfers
			WHERE tenant = ? AND ref = ? AND seq > ? ORDER BY seq LIMIT ?`, tenant, f.Ref, f.AfterSeq, limit)
	default:
		rows, err = tx.query(ctx, `SELECT `+transferCols+` FROM ledger_transfers
			WHERE tenant = ? AND seq > ? ORDER BY seq LIMIT ?`, tenant, f.AfterSeq, limit)
	}
	return collect(rows, err, scanTransfer)
}

// LastTransferOf implements ledger.ReadTx.
func (tx *Tx) LastTransferOf(ctx context.Context, account iotpay.AccountID, asOf ledger.AsOf) (*ledger.Transfer, error) {
	seq := asOf.Seq
	if seq == 0 {
		// Seq and time grow together: the last transfer at the instant
		// bounds the sequence.
		if err := tx.row(ctx, `SELECT COALESCE(MAX(seq), 0) FROM ledger_transfers WHERE time_ms <= ?`,
			asOf.Time.UnixMilli()).Scan(&seq); err != nil {
			return nil, err
		}
	}
	t, err := scanTransfer(tx.row(ctx, `SELECT `+transferCols+` FROM (
		SELECT `+transferCols+` FROM (SELECT `+transferCols+` FROM ledger_transfers WHERE debit = ? AND seq <= ? ORDER BY seq DESC LIMIT 1) d
		UNION ALL
		SELECT `+transferCols+` FROM (SELECT `+transferCols+` FROM ledger_transfers WHERE credit = ? AND seq <= ? ORDER BY seq DESC LIMIT 1) c
	) x ORDER BY seq DESC LIMIT 1`, account, seq, account, seq))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("transfer of", account)
	}
	return t, err
}

// Totals implements ledger.ReadTx.
func (tx *Tx) Totals(ctx context.Context) (map[iotpay.Currency]ledger.Balance, error) {
	rows, err := tx.query(ctx, `SELECT currency, COALESCE(SUM(debits_pending), 0), COALESCE(SUM(debits_posted), 0),
		COALESCE(SUM(credits_pending), 0), COALESCE(SUM(credits_posted), 0) FROM ledger_accounts GROUP BY currency`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[iotpay.Currency]ledger.Balance{}
	for rows.Next() {
		var c iotpay.Currency
		var b ledger.Balance
		if err := rows.Scan(&c, &b.DebitsPending, &b.DebitsPosted, &b.CreditsPending, &b.CreditsPosted); err != nil {
			return nil, err
		}
		out[c] = b
	}
	return out, rows.Err()
}

// Replayed implements ledger.ReadTx: every balance recomputed from the
// transfers (a hold counts while no transfer resolves it), independently
// of the open holds' table, and compared with the stored one.
func (tx *Tx) Replayed(ctx context.Context) ([]iotpay.AccountID, error) {
	held := `CASE WHEN (t.flags & ` + strconv.Itoa(int(ledger.Pending)) + `) <> 0
		AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = t.id AND r.pending_id <> '') THEN t.amount ELSE 0 END`
	posted := `CASE WHEN (t.flags & ` + strconv.Itoa(int(ledger.Pending|ledger.VoidPending|ledger.Expired)) + `) = 0
		THEN t.amount ELSE 0 END`
	sums := map[iotpay.AccountID]*ledger.Balance{}
	for _, side := range []string{"debit", "credit"} {
		rows, err := tx.query(ctx, `SELECT t.`+side+`, COALESCE(SUM(`+held+`), 0), COALESCE(SUM(`+posted+`), 0)
			FROM ledger_transfers t GROUP BY t.`+side)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id iotpay.AccountID
			var h, p int64
			if err := rows.Scan(&id, &h, &p); err != nil {
				rows.Close()
				return nil, err
			}
			b := sums[id]
			if b == nil {
				b = &ledger.Balance{}
				sums[id] = b
			}
			if side == "debit" {
				b.DebitsPending, b.DebitsPosted = h, p
			} else {
				b.CreditsPending, b.CreditsPosted = h, p
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	rows, err := tx.query(ctx, `SELECT `+ledgerAccountCols+` FROM ledger_accounts ORDER BY id`)
	as, err := collect(rows, err, scanLedgerAccount)
	if err != nil {
		return nil, err
	}
	var out []iotpay.AccountID
	for _, a := range as {
		want := ledger.Balance{}
		if b := sums[a.ID]; b != nil {
			want = *b
		}
		delete(sums, a.ID)
		if a.Balance != want {
			out = append(out, a.ID)
		}
	}
	for id := range sums { // transfers of an account that does not exist
		out = append(out, id)
	}
	return out, nil
}

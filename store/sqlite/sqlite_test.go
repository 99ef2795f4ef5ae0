package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/payment/ledger"
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

// wantFreshSchema fails the test unless the database at path (what) has
// the schema a fresh database gets.
func wantFreshSchema(t *testing.T, path, what string) {
	t.Helper()
	fresh := filepath.Join(t.TempDir(), "fresh.db")
	db, err := Open(context.Background(), fresh)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if got, want := schema(t, path), schema(t, fresh); !slices.Equal(got, want) {
		t.Errorf("schema of %s:\n%s\nfresh schema:\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// openAtLatest opens the database at path, which must migrate to the
// latest version; it is closed when the test ends.
func openAtLatest(t *testing.T, path string) *DB {
	t.Helper()
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if v, err := db.Version(ctx); err != nil || v != sqlstore.LatestVersion() {
		t.Fatalf("version = %d, %v; want %d", v, err, sqlstore.LatestVersion())
	}
	return db
}

// legacyCopy copies testdata/v1.db, written by the first release, to a
// temporary file and returns its path.
func legacyCopy(t *testing.T) string {
	t.Helper()
	legacy, err := os.ReadFile("testdata/v1.db")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "v1.db")
	if err := os.WriteFile(path, legacy, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestOpensADatabaseOfTheFirstRelease opens testdata/v1.db, written by the
// store before versioned migrations had applied_ms: its data stays, it
// reaches the latest version, and its schema is the one a fresh database
// gets.
func TestOpensADatabaseOfTheFirstRelease(t *testing.T) {
	ctx := context.Background()
	path := legacyCopy(t)
	db := openAtLatest(t, path)
	if n, err := db.TenantCount(ctx); err != nil || n != 1 {
		t.Fatalf("tenants = %d, %v; want the one the file holds", n, err)
	}
	err := db.Update(ctx, func(tx *Tx) error {
		return tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_ms) VALUES (?, ?)`, 1000, 1)
	})
	if err != nil {
		t.Fatalf("schema_migrations lacks applied_ms: %v", err)
	}
	if err := db.Update(ctx, func(tx *Tx) error { return tx.Exec(ctx, `DELETE FROM schema_migrations WHERE version = 1000`) }); err != nil {
		t.Fatal(err)
	}
	wantFreshSchema(t, path, "the first release")
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

// The v1 wallet's rows, as testdata/v1-wallet.sql leaves them.
type (
	v1Account struct {
		id, tenant, name, kind, currency string
		balance, created                 int64
	}
	v1Transfer struct {
		id, tenant, kind, debit, credit, currency, payment string
		amount, created                                    int64
	}
	v1Binding struct {
		id, tenant, device, account, currency string
		perPayment, daily, created            int64
	}
	v1Payment struct {
		id, tenant, device, requestID, status, reason, currency, payer, merchant, transfers string
		requestHash, receipt                                                                []byte
		amount, logIndex, created                                                           int64
	}
	v1Wallet struct {
		accounts  []v1Account
		transfers []v1Transfer // in the order they were made: by time, then id
		bindings  []v1Binding
		payments  []v1Payment
	}
)

// rowsOf runs query on db and scans each row with scan.
func rowsOf[T any](t *testing.T, db *sql.DB, query string, scan func(r *sql.Rows, v *T) error) []T {
	t.Helper()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := scan(rows, &v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// v1WalletAt adds the rows of testdata/v1-wallet.sql to the first
// release's database at path, still at schema version 1, and returns them
// as that schema holds them.
func v1WalletAt(t *testing.T, path string) *v1Wallet {
	t.Helper()
	rows, err := os.ReadFile("testdata/v1-wallet.sql")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(ON)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(string(rows)); err != nil {
		t.Fatalf("v1-wallet.sql: %v", err)
	}
	w := &v1Wallet{}
	w.accounts = rowsOf(t, db, `SELECT id, tenant, name, kind, currency, balance, created_ms FROM accounts ORDER BY id`,
		func(r *sql.Rows, a *v1Account) error {
			return r.Scan(&a.id, &a.tenant, &a.name, &a.kind, &a.currency, &a.balance, &a.created)
		})
	w.transfers = rowsOf(t, db, `SELECT id, tenant, kind, debit, credit, currency, payment, amount, created_ms FROM transfers
		ORDER BY created_ms, id`, func(r *sql.Rows, x *v1Transfer) error {
		return r.Scan(&x.id, &x.tenant, &x.kind, &x.debit, &x.credit, &x.currency, &x.payment, &x.amount, &x.created)
	})
	w.bindings = rowsOf(t, db, `SELECT id, tenant, device, account, currency, per_payment_limit, daily_limit, created_ms FROM bindings`,
		func(r *sql.Rows, b *v1Binding) error {
			return r.Scan(&b.id, &b.tenant, &b.device, &b.account, &b.currency, &b.perPayment, &b.daily, &b.created)
		})
	w.payments = rowsOf(t, db, `SELECT id, tenant, device, request_id, status, reason, currency, payer, merchant, transfers,
		request_hash, receipt, amount, log_index, created_ms FROM payments`, func(r *sql.Rows, p *v1Payment) error {
		return r.Scan(&p.id, &p.tenant, &p.device, &p.requestID, &p.status, &p.reason, &p.currency, &p.payer, &p.merchant,
			&p.transfers, &p.requestHash, &p.receipt, &p.amount, &p.logIndex, &p.created)
	})
	return w
}

// TestConvertsTheWalletOfTheFirstRelease opens the first release's
// database holding a wallet — accounts, transfers, bindings, approved and
// declined payments, in two tenants and currencies — and checks what
// schema version 3 made of it: the accounts and their balances in the
// ledger, the transfers in its history, bindings as mandates, payments in
// the new table; and that the ledger's writer carries on from there.
func TestConvertsTheWalletOfTheFirstRelease(t *testing.T) {
	ctx := context.Background()
	path := legacyCopy(t)
	old := v1WalletAt(t, path)
	statuses := map[string]int{}
	for _, p := range old.payments {
		statuses[p.status]++
	}
	if len(old.accounts) < 6 || len(old.transfers) < 4 || len(old.bindings) < 2 || statuses["approved"] < 2 || statuses["declined"] < 2 {
		t.Fatalf("the fixture holds too little: %d accounts, %d transfers, %d bindings, payments %v",
			len(old.accounts), len(old.transfers), len(old.bindings), statuses)
	}
	db := openAtLatest(t, path)
	err := db.View(ctx, func(tx *Tx) error {
		checkV1Accounts(t, ctx, tx, old)
		checkV1Transfers(t, ctx, tx, old)
		checkV1Mandates(t, ctx, tx, old)
		checkV1Payments(t, ctx, tx, old)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkWriterCarriesOn(t, ctx, db, old)
	wantFreshSchema(t, path, "the converted wallet")
}

// posted is an account's balance on its normal side as the v1 store kept
// it: credits minus debits for every kind, so negative for funding.
func (a v1Account) posted() int64 {
	if a.kind == payment.KindFunding {
		return -a.balance
	}
	return a.balance
}

func checkV1Accounts(t *testing.T, ctx context.Context, tx *Tx, old *v1Wallet) {
	perTenant := map[iotpay.TenantID]int{}
	for _, o := range old.accounts {
		perTenant[iotpay.TenantID(o.tenant)]++
		a, err := tx.Account(ctx, iotpay.TenantID(o.tenant), iotpay.AccountID(o.id))
		if err != nil {
			t.Errorf("account %s (%s): %v", o.id, o.name, err)
			continue
		}
		normal := ledger.Credit
		if o.kind == payment.KindFunding {
			normal = ledger.Debit // money at the bank: an asset
		}
		if a.Normal != normal || a.Kind != o.kind || a.Name != o.name || a.Currency != iotpay.Currency(o.currency) ||
			!a.Created.Equal(time.UnixMilli(o.created)) || a.Flags != 0 {
			t.Errorf("account %s: %s-normal %s %q in %s created %v, flags %d; want %s-normal %s %q in %s created %v",
				o.id, a.Normal, a.Kind, a.Name, a.Currency, a.Created, a.Flags, normal, o.kind, o.name, o.currency, time.UnixMilli(o.created).UTC())
		}
		if a.Posted(normal) != o.posted() || a.DebitsPending != 0 || a.CreditsPending != 0 {
			t.Errorf("account %s (%s, v1 balance %d): %+v, want %d posted on its %s side", o.id, o.name, o.balance, a.Balance, o.posted(), normal)
		}
	}
	for ten, n := range perTenant {
		as, err := tx.Accounts(ctx, ten, ledger.AccountFilter{})
		if err != nil || len(as) != n {
			t.Errorf("tenant %s: %d ledger accounts, %v; want %d", ten, len(as), err, n)
		}
	}
	r, err := ledger.Check(ctx, tx)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Balanced || len(r.Mismatched) > 0 || len(r.Net) != 2 || r.Net["EUR"] != 0 || r.Net["USD"] != 0 {
		t.Errorf("converted ledger: balanced %v, net %v, accounts that disagree with their transfers %v; want balanced EUR and USD",
			r.Balanced, r.Net, r.Mismatched)
	}
}

// checkV1Transfers: the old transfers are the ledger's history in the
// order they were made, each with both accounts' balances after it.
func checkV1Transfers(t *testing.T, ctx context.Context, tx *Tx, old *v1Wallet) {
	after := map[iotpay.AccountID]ledger.Balance{}
	for i, o := range old.transfers {
		debit, credit := iotpay.AccountID(o.debit), iotpay.AccountID(o.credit)
		d, c := after[debit], after[credit]
		d.DebitsPosted += o.amount
		c.CreditsPosted += o.amount
		after[debit], after[credit] = d, c
		want := &ledger.Transfer{ID: iotpay.TransferID(o.id), Tenant: iotpay.TenantID(o.tenant), Debit: debit, Credit: credit,
			Amount: o.amount, Currency: iotpay.Currency(o.currency), Kind: o.kind, Ref: o.payment, Seq: int64(i + 1),
			Time: time.UnixMilli(o.created).UTC(), DebitBalance: d, CreditBalance: c}
		got, err := tx.Transfer(ctx, want.Tenant, want.ID)
		if err != nil {
			t.Errorf("transfer %s: %v", o.id, err)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("transfer %d (-want +got):\n%s", i, diff)
		}
		for id, want := range map[iotpay.AccountID]ledger.Balance{debit: d, credit: c} {
			got, err := ledger.BalanceAt(ctx, tx, iotpay.TenantID(o.tenant), id, ledger.AsOf{Seq: int64(i + 1)})
			if err != nil || got != want {
				t.Errorf("balance of %s after transfer %d: %+v, %v; want %+v", id, i, got, err, want)
			}
		}
	}
	// At the instant of the last transfer, every balance is the final one.
	last := time.UnixMilli(old.transfers[len(old.transfers)-1].created)
	for _, o := range old.accounts {
		got, err := ledger.BalanceAt(ctx, tx, iotpay.TenantID(o.tenant), iotpay.AccountID(o.id), ledger.AsOf{Time: last})
		if err != nil || got != after[iotpay.AccountID(o.id)] {
			t.Errorf("balance of %s at %v: %+v, %v; want %+v", o.id, last, got, err, after[iotpay.AccountID(o.id)])
		}
	}
}

// v1Mandate is the mandate a binding became: its id's ULID under the
// mandate prefix, active from its creation with no end, its limits, and a
// monthly limit of 31 days at the daily one (no limit the payer did not
// set).
func v1Mandate(b v1Binding) *payment.Mandate {
	created := time.UnixMilli(b.created).UTC()
	return &payment.Mandate{ID: iotpay.MandateID(iotpay.PrefixMandate + strings.TrimPrefix(b.id, iotpay.PrefixBinding)),
		Tenant: iotpay.TenantID(b.tenant), Device: iotpay.DeviceID(b.device), Payer: iotpay.AccountID(b.account),
		Currency: iotpay.Currency(b.currency), PerPayment: b.perPayment, PerDay: b.daily, PerMonth: 31 * b.daily,
		ValidFrom: created, Status: payment.MandateActive, Created: created, Updated: created}
}

func checkV1Mandates(t *testing.T, ctx context.Context, tx *Tx, old *v1Wallet) {
	for _, b := range old.bindings {
		want := v1Mandate(b)
		got, err := tx.Mandate(ctx, want.Tenant, want.ID)
		if err != nil {
			t.Errorf("mandate of binding %s: %v", b.id, err)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("mandate of binding %s (-want +got):\n%s", b.id, diff)
		}
		if got, err := tx.DeviceMandate(ctx, want.Device); err != nil || got.ID != want.ID {
			t.Errorf("mandate of device %s: %v, %v; want %s", b.device, got, err, want.ID)
		}
	}
}

func checkV1Payments(t *testing.T, ctx context.Context, tx *Tx, old *v1Wallet) {
	mandateOf := map[string]iotpay.MandateID{}
	for _, b := range old.bindings {
		mandateOf[b.device] = v1Mandate(b).ID
	}
	for _, o := range old.payments {
		created := time.UnixMilli(o.created).UTC()
		want := &payment.Payment{ID: iotpay.PaymentID(o.id), Tenant: iotpay.TenantID(o.tenant), Device: iotpay.DeviceID(o.device),
			Mandate: mandateOf[o.device], Status: payment.StatusDeclined, Reason: o.reason, Currency: iotpay.Currency(o.currency),
			Amount: o.amount, Payer: iotpay.AccountID(o.payer), Merchant: iotpay.AccountID(o.merchant), RequestID: o.requestID,
			RequestHash: o.requestHash, LogIndex: uint64(o.logIndex), Receipt: o.receipt, Created: created, Updated: created}
		if o.status == "approved" {
			want.Status, want.Captured = payment.StatusCaptured, o.amount
		}
		got, err := tx.PaymentByRequest(ctx, want.Device, want.RequestID)
		if err != nil {
			t.Errorf("payment %s: %v", o.id, err)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s payment %s (-want +got):\n%s", o.status, o.id, diff)
		}
		// Its ledger transfers are the ones it listed.
		xs, err := tx.Transfers(ctx, want.Tenant, ledger.TransferFilter{Ref: o.id})
		var ids []string
		for _, x := range xs {
			ids = append(ids, string(x.ID))
		}
		if err != nil || strings.Join(ids, ",") != o.transfers {
			t.Errorf("transfers of payment %s: %v, %v; want %q", o.id, ids, err, o.transfers)
		}
	}
	if ps, err := tx.Payments(ctx, iotpay.TenantID(old.payments[0].tenant), payment.Filter{}); err != nil || len(ps) == 0 {
		t.Errorf("payments of tenant %s: %d, %v", old.payments[0].tenant, len(ps), err)
	}
}

// checkWriterCarriesOn opens the ledger's writer on the converted store:
// it pays from a converted wallet, refuses to overdraw it, and numbers the
// transfer after the converted ones.
func checkWriterCarriesOn(t *testing.T, ctx context.Context, db *DB, old *v1Wallet) {
	w, err := ledger.Open(ctx, db, ledger.Config[*Tx]{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var payer, merchant v1Account
	for _, a := range old.accounts {
		if a.kind == payment.KindPayer && a.balance > payer.balance {
			payer = a
		}
	}
	for _, a := range old.accounts {
		if a.kind == payment.KindMerchant && a.tenant == payer.tenant && a.currency == payer.currency {
			merchant = a
		}
	}
	if payer.balance == 0 || merchant.id == "" {
		t.Fatal("the fixture has no funded wallet with a merchant of its tenant and currency")
	}
	xfr := func(amount int64) *ledger.Transfer {
		return &ledger.Transfer{ID: iotpay.TransferID(iotpay.NewID(iotpay.PrefixTransfer, time.Now(), nil)), Tenant: iotpay.TenantID(payer.tenant),
			Debit: iotpay.AccountID(payer.id), Credit: iotpay.AccountID(merchant.id), Amount: amount, Currency: iotpay.Currency(payer.currency), Kind: "payment"}
	}
	over, pay := xfr(payer.balance+1), xfr(payer.balance)
	errs, err := w.Transfer(ctx, []*ledger.Transfer{over})
	if err != nil || !errors.Is(errs[0], ledger.ErrInsufficientFunds) {
		t.Errorf("paying %d from a wallet of %d: %v, %v; want insufficient funds", over.Amount, payer.balance, errs, err)
	}
	errs, err = w.Transfer(ctx, []*ledger.Transfer{pay})
	if err != nil || errs[0] != nil {
		t.Fatalf("paying the whole wallet: %v, %v", errs, err)
	}
	err = db.View(ctx, func(tx *Tx) error {
		got, err := tx.Transfer(ctx, pay.Tenant, pay.ID)
		if err != nil {
			return err
		}
		if got.Seq != int64(len(old.transfers)+1) {
			t.Errorf("the first new transfer has sequence number %d, want %d", got.Seq, len(old.transfers)+1)
		}
		a, err := tx.Account(ctx, pay.Tenant, pay.Debit)
		if err != nil {
			return err
		}
		if a.Posted(ledger.Credit) != 0 {
			t.Errorf("the wallet after paying all of it: %+v", a.Balance)
		}
		r, err := ledger.Check(ctx, tx)
		if err == nil && (!r.Balanced || len(r.Mismatched) > 0) {
			t.Errorf("ledger after a new transfer: %+v", r)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPathWithURICharacters: a data directory whose name holds what a URI
// gives meaning to (%, ?, #, a space) is opened as named.
func TestPathWithURICharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a 10% ?b#c")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "iotpay.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the database is not where it was named: %v", err)
	}
}

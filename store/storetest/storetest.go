// Package storetest is the conformance suite of the SQL store: every
// adapter (store/sqlite, store/postgres) runs the same scenarios through
// Run, so the two databases are held to the same behaviour.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/payment/ledger/ledgertest"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/store/sqlstore"
)

// Run runs every scenario, each on a fresh, migrated, empty store from
// open, which closes it when the test ends.
func Run(t *testing.T, open func(t *testing.T) *sqlstore.DB) {
	for _, s := range []struct {
		name string
		fn   func(*testing.T, *sqlstore.DB)
	}{
		{"PostTransferRefusesOverdraftAndChangesNothing", testOverdraft},
		{"AuditLogAndTransfersAreAppendOnly", testAppendOnly},
		{"LedgerCheckFindsATamperedBalance", testTampering},
		{"ConcurrentWritersKeepTheLedgerBalanced", testConcurrentWriters},
		{"ErrorsAreTyped", testErrors},
		{"FailedUpdateCommitsNothing", testRollback},
		{"ViewIsReadOnly", testViewReadOnly},
		{"RegistryRoundTrip", testRegistry},
		{"PaymentRoundTrip", testPayments},
		{"AuditLeaves", testAuditLeaves},
		{"MigrationsReachTheLatestVersion", testMigrationsLatest},
		{"MigratingAgainChangesNothing", testMigrateIdempotent},
		{"NewerSchemaIsRefused", testNewerSchema},
	} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			s.fn(t, open(t))
		})
	}
	// The ledger's own suite, on this store.
	t.Run("Ledger", func(t *testing.T) {
		ledgertest.Run(t, func(t *testing.T) ledgertest.DB[sqlstore.LedgerTx] { return sqlstore.LedgerStore{DB: open(t)} })
	})
}

func newID(prefix string) string { return iotpay.NewID(prefix, time.Now(), nil) }

func newTenant(t *testing.T, db *sqlstore.DB) iotpay.TenantID {
	t.Helper()
	ctx := context.Background()
	ten := iotpay.TenantID(newID(iotpay.PrefixTenant))
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.CreateTenant(ctx, &registry.Tenant{ID: ten, Name: "t", Created: time.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	return ten
}

// accounts makes a tenant with a funding, a payer and a merchant account.
func accounts(t *testing.T, db *sqlstore.DB) (ten iotpay.TenantID, fund, payer, merchant *payment.Account) {
	t.Helper()
	ctx := context.Background()
	ten = newTenant(t, db)
	mk := func(k payment.AccountKind) *payment.Account {
		return &payment.Account{ID: iotpay.AccountID(newID(iotpay.PrefixAccount)), Tenant: ten, Name: string(k), Kind: k, Currency: "EUR",
			Created: time.UnixMilli(time.Now().UnixMilli()).UTC()}
	}
	fund, payer, merchant = mk(payment.Funding), mk(payment.Payer), mk(payment.Merchant)
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		for _, a := range []*payment.Account{fund, payer, merchant} {
			if err := tx.CreateAccount(ctx, a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return
}

func transfer(ten iotpay.TenantID, from, to iotpay.AccountID, amount int64) *payment.Transfer {
	return &payment.Transfer{ID: iotpay.TransferID(newID(iotpay.PrefixTransfer)), Tenant: ten, Kind: payment.TransferFund,
		Debit: from, Credit: to, Amount: amount, Currency: "EUR", Created: time.Now()}
}

func post(db *sqlstore.DB, tr *payment.Transfer) error {
	ctx := context.Background()
	return db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.PostTransfer(ctx, tr) })
}

func balance(t *testing.T, db *sqlstore.DB, ten iotpay.TenantID, id iotpay.AccountID) int64 {
	t.Helper()
	ctx := context.Background()
	var a *payment.Account
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { a, err = tx.Account(ctx, ten, id); return }); err != nil {
		t.Fatal(err)
	}
	return a.Balance
}

// check asserts the ledger invariants: per currency all balances sum to
// zero, and every balance equals its transfer history.
func check(t *testing.T, db *sqlstore.DB) {
	t.Helper()
	ctx := context.Background()
	err := db.View(ctx, func(tx *sqlstore.Tx) error {
		sums, bad, err := tx.LedgerCheck(ctx)
		if err != nil {
			return err
		}
		for c, s := range sums {
			if s != 0 {
				t.Errorf("%s sums to %d", c, s)
			}
		}
		if len(bad) > 0 {
			t.Errorf("accounts disagree with their transfers: %v", bad)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// exec runs one raw statement in its own write transaction.
func exec(db *sqlstore.DB, query string, args ...any) error {
	ctx := context.Background()
	return db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Exec(ctx, query, args...) })
}

func testOverdraft(t *testing.T, db *sqlstore.DB) {
	ten, fund, payer, merchant := accounts(t, db)
	if err := post(db, transfer(ten, fund.ID, payer.ID, 500)); err != nil {
		t.Fatal(err)
	}
	if err := post(db, transfer(ten, payer.ID, merchant.ID, 501)); iotpay.ErrorCode(err) != iotpay.EDECLINED {
		t.Fatalf("overdraft: %v, want declined", err)
	}
	if err := post(db, transfer(ten, payer.ID, payer.ID, 1)); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Fatalf("self transfer: %v, want invalid", err)
	}
	if err := post(db, transfer(ten, payer.ID, merchant.ID, 0)); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Fatalf("zero transfer: %v, want invalid", err)
	}
	other := iotpay.TenantID(newID(iotpay.PrefixTenant))
	if err := post(db, transfer(other, payer.ID, merchant.ID, 1)); iotpay.ErrorCode(err) != iotpay.ENOTFOUND {
		t.Fatalf("another tenant's accounts: %v, want not found", err)
	}
	usd := transfer(ten, fund.ID, payer.ID, 1)
	usd.Currency = "USD"
	if err := post(db, usd); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Fatalf("currency mismatch: %v, want invalid", err)
	}
	if err := post(db, transfer(ten, payer.ID, merchant.ID, 500)); err != nil {
		t.Fatal(err)
	}
	if p, m := balance(t, db, ten, payer.ID), balance(t, db, ten, merchant.ID); p != 0 || m != 500 {
		t.Errorf("payer %d merchant %d", p, m)
	}
	check(t, db)
}

func testAppendOnly(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	ten, fund, payer, _ := accounts(t, db)
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		for i := 0; i < 3; i++ {
			idx, err := tx.AppendLeaf(ctx, []byte{byte(i)}, audit.LeafHash([]byte{byte(i)}), time.Now())
			if err != nil {
				return err
			}
			if idx != uint64(i) {
				t.Errorf("leaf %d got index %d", i, idx)
			}
		}
		return tx.PostTransfer(ctx, transfer(ten, fund.ID, payer.ID, 10))
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		stmt string
		args []any
		want string // the trigger's message
	}{
		{`UPDATE audit_leaves SET data = ? WHERE idx = 1`, []any{[]byte{0}}, "append-only"},
		{`DELETE FROM audit_leaves WHERE idx = 2`, nil, "append-only"},
		{`UPDATE transfers SET amount = 1`, nil, "immutable"},
		{`DELETE FROM transfers`, nil, "immutable"},
	} {
		err := exec(db, c.stmt, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want refused as %s", c.stmt, err, c.want)
		}
	}
	err = db.View(ctx, func(tx *sqlstore.Tx) error {
		for i := uint64(0); i < 3; i++ {
			e, err := tx.Leaf(ctx, i)
			if err != nil {
				return err
			}
			if !bytes.Equal(e.Data, []byte{byte(i)}) {
				t.Errorf("leaf %d changed: %x", i, e.Data)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := balance(t, db, ten, payer.ID); got != 10 {
		t.Errorf("payer balance %d after refused changes, want 10", got)
	}
	check(t, db)
}

func testTampering(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	ten, fund, payer, _ := accounts(t, db)
	if err := post(db, transfer(ten, fund.ID, payer.ID, 100)); err != nil {
		t.Fatal(err)
	}
	check(t, db)
	if err := exec(db, `UPDATE accounts SET balance = balance + 1 WHERE id = ?`, payer.ID); err != nil {
		t.Fatal(err)
	}
	err := db.View(ctx, func(tx *sqlstore.Tx) error {
		sums, bad, err := tx.LedgerCheck(ctx)
		if err != nil {
			return err
		}
		if sums["EUR"] != 1 || len(bad) != 1 || bad[0] != payer.ID {
			t.Errorf("tampering not found: sums %v mismatched %v", sums, bad)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testConcurrentWriters posts from many goroutines at once: the single
// writer must neither lose an update nor let a payer overdraw.
func testConcurrentWriters(t *testing.T, db *sqlstore.DB) {
	const writers, each, amount = 8, 10, 7
	ten, fund, payer, merchant := accounts(t, db)
	const funded = writers * each * amount / 2 // enough for half of the payments
	if err := post(db, transfer(ten, fund.ID, payer.ID, funded)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	paid, declined := 0, 0
	for w := 0; w < writers; w++ {
		wg.Go(func() {
			for i := 0; i < each; i++ {
				err := post(db, transfer(ten, payer.ID, merchant.ID, amount))
				mu.Lock()
				switch iotpay.ErrorCode(err) {
				case "":
					paid++
				case iotpay.EDECLINED:
					declined++
				default:
					t.Errorf("post: %v", err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if paid != funded/amount || paid+declined != writers*each {
		t.Errorf("paid %d, declined %d; want %d paid of %d", paid, declined, funded/amount, writers*each)
	}
	if p, m := balance(t, db, ten, payer.ID), balance(t, db, ten, merchant.ID); p != 0 || m != funded {
		t.Errorf("payer %d merchant %d, want 0 and %d", p, m, funded)
	}
	check(t, db)
}

func testErrors(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	ten, _, payer, _ := accounts(t, db)
	update := func(fn func(tx *sqlstore.Tx) error) error { return db.Update(ctx, fn) }
	for _, c := range []struct {
		name string
		err  error
		want iotpay.Code
	}{
		{"tenant twice", update(func(tx *sqlstore.Tx) error {
			return tx.CreateTenant(ctx, &registry.Tenant{ID: ten, Name: "again", Created: time.Now()})
		}), iotpay.ECONFLICT},
		{"account twice", update(func(tx *sqlstore.Tx) error { return tx.CreateAccount(ctx, payer) }), iotpay.ECONFLICT},
		{"account of an unknown tenant", update(func(tx *sqlstore.Tx) error {
			a := *payer
			a.ID, a.Tenant = iotpay.AccountID(newID(iotpay.PrefixAccount)), iotpay.TenantID(newID(iotpay.PrefixTenant))
			return tx.CreateAccount(ctx, &a)
		}), iotpay.EINVALID},
		{"unknown account", update(func(tx *sqlstore.Tx) error {
			_, err := tx.Account(ctx, ten, iotpay.AccountID(newID(iotpay.PrefixAccount)))
			return err
		}), iotpay.ENOTFOUND},
		{"unknown device", update(func(tx *sqlstore.Tx) error {
			_, err := tx.Device(ctx, iotpay.DeviceID(newID(iotpay.PrefixDevice)))
			return err
		}), iotpay.ENOTFOUND},
		{"update of an unknown device", update(func(tx *sqlstore.Tx) error {
			return tx.UpdateDevice(ctx, &registry.Device{ID: iotpay.DeviceID(newID(iotpay.PrefixDevice)), Status: registry.DeviceActive})
		}), iotpay.ENOTFOUND},
		{"unknown leaf", update(func(tx *sqlstore.Tx) error { _, err := tx.Leaf(ctx, 1<<40); return err }), iotpay.ENOTFOUND},
		{"unknown API key", update(func(tx *sqlstore.Tx) error {
			_, err := tx.APIKey(ctx, iotpay.APIKeyID(newID(iotpay.PrefixAPIKey)))
			return err
		}), iotpay.ENOTFOUND},
	} {
		if got := iotpay.ErrorCode(c.err); got != c.want {
			t.Errorf("%s: %v, want %s", c.name, c.err, c.want)
		}
	}
	// Text a database may refuse (PostgreSQL keeps no NUL in text) is
	// stored or refused as invalid, never an internal error.
	err := update(func(tx *sqlstore.Tx) error {
		return tx.CreateTenant(ctx, &registry.Tenant{ID: iotpay.TenantID(newID(iotpay.PrefixTenant)), Name: "a\x00b\xff", Created: time.Now()})
	})
	if err != nil && iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("NUL in a name: %v, want stored or invalid", err)
	}
}

func testRollback(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	ten, fund, payer, _ := accounts(t, db)
	boom := errors.New("boom")
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.PostTransfer(ctx, transfer(ten, fund.ID, payer.ID, 100)); err != nil {
			return err
		}
		if _, err := tx.AppendLeaf(ctx, []byte("x"), audit.LeafHash([]byte("x")), time.Now()); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want fn's error", err)
	}
	if got := balance(t, db, ten, payer.ID); got != 0 {
		t.Errorf("payer balance %d after a rolled back transfer", got)
	}
	err = db.View(ctx, func(tx *sqlstore.Tx) error {
		n, err := tx.LogSize(ctx)
		if n != 0 {
			t.Errorf("log size %d after a rolled back append", n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	check(t, db)
}

func testViewReadOnly(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	err := db.View(ctx, func(tx *sqlstore.Tx) error {
		return tx.CreateTenant(ctx, &registry.Tenant{ID: iotpay.TenantID(newID(iotpay.PrefixTenant)), Name: "t", Created: time.Now()})
	})
	if err == nil {
		t.Fatal("a write inside View was allowed")
	}
	if n, err := db.TenantCount(ctx); err != nil || n != 0 {
		t.Fatalf("tenants = %d, %v after a write in View", n, err)
	}
}

// ms truncates t to what the store keeps: milliseconds, UTC.
func ms(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

func testRegistry(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	ten := newTenant(t, db)
	now := ms(time.Now())
	key := &registry.APIKey{ID: iotpay.APIKeyID(newID(iotpay.PrefixAPIKey)), Tenant: ten, Hash: bytes.Repeat([]byte{0xab}, 32), Created: now}
	prod := &registry.Product{ID: iotpay.ProductID(newID(iotpay.PrefixProduct)), Tenant: ten, Name: "vending",
		Merchant: iotpay.AccountID(newID(iotpay.PrefixAccount)), Created: now,
		Pricing: registry.Pricing{Mode: registry.PriceFixed, Event: "dispense", PriceMinor: 250, Currency: "EUR"}}
	var devs []*registry.Device
	for i := 0; i < 3; i++ {
		devs = append(devs, &registry.Device{ID: iotpay.DeviceID(newID(iotpay.PrefixDevice)), Tenant: ten, Product: prod.ID,
			Name: fmt.Sprintf("machine-%d", i), Status: registry.DevicePending, Suite: "intl", TokenHash: []byte{1, 2, 3},
			TokenExpires: now.Add(time.Hour), Created: now})
	}
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.CreateAPIKey(ctx, key); err != nil {
			return err
		}
		if err := tx.CreateProduct(ctx, prod); err != nil {
			return err
		}
		for _, d := range devs {
			if err := tx.CreateDevice(ctx, d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Enrollment fills the key and certificate; a large counter survives.
	d := devs[1]
	d.Status, d.PublicKey, d.CertSerial, d.CertNotAfter = registry.DeviceActive, []byte{4, 5, 6}, "1a2b", now.Add(24*time.Hour)
	d.Counter, d.Challenge, d.TokenHash, d.TokenExpires, d.LastSeen = 1<<63+5, bytes.Repeat([]byte{7}, 16), nil, time.Time{}, now
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.UpdateDevice(ctx, d) }); err != nil {
		t.Fatal(err)
	}
	err = db.View(ctx, func(tx *sqlstore.Tx) error {
		gotKey, err := tx.APIKey(ctx, key.ID)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(key, gotKey); diff != "" {
			t.Errorf("API key (-want +got):\n%s", diff)
		}
		gotProd, err := tx.Product(ctx, ten, prod.ID)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(prod, gotProd); diff != "" {
			t.Errorf("product (-want +got):\n%s", diff)
		}
		if _, err := tx.Product(ctx, iotpay.TenantID(newID(iotpay.PrefixTenant)), prod.ID); iotpay.ErrorCode(err) != iotpay.ENOTFOUND {
			t.Errorf("another tenant's product: %v, want not found", err)
		}
		gotDev, err := tx.Device(ctx, d.ID)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(d, gotDev); diff != "" {
			t.Errorf("device (-want +got):\n%s", diff)
		}
		page1, err := tx.Devices(ctx, ten, "", 2)
		if err != nil {
			return err
		}
		page2, err := tx.Devices(ctx, ten, page1[len(page1)-1].ID, 2)
		if err != nil {
			return err
		}
		if got := len(page1) + len(page2); len(page1) != 2 || got != 3 || page2[0].ID <= page1[1].ID {
			t.Errorf("pages of %d and %d devices, want 2 and 1 in id order", len(page1), len(page2))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testPayments(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	ten, fund, payer, merchant := accounts(t, db)
	now := ms(time.Now())
	prod := &registry.Product{ID: iotpay.ProductID(newID(iotpay.PrefixProduct)), Tenant: ten, Name: "p", Merchant: merchant.ID, Created: now,
		Pricing: registry.Pricing{Mode: registry.PriceAmount, Currency: "EUR"}}
	dev := &registry.Device{ID: iotpay.DeviceID(newID(iotpay.PrefixDevice)), Tenant: ten, Product: prod.ID, Name: "d",
		Status: registry.DeviceActive, Suite: "intl", Created: now}
	bind := &payment.Binding{ID: iotpay.BindingID(newID(iotpay.PrefixBinding)), Tenant: ten, Device: dev.ID, Account: payer.ID,
		Currency: "EUR", PerPaymentLimit: 500, DailyLimit: 1000, Created: now}
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.CreateProduct(ctx, prod); err != nil {
			return err
		}
		if err := tx.CreateDevice(ctx, dev); err != nil {
			return err
		}
		if err := tx.CreateBinding(ctx, bind); err != nil {
			return err
		}
		return tx.PostTransfer(ctx, transfer(ten, fund.ID, payer.ID, 1000))
	})
	if err != nil {
		t.Fatal(err)
	}
	again := *bind
	again.ID = iotpay.BindingID(newID(iotpay.PrefixBinding))
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.CreateBinding(ctx, &again) }); iotpay.ErrorCode(err) != iotpay.ECONFLICT {
		t.Errorf("second binding of a device: %v, want conflict", err)
	}
	again.Tenant = iotpay.TenantID(newID(iotpay.PrefixTenant))
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.CreateBinding(ctx, &again) }); iotpay.ErrorCode(err) != iotpay.ENOTFOUND {
		t.Errorf("binding another tenant's device: %v, want not found", err)
	}

	var pays []*payment.Payment
	for i, st := range []payment.Status{payment.StatusApproved, payment.StatusDeclined, payment.StatusApproved} {
		p := &payment.Payment{ID: iotpay.PaymentID(newID(iotpay.PrefixPayment)), Tenant: ten, Device: dev.ID,
			RequestID: fmt.Sprintf("rq_%d", i), RequestHash: bytes.Repeat([]byte{byte(i)}, 32), Status: st,
			Amount: int64(100 * (i + 1)), Currency: "EUR", Payer: payer.ID, Merchant: merchant.ID,
			LogIndex: uint64(i), Receipt: []byte{0xd2, byte(i)}, Created: now.Add(time.Duration(i) * time.Second)}
		if st == payment.StatusApproved {
			xfr := transfer(ten, payer.ID, merchant.ID, p.Amount)
			xfr.Payment = p.ID
			p.Transfers = []iotpay.TransferID{xfr.ID}
			if err := post(db, xfr); err != nil {
				t.Fatal(err)
			}
		} else {
			p.Reason = "over the limit"
		}
		pays = append(pays, p)
		if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.CreatePayment(ctx, p) }); err != nil {
			t.Fatal(err)
		}
	}
	dup := *pays[0]
	dup.ID = iotpay.PaymentID(newID(iotpay.PrefixPayment))
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.CreatePayment(ctx, &dup) }); iotpay.ErrorCode(err) != iotpay.ECONFLICT {
		t.Errorf("request id reused: %v, want conflict", err)
	}
	err = db.View(ctx, func(tx *sqlstore.Tx) error {
		b, err := tx.Binding(ctx, dev.ID)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(bind, b); diff != "" {
			t.Errorf("binding (-want +got):\n%s", diff)
		}
		p, err := tx.Payment(ctx, ten, pays[1].ID)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(pays[1], p); diff != "" {
			t.Errorf("payment (-want +got):\n%s", diff)
		}
		p, err = tx.PaymentByRequest(ctx, dev.ID, "rq_2")
		if err != nil {
			return err
		}
		if diff := cmp.Diff(pays[2], p); diff != "" {
			t.Errorf("payment by request (-want +got):\n%s", diff)
		}
		if _, err := tx.PaymentByRequest(ctx, dev.ID, "rq_9"); iotpay.ErrorCode(err) != iotpay.ENOTFOUND {
			t.Errorf("unknown request: %v, want not found", err)
		}
		list, err := tx.Payments(ctx, ten, payment.Filter{After: pays[0].ID, Device: dev.ID, Limit: 10})
		if err != nil {
			return err
		}
		if diff := cmp.Diff(pays[1:], list); diff != "" {
			t.Errorf("payments after the first (-want +got):\n%s", diff)
		}
		sum, err := tx.ApprovedSince(ctx, dev.ID, now.Add(time.Second))
		if err != nil {
			return err
		}
		if sum != 300 {
			t.Errorf("approved since the second payment = %d, want 300", sum)
		}
		xfrs, err := tx.Transfers(ctx, ten, merchant.ID)
		if err != nil {
			return err
		}
		var paid []iotpay.PaymentID
		for _, x := range xfrs {
			paid = append(paid, x.Payment)
		}
		slices.Sort(paid)
		if want := []iotpay.PaymentID{pays[0].ID, pays[2].ID}; !slices.Equal(paid, want) {
			t.Errorf("merchant transfers are for payments %v, want %v", paid, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	check(t, db)
}

func testAuditLeaves(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	now := ms(time.Now())
	for i := 0; i < 5; i++ {
		data := []byte(fmt.Sprintf("leaf %d", i))
		err := db.Update(ctx, func(tx *sqlstore.Tx) error {
			idx, err := tx.AppendLeaf(ctx, data, audit.LeafHash(data), now)
			if err == nil && idx != uint64(i) {
				t.Errorf("leaf %d at index %d", i, idx)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	err := db.View(ctx, func(tx *sqlstore.Tx) error {
		n, err := tx.LogSize(ctx)
		if err != nil {
			return err
		}
		if n != 5 {
			t.Errorf("log size %d, want 5", n)
		}
		e, err := tx.Leaf(ctx, 3)
		if err != nil {
			return err
		}
		want := &audit.Entry{Index: 3, Data: []byte("leaf 3"), Hash: audit.LeafHash([]byte("leaf 3")), Created: now}
		if diff := cmp.Diff(want, e); diff != "" {
			t.Errorf("leaf 3 (-want +got):\n%s", diff)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func version(t *testing.T, db *sqlstore.DB) int {
	t.Helper()
	v, err := db.Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func testMigrationsLatest(t *testing.T, db *sqlstore.DB) {
	if v := version(t, db); v != sqlstore.LatestVersion() {
		t.Fatalf("fresh store at version %d, want %d", v, sqlstore.LatestVersion())
	}
	ctx := context.Background()
	err := db.View(ctx, func(tx *sqlstore.Tx) error {
		if n, err := tx.LogSize(ctx); err != nil || n != 0 {
			return fmt.Errorf("log size %d, %v", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testMigrateIdempotent(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	ten, fund, payer, _ := accounts(t, db)
	if err := post(db, transfer(ten, fund.ID, payer.ID, 42)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := db.Migrate(ctx); err != nil {
			t.Fatalf("migrating again: %v", err)
		}
	}
	if v := version(t, db); v != sqlstore.LatestVersion() {
		t.Errorf("version %d after migrating again, want %d", v, sqlstore.LatestVersion())
	}
	if n, err := db.TenantCount(ctx); err != nil || n != 1 {
		t.Errorf("tenants = %d, %v after migrating again", n, err)
	}
	if got := balance(t, db, ten, payer.ID); got != 42 {
		t.Errorf("payer balance %d after migrating again, want 42", got)
	}
	check(t, db)
}

func testNewerSchema(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	newer := sqlstore.LatestVersion() + 1
	if err := exec(db, `INSERT INTO schema_migrations (version, applied_ms) VALUES (?, ?)`, newer, time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	err := db.Migrate(ctx)
	if iotpay.ErrorCode(err) != iotpay.ECONFLICT || !strings.Contains(err.Error(), fmt.Sprintf("version %d, newer", newer)) {
		t.Fatalf("migrating a newer schema: %v, want refused", err)
	}
	if v := version(t, db); v != newer {
		t.Errorf("version %d after a refused migration, want %d", v, newer)
	}
}

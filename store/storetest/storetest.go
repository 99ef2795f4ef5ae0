// Package storetest is the conformance suite of the SQL store: every
// adapter (store/sqlite, store/postgres) runs the same scenarios through
// Run, so the two databases are held to the same behaviour — the ledger's
// tables written by its real Writer, mandates, payments, idempotency keys,
// the registry, the audit log and the schema's migrations.
package storetest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/payment/ledger"
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
		{"LedgerThroughTheWriter", testLedger},
		{"ConcurrentWritersKeepTheLedgerBalanced", testConcurrentWriters},
		{"ErrorsAreTyped", testErrors},
		{"ViewIsReadOnly", testViewReadOnly},
		{"RegistryRoundTrip", testRegistry},
		{"MandatesRoundTrip", testMandates},
		{"PaymentsRoundTrip", testPayments},
		{"IdempotencyRecords", testIdempotency},
		{"AuditLeaves", testAuditLeaves},
		{"AuditTilesAndCheckpoints", testAuditLog},
		{"Migrations", testMigrations},
		{"PresenceRoundTrip", testPresence},
		{"DeviceStateProfilesTariffs", testDeviceState},
		{"Decisions", testDecisions},
		{"Webhooks", testWebhooks},
		{"Routing", testRouting},
		{"FollowUpsAndConnectorState", testFollowUps},
	} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			s.fn(t, open(t))
		})
	}
	// The ledger's own suite, on this store, alongside the scenarios.
	t.Run("Ledger", func(t *testing.T) {
		t.Parallel()
		ledgertest.Run(t, func(t *testing.T) ledgertest.DB[*sqlstore.Tx] { return open(t) })
	})
}

func newID(prefix string) string { return iotpay.NewID(prefix, time.Now(), nil) }

// idAt returns a fresh id made i milliseconds after base. ULIDs made in
// the same millisecond are not ordered: a scenario that asserts an order
// by id makes its ids this way.
func idAt(prefix string, base time.Time, i int) string {
	return iotpay.NewID(prefix, base.Add(time.Duration(i)*time.Millisecond), nil)
}

// ms truncates t to what the store keeps: milliseconds, UTC.
func ms(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

// update runs fn in its own write transaction. A failed statement ends a
// PostgreSQL transaction, so each expected failure gets one.
func update(db *sqlstore.DB, fn func(tx *sqlstore.Tx) error) error {
	return db.Update(context.Background(), fn)
}

// view runs fn in a read-only transaction and fails the test on an error.
func view(t *testing.T, db *sqlstore.DB, fn func(tx *sqlstore.Tx) error) {
	t.Helper()
	if err := db.View(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// mustUpdate is update that fails the test on an error.
func mustUpdate(t *testing.T, db *sqlstore.DB, fn func(tx *sqlstore.Tx) error) {
	t.Helper()
	if err := update(db, fn); err != nil {
		t.Fatal(err)
	}
}

// exec runs one raw statement in its own write transaction.
func exec(db *sqlstore.DB, query string, args ...any) error {
	return update(db, func(tx *sqlstore.Tx) error { return tx.Exec(context.Background(), query, args...) })
}

// onPostgres reports whether db is PostgreSQL, for the few checks only it
// can make (TRUNCATE, text that may hold no NUL).
func onPostgres(db *sqlstore.DB) bool {
	err := db.View(context.Background(), func(tx *sqlstore.Tx) error {
		return tx.Exec(context.Background(), `SELECT pg_backend_pid()`)
	})
	return err == nil
}

// same reports how got differs from want, if it does.
func same(t *testing.T, what string, want, got any) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

// each calls fn with every x, up to the first error.
func each[T any](xs []T, fn func(T) error) error {
	for _, x := range xs {
		if err := fn(x); err != nil {
			return err
		}
	}
	return nil
}

// wantCode fails the test unless err has code want.
func wantCode(t *testing.T, what string, err error, want iotpay.Code) {
	t.Helper()
	if got := iotpay.ErrorCode(err); got != want {
		t.Errorf("%s: %v (%s), want %s", what, err, got, want)
	}
}

func newTenant(t *testing.T, db *sqlstore.DB) iotpay.TenantID {
	t.Helper()
	ten := iotpay.TenantID(newID(iotpay.PrefixTenant))
	mustUpdate(t, db, func(tx *sqlstore.Tx) error {
		return tx.CreateTenant(context.Background(), &registry.Tenant{ID: ten, Name: "t", Created: time.Now()})
	})
	return ten
}

// fleet is a tenant's product (of merchant category 5814) and n active
// devices of it.
func fleet(t *testing.T, db *sqlstore.DB, ten iotpay.TenantID, n int) (iotpay.ProductID, []iotpay.DeviceID) {
	t.Helper()
	ctx := context.Background()
	now := ms(time.Now())
	prod := &registry.Product{ID: iotpay.ProductID(newID(iotpay.PrefixProduct)), Tenant: ten, Name: "p", Category: "5814",
		Merchant: iotpay.AccountID(newID(iotpay.PrefixAccount)), Created: now,
		Pricing: registry.Pricing{Mode: registry.PriceAmount, Currency: "EUR"}}
	devs := make([]iotpay.DeviceID, n)
	mustUpdate(t, db, func(tx *sqlstore.Tx) error {
		if err := tx.CreateProduct(ctx, prod); err != nil {
			return err
		}
		for i := range devs {
			devs[i] = iotpay.DeviceID(newID(iotpay.PrefixDevice))
			err := tx.CreateDevice(ctx, &registry.Device{ID: devs[i], Tenant: ten, Product: prod.ID, Name: fmt.Sprintf("d%d", i),
				Status: registry.DeviceActive, Suite: "intl", Created: now})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return prod.ID, devs
}

func testErrors(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	ten := newTenant(t, db)
	prod, devs := fleet(t, db, ten, 1)
	now := ms(time.Now())
	key := &registry.APIKey{ID: iotpay.APIKeyID(newID(iotpay.PrefixAPIKey)), Tenant: ten, Hash: []byte{1}, Created: now}
	mdt := newMandate(ten, devs[0], iotpay.MandateID(newID(iotpay.PrefixMandate)), now)
	pay := newPayment(ten, devs[0], mdt.ID, iotpay.PaymentID(newID(iotpay.PrefixPayment)), now)
	acct := &ledger.Account{ID: iotpay.AccountID(newID(iotpay.PrefixAccount)), Tenant: ten, Currency: "EUR",
		Normal: ledger.Credit, Kind: "payer", Name: "a", Created: now}
	xfr := &ledger.Transfer{Seq: 1, ID: iotpay.TransferID(newID(iotpay.PrefixTransfer)), Tenant: ten, Debit: acct.ID,
		Credit: iotpay.AccountID(newID(iotpay.PrefixAccount)), Amount: 1, Currency: "EUR", Flags: ledger.Pending, Time: now}
	mustUpdate(t, db, func(tx *sqlstore.Tx) error {
		for _, err := range []error{tx.CreateAPIKey(ctx, key), tx.CreateMandate(ctx, mdt), tx.CreatePayment(ctx, pay),
			tx.InsertAccounts(ctx, []*ledger.Account{acct}), tx.InsertTransfers(ctx, []*ledger.Transfer{xfr})} {
			if err != nil {
				return err
			}
		}
		return nil
	})
	unknownTenant := iotpay.TenantID(newID(iotpay.PrefixTenant))
	unknownDevice := iotpay.DeviceID(newID(iotpay.PrefixDevice))
	with := func(f func(m *payment.Mandate)) *payment.Mandate {
		m := *mdt
		m.ID = iotpay.MandateID(newID(iotpay.PrefixMandate))
		f(&m)
		return &m
	}
	for _, c := range []struct {
		name string
		fn   func(tx *sqlstore.Tx) error
		want iotpay.Code
	}{
		{"tenant twice", func(tx *sqlstore.Tx) error {
			return tx.CreateTenant(ctx, &registry.Tenant{ID: ten, Name: "again", Created: now})
		}, iotpay.ECONFLICT},
		{"API key twice", func(tx *sqlstore.Tx) error { return tx.CreateAPIKey(ctx, key) }, iotpay.ECONFLICT},
		{"device twice", func(tx *sqlstore.Tx) error {
			return tx.CreateDevice(ctx, &registry.Device{ID: devs[0], Tenant: ten, Product: prod, Status: registry.DevicePending, Created: now})
		}, iotpay.ECONFLICT},
		{"mandate twice", func(tx *sqlstore.Tx) error { return tx.CreateMandate(ctx, mdt) }, iotpay.ECONFLICT},
		{"payment twice", func(tx *sqlstore.Tx) error { return tx.CreatePayment(ctx, pay) }, iotpay.ECONFLICT},
		{"ledger account twice", func(tx *sqlstore.Tx) error { return tx.InsertAccounts(ctx, []*ledger.Account{acct}) }, iotpay.ECONFLICT},
		{"ledger transfer id twice", func(tx *sqlstore.Tx) error {
			again := *xfr
			again.Seq = 2
			return tx.InsertTransfers(ctx, []*ledger.Transfer{&again})
		}, iotpay.ECONFLICT},
		{"ledger transfer sequence number twice", func(tx *sqlstore.Tx) error {
			again := *xfr
			again.ID = iotpay.TransferID(newID(iotpay.PrefixTransfer))
			return tx.InsertTransfers(ctx, []*ledger.Transfer{&again})
		}, iotpay.ECONFLICT},

		{"API key of an unknown tenant", func(tx *sqlstore.Tx) error {
			return tx.CreateAPIKey(ctx, &registry.APIKey{ID: iotpay.APIKeyID(newID(iotpay.PrefixAPIKey)), Tenant: unknownTenant, Hash: []byte{1}, Created: now})
		}, iotpay.EINVALID},
		{"device of an unknown product", func(tx *sqlstore.Tx) error {
			return tx.CreateDevice(ctx, &registry.Device{ID: unknownDevice, Tenant: ten, Product: iotpay.ProductID(newID(iotpay.PrefixProduct)),
				Status: registry.DevicePending, Created: now})
		}, iotpay.EINVALID},
		{"mandate of an unknown device", func(tx *sqlstore.Tx) error {
			return tx.CreateMandate(ctx, with(func(m *payment.Mandate) { m.Device = unknownDevice }))
		}, iotpay.EINVALID},
		{"mandate of an unknown tenant", func(tx *sqlstore.Tx) error {
			return tx.CreateMandate(ctx, with(func(m *payment.Mandate) { m.Tenant = unknownTenant }))
		}, iotpay.EINVALID},

		{"unknown device", func(tx *sqlstore.Tx) error { _, err := tx.Device(ctx, unknownDevice); return err }, iotpay.ENOTFOUND},
		{"update of an unknown device", func(tx *sqlstore.Tx) error {
			return tx.UpdateDevice(ctx, &registry.Device{ID: unknownDevice, Status: registry.DeviceActive})
		}, iotpay.ENOTFOUND},
		{"unknown API key", func(tx *sqlstore.Tx) error {
			_, err := tx.APIKey(ctx, iotpay.APIKeyID(newID(iotpay.PrefixAPIKey)))
			return err
		}, iotpay.ENOTFOUND},
		{"another tenant's product", func(tx *sqlstore.Tx) error { _, err := tx.Product(ctx, unknownTenant, prod); return err }, iotpay.ENOTFOUND},
		{"unknown leaf", func(tx *sqlstore.Tx) error { _, err := tx.Leaf(ctx, 1<<40); return err }, iotpay.ENOTFOUND},
		{"another tenant's mandate", func(tx *sqlstore.Tx) error { _, err := tx.Mandate(ctx, unknownTenant, mdt.ID); return err }, iotpay.ENOTFOUND},
		{"mandate of a device without one", func(tx *sqlstore.Tx) error { _, err := tx.DeviceMandate(ctx, unknownDevice); return err }, iotpay.ENOTFOUND},
		{"another tenant's payment", func(tx *sqlstore.Tx) error { _, err := tx.Payment(ctx, unknownTenant, pay.ID); return err }, iotpay.ENOTFOUND},
		{"unknown request", func(tx *sqlstore.Tx) error { _, err := tx.PaymentByRequest(ctx, devs[0], "nope"); return err }, iotpay.ENOTFOUND},
		{"unknown hold", func(tx *sqlstore.Tx) error {
			_, err := tx.PaymentByHold(ctx, iotpay.TransferID(newID(iotpay.PrefixTransfer)))
			return err
		}, iotpay.ENOTFOUND},
		{"unknown idempotency key", func(tx *sqlstore.Tx) error { _, err := tx.Idempotency(ctx, ten, "nope"); return err }, iotpay.ENOTFOUND},
		{"another tenant's ledger account", func(tx *sqlstore.Tx) error { _, err := tx.Account(ctx, unknownTenant, acct.ID); return err }, iotpay.ENOTFOUND},
		{"another tenant's ledger transfer", func(tx *sqlstore.Tx) error { _, err := tx.Transfer(ctx, unknownTenant, xfr.ID); return err }, iotpay.ENOTFOUND},
		{"resolution of an open hold", func(tx *sqlstore.Tx) error { _, err := tx.Resolution(ctx, xfr.ID); return err }, iotpay.ENOTFOUND},
		{"transfer of an account before its first", func(tx *sqlstore.Tx) error {
			_, err := tx.LastTransferOf(ctx, xfr.Credit, ledger.AsOf{Time: now.Add(-time.Hour)})
			return err
		}, iotpay.ENOTFOUND},
	} {
		wantCode(t, c.name, update(db, c.fn), c.want)
	}
	testText(t, db, ten, devs[0])
}

// testText writes text PostgreSQL cannot keep (a NUL byte, bad UTF-8)
// into text columns: refused as invalid there, never as a raw driver
// error; SQLite may store it.
func testText(t *testing.T, db *sqlstore.DB, ten iotpay.TenantID, dev iotpay.DeviceID) {
	ctx := context.Background()
	const bad = "a\x00b\xff"
	now := ms(time.Now())
	pg := onPostgres(db)
	for _, c := range []struct {
		name string
		fn   func(tx *sqlstore.Tx) error
	}{
		{"tenant name", func(tx *sqlstore.Tx) error {
			return tx.CreateTenant(ctx, &registry.Tenant{ID: iotpay.TenantID(newID(iotpay.PrefixTenant)), Name: bad, Created: now})
		}},
		{"mandate category", func(tx *sqlstore.Tx) error {
			m := newMandate(ten, dev, iotpay.MandateID(newID(iotpay.PrefixMandate)), now)
			m.Categories = []string{bad}
			return tx.CreateMandate(ctx, m)
		}},
		{"payment request id", func(tx *sqlstore.Tx) error {
			p := newPayment(ten, dev, "", iotpay.PaymentID(newID(iotpay.PrefixPayment)), now)
			p.RequestID = bad
			return tx.CreatePayment(ctx, p)
		}},
		{"idempotency key", func(tx *sqlstore.Tx) error {
			return tx.PutIdempotency(ctx, &payment.IdempotencyRecord{Tenant: ten, Key: bad, RequestHash: []byte{1}, Body: []byte{2}, Created: now})
		}},
		{"ledger account name", func(tx *sqlstore.Tx) error {
			return tx.InsertAccounts(ctx, []*ledger.Account{{ID: iotpay.AccountID(newID(iotpay.PrefixAccount)), Tenant: ten,
				Currency: "EUR", Normal: ledger.Credit, Kind: "payer", Name: bad, Created: now}})
		}},
		{"ledger transfer ref", func(tx *sqlstore.Tx) error {
			return tx.InsertTransfers(ctx, []*ledger.Transfer{{Seq: 1 << 40, ID: iotpay.TransferID(newID(iotpay.PrefixTransfer)), Tenant: ten,
				Debit: iotpay.AccountID(newID(iotpay.PrefixAccount)), Credit: iotpay.AccountID(newID(iotpay.PrefixAccount)),
				Amount: 1, Currency: "EUR", Ref: bad, Time: now}})
		}},
	} {
		err := update(db, c.fn)
		switch {
		case pg:
			wantCode(t, "NUL and bad UTF-8 in a "+c.name, err, iotpay.EINVALID)
		case err != nil && iotpay.ErrorCode(err) != iotpay.EINVALID:
			t.Errorf("NUL and bad UTF-8 in a %s: %v, want stored or invalid", c.name, err)
		}
	}
}

func testViewReadOnly(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	now := ms(time.Now())
	ten := iotpay.TenantID(newID(iotpay.PrefixTenant))
	for _, c := range []struct {
		name string
		fn   func(tx *sqlstore.Tx) error
	}{
		{"tenant", func(tx *sqlstore.Tx) error {
			return tx.CreateTenant(ctx, &registry.Tenant{ID: ten, Name: "t", Created: now})
		}},
		{"payment", func(tx *sqlstore.Tx) error {
			return tx.CreatePayment(ctx, newPayment(ten, iotpay.DeviceID(newID(iotpay.PrefixDevice)), "", iotpay.PaymentID(newID(iotpay.PrefixPayment)), now))
		}},
		{"idempotency record", func(tx *sqlstore.Tx) error {
			return tx.PutIdempotency(ctx, &payment.IdempotencyRecord{Tenant: ten, Key: "k", RequestHash: []byte{1}, Body: []byte{2}, Created: now})
		}},
		{"ledger account", func(tx *sqlstore.Tx) error {
			return tx.InsertAccounts(ctx, []*ledger.Account{{ID: iotpay.AccountID(newID(iotpay.PrefixAccount)), Tenant: ten,
				Currency: "EUR", Normal: ledger.Credit, Kind: "payer", Name: "a", Created: now}})
		}},
		{"audit leaf", func(tx *sqlstore.Tx) error {
			_, err := tx.AppendLeaf(ctx, []byte("x"), audit.LeafHash([]byte("x")), now)
			return err
		}},
	} {
		if err := db.View(ctx, c.fn); err == nil {
			t.Errorf("a write of a %s inside View was allowed", c.name)
		}
	}
	if n, err := db.TenantCount(ctx); err != nil || n != 0 {
		t.Errorf("tenants = %d, %v after a write in View", n, err)
	}
	view(t, db, func(tx *sqlstore.Tx) error {
		ps, err := tx.Payments(ctx, ten, payment.Filter{})
		if err != nil {
			return err
		}
		as, err := tx.Accounts(ctx, ten, ledger.AccountFilter{})
		if err != nil {
			return err
		}
		n, err := tx.LogSize(ctx)
		if len(ps) != 0 || len(as) != 0 || n != 0 {
			t.Errorf("%d payments, %d accounts, %d leaves after writes in View", len(ps), len(as), n)
		}
		return err
	})
}

func testRegistry(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	ten := newTenant(t, db)
	now := ms(time.Now())
	key := &registry.APIKey{ID: iotpay.APIKeyID(newID(iotpay.PrefixAPIKey)), Tenant: ten, Hash: bytes.Repeat([]byte{0xab}, 32), Created: now}
	prod := &registry.Product{ID: iotpay.ProductID(newID(iotpay.PrefixProduct)), Tenant: ten, Name: "vending",
		Merchant: iotpay.AccountID(newID(iotpay.PrefixAccount)), Category: "5814", Created: now,
		Pricing: registry.Pricing{Mode: registry.PriceFixed, Event: "dispense", PriceMinor: 250, Currency: "EUR"},
		Offline: &registry.OfflineLimits{MaxAmount: 2000, MaxCount: 5}}
	// A gateway product: kind kept, no offline limits.
	gw := &registry.Product{ID: iotpay.ProductID(newID(iotpay.PrefixProduct)), Tenant: ten, Name: "gateways", Kind: registry.ProductGateway,
		Merchant: prod.Merchant, Created: now, Pricing: registry.Pricing{Mode: registry.PriceAmount, Currency: "EUR"}}
	var devs []*registry.Device
	for i := range 3 {
		devs = append(devs, &registry.Device{ID: iotpay.DeviceID(idAt(iotpay.PrefixDevice, now, i)), Tenant: ten, Product: prod.ID,
			Name: fmt.Sprintf("machine-%d", i), Status: registry.DevicePending, Suite: "intl", TokenHash: []byte{1, 2, 3},
			TokenExpires: now.Add(time.Hour), Created: now})
	}
	mustUpdate(t, db, func(tx *sqlstore.Tx) error {
		if err := tx.CreateAPIKey(ctx, key); err != nil {
			return err
		}
		if err := tx.CreateProduct(ctx, prod); err != nil {
			return err
		}
		if err := tx.CreateProduct(ctx, gw); err != nil {
			return err
		}
		return each(devs, func(d *registry.Device) error { return tx.CreateDevice(ctx, d) })
	})
	// Enrollment fills the key and certificate; a large counter survives.
	d := devs[1]
	d.Status, d.PublicKey, d.CertSerial, d.CertNotAfter = registry.DeviceActive, []byte{4, 5, 6}, "1a2b", now.Add(24*time.Hour)
	d.Counter, d.Challenge, d.TokenHash, d.TokenExpires, d.LastSeen = 1<<63+5, bytes.Repeat([]byte{7}, 16), nil, time.Time{}, now
	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.UpdateDevice(ctx, d) })
	view(t, db, func(tx *sqlstore.Tx) error {
		gotKey, err := tx.APIKey(ctx, key.ID)
		if err != nil {
			return err
		}
		same(t, "API key", key, gotKey)
		gotProd, err := tx.Product(ctx, ten, prod.ID)
		if err != nil {
			return err
		}
		same(t, "product", prod, gotProd)
		gotGW, err := tx.Product(ctx, ten, gw.ID)
		if err != nil {
			return err
		}
		same(t, "gateway product", gw, gotGW)
		gotDev, err := tx.Device(ctx, d.ID)
		if err != nil {
			return err
		}
		same(t, "device", d, gotDev)
		page1, err := tx.Devices(ctx, ten, "", 2)
		if err != nil {
			return err
		}
		page2, err := tx.Devices(ctx, ten, page1[len(page1)-1].ID, 2)
		if err != nil {
			return err
		}
		var got []iotpay.DeviceID
		for _, d := range append(page1, page2...) {
			got = append(got, d.ID)
		}
		if want := []iotpay.DeviceID{devs[0].ID, devs[1].ID, devs[2].ID}; len(page1) != 2 || !cmp.Equal(got, want) {
			t.Errorf("pages of %d and %d devices: %v, want 2 and 1 in id order: %v", len(page1), len(page2), got, want)
		}
		return nil
	})
}

func testAuditLeaves(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	now := ms(time.Now())
	for i := range 5 {
		data := fmt.Appendf(nil, "leaf %d", i)
		mustUpdate(t, db, func(tx *sqlstore.Tx) error {
			idx, err := tx.AppendLeaf(ctx, data, audit.LeafHash(data), now)
			if err == nil && idx != uint64(i) {
				t.Errorf("leaf %d at index %d", i, idx)
			}
			return err
		})
	}
	view(t, db, func(tx *sqlstore.Tx) error {
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
		same(t, "leaf 3", want, e)
		return nil
	})
}

func version(t *testing.T, db *sqlstore.DB) int {
	t.Helper()
	v, err := db.Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// testMigrations: a fresh store is at the latest version and empty;
// migrating again changes nothing; a schema newer than the build is
// refused.
func testMigrations(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	if v := version(t, db); v != sqlstore.LatestVersion() {
		t.Fatalf("fresh store at version %d, want %d", v, sqlstore.LatestVersion())
	}
	view(t, db, func(tx *sqlstore.Tx) error {
		n, err := tx.LogSize(ctx)
		if err != nil {
			return err
		}
		tot, err := tx.Totals(ctx)
		if n != 0 || len(tot) != 0 {
			t.Errorf("fresh store: log size %d, ledger totals %v", n, tot)
		}
		return err
	})

	ten := newTenant(t, db)
	_, devs := fleet(t, db, ten, 1)
	w := openWriter(t, db)
	b := openBooks(t, w, ten)
	b.apply(t, b.xfr(b.bank, b.payer, 42))
	w.Close()
	now := ms(time.Now())
	mdt := newMandate(ten, devs[0], iotpay.MandateID(newID(iotpay.PrefixMandate)), now)
	pay := newPayment(ten, devs[0], mdt.ID, iotpay.PaymentID(newID(iotpay.PrefixPayment)), now)
	mustUpdate(t, db, func(tx *sqlstore.Tx) error {
		if err := tx.CreateMandate(ctx, mdt); err != nil {
			return err
		}
		return tx.CreatePayment(ctx, pay)
	})
	for range 2 {
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
	b.wantBalance(t, db, b.payer, ledger.Balance{CreditsPosted: 42})
	view(t, db, func(tx *sqlstore.Tx) error {
		m, err := tx.Mandate(ctx, ten, mdt.ID)
		if err != nil {
			return err
		}
		p, err := tx.Payment(ctx, ten, pay.ID)
		if err != nil {
			return err
		}
		same(t, "mandate after migrating again", mdt, m)
		same(t, "payment after migrating again", pay, p)
		return nil
	})
	checkBalanced(t, db)

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

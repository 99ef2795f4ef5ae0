package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/platform/registry"
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

func newID(prefix string) string { return iotpay.NewID(prefix, time.Now(), nil) }

// accounts makes a tenant with a funding, a payer and a merchant account.
func accounts(t *testing.T, db *DB) (ten iotpay.TenantID, fund, payer, merchant *payment.Account) {
	t.Helper()
	ctx := context.Background()
	ten = iotpay.TenantID(newID(iotpay.PrefixTenant))
	mk := func(k payment.AccountKind) *payment.Account {
		return &payment.Account{ID: iotpay.AccountID(newID(iotpay.PrefixAccount)), Tenant: ten, Name: string(k), Kind: k, Currency: "EUR", Created: time.Now()}
	}
	fund, payer, merchant = mk(payment.Funding), mk(payment.Payer), mk(payment.Merchant)
	err := db.Update(ctx, func(tx *Tx) error {
		if err := tx.CreateTenant(ctx, &registry.Tenant{ID: ten, Name: "t", Created: time.Now()}); err != nil {
			return err
		}
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

func check(t *testing.T, db *DB) {
	t.Helper()
	ctx := context.Background()
	err := db.View(ctx, func(tx *Tx) error {
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

func TestPostTransferRefusesOverdraftAndChangesNothing(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	ten, fund, payer, merchant := accounts(t, db)
	post := func(tr *payment.Transfer) error {
		return db.Update(ctx, func(tx *Tx) error { return tx.PostTransfer(ctx, tr) })
	}
	if err := post(transfer(ten, fund.ID, payer.ID, 500)); err != nil {
		t.Fatal(err)
	}
	if err := post(transfer(ten, payer.ID, merchant.ID, 501)); iotpay.ErrorCode(err) != iotpay.EDECLINED {
		t.Fatalf("overdraft: %v, want declined", err)
	}
	if err := post(transfer(ten, payer.ID, payer.ID, 1)); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Fatalf("self transfer: %v, want invalid", err)
	}
	other := iotpay.TenantID(newID(iotpay.PrefixTenant))
	if err := post(transfer(other, payer.ID, merchant.ID, 1)); iotpay.ErrorCode(err) != iotpay.ENOTFOUND {
		t.Fatalf("another tenant's accounts: %v, want not found", err)
	}
	if err := post(transfer(ten, payer.ID, merchant.ID, 500)); err != nil {
		t.Fatal(err)
	}
	db.View(ctx, func(tx *Tx) error {
		p, _ := tx.Account(ctx, ten, payer.ID)
		m, _ := tx.Account(ctx, ten, merchant.ID)
		if p.Balance != 0 || m.Balance != 500 {
			t.Errorf("payer %d merchant %d", p.Balance, m.Balance)
		}
		return nil
	})
	check(t, db)
}

func TestAuditLogAndTransfersAreAppendOnly(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	ten, fund, payer, _ := accounts(t, db)
	err := db.Update(ctx, func(tx *Tx) error {
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
	for _, stmt := range []string{
		`UPDATE audit_leaves SET data = x'00' WHERE idx = 1`,
		`DELETE FROM audit_leaves WHERE idx = 2`,
		`UPDATE transfers SET amount = 1`,
		`DELETE FROM transfers`,
	} {
		err := db.Update(ctx, func(tx *Tx) error { _, err := tx.tx.ExecContext(ctx, stmt); return err })
		if err == nil {
			t.Errorf("%s: allowed", stmt)
		}
	}
	check(t, db)
}

func TestLedgerCheckFindsATamperedBalance(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	ten, fund, payer, _ := accounts(t, db)
	db.Update(ctx, func(tx *Tx) error { return tx.PostTransfer(ctx, transfer(ten, fund.ID, payer.ID, 100)) })
	db.Update(ctx, func(tx *Tx) error {
		_, err := tx.tx.ExecContext(ctx, `UPDATE accounts SET balance = balance + 1 WHERE id = ?`, payer.ID)
		return err
	})
	db.View(ctx, func(tx *Tx) error {
		sums, bad, err := tx.LedgerCheck(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if sums["EUR"] != 1 || len(bad) != 1 || bad[0] != payer.ID {
			t.Errorf("tampering not found: sums %v mismatched %v", sums, bad)
		}
		return nil
	})
}

func TestReopenKeepsDataAndMigratesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(ctx, func(tx *Tx) error {
		return tx.CreateTenant(ctx, &registry.Tenant{ID: iotpay.TenantID(newID(iotpay.PrefixTenant)), Name: "t", Created: time.Now()})
	})
	db.Close()
	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n, err := db.TenantCount(ctx); err != nil || n != 1 {
		t.Fatalf("tenants after reopen = %d, %v", n, err)
	}
}

package payment_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	mrand "math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/payment/ledger"
	"github.com/iotpay/iotpay/payment/ledger/ledgertest"
	"github.com/iotpay/iotpay/platform"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/store/sqlite"
)

var bg = context.Background()

// env is the payment engine on a real SQLite store, with a fake clock, a
// tenant, a merchant, a funded payer and devices of one product.
type env struct {
	t        *testing.T
	e        *payment.Engine[platform.Tx]
	reg      *registry.Service
	clock    *ledgertest.Clock
	tenant   iotpay.TenantID
	product  *registry.Product
	merchant iotpay.AccountID
	payer    iotpay.AccountID
}

func newEnv(t *testing.T, fees payment.FeePlan) *env {
	t.Helper()
	db, err := sqlite.Open(bg, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	read := sqlite.For[platform.Tx](db)
	x := &env{t: t, clock: ledgertest.NewClock(), e: &payment.Engine[platform.Tx]{Store: read, Fees: fees}}
	w, err := ledger.Open(bg, read, ledger.Config[platform.Tx]{Now: x.clock.Now, OnExpire: x.e.OnExpire})
	if err != nil {
		t.Fatal(err)
	}
	x.e.W = w
	ca, _ := pki.NewCA("t", time.Now(), nil)
	rk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	x.reg = &registry.Service{Store: platform.WriterStore[registry.Tx]{W: w, Read: read}, CA: ca, PlatformKey: rk.Public(), Now: x.clock.Now}
	ten, _, err := x.reg.Bootstrap(bg, "t")
	if err != nil {
		t.Fatal(err)
	}
	x.tenant = ten.ID
	x.do(func(b *ledger.Batch[platform.Tx]) error {
		m, err := payment.CreateAccount(b, x.tenant, "shop", payment.KindMerchant, "EUR")
		if err != nil {
			return err
		}
		p, err := payment.CreateAccount(b, x.tenant, "alice", payment.KindPayer, "EUR")
		if err != nil {
			return err
		}
		x.merchant, x.payer = m.ID, p.ID
		_, err = payment.Fund(b, x.tenant, p.ID, 100_00)
		return err
	})
	x.product = &registry.Product{Tenant: x.tenant, Name: "charger", Merchant: x.merchant, Category: "5552",
		Pricing: registry.Pricing{Mode: registry.PriceAmount, Currency: "EUR"}}
	if err := x.reg.CreateProduct(bg, x.product); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		x.check()
		w.Close()
	})
	return x
}

func (x *env) do(fn func(b *ledger.Batch[platform.Tx]) error) {
	x.t.Helper()
	if err := x.e.Do(bg, fn); err != nil {
		x.t.Fatal(err)
	}
}

// device registers a device with a mandate made by edit from defaults
// (10.00 a payment, 30.00 a day, 100.00 a month).
func (x *env) device(edit func(*payment.Mandate)) (iotpay.DeviceID, *payment.Mandate) {
	x.t.Helper()
	d, _, err := x.reg.CreateDevice(bg, x.tenant, x.product.ID, "d", "")
	if err != nil {
		x.t.Fatal(err)
	}
	m := &payment.Mandate{Tenant: x.tenant, Device: d.ID, Payer: x.payer, PerPayment: 10_00, PerDay: 30_00, PerMonth: 100_00}
	if edit != nil {
		edit(m)
	}
	x.do(func(b *ledger.Batch[platform.Tx]) error { return payment.CreateMandate(b, m) })
	return d.ID, m
}

func (x *env) authorize(dev iotpay.DeviceID, amount int64, capture bool) *payment.Payment {
	x.t.Helper()
	var p *payment.Payment
	x.do(func(b *ledger.Batch[platform.Tx]) (err error) {
		p, err = x.e.Authorize(b, &payment.AuthRequest{Tenant: x.tenant, Device: dev, Product: x.product.ID,
			Category: x.product.Category, Merchant: x.merchant, Amount: iotpay.Money{Amount: amount, Currency: "EUR"},
			Capture: capture, HoldTimeout: time.Hour})
		return err
	})
	return p
}

// op runs one engine operation on payment id and returns its result.
func (x *env) op(fn func(b *ledger.Batch[platform.Tx]) (*payment.Payment, error)) (*payment.Payment, error) {
	var p *payment.Payment
	err := x.e.Do(bg, func(b *ledger.Batch[platform.Tx]) (err error) { p, err = fn(b); return })
	return p, err
}

func (x *env) balance(id iotpay.AccountID) ledger.Balance {
	x.t.Helper()
	a, err := x.e.Account(bg, x.tenant, id)
	if err != nil {
		x.t.Fatal(err)
	}
	return a.Balance
}

// system is the balance of one of the tenant's own accounts, zero before
// its first use opens it.
func (x *env) system(kind string) ledger.Balance {
	x.t.Helper()
	a, err := x.e.Account(bg, x.tenant, iotpay.AccountID(iotpay.DeriveID(iotpay.PrefixAccount, string(x.tenant), kind, "EUR")))
	if iotpay.ErrorCode(err) == iotpay.ENOTFOUND {
		return ledger.Balance{}
	}
	if err != nil {
		x.t.Fatal(err)
	}
	return a.Balance
}

// check holds the ledger and the payments to their invariants: balanced,
// and the payer's and the merchant's balances what the payments say.
func (x *env) check() {
	x.t.Helper()
	rep, err := x.e.Check(bg)
	if err != nil || !rep.Balanced {
		x.t.Fatalf("ledger: %+v %v", rep, err)
	}
	ps, err := x.e.Payments(bg, x.tenant, payment.Filter{})
	if err != nil {
		x.t.Fatal(err)
	}
	var captured, refunded, held, fees int64
	for _, p := range ps {
		fees += p.FeeOperator + p.FeePlatform
		if p.Captured > p.Amount || p.Refunded > p.Captured || p.Held > p.Amount-p.Captured {
			x.t.Fatalf("payment %s amounts inconsistent: %+v", p.ID, p)
		}
		captured += p.Captured
		refunded += p.Refunded
		held += p.Held
	}
	b := x.balance(x.payer)
	if got, want := b.Posted(ledger.Credit), x.funded()-captured+refunded; got != want {
		x.t.Fatalf("payer balance %d, want %d (captured %d, refunded %d)", got, want, captured, refunded)
	}
	if b.DebitsPending != held {
		x.t.Fatalf("payer holds %d, payments hold %d", b.DebitsPending, held)
	}
	paid := x.balance(x.merchant).Posted(ledger.Credit) + x.system(payment.KindOperator).Posted(ledger.Credit) +
		x.system(payment.KindPlatform).Posted(ledger.Credit)
	if paid != captured-refunded {
		x.t.Fatalf("merchant and fee accounts hold %d, payments captured %d and refunded %d", paid, captured, refunded)
	}
}

// funded is what reached the payer from the funding account.
func (x *env) funded() int64 { return x.system(payment.KindFunding).DebitsPosted }

// checkFunded is check, naming the step that broke an invariant.
func (x *env) checkFunded(step int) {
	x.t.Helper()
	if x.t.Failed() {
		x.t.Fatalf("step %d", step)
	}
	x.check()
}

func TestAuthorizeCaptureRefund(t *testing.T) {
	x := newEnv(t, payment.FeePlan{OperatorBps: 200, PlatformBps: 100})
	dev, m := x.device(nil)
	p := x.authorize(dev, 8_00, false)
	if p.Status != payment.StatusAuthorized || p.Held != 8_00 || p.Mandate != m.ID || p.Payer != x.payer {
		t.Fatalf("authorized %+v", p)
	}
	if b := x.balance(x.payer); b.Available(ledger.Credit) != 92_00 || b.Posted(ledger.Credit) != 100_00 {
		t.Fatalf("payer after the hold %+v", b)
	}
	p, err := x.op(func(b *ledger.Batch[platform.Tx]) (*payment.Payment, error) {
		return x.e.Capture(b, x.tenant, p.ID, 3_00, false)
	})
	if err != nil || p.Status != payment.StatusPartiallyCaptured || p.Captured != 3_00 || p.Held != 5_00 {
		t.Fatalf("first capture %+v %v", p, err)
	}
	if p.FeeOperator != 6 || p.FeePlatform != 3 {
		t.Fatalf("fees %d %d", p.FeeOperator, p.FeePlatform)
	}
	p, err = x.op(func(b *ledger.Batch[platform.Tx]) (*payment.Payment, error) {
		return x.e.Capture(b, x.tenant, p.ID, 2_00, true) // final: the rest is released
	})
	if err != nil || p.Status != payment.StatusCaptured || p.Captured != 5_00 || p.Held != 0 || p.Hold != "" {
		t.Fatalf("final capture %+v %v", p, err)
	}
	if got := x.balance(x.merchant).Posted(ledger.Credit); got != 5_00-10-5 {
		t.Fatalf("merchant got %d", got)
	}
	if op, pl := x.system(payment.KindOperator), x.system(payment.KindPlatform); op.CreditsPosted != 10 || pl.CreditsPosted != 5 {
		t.Fatalf("operator %+v platform %+v", op, pl)
	}
	ts, err := x.e.Transfers(bg, x.tenant, ledger.TransferFilter{Ref: string(p.ID)})
	if err != nil || len(ts) != 8 { // hold, post, 2 fees, re-hold; post, 2 fees
		t.Fatalf("transfers of the payment: %d %v", len(ts), err)
	}
	_, err = x.op(func(b *ledger.Batch[platform.Tx]) (*payment.Payment, error) {
		return x.e.Capture(b, x.tenant, p.ID, 0, true)
	})
	if iotpay.ErrorCode(err) != iotpay.ECONFLICT {
		t.Fatalf("capture of a captured payment: %v", err)
	}
	for i, amt := range []int64{1_00, 2_00} {
		if p, err = x.op(func(b *ledger.Batch[platform.Tx]) (*payment.Payment, error) {
			return x.e.Refund(b, x.tenant, p.ID, amt)
		}); err != nil || p.Status != payment.StatusCaptured {
			t.Fatalf("refund %d: %+v %v", i, p, err)
		}
	}
	_, err = x.op(func(b *ledger.Batch[platform.Tx]) (*payment.Payment, error) {
		return x.e.Refund(b, x.tenant, p.ID, 2_01)
	})
	if iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Fatalf("refund beyond the captured amount: %v", err)
	}
	p, err = x.op(func(b *ledger.Batch[platform.Tx]) (*payment.Payment, error) { return x.e.Refund(b, x.tenant, p.ID, 0) })
	if err != nil || p.Status != payment.StatusRefunded || p.Refunded != 5_00 {
		t.Fatalf("refund of the rest: %+v %v", p, err)
	}
	_, err = x.op(func(b *ledger.Batch[platform.Tx]) (*payment.Payment, error) { return x.e.Refund(b, x.tenant, p.ID, 0) })
	if iotpay.ErrorCode(err) != iotpay.ECONFLICT {
		t.Fatalf("refund of a refunded payment: %v", err)
	}
}

func TestSaleVoidIncrementExpiry(t *testing.T) {
	x := newEnv(t, payment.FeePlan{})
	dev, _ := x.device(nil)
	sale := x.authorize(dev, 2_50, true)
	if sale.Status != payment.StatusCaptured || sale.Captured != 2_50 || len(sale.Legs) != 2 { // hold, post
		t.Fatalf("sale %+v", sale)
	}
	_, err := x.op(func(b *ledger.Batch[platform.Tx]) (*payment.Payment, error) { return x.e.Void(b, x.tenant, sale.ID) })
	if iotpay.ErrorCode(err) != iotpay.ECONFLICT {
		t.Fatalf("void of a sale: %v", err)
	}

	p := x.authorize(dev, 5_00, false)
	p, err = x.op(func(b *ledger.Batch[platform.Tx]) (*payment.Payment, error) { return x.e.Void(b, x.tenant, p.ID) })
	if err != nil || p.Status != payment.StatusVoided || p.Held != 0 {
		t.Fatalf("void %+v %v", p, err)
	}

	// An EV session: the hold grows with the session, within the mandate.
	ev := x.authorize(dev, 4_00, false)
	ev, err = x.op(func(b *ledger.Batch[platform.Tx]) (*payment.Payment, error) {
		return x.e.Increment(b, x.tenant, ev.ID, 5_00)
	})
	if err != nil || ev.Amount != 9_00 || ev.Held != 9_00 {
		t.Fatalf("increment %+v %v", ev, err)
	}
	_, err = x.op(func(b *ledger.Batch[platform.Tx]) (*payment.Payment, error) {
		return x.e.Increment(b, x.tenant, ev.ID, 2_00)
	})
	var d *payment.DeclineError
	if !errors.As(err, &d) || d.Reason != payment.DeclineOverPaymentLimit {
		t.Fatalf("increment over the per-payment limit: %v", err)
	}
	ev, err = x.op(func(b *ledger.Batch[platform.Tx]) (*payment.Payment, error) {
		return x.e.Capture(b, x.tenant, ev.ID, 6_00, false)
	})
	if err != nil || ev.Status != payment.StatusPartiallyCaptured {
		t.Fatalf("capture %+v %v", ev, err)
	}
	if !ev.HoldExpires.Equal(x.clock.Now().Add(time.Hour)) {
		t.Fatalf("the re-hold expires at %v, the authorization at %v", ev.HoldExpires, x.clock.Now().Add(time.Hour))
	}
	// The hold expires: what was captured stays, the rest is released.
	x.clock.Add(time.Hour + time.Second)
	if err := x.e.W.Expire(bg); err != nil {
		t.Fatal(err)
	}
	ev, _ = x.e.Payment(bg, x.tenant, ev.ID)
	if ev.Status != payment.StatusCaptured || ev.Held != 0 || ev.Captured != 6_00 {
		t.Fatalf("after expiry %+v", ev)
	}
	lone := x.authorize(dev, 1_00, false)
	x.clock.Add(2 * time.Hour)
	_, err = x.op(func(b *ledger.Batch[platform.Tx]) (*payment.Payment, error) {
		return x.e.Capture(b, x.tenant, lone.ID, 0, true)
	})
	if iotpay.ErrorCode(err) != iotpay.ECONFLICT {
		t.Fatalf("capture after expiry: %v", err)
	}
	if lone, _ = x.e.Payment(bg, x.tenant, lone.ID); lone.Status != payment.StatusExpired {
		t.Fatalf("expired payment %+v", lone)
	}
}

func TestMandateDeclines(t *testing.T) {
	x := newEnv(t, payment.FeePlan{})
	now := x.clock.Now()
	other := &registry.Product{Tenant: x.tenant, Name: "other", Merchant: x.merchant, Pricing: x.product.Pricing}
	if err := x.reg.CreateProduct(bg, other); err != nil {
		t.Fatal(err)
	}
	declined := func(name string, dev iotpay.DeviceID, amount int64, want payment.Reason) {
		t.Helper()
		p := x.authorize(dev, amount, true)
		if p.Status != payment.StatusDeclined || p.Decline != want || p.Reason == "" || p.Held != 0 {
			t.Fatalf("%s: %+v, want declined %s", name, p, want)
		}
	}
	nodev, _, _ := x.reg.CreateDevice(bg, x.tenant, x.product.ID, "no mandate", "")
	declined("no mandate", nodev.ID, 1_00, payment.DeclineNoMandate)
	d, _ := x.device(func(m *payment.Mandate) { m.ValidFrom = now.Add(time.Hour) })
	declined("not yet valid", d, 1_00, payment.DeclineMandateNotYetValid)
	d, _ = x.device(func(m *payment.Mandate) { m.ValidFrom, m.ValidTo = now.Add(-2*time.Hour), now.Add(-time.Hour) })
	declined("expired", d, 1_00, payment.DeclineMandateExpired)
	d, _ = x.device(func(m *payment.Mandate) { m.Products = []iotpay.ProductID{other.ID} })
	declined("product", d, 1_00, payment.DeclineProductNotAllowed)
	d, _ = x.device(func(m *payment.Mandate) { m.Categories = []string{"5814"} })
	declined("category", d, 1_00, payment.DeclineCategoryNotAllowed)
	d, _ = x.device(func(m *payment.Mandate) {
		m.Categories = []string{"5552"}
		m.Products = []iotpay.ProductID{x.product.ID}
	})
	if p := x.authorize(d, 1_00, true); p.Status != payment.StatusCaptured {
		t.Fatalf("allowed product and category: %+v", p)
	}
	declined("per payment", d, 10_01, payment.DeclineOverPaymentLimit)
	for range 2 {
		x.authorize(d, 10_00, true)
	}
	declined("daily", d, 9_01, payment.DeclineOverDailyLimit) // 21.00 of 30.00 used
	x.clock.Add(24 * time.Hour)
	x.authorize(d, 9_00, true) // a new day
	d2, m2 := x.device(func(m *payment.Mandate) { m.PerDay, m.PerMonth = 10_00, 10_00 })
	x.authorize(d2, 6_00, true)
	x.clock.Add(24 * time.Hour)
	declined("monthly", d2, 5_00, payment.DeclineOverMonthlyLimit)
	declined("insufficient funds", d2, 4_01+100_00, payment.DeclineOverPaymentLimit)

	// A mandate's life: suspended declines, resumed pays, revoked is final.
	set := func(to payment.MandateStatus) error {
		return x.e.Do(bg, func(b *ledger.Batch[platform.Tx]) error {
			_, err := payment.SetMandateStatus(b, x.tenant, m2.ID, to)
			return err
		})
	}
	if err := set(payment.MandateSuspended); err != nil {
		t.Fatal(err)
	}
	x.clock.Add(40 * 24 * time.Hour)
	declined("suspended", d2, 1_00, payment.DeclineMandateSuspended)
	if err := set(payment.MandateActive); err != nil {
		t.Fatal(err)
	}
	if p := x.authorize(d2, 1_00, true); p.Status != payment.StatusCaptured {
		t.Fatalf("resumed: %+v", p)
	}
	if err := set(payment.MandateRevoked); err != nil {
		t.Fatal(err)
	}
	declined("revoked", d2, 1_00, payment.DeclineMandateRevoked)
	if err := set(payment.MandateActive); iotpay.ErrorCode(err) != iotpay.ECONFLICT {
		t.Fatalf("revoked mandate resumed: %v", err)
	}
	// A revoked mandate frees the device for a new one; a live one does not.
	err := x.e.Do(bg, func(b *ledger.Batch[platform.Tx]) error {
		return payment.CreateMandate(b, &payment.Mandate{Tenant: x.tenant, Device: d, Payer: x.payer, PerPayment: 1, PerDay: 1, PerMonth: 1})
	})
	if iotpay.ErrorCode(err) != iotpay.ECONFLICT {
		t.Fatalf("second live mandate: %v", err)
	}
	x.do(func(b *ledger.Batch[platform.Tx]) error {
		return payment.CreateMandate(b, &payment.Mandate{Tenant: x.tenant, Device: d2, Payer: x.payer, PerPayment: 1_00, PerDay: 1_00, PerMonth: 1_00})
	})

	// Funds: a mandate allowing more than the wallet holds.
	rich, _ := x.device(func(m *payment.Mandate) { m.PerPayment, m.PerDay, m.PerMonth = 1000_00, 1000_00, 1000_00 })
	declined("funds", rich, 500_00, payment.DeclineInsufficientFunds)
}

// TestRandomOperations runs random payment operations — authorizations
// (sales among them), partial and final captures, increments, voids,
// refunds, clock jumps that expire holds — and holds the ledger and every
// payment to their invariants after each (env.check). Refusals must be
// typed errors and change nothing.
func TestRandomOperations(t *testing.T) {
	x := newEnv(t, payment.FeePlan{OperatorBps: 250, PlatformBps: 75})
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := mrand.New(mrand.NewPCG(seed, 3))
	var devs []iotpay.DeviceID
	for range 3 {
		d, _ := x.device(func(m *payment.Mandate) { m.PerPayment, m.PerDay, m.PerMonth = 20_00, 60_00, 200_00 })
		devs = append(devs, d)
	}
	var pays []iotpay.PaymentID
	pick := func() iotpay.PaymentID { return pays[r.IntN(len(pays))] }
	for step := range 300 {
		var err error
		switch op := r.IntN(8); {
		case op < 2 || len(pays) == 0:
			p := x.authorize(devs[r.IntN(len(devs))], r.Int64N(25_00)+1, r.IntN(3) == 0)
			pays = append(pays, p.ID)
		case op == 2:
			id, amt, final := pick(), r.Int64N(10_00), r.IntN(2) == 0
			_, err = x.op(func(b *ledger.Batch[platform.Tx]) (*payment.Payment, error) {
				return x.e.Capture(b, x.tenant, id, amt, final)
			})
		case op == 3:
			id, amt := pick(), r.Int64N(5_00)+1
			_, err = x.op(func(b *ledger.Batch[platform.Tx]) (*payment.Payment, error) {
				return x.e.Increment(b, x.tenant, id, amt)
			})
		case op == 4:
			id := pick()
			_, err = x.op(func(b *ledger.Batch[platform.Tx]) (*payment.Payment, error) { return x.e.Void(b, x.tenant, id) })
		case op == 5:
			id, amt := pick(), r.Int64N(8_00)
			_, err = x.op(func(b *ledger.Batch[platform.Tx]) (*payment.Payment, error) { return x.e.Refund(b, x.tenant, id, amt) })
		case op == 6:
			x.clock.Add(time.Duration(r.IntN(40)) * time.Minute)
			err = x.e.W.Expire(bg)
		default:
			if r.IntN(4) == 0 {
				x.do(func(b *ledger.Batch[platform.Tx]) error {
					_, err := payment.Fund(b, x.tenant, x.payer, r.Int64N(50_00)+1)
					return err
				})
			}
		}
		switch iotpay.ErrorCode(err) {
		case "", iotpay.EINVALID, iotpay.ECONFLICT, iotpay.EDECLINED:
		default:
			t.Fatalf("step %d: untyped or internal error %v", step, err)
		}
		x.checkFunded(step)
	}
}

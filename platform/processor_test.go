package platform_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/payment/ledger"
	"github.com/iotpay/iotpay/platform"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/store/sqlite"
	"github.com/iotpay/iotpay/wire"
)

// world is a processor over a real SQLite store with one enrolled, funded
// device under a mandate; every write goes through the ledger's writer.
type world struct {
	product  iotpay.ProductID
	proc     *platform.Processor
	pay      *payment.Engine[platform.Tx]
	dev      *device.Device
	tenant   iotpay.TenantID
	payer    iotpay.AccountID
	merchant iotpay.AccountID
	// transport is a gm device's P-256 key, certified by the platform CA
	// for TLS only.
	transport *ecdsa.PrivateKey
	reg       *registry.Service
	ca        *pki.CA
	state     *device.MemState
}

// do runs fn as one writer operation, failing the test on error.
func (w *world) do(tb testing.TB, fn func(b *ledger.Batch[platform.Tx]) error) {
	tb.Helper()
	if err := w.pay.Do(context.Background(), fn); err != nil {
		tb.Fatal(err)
	}
}

func newWorld(tb testing.TB) *world { return newSuiteWorld(tb, wire.Intl, nil) }

// newSuiteWorld is newWorld with a device of suite, the processor logging
// to log (when not nil). The platform has both suites' CAs and receipt
// keys.
func newSuiteWorld(tb testing.TB, suite wire.Suite, log *slog.Logger) *world {
	tb.Helper()
	return newWorldWith(tb, suite, log, nil)
}

// newWorldWith is newSuiteWorld with the product changed by product (when
// not nil) before it is made.
func newWorldWith(tb testing.TB, suite wire.Suite, log *slog.Logger, product func(*registry.Product)) *world {
	tb.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "t.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	ca, err := pki.NewCA("test", time.Now(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	gmCA, err := pki.NewSuiteCA(pki.SuiteGM, "test gm", time.Now(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	rk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	gmRK, _ := pki.GenerateKey(pki.SuiteGM, nil)
	read := sqlite.For[platform.Tx](db)
	w := &world{pay: &payment.Engine[platform.Tx]{Store: read, Fees: payment.FeePlan{OperatorBps: 200, PlatformBps: 100}}}
	wr, err := ledger.Open(ctx, read, ledger.Config[platform.Tx]{OnExpire: w.pay.OnExpire})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { wr.Close() })
	w.pay.W = wr
	reg := &registry.Service{Store: platform.WriterStore[registry.Tx]{W: wr, Read: read}, CA: ca, PlatformKey: rk.Public(),
		GMCA: gmCA, GMPlatformKey: gmRK.Public()}
	w.reg, w.ca = reg, ca
	w.proc = &platform.Processor{Store: read, Engine: w.pay, ReceiptSigner: rk, ReceiptSuite: wire.Intl, ReceiptKid: []byte("k"),
		GMReceiptSigner: gmRK, GMReceiptKid: []byte("g"), Logger: log}
	ten, _, err := reg.Bootstrap(ctx, "t")
	if err != nil {
		tb.Fatal(err)
	}
	w.tenant = ten.ID
	w.do(tb, func(b *ledger.Batch[platform.Tx]) error {
		m, err := payment.CreateAccount(b, ten.ID, "m", payment.KindMerchant, "EUR")
		if err != nil {
			return err
		}
		p, err := payment.CreateAccount(b, ten.ID, "p", payment.KindPayer, "EUR")
		if err != nil {
			return err
		}
		w.merchant, w.payer = m.ID, p.ID
		_, err = payment.Fund(b, ten.ID, p.ID, 10000)
		return err
	})
	prod := &registry.Product{Tenant: ten.ID, Name: "x", Merchant: w.merchant, Pricing: registry.Pricing{Mode: registry.PriceAmount, Currency: "EUR"}}
	if product != nil {
		product(prod)
	}
	if err := reg.CreateProduct(ctx, prod); err != nil {
		tb.Fatal(err)
	}
	w.product = prod.ID
	d, token, err := reg.CreateDevice(ctx, ten.ID, prod.ID, "d", suite.Name())
	if err != nil {
		tb.Fatal(err)
	}
	key, _ := pki.GenerateKey(suite.Name(), nil)
	csr, _ := pki.NewCSR(key, "d")
	var transportCSR []byte
	if suite == wire.GM {
		w.transport, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		transportCSR, _ = pki.NewCSR(w.transport, "d")
	}
	en, err := reg.Enroll(ctx, d.ID, token, csr, transportCSR)
	if err != nil {
		tb.Fatal(err)
	}
	w.do(tb, func(b *ledger.Batch[platform.Tx]) error {
		return payment.CreateMandate(b, &payment.Mandate{Tenant: ten.ID, Device: d.ID, Payer: w.payer,
			PerPayment: 1000, PerDay: 5000, PerMonth: 20000})
	})
	cert, _ := pki.ParseCertPEM([]byte(en.Certificate))
	st := &device.MemState{}
	st.Save(device.State{Challenge: en.Challenge})
	pk := rk.Public()
	if suite == wire.GM {
		pk = gmRK.Public()
	}
	w.state = st
	w.dev, _ = device.New(device.Identity{ID: d.ID, Suite: suite, Signer: key, Cert: cert, CA: ca.Cert, PlatformKey: pk}, st)
	return w
}

// balances checks the ledger and returns the payer's balance and what the
// merchant, operator and platform were paid together.
func (w *world) balances(tb testing.TB) (payer, paid int64) {
	tb.Helper()
	ctx := context.Background()
	rep, err := w.pay.Check(ctx)
	if err != nil || !rep.Balanced {
		tb.Fatalf("ledger: %+v %v", rep, err)
	}
	p, err := w.pay.Account(ctx, w.tenant, w.payer)
	if err != nil {
		tb.Fatal(err)
	}
	as, err := w.pay.Accounts(ctx, w.tenant, ledger.AccountFilter{})
	if err != nil {
		tb.Fatal(err)
	}
	for _, a := range as {
		if a.Kind == payment.KindMerchant || a.Kind == payment.KindOperator || a.Kind == payment.KindPlatform {
			paid += a.Posted(a.Normal)
		}
	}
	return p.Posted(p.Normal), paid
}

func TestProcessorPaysOnceAndBalances(t *testing.T) {
	w := newWorld(t)
	s, err := w.dev.Sign(device.Payment{Amount: &iotpay.Money{Amount: 700, Currency: "EUR"}})
	if err != nil {
		t.Fatal(err)
	}
	res := w.proc.Process(context.Background(), w.dev.ID(), s.Raw)
	if res.Outcome != wire.Approved {
		t.Fatalf("outcome %s %s %s", res.Outcome, res.Code, res.Reason)
	}
	again := w.proc.Process(context.Background(), w.dev.ID(), s.Raw)
	if !again.Duplicate || string(again.Receipt) != string(res.Receipt) {
		t.Fatalf("redelivery not answered with the original receipt: %+v", again)
	}
	if p, m := w.balances(t); p != 9300 || m != 700 {
		t.Fatalf("balances payer=%d paid=%d", p, m)
	}
	m, err := w.pay.Account(context.Background(), w.tenant, w.merchant)
	if err != nil || m.Posted(m.Normal) != 700-14-7 {
		t.Fatalf("merchant got %+v (%v), want 700 less 2%% and 1%% fees", m, err)
	}
}

// TestKeptKeyFollowsTheDevice: the processor keeps a device's verification
// key outside the writer; a request signed with a key the device no longer
// has is refused even while the old key is kept, the new key is taken up
// at once, and a revoked device is refused.
func TestKeptKeyFollowsTheDevice(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	pay := func(d *device.Device) platform.Result {
		t.Helper()
		s, err := d.Sign(device.Payment{Amount: &iotpay.Money{Amount: 100, Currency: "EUR"}})
		if err != nil {
			t.Fatal(err)
		}
		res := w.proc.Process(ctx, d.ID(), s.Raw)
		if res.Outcome == wire.Approved {
			if _, err := d.Open(s, res.Receipt); err != nil {
				t.Fatal(err)
			}
		}
		return res
	}
	if res := pay(w.dev); res.Outcome != wire.Approved {
		t.Fatalf("first payment: %+v", res)
	}
	// Re-keyed without telling the processor (no OnDeviceChange).
	newKey, _ := pki.GenerateKey(wire.SuiteIntl, nil)
	csr, _ := pki.NewCSR(newKey, string(w.dev.ID()))
	cert, err := w.reg.Reenroll(ctx, w.dev.ID(), csr)
	if err != nil {
		t.Fatal(err)
	}
	if res := pay(w.dev); res.Outcome != wire.Rejected || res.Code != iotpay.EUNAUTHORIZED {
		t.Fatalf("request under the replaced key: %s %s %s", res.Outcome, res.Code, res.Reason)
	}
	id := *w.dev.Identity()
	id.Signer, id.Cert = newKey, cert
	rekeyed, err := device.New(id, w.state)
	if err != nil {
		t.Fatal(err)
	}
	if res := pay(rekeyed); res.Outcome != wire.Approved {
		t.Fatalf("request under the new key: %s %s %s", res.Outcome, res.Code, res.Reason)
	}
	// Revoked, the processor told.
	w.reg.OnDeviceChange = w.proc.ForgetDevice
	if _, err := w.reg.Revoke(ctx, w.tenant, w.dev.ID()); err != nil {
		t.Fatal(err)
	}
	if res := pay(rekeyed); res.Outcome != wire.Rejected || res.Code != iotpay.EUNAUTHORIZED {
		t.Fatalf("revoked device: %s %s %s", res.Outcome, res.Code, res.Reason)
	}
	if p, m := w.balances(t); p != 9800 || m != 200 {
		t.Fatalf("balances payer=%d paid=%d", p, m)
	}
}

// FuzzProcess feeds arbitrary bytes to the admission path as if they came
// from the enrolled device's channel: never a panic, always a signed answer,
// never money created or lost.
func FuzzProcess(f *testing.F) { fuzzProcess(f, wire.Intl) }

// FuzzProcessGM is FuzzProcess with a gm device.
func FuzzProcessGM(f *testing.F) { fuzzProcess(f, wire.GM) }

func fuzzProcess(f *testing.F, suite wire.Suite) {
	w := newSuiteWorld(f, suite, nil)
	for _, amt := range []int64{1, 500, 1001} {
		s, err := w.dev.Sign(device.Payment{Amount: &iotpay.Money{Amount: amt, Currency: "EUR"}})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s.Raw)
		f.Add(s.Raw[:len(s.Raw)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0x40, 0x40})
	f.Fuzz(func(t *testing.T, raw []byte) {
		res := w.proc.Process(context.Background(), w.dev.ID(), raw)
		if res.Receipt == nil {
			t.Fatal("no receipt for a message")
		}
		// Only a validly signed request can be approved, and money is conserved.
		p, m := w.balances(t)
		if p+m != 10000 {
			t.Fatalf("money appeared or vanished: payer %d + merchant %d", p, m)
		}
		if res.Outcome == wire.Approved {
			if _, _, err := wire.ParseRequest(raw); err != nil {
				t.Fatalf("malformed bytes approved: %x", raw)
			}
		}
	})
}

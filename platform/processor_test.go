package platform_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/platform"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/store/sqlite"
	"github.com/iotpay/iotpay/wire"
)

// world is a processor over a real SQLite store with one enrolled, funded
// and bound device.
type world struct {
	proc     *platform.Processor
	pay      *payment.Service
	dev      *device.Device
	tenant   iotpay.TenantID
	payer    iotpay.AccountID
	merchant iotpay.AccountID
}

func newWorld(tb testing.TB) *world {
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
	rk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	reg := &registry.Service{Store: sqlite.For[registry.Tx](db), CA: ca, PlatformKey: rk.Public()}
	w := &world{pay: &payment.Service{Store: sqlite.For[payment.Tx](db)}}
	w.proc = &platform.Processor{Store: sqlite.For[platform.Tx](db), ReceiptSigner: rk, ReceiptSuite: wire.Intl, ReceiptKid: []byte("k")}
	ten, _, err := reg.Bootstrap(ctx, "t")
	if err != nil {
		tb.Fatal(err)
	}
	m, _ := w.pay.CreateAccount(ctx, ten.ID, "m", payment.Merchant, "EUR")
	p, _ := w.pay.CreateAccount(ctx, ten.ID, "p", payment.Payer, "EUR")
	w.tenant, w.merchant, w.payer = ten.ID, m.ID, p.ID
	if _, err := w.pay.Fund(ctx, ten.ID, p.ID, 10000); err != nil {
		tb.Fatal(err)
	}
	prod := &registry.Product{Tenant: ten.ID, Name: "x", Merchant: m.ID, Pricing: registry.Pricing{Mode: registry.PriceAmount, Currency: "EUR"}}
	if err := reg.CreateProduct(ctx, prod); err != nil {
		tb.Fatal(err)
	}
	d, token, err := reg.CreateDevice(ctx, ten.ID, prod.ID, "d")
	if err != nil {
		tb.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := pki.NewCSR(key, "d")
	en, err := reg.Enroll(ctx, d.ID, token, csr)
	if err != nil {
		tb.Fatal(err)
	}
	if err := w.pay.Bind(ctx, &payment.Binding{Tenant: ten.ID, Device: d.ID, Account: p.ID, PerPaymentLimit: 1000, DailyLimit: 5000}); err != nil {
		tb.Fatal(err)
	}
	cert, _ := pki.ParseCertPEM([]byte(en.Certificate))
	st := &device.MemState{}
	st.Save(device.State{Challenge: en.Challenge})
	w.dev, _ = device.New(device.Identity{ID: d.ID, Suite: wire.Intl, Signer: key, Cert: cert, CA: ca.Cert, PlatformKey: rk.Public()}, st)
	return w
}

func (w *world) balances(tb testing.TB) (payer, merchant int64) {
	tb.Helper()
	ctx := context.Background()
	rep, err := w.pay.LedgerCheck(ctx)
	if err != nil || !rep.Balanced {
		tb.Fatalf("ledger: %+v %v", rep, err)
	}
	p, err := w.pay.Account(ctx, w.tenant, w.payer)
	if err != nil {
		tb.Fatal(err)
	}
	m, err := w.pay.Account(ctx, w.tenant, w.merchant)
	if err != nil {
		tb.Fatal(err)
	}
	return p.Balance, m.Balance
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
		t.Fatalf("balances payer=%d merchant=%d", p, m)
	}
}

// FuzzProcess feeds arbitrary bytes to the admission path as if they came
// from the enrolled device's channel: never a panic, always a signed answer,
// never money created or lost.
func FuzzProcess(f *testing.F) {
	w := newWorld(f)
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

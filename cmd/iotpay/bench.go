package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/payment/ledger"
	"github.com/iotpay/iotpay/platform"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/store/postgres"
	"github.com/iotpay/iotpay/store/sqlite"
	"github.com/iotpay/iotpay/store/sqlstore"
)

// benchResult is what `iotpay bench ledger` measures.
type benchResult struct {
	Store                     string  `json:"store"`
	Clients                   int     `json:"clients"`
	Seconds                   float64 `json:"seconds_per_phase"`
	TransfersPerSec           float64 `json:"transfers_per_sec"`
	HotAccountTransfersPerSec float64 `json:"hot_account_transfers_per_sec"`
	PaymentsPerSec            float64 `json:"payments_per_sec"`
	TransfersPerBatch         float64 `json:"transfers_per_batch"`
	LedgerBalanced            bool    `json:"ledger_balanced"`
}

// benchStore opens the store a benchmark runs on: SQLite in a temporary
// directory, or a scratch database on a PostgreSQL server.
func benchStore(ctx context.Context, spec string) (db *sqlstore.DB, name string, cleanup func(), err error) {
	switch {
	case spec == "sqlite":
		dir, err := os.MkdirTemp("", "iotpay-bench-")
		if err != nil {
			return nil, "", nil, err
		}
		db, err := sqlite.Open(ctx, filepath.Join(dir, "bench.db"))
		if err != nil {
			os.RemoveAll(dir)
			return nil, "", nil, err
		}
		return db, "sqlite", func() { db.Close(); os.RemoveAll(dir) }, nil
	case strings.HasPrefix(spec, "postgres://") || strings.HasPrefix(spec, "postgresql://"):
		u, drop, err := postgres.Scratch(ctx, spec, "iotpay_bench_")
		if err != nil {
			return nil, "", nil, err
		}
		db, err := postgres.Open(ctx, u)
		if err != nil {
			drop()
			return nil, "", nil, err
		}
		return db, "postgres", func() { db.Close(); drop() }, nil
	}
	return nil, "", nil, fmt.Errorf("--store must be sqlite or a postgres:// URL")
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) > 0 && args[0] == "conns":
		return benchConns(ctx, args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "e2e":
		return benchE2E(ctx, args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "platform":
		return benchPlatform(ctx, args[1:], stdout, stderr)
	case len(args) == 0 || args[0] != "ledger":
		return errors.New("usage: iotpay bench ledger --store sqlite|postgres://… [--json]\n       iotpay bench conns --devices N [--hold 10s] [--json]\n       iotpay bench e2e [--suite intl|gm] [--json]")
	}
	fs := flag.NewFlagSet("bench ledger", flag.ContinueOnError)
	fs.SetOutput(stderr)
	store := fs.String("store", "sqlite", "sqlite (a temporary file) or a postgres:// server URL (a scratch database is created and dropped)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	dur := fs.Duration("duration", 5*time.Second, "how long each phase runs")
	clients := fs.Int("clients", 4096, "concurrent clients, each submitting one transfer or payment at a time")
	wallets := fs.Int("accounts", 10_000, "payer accounts (and a tenth as many merchants)")
	devices := fs.Int("devices", 1000, "devices paying, each under a mandate on a payer account of its own")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file")
	memProfile := fs.String("memprofile", "", "write an allocation profile to this file at the end")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *memProfile != "" {
		runtime.MemProfileRate = 64 << 10
		defer func() {
			if f, err := os.Create(*memProfile); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	if *clients < 1 || *wallets < 10 || *dur <= 0 || *dur > 10*time.Minute {
		return errors.New("need --clients ≥ 1, --accounts ≥ 10 and 0 < --duration ≤ 10m")
	}
	db, name, cleanup, err := benchStore(ctx, *store)
	if err != nil {
		return err
	}
	defer cleanup()
	say := func(format string, a ...any) {
		if !*asJSON {
			fmt.Fprintf(stdout, format+"\n", a...)
		}
	}
	res := benchResult{Store: name, Clients: *clients, Seconds: dur.Seconds()}
	w, err := ledger.Open(ctx, db, ledger.Config[*sqlstore.Tx]{})
	if err != nil {
		return err
	}
	closeW := sync.OnceValue(w.Close)
	defer closeW()
	b := &ledgerBench{w: w, tenant: iotpay.TenantID(iotpay.NewID(iotpay.PrefixTenant, time.Now(), nil))}
	say("setting up %d payer and %d merchant accounts on %s…", *wallets, *wallets/10, name)
	if err := b.setup(ctx, *wallets); err != nil {
		return err
	}
	phase := func(label string, hot bool) (float64, error) {
		before := w.Stats()
		n, elapsed, err := b.run(ctx, *clients, *dur, hot)
		if err != nil {
			return 0, err
		}
		after := w.Stats()
		rate := float64(n) / elapsed.Seconds()
		per := float64(after.Transfers-before.Transfers) / float64(max(1, after.Batches-before.Batches))
		say("%-28s %9.0f transfers/s  (%d in %v, %.0f transfers per commit)", label, rate, n, elapsed.Round(time.Millisecond), per)
		if !hot {
			res.TransfersPerBatch = per
		}
		return rate, nil
	}
	if res.TransfersPerSec, err = phase("uncontended", false); err != nil {
		return err
	}
	if res.HotAccountTransfersPerSec, err = phase("one hot merchant account", true); err != nil {
		return err
	}
	// Payments run on the whole platform's writer: the ledger's must stop
	// first (one writer a database).
	closeW()
	say("setting up %d devices with mandates…", *devices)
	pb, err := newPaymentBench(ctx, db, *devices)
	if err != nil {
		return err
	}
	n, elapsed, err := pb.run(ctx, *clients, *dur)
	pb.close()
	if err != nil {
		return err
	}
	res.PaymentsPerSec = float64(n) / elapsed.Seconds()
	say("%-28s %9.0f payments/s   (%d authorized then captured in %v; 4 ledger transfers each)", "payments", res.PaymentsPerSec, n, elapsed.Round(time.Millisecond))
	var rep *ledger.Report
	err = db.View(ctx, func(tx *sqlstore.Tx) (err error) { rep, err = ledger.Check(ctx, tx); return })
	if err != nil {
		return err
	}
	res.LedgerBalanced = rep.Balanced
	say("ledger balanced: %v", rep.Balanced)
	if *asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	if !rep.Balanced {
		return errors.New("ledger not balanced after the benchmark")
	}
	return nil
}

type ledgerBench struct {
	w         *ledger.Writer[*sqlstore.Tx]
	tenant    iotpay.TenantID
	bank, hot iotpay.AccountID
	wallets   []iotpay.AccountID
	merchants []iotpay.AccountID
}

func (b *ledgerBench) newAccount(kind string, normal ledger.Side) *ledger.Account {
	return &ledger.Account{ID: iotpay.AccountID(iotpay.NewID(iotpay.PrefixAccount, time.Now(), nil)), Tenant: b.tenant,
		Currency: "EUR", Normal: normal, Kind: kind, Name: kind}
}

// setup opens the accounts and funds every wallet, a thousand at a time.
func (b *ledgerBench) setup(ctx context.Context, wallets int) error {
	bank, hot := b.newAccount("funding", ledger.Debit), b.newAccount("merchant", ledger.Credit)
	b.bank, b.hot = bank.ID, hot.ID
	all := []*ledger.Account{bank, hot}
	for range wallets {
		a := b.newAccount("payer", ledger.Credit)
		b.wallets = append(b.wallets, a.ID)
		all = append(all, a)
	}
	for range wallets / 10 {
		a := b.newAccount("merchant", ledger.Credit)
		b.merchants = append(b.merchants, a.ID)
		all = append(all, a)
	}
	for start := 0; start < len(all); start += 1000 {
		if err := b.w.CreateAccounts(ctx, all[start:min(len(all), start+1000)]...); err != nil {
			return err
		}
	}
	for start := 0; start < len(b.wallets); start += 1000 {
		var ts []*ledger.Transfer
		for _, id := range b.wallets[start:min(len(b.wallets), start+1000)] {
			ts = append(ts, &ledger.Transfer{ID: newTransferID(), Tenant: b.tenant, Debit: b.bank, Credit: id,
				Amount: 1 << 40, Currency: "EUR", Kind: "fund"})
		}
		if err := firstErr(b.w.Transfer(ctx, ts)); err != nil {
			return err
		}
	}
	return nil
}

func newTransferID() iotpay.TransferID {
	return iotpay.TransferID(iotpay.NewID(iotpay.PrefixTransfer, time.Now(), nil))
}

func firstErr(errs []error, err error) error {
	if err != nil {
		return err
	}
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// run has clients submit one transfer at a time each, from a random
// wallet to a random merchant (or the hot one), for d; it returns how many
// were applied and how long that took.
func (b *ledgerBench) run(ctx context.Context, clients int, d time.Duration, hot bool) (int64, time.Duration, error) {
	return load(ctx, clients, d, func(r *rand.Rand) error {
		to := b.hot
		if !hot {
			to = b.merchants[r.IntN(len(b.merchants))]
		}
		t := &ledger.Transfer{ID: newTransferID(), Tenant: b.tenant, Debit: b.wallets[r.IntN(len(b.wallets))],
			Credit: to, Amount: r.Int64N(1000) + 1, Currency: "EUR", Kind: "bench"}
		return firstErr(b.w.Transfer(context.Background(), []*ledger.Transfer{t}))
	})
}

// load has clients each run step, one call after the other, for d; it
// returns how many calls succeeded and how long that took, or the first
// failure, which stops every client.
func load(ctx context.Context, clients int, d time.Duration, step func(r *rand.Rand) error) (int64, time.Duration, error) {
	var n atomic.Int64
	var failed atomic.Value
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(c), uint64(start.UnixNano())))
			for ctx.Err() == nil {
				if err := step(r); err != nil {
					failed.Store(err)
					cancel()
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err, _ := failed.Load().(error); err != nil {
		return 0, 0, err
	}
	return n.Load(), elapsed, nil
}

// paymentBench is the payment engine on the whole platform's writer, with
// devices under mandates paying a merchant.
type paymentBench struct {
	e        *payment.Engine[platform.Tx]
	tenant   iotpay.TenantID
	product  *registry.Product
	devices  []iotpay.DeviceID
	merchant iotpay.AccountID
}

func newPaymentBench(ctx context.Context, db *sqlstore.DB, devices int) (*paymentBench, error) {
	read := sqlstore.For[platform.Tx](db)
	pb := &paymentBench{e: &payment.Engine[platform.Tx]{Store: read, Fees: payment.FeePlan{OperatorBps: 200, PlatformBps: 100}}}
	w, err := ledger.Open(ctx, read, ledger.Config[platform.Tx]{OnExpire: pb.e.OnExpire})
	if err != nil {
		return nil, err
	}
	pb.e.W = w
	reg := &registry.Service{Store: platform.WriterStore[registry.Tx]{W: w, Read: read}}
	ten, _, err := reg.Bootstrap(ctx, "bench")
	if err != nil {
		pb.close()
		return nil, err
	}
	pb.tenant = ten.ID
	err = pb.e.Do(ctx, func(b *ledger.Batch[platform.Tx]) error {
		m, err := payment.CreateAccount(b, ten.ID, "merchant", payment.KindMerchant, "EUR")
		pb.merchant = m.ID
		return err
	})
	if err == nil {
		pb.product = &registry.Product{Tenant: ten.ID, Name: "bench", Merchant: pb.merchant, Category: "5814",
			Pricing: registry.Pricing{Mode: registry.PriceAmount, Currency: "EUR"}}
		err = reg.CreateProduct(ctx, pb.product)
	}
	for i := 0; err == nil && i < devices; i++ {
		var d *registry.Device
		if d, _, err = reg.CreateDevice(ctx, ten.ID, pb.product.ID, "bench", ""); err != nil {
			break
		}
		pb.devices = append(pb.devices, d.ID)
		err = pb.e.Do(ctx, func(b *ledger.Batch[platform.Tx]) error {
			a, err := payment.CreateAccount(b, ten.ID, "payer", payment.KindPayer, "EUR")
			if err != nil {
				return err
			}
			if _, err := payment.Fund(b, ten.ID, a.ID, 1<<40); err != nil {
				return err
			}
			return payment.CreateMandate(b, &payment.Mandate{Tenant: ten.ID, Device: d.ID, Payer: a.ID,
				PerPayment: 1 << 30, PerDay: 1 << 40, PerMonth: 1 << 41})
		})
	}
	if err != nil {
		pb.close()
		return nil, err
	}
	return pb, nil
}

func (pb *paymentBench) close() { pb.e.W.Close() }

// run has clients authorize a payment then capture it, one after the
// other, for d; it returns how many payments were captured.
func (pb *paymentBench) run(ctx context.Context, clients int, d time.Duration) (int64, time.Duration, error) {
	return load(ctx, clients, d, func(r *rand.Rand) error {
		dev := pb.devices[r.IntN(len(pb.devices))]
		var p *payment.Payment
		err := pb.e.Do(context.Background(), func(b *ledger.Batch[platform.Tx]) (err error) {
			p, err = pb.e.Authorize(b, &payment.AuthRequest{Tenant: pb.tenant, Device: dev, Product: pb.product.ID,
				Category: pb.product.Category, Merchant: pb.merchant, Amount: iotpay.Money{Amount: r.Int64N(10_00) + 1, Currency: "EUR"}})
			return err
		})
		if err == nil && p.Status != payment.StatusAuthorized {
			err = fmt.Errorf("payment %s %s: %s", p.ID, p.Status, p.Reason)
		}
		if err != nil {
			return err
		}
		return pb.e.Do(context.Background(), func(b *ledger.Batch[platform.Tx]) error {
			_, err := pb.e.Capture(b, pb.tenant, p.ID, 0, true)
			return err
		})
	})
}

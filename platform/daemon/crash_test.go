package daemon_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/payment/ledger"
	iotplatform "github.com/iotpay/iotpay/platform"
	"github.com/iotpay/iotpay/platform/daemon"
	"github.com/iotpay/iotpay/platform/registry"
)

// The crash test's child process is this test binary, run again with
// these variables set.
const (
	envCrashDir   = "IOTPAY_CRASH_DIR"
	envCrashStore = "IOTPAY_CRASH_STORE"
	envCrashRound = "IOTPAY_CRASH_ROUND"
)

// crashAcksBeforeKill is how many payments the parent sees acknowledged
// before it kills the child; crashRounds how many times it does.
const (
	crashAcksBeforeKill = 300
	crashRounds         = 2
	crashClients        = 32
)

// TestCrash runs payments in a child process, kills it with SIGKILL in
// the middle of the load, restarts, and checks: every payment the child
// saw acknowledged is there exactly once and captured, no payment is
// half-applied (its ledger legs and its record agree), and the ledger
// balances. Then it does it again on the recovered store.
func TestCrash(t *testing.T) { onEachStore(t, testCrash) }

func testCrash(t *testing.T, store string) {
	dir := t.TempDir()
	acked := map[iotpay.PaymentID]int64{}
	for round := range crashRounds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
		cmd.Env = append(os.Environ(), envCrashDir+"="+dir, envCrashStore+"="+store, envCrashRound+"="+strconv.Itoa(round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		n := 0
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] != "ack" {
				continue
			}
			amt, _ := strconv.ParseInt(f[2], 10, 64)
			acked[iotpay.PaymentID(f[1])] = amt
			if n++; n == crashAcksBeforeKill {
				cmd.Process.Signal(syscall.SIGKILL) // mid-load: the child's clients are all in flight
				break
			}
		}
		go func() { // drain what the pipe still holds
			for sc.Scan() {
			}
		}()
		err = cmd.Wait()
		if n < crashAcksBeforeKill {
			t.Fatalf("round %d: the child stopped after %d acknowledgements: %v", round, n, err)
		}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child ended with %v, not killed", round, cmd.ProcessState)
		}
		verifyAfterCrash(t, dir, store, acked)
	}
}

// verifyAfterCrash restarts the platform on the store the child left and
// checks it.
func verifyAfterCrash(t *testing.T, dir, store string, acked map[iotpay.PaymentID]int64) {
	t.Helper()
	ctx := context.Background()
	var d *daemon.Daemon
	var err error
	for try := 0; try < 50; try++ { // PostgreSQL may take a moment to see the dead writer's session end
		if d, err = daemon.Open(ctx, daemon.Config{DataDir: dir, Store: store}); iotpay.ErrorCode(err) != iotpay.EUNAVAILABLE {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("restart after SIGKILL: %v", err)
	}
	defer d.Close()
	rep, err := d.Payments.Check(ctx)
	if err != nil || !rep.Balanced {
		t.Fatalf("ledger after the crash: %+v %v", rep, err)
	}
	tenant := crashTenant(t, d)
	var all []*payment.Payment
	for before := iotpay.PaymentID(""); ; {
		ps, err := d.Payments.Payments(ctx, tenant, payment.Filter{Before: before, Limit: payment.ListLimitMax})
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) == 0 {
			break
		}
		all = append(all, ps...)
		before = ps[len(ps)-1].ID
	}
	seen := map[iotpay.PaymentID]int{}
	for _, p := range all {
		seen[p.ID]++
		// Record and legs agree, whatever the moment of the kill.
		ts, err := d.Payments.Transfers(ctx, tenant, ledger.TransferFilter{Ref: string(p.ID)})
		if err != nil {
			t.Fatal(err)
		}
		var posted, fees, held int64
		for _, tr := range ts {
			switch {
			case tr.Flags&ledger.PostPending != 0:
				posted += tr.Amount
			case strings.HasPrefix(tr.Kind, "fee "):
				fees += tr.Amount
			case tr.Flags&ledger.Pending != 0:
				held += tr.Amount
			}
		}
		switch p.Status {
		case payment.StatusCaptured:
			if posted != p.Captured || fees != p.FeeOperator+p.FeePlatform || fees == 0 || held != p.Amount {
				t.Fatalf("payment %s half-applied: %+v, legs posted %d fees %d held %d", p.ID, p, posted, fees, held)
			}
		case payment.StatusAuthorized:
			if posted != 0 || fees != 0 || held != p.Amount || p.Held != p.Amount {
				t.Fatalf("authorization %s half-applied: %+v, legs posted %d fees %d held %d", p.ID, p, posted, fees, held)
			}
		default:
			t.Fatalf("payment %s in status %s", p.ID, p.Status)
		}
	}
	for id, amt := range acked {
		if seen[id] != 1 {
			t.Fatalf("acknowledged payment %s present %d times", id, seen[id])
		}
		p, err := d.Payments.Payment(ctx, tenant, id)
		if err != nil || p.Status != payment.StatusCaptured || p.Captured != amt {
			t.Fatalf("acknowledged payment %s: %+v %v", id, p, err)
		}
	}
	t.Logf("after the kill: %d payments stored, %d acknowledged, ledger balanced", len(all), len(acked))
}

// crashTenant is the tenant the child pays in: the only one.
func crashTenant(t *testing.T, d *daemon.Daemon) iotpay.TenantID {
	t.Helper()
	id, err := os.ReadFile(filepath.Join(d.DataDir(), "crash-tenant"))
	if err != nil {
		t.Fatal(err)
	}
	return iotpay.TenantID(id)
}

// TestCrashChild is the child: it sets up (first round) and pays until it
// is killed, printing "ack <payment> <amount>" once a payment's capture
// committed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(envCrashDir)
	if dir == "" {
		t.Skip("the crash test's child process; run by TestCrash")
	}
	ctx := context.Background()
	d, err := daemon.Open(ctx, daemon.Config{DataDir: dir, Store: os.Getenv(envCrashStore),
		Fees: payment.FeePlan{OperatorBps: 150, PlatformBps: 50}})
	if err != nil {
		t.Fatal(err)
	}
	devs, tenant, product := crashSetup(t, d, os.Getenv(envCrashRound) == "0")
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	deadline := time.Now().Add(2 * time.Minute) // a bound: the parent kills it long before
	var wg sync.WaitGroup
	for c := range crashClients {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				dev := devs[(c+i)%len(devs)]
				amt := int64(100 + (c*7+i*13)%900)
				var p *payment.Payment
				err := d.Payments.Do(ctx, func(b *ledger.Batch[iotplatform.Tx]) (err error) {
					p, err = d.Payments.Authorize(b, &payment.AuthRequest{Tenant: tenant, Device: dev, Product: product.ID,
						Merchant: product.Merchant, Amount: iotpay.Money{Amount: amt, Currency: "EUR"}})
					return err
				})
				if err == nil {
					err = d.Payments.Do(ctx, func(b *ledger.Batch[iotplatform.Tx]) error {
						_, err := d.Payments.Capture(b, tenant, p.ID, 0, true)
						return err
					})
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %s %d\n", p.ID, amt)
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// crashSetup creates (first round) or finds the child's devices: each
// under a mandate on a funded wallet of its own.
func crashSetup(t *testing.T, d *daemon.Daemon, first bool) ([]iotpay.DeviceID, iotpay.TenantID, *registry.Product) {
	ctx := context.Background()
	path := filepath.Join(d.DataDir(), "crash-tenant")
	if first {
		ten, err := d.Registry.Authenticate(ctx, d.APIKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(ten), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tenant := iotpay.TenantID(raw)
	var merchant iotpay.AccountID
	if first {
		err = d.Payments.Do(ctx, func(b *ledger.Batch[iotplatform.Tx]) error {
			m, err := payment.CreateAccount(b, tenant, "merchant", payment.KindMerchant, "EUR")
			merchant = m.ID
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		prod := &registry.Product{Tenant: tenant, Name: "crash", Merchant: merchant, Pricing: registry.Pricing{Mode: registry.PriceAmount, Currency: "EUR"}}
		if err := d.Registry.CreateProduct(ctx, prod); err != nil {
			t.Fatal(err)
		}
		for range 20 {
			dev, _, err := d.Registry.CreateDevice(ctx, tenant, prod.ID, "crash", "")
			if err != nil {
				t.Fatal(err)
			}
			err = d.Payments.Do(ctx, func(b *ledger.Batch[iotplatform.Tx]) error {
				a, err := payment.CreateAccount(b, tenant, "wallet", payment.KindPayer, "EUR")
				if err != nil {
					return err
				}
				if _, err := payment.Fund(b, tenant, a.ID, 1<<40); err != nil {
					return err
				}
				return payment.CreateMandate(b, &payment.Mandate{Tenant: tenant, Device: dev.ID, Payer: a.ID,
					PerPayment: 1 << 30, PerDay: 1 << 40, PerMonth: 1 << 41})
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	ms, err := d.Payments.Mandates(ctx, tenant, payment.MandateFilter{Limit: payment.ListLimitMax})
	if err != nil || len(ms) != 20 {
		t.Fatalf("mandates %d %v", len(ms), err)
	}
	var devs []iotpay.DeviceID
	for _, m := range ms {
		devs = append(devs, m.Device)
	}
	dev, err := d.Registry.Device(ctx, tenant, devs[0])
	if err != nil {
		t.Fatal(err)
	}
	prod, err := d.Registry.Product(ctx, tenant, dev.Product)
	if err != nil {
		t.Fatal(err)
	}
	return devs, tenant, prod
}

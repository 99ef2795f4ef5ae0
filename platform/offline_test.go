package platform_test

import (
	"context"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	"github.com/iotpay/iotpay/platform"
	"github.com/iotpay/iotpay/platform/decision"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/wire"
)

// TestOfflinePayments: a device pays offline within its product's limits
// (the device refuses past them); the requests reach the platform an hour
// later, in order, echoing the same old challenge, and are settled; one
// beyond the limits (a device that ignored them) is held for review and
// flagged; the next online payment starts the count again; a product
// without offline limits refuses offline requests. The ledger balances.
func TestOfflinePayments(t *testing.T) {
	ctx := context.Background()
	lim := device.OfflineLimits{MaxAmount: 1000, MaxCount: 3}
	w := newWorldWith(t, wire.Intl, nil, func(p *registry.Product) {
		p.Offline = &registry.OfflineLimits{MaxAmount: lim.MaxAmount, MaxCount: lim.MaxCount}
	})
	eur := func(n int64) *iotpay.Money { return &iotpay.Money{Amount: n, Currency: "EUR"} }
	process := func(s *device.Signed) platform.Result {
		t.Helper()
		res := w.proc.Process(ctx, w.dev.ID(), s.Raw)
		if res.Outcome == wire.Approved || res.Outcome == wire.Review {
			if _, err := w.dev.Open(s, res.Receipt); err != nil {
				t.Fatal(err)
			}
		}
		return res
	}
	online, err := w.dev.Sign(device.Payment{Amount: eur(100)})
	if err != nil {
		t.Fatal(err)
	}
	if res := process(online); res.Outcome != wire.Approved {
		t.Fatalf("online payment: %+v", res)
	}

	// Offline, an hour before the platform hears of it.
	w.dev.Now = func() time.Time { return time.Now().Add(-time.Hour) }
	var queued []*device.Signed
	for range 3 {
		s, err := w.dev.SignOffline(device.Payment{Amount: eur(300)}, lim)
		if err != nil {
			t.Fatal(err)
		}
		queued = append(queued, s)
	}
	if _, err := w.dev.SignOffline(device.Payment{Amount: eur(50)}, lim); err != device.ErrOfflineLimit {
		t.Fatalf("a fourth offline payment: %v, want ErrOfflineLimit", err)
	}
	// An online request an hour old is refused; an offline one is not.
	late, _ := w.dev.Sign(device.Payment{Amount: eur(10)})
	if res := w.proc.Process(ctx, w.dev.ID(), late.Raw); res.Outcome != wire.Rejected || res.Code != iotpay.EINVALID {
		t.Fatalf("an online request an hour late: %s %s %s", res.Outcome, res.Code, res.Reason)
	}
	for i, s := range queued {
		if res := process(s); res.Outcome != wire.Approved {
			t.Fatalf("offline payment %d settled as %s %s %s", i+1, res.Outcome, res.Code, res.Reason)
		}
	}
	if p, m := w.balances(t); p != 10000-100-900 || m != 1000 {
		t.Fatalf("balances payer=%d paid=%d", p, m)
	}

	// A device that ignores its limits: the fourth is settled, held for
	// review and flagged.
	over, err := w.dev.SignOffline(device.Payment{Amount: eur(200)}, device.OfflineLimits{MaxAmount: 1 << 40, MaxCount: 100})
	if err != nil {
		t.Fatal(err)
	}
	if res := process(over); res.Outcome != wire.Review {
		t.Fatalf("offline payment beyond the limits: %s %s %s", res.Outcome, res.Code, res.Reason)
	}
	var evs []*decision.Event
	var st *registry.State
	err = w.proc.Store.View(ctx, func(tx platform.Tx) (err error) {
		if evs, err = tx.Events(ctx, w.tenant, w.dev.ID(), 10); err != nil {
			return err
		}
		st, err = registry.LoadState(ctx, tx, w.dev.ID())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	flagged := false
	for _, e := range evs {
		flagged = flagged || e.Kind == decision.EventOfflineBreach
	}
	if !flagged || st.OfflineCount != 4 || st.OfflineAmount != 1100 {
		t.Fatalf("breach not flagged (%v) or count %d / %d", flagged, st.OfflineCount, st.OfflineAmount)
	}

	// Online again: the count starts over, on both sides.
	w.dev.Now = nil
	back, _ := w.dev.Sign(device.Payment{Amount: eur(10)})
	if res := process(back); res.Outcome != wire.Approved {
		t.Fatalf("online again: %s %s %s", res.Outcome, res.Code, res.Reason)
	}
	w.proc.Store.View(ctx, func(tx platform.Tx) (err error) { st, err = registry.LoadState(ctx, tx, w.dev.ID()); return })
	if st.OfflineCount != 0 || st.OfflineAmount != 0 {
		t.Fatalf("offline count not reset: %d / %d", st.OfflineCount, st.OfflineAmount)
	}
	if _, err := w.dev.SignOffline(device.Payment{Amount: eur(1000)}, lim); err != nil {
		t.Fatalf("the device's count did not start over: %v", err)
	}
	if p, _ := w.balances(t); p != 10000-100-900-10 {
		t.Fatalf("payer %d", p)
	}

	// A product without offline limits takes no offline payment.
	plain := newWorld(t)
	s, err := plain.dev.SignOffline(device.Payment{Amount: eur(100)}, lim)
	if err != nil {
		t.Fatal(err)
	}
	if res := plain.proc.Process(ctx, plain.dev.ID(), s.Raw); res.Outcome != wire.Rejected || res.Code != iotpay.EINVALID {
		t.Fatalf("offline payment for a product without limits: %s %s %s", res.Outcome, res.Code, res.Reason)
	}
	if p, m := plain.balances(t); p != 10000 || m != 0 {
		t.Fatalf("balances payer=%d paid=%d", p, m)
	}
}

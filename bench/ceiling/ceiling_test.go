package ceiling

import (
	"context"
	"flag"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotpay/iotpay/wire"
)

var suites = []wire.Suite{wire.Intl, wire.GM}

// runFor is how long TestRun runs each suite; a longer run is a
// measurement:
//
//	go test ./bench/ceiling -run 'TestRun$' -v -ceiling 5s
var runFor = flag.Duration("ceiling", 200*time.Millisecond, "how long TestRun runs each suite")

func TestRun(t *testing.T) {
	for _, s := range suites {
		t.Run(s.Name(), func(t *testing.T) {
			res, err := Run(t.Context(), Config{Suite: s.Name(), Duration: *runFor})
			if err != nil {
				t.Fatal(err)
			}
			if res.PerSec <= 0 || res.Ops <= 0 || res.Failures != 0 || res.Suite != s.Name() ||
				res.Workers != runtime.GOMAXPROCS(0) {
				t.Fatalf("result %+v", res)
			}
			t.Logf("%s: %d payments in %.2fs on %d workers: %.0f/s, %.0f ns/op", res.Suite, res.Ops, res.Seconds,
				res.Workers, res.PerSec, res.NsPerOp)
		})
	}
}

func TestRunRefuses(t *testing.T) {
	for _, cfg := range []Config{
		{Suite: "rsa"},
		{Suite: "intl", Duration: -time.Second},
		{Suite: "intl", Duration: time.Millisecond, Workers: WorkersMax + 1},
	} {
		if _, err := Run(t.Context(), cfg); err == nil {
			t.Errorf("Run(%+v) succeeded", cfg)
		}
	}
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Run(ctx, Config{Suite: "intl", Duration: time.Minute, Workers: 1}); err != context.Canceled {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

// TestPayFailsOutOfStep checks that a failed step counts: a receipt the
// device never saw leaves its next request with a stale challenge.
func TestPayFailsOutOfStep(t *testing.T) {
	for _, s := range suites {
		t.Run(s.Name(), func(t *testing.T) {
			p, err := newPlatform(s)
			if err != nil {
				t.Fatal(err)
			}
			w, err := p.newWorker(0)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.pay(); err != nil {
				t.Fatal(err)
			}
			signed, err := w.dev.Sign(w.pay0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.admit(signed.Raw); err != nil {
				t.Fatal(err)
			}
			if err := w.pay(); err == nil {
				t.Fatal("a request with a stale challenge was admitted")
			}
		})
	}
}

// BenchmarkCeiling is one payment's four crypto steps on all cores:
//
//	go test ./bench/ceiling -run XXX -bench . -benchtime 3s -count 3
//
// ns/op is wall-clock time over all goroutines; ops/s is its inverse.
func BenchmarkCeiling(b *testing.B) {
	for _, s := range suites {
		b.Run(s.Name(), func(b *testing.B) {
			p, err := newPlatform(s)
			if err != nil {
				b.Fatal(err)
			}
			// One device per goroutine, enrolled before the clock starts.
			var (
				mu   sync.Mutex
				pool []*worker
				next atomic.Int64
			)
			for i := range runtime.GOMAXPROCS(0) {
				w, err := p.newWorker(i)
				if err != nil {
					b.Fatal(err)
				}
				pool = append(pool, w)
			}
			take := func() *worker {
				i := int(next.Add(1) - 1)
				mu.Lock()
				defer mu.Unlock()
				if i < len(pool) {
					return pool[i]
				}
				w, err := p.newWorker(i)
				if err != nil {
					b.Error(err)
					return nil
				}
				return w
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				w := take()
				if w == nil {
					return
				}
				for pb.Next() {
					if err := w.pay(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

package sim_test

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iotpay/iotpay/sim"
)

// TestHistogramQuantiles compares the histogram's percentiles with the
// sorted samples' elements, on spreads from microseconds to minutes.
func TestHistogramQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		draw func() time.Duration
	}{
		{"uniform 0-300µs", func() time.Duration { return time.Duration(r.IntN(300)) * time.Microsecond }},
		{"uniform 1-50ms", func() time.Duration { return time.Millisecond + time.Duration(r.Int64N(int64(49*time.Millisecond))) }},
		{"log-normal", func() time.Duration { return time.Duration(math.Exp(r.NormFloat64()*1.5+8)) * time.Microsecond }},
		{"long tail", func() time.Duration {
			if r.IntN(100) == 0 {
				return time.Duration(r.Int64N(int64(90 * time.Second)))
			}
			return time.Duration(r.Int64N(int64(20 * time.Millisecond)))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h sim.Histogram
			var all []time.Duration
			for range 20_000 {
				d := tc.draw().Truncate(time.Microsecond)
				h.Record(d)
				all = append(all, d)
			}
			slices.Sort(all)
			for _, q := range []float64{0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1} {
				want := all[int(math.Ceil(q*float64(len(all))))-1]
				got := h.Quantile(q)
				if diff := math.Abs(float64(got - want)); diff > 0.01*float64(want) && diff > float64(time.Microsecond) {
					t.Errorf("q%v = %v, sorted samples say %v (off by %.2f%%)", q, got, want, 100*diff/float64(want))
				}
			}
			if h.Max() != all[len(all)-1] || h.Count() != uint64(len(all)) {
				t.Errorf("max %v count %d, want %v %d", h.Max(), h.Count(), all[len(all)-1], len(all))
			}
			var a, b sim.Histogram
			for i, d := range all {
				[]*sim.Histogram{&a, &b}[i%2].Record(d)
			}
			a.Merge(&b)
			if a.Quantile(0.99) != h.Quantile(0.99) || a.Count() != h.Count() {
				t.Errorf("merged halves: p99 %v, whole %v", a.Quantile(0.99), h.Quantile(0.99))
			}
		})
	}
	var empty sim.Histogram
	if empty.Quantile(0.5) != 0 || empty.Max() != 0 {
		t.Error("an empty histogram has quantiles")
	}
}

func TestParseMix(t *testing.T) {
	m, err := sim.ParseMix("vending=4, ev=3,meter=2,parking=1")
	if err != nil || m.String() != "vending=4,ev=3,meter=2,parking=1" {
		t.Fatalf("ParseMix = %v, %v", m, err)
	}
	for _, bad := range []string{"", "vending", "coffee=1", "ev=-1", "ev=0", "ev=1,ev=2", "vending=x"} {
		if _, err := sim.ParseMix(bad); err == nil {
			t.Errorf("ParseMix(%q) accepted", bad)
		}
	}
}

// checkRun fails t unless res is a run with events of every product,
// no failures but declines, and a balanced ledger.
func checkRun(t *testing.T, res *sim.Result) {
	t.Helper()
	if res.Events == 0 || res.Payments == 0 || res.P50Ms <= 0 || res.P99Ms < res.P50Ms || res.MaxMs < res.P99Ms || len(res.Series) == 0 {
		t.Errorf("run measured nothing: %+v", res)
	}
	if !res.LedgerBalanced {
		t.Error("ledger not balanced")
	}
	for reason, n := range res.Errors {
		if !strings.HasPrefix(reason, "declined: ") {
			t.Errorf("%d × %s", n, reason)
		}
	}
	if res.Outcomes["approved"] == 0 || res.Outcomes["error"] > 0 || res.Outcomes["rejected"] > 0 {
		t.Errorf("outcomes %v", res.Outcomes)
	}
	var sum int64
	for _, p := range res.Series {
		sum += p.Events
	}
	if sum != res.Events {
		t.Errorf("the series counts %d events, the run %d", sum, res.Events)
	}
}

// TestRunRemote drives a platform the test starts, through its URLs as
// a remote one would be: gm devices on both transports, fewer
// connections than devices (devices connect when they pay, evicting the
// least recently used), at a rate with a ramp-up; then the HTML report.
func TestRunRemote(t *testing.T) {
	l, err := sim.StartLocal(context.Background(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	res, err := sim.Run(context.Background(), sim.Config{Devices: 24, Suite: "gm", Transport: sim.TransportMix, Connections: 6,
		Rate: 150, RampUp: 500 * time.Millisecond, Duration: 2 * time.Second, Target: l.Target})
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, res)
	if !res.Remote || res.Connections != 6 || res.Concurrency != 6 || res.Connects == 0 || res.Evictions == 0 {
		t.Errorf("connections not shared: %+v", res)
	}
	// 0.5 s ramping up to 150/s, then 1.5 s at it: 262 events due,
	// sent or (on a slow machine, each connection a handshake) behind.
	if res.Events < 20 || res.Events+res.Behind < 255 || res.Events+res.Behind > 263 {
		t.Errorf("%d events, %d behind, at 150/s for 2 s with 0.5 s ramp-up: want 262 in all", res.Events, res.Behind)
	}
	var b bytes.Buffer
	if err := sim.WriteReport(&b, res); err != nil {
		t.Fatal(err)
	}
	if page := b.String(); !strings.Contains(page, "<svg") || !strings.Contains(page, "polyline") || strings.Contains(page, "<script") ||
		strings.Contains(page, "http://") && !strings.Contains(page, `xmlns="http://www.w3.org/2000/svg"`) {
		t.Errorf("report is not a self-contained page with charts:\n%s", page)
	}
}

func TestConfigRefused(t *testing.T) {
	for _, c := range []sim.Config{
		{Devices: 0, Duration: time.Second},
		{Devices: sim.DevicesMax + 1, Duration: time.Second},
		{Devices: 10, Duration: 0},
		{Devices: 10, Duration: time.Second, RampUp: time.Second},
		{Devices: 10, Duration: time.Second, Transport: "carrier-pigeon"},
		{Devices: 10, Duration: time.Second, Suite: "rot13"},
		{Devices: 10, Duration: time.Second, Connections: sim.ConnectionsMax + 1},
		{Devices: 10, Duration: time.Second, Target: sim.Target{APIURL: "http://127.0.0.1:1"}}, // no MQTT address
	} {
		if _, err := sim.Run(context.Background(), c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

package main

import (
	"math"
	"runtime/metrics"
	"strings"
	"testing"
)

func TestQuantile(t *testing.T) {
	inf := math.Inf(1)
	h := &metrics.Float64Histogram{Buckets: []float64{math.Inf(-1), 0.001, 0.010, 0.100, inf}, Counts: []uint64{0, 90, 9, 1}}
	for _, c := range []struct{ q, want float64 }{{0.5, 0.010}, {0.9, 0.010}, {0.99, 0.100}, {1, inf}} {
		got := quantile(h, c.q)
		if c.want == inf {
			c.want = 0.100 // the open-ended bucket reports its lower bound
		}
		if got != c.want {
			t.Errorf("quantile %g = %g, want %g", c.q, got, c.want)
		}
	}
	if got := quantile(&metrics.Float64Histogram{Buckets: h.Buckets, Counts: make([]uint64, 4)}, 0.99); got != 0 {
		t.Errorf("an empty histogram's quantile is %g", got)
	}
	d := histogramSince(h, &metrics.Float64Histogram{Buckets: h.Buckets, Counts: []uint64{0, 90, 0, 0}})
	if got := quantile(d, 0.5); got != 0.100 {
		t.Errorf("since: p50 %g of %v, want 0.1", got, d.Counts)
	}
}

// TestServeRuntime: each "runtime" line gets one JSON line back, what the
// runtime counted since the previous one; other lines get nothing.
func TestServeRuntime(t *testing.T) {
	var out strings.Builder
	serveRuntime(strings.NewReader("runtime\nsomething else\nruntime\n"), &out)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], `{"sched_p50_ms":`) {
		t.Fatalf("%q", out.String())
	}
}

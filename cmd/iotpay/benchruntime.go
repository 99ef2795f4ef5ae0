package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime/metrics"
	"time"
)

// platformRuntime is what a benchmark's platform process's Go runtime
// counted over one phase: how long its goroutines waited, runnable, for a
// thread to run them, and what the garbage collector took. It tells a
// platform short of cores from one slow at its own work.
type platformRuntime struct {
	SchedP50Ms float64 `json:"sched_p50_ms"`
	SchedP99Ms float64 `json:"sched_p99_ms"`
	// GCPauseP99Ms is the 99th percentile of the collector's
	// stop-the-world pauses.
	GCPauseP99Ms float64 `json:"gc_pause_p99_ms"`
	// BusySeconds is the time the process's Ps (GOMAXPROCS of them)
	// spent running Go code or the runtime: the runtime's estimate of
	// its CPU, less what it spent in system calls.
	BusySeconds float64 `json:"busy_s"`
	// GCShare is the collector's part of BusySeconds.
	GCShare float64 `json:"gc_share"`
}

// runtimeSampleNames are the runtime/metrics a platformRuntime is made of.
var runtimeSampleNames = []string{
	"/sched/latencies:seconds",
	"/sched/pauses/total/gc:seconds",
	"/cpu/classes/total:cpu-seconds", // GOMAXPROCS × the time since the process started
	"/cpu/classes/idle:cpu-seconds",
	"/cpu/classes/gc/total:cpu-seconds",
}

// runtimeMeter reads this process's runtime metrics and reports each time
// what changed since it last did.
type runtimeMeter struct{ prev []metrics.Sample }

func newRuntimeMeter() *runtimeMeter {
	m := &runtimeMeter{}
	m.prev = m.read()
	return m
}

func (m *runtimeMeter) read() []metrics.Sample {
	s := make([]metrics.Sample, len(runtimeSampleNames))
	for i, n := range runtimeSampleNames {
		s[i].Name = n
	}
	metrics.Read(s)
	return s
}

// since returns what the runtime counted since the last call (or since
// the meter was made).
func (m *runtimeMeter) since() platformRuntime {
	now := m.read()
	prev := m.prev
	m.prev = now
	sched := histogramSince(now[0].Value.Float64Histogram(), prev[0].Value.Float64Histogram())
	pauses := histogramSince(now[1].Value.Float64Histogram(), prev[1].Value.Float64Histogram())
	delta := func(i int) float64 { return now[i].Value.Float64() - prev[i].Value.Float64() }
	busy, gc := delta(2)-delta(3), delta(4)
	r := platformRuntime{SchedP50Ms: 1000 * quantile(sched, 0.50), SchedP99Ms: 1000 * quantile(sched, 0.99),
		GCPauseP99Ms: 1000 * quantile(pauses, 0.99), BusySeconds: busy}
	if busy > 0 {
		r.GCShare = min(gc/busy, 1)
	}
	return r
}

// histogramSince is now's counts less prev's (the same buckets: a runtime
// histogram's never change).
func histogramSince(now, prev *metrics.Float64Histogram) *metrics.Float64Histogram {
	d := &metrics.Float64Histogram{Buckets: now.Buckets, Counts: make([]uint64, len(now.Counts))}
	for i := range now.Counts {
		d.Counts[i] = now.Counts[i]
		if i < len(prev.Counts) {
			d.Counts[i] -= prev.Counts[i]
		}
	}
	return d
}

// quantile is the upper bound of the bucket that holds the q-quantile of
// h (its lower bound for the last, open-ended one), 0 for an empty h.
func quantile(h *metrics.Float64Histogram, q float64) float64 {
	var total uint64
	for _, c := range h.Counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	var acc uint64
	for i, c := range h.Counts {
		acc += c
		if float64(acc) >= q*float64(total) {
			if hi := h.Buckets[i+1]; !math.IsInf(hi, 1) {
				return hi
			}
			return max(h.Buckets[i], 0)
		}
	}
	return 0
}

// runtimeCommand is the line a benchmark writes to its platform process's
// standard input to have it print a platformRuntime line on its standard
// output: what its runtime counted since the previous one.
const runtimeCommand = "runtime"

// serveRuntime answers each runtimeCommand line of in with a JSON
// platformRuntime line on out, until in ends.
func serveRuntime(in io.Reader, out io.Writer) {
	m := newRuntimeMeter()
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if sc.Text() != runtimeCommand {
			continue
		}
		b, _ := json.Marshal(m.since())
		fmt.Fprintln(out, string(b))
	}
}

// runtime asks the platform process what its runtime counted since it was
// last asked (or since it started).
func (p *platformProc) runtime() (*platformRuntime, error) {
	if _, err := io.WriteString(p.stdin, runtimeCommand+"\n"); err != nil {
		return nil, err
	}
	select {
	case b, ok := <-p.lines:
		if !ok {
			return nil, errors.New("the platform process ended")
		}
		r := &platformRuntime{}
		return r, json.Unmarshal(b, r)
	case <-time.After(10 * time.Second):
		return nil, errors.New("the platform process did not report its runtime in 10 s")
	}
}

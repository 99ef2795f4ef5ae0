package mqttload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/iotpay/iotpay/platform/registry"
)

// Names of the brokers a comparison loads.
const (
	// TargetEmbedded is the platform's broker (platform/mqtt), started in
	// this process, over mutual TLS 1.3: the only transport it offers.
	TargetEmbedded = "embedded-tls"
	// TargetMosquittoTLS is a Mosquitto started for the comparison with
	// the same transport, certificates and cipher suite.
	TargetMosquittoTLS = "mosquitto-tls"
	// TargetMosquittoTCP is the machine's Mosquitto on plain TCP
	// (CompareConfig.PlainAddr), a reference: its transport differs.
	TargetMosquittoTCP = "mosquitto-tcp"
)

// Targets are the brokers Compare loads, in the order of its first run.
var Targets = []string{TargetEmbedded, TargetMosquittoTLS, TargetMosquittoTCP}

// CompareConfig configures a comparison. Every broker gets the same load:
// the same generator, clients, window, message size, client ids and topic
// layout (each client on its own device's status topic), and no
// subscriber, so it measures ingress alone.
type CompareConfig struct {
	Clients, Window, Size int
	Duration, Warmup      time.Duration // per broker and run
	Runs                  int           // default 1
	// Targets selects brokers by name; nil means all of Targets.
	Targets []string
	// PlainAddr is the machine's Mosquitto; default DefaultPlainAddr.
	PlainAddr string
	// Mosquitto is the binary started for TargetMosquittoTLS; default
	// DefaultMosquitto.
	Mosquitto string
	// MosquittoNagle leaves Nagle's algorithm on in the started Mosquitto
	// (its default). By default its sockets have TCP_NODELAY, like Go's.
	MosquittoNagle bool
	// EmbeddedCommand, if set, runs the embedded broker in a process of
	// its own, as Mosquitto runs: the command, given one more argument
	// (a directory of the fixture's server files), must call
	// ServeEmbedded and print ReadyLine. By default the embedded broker
	// runs in this process, beside the generator.
	EmbeddedCommand []string
	// Logger receives the embedded broker's log when it runs in this
	// process; default none.
	Logger *slog.Logger
}

// TargetResult is one broker's results, a Result per run.
type TargetResult struct {
	Name string
	Runs []Result
	// Rate is the median of the runs' rates, in PUBACKs per second.
	Rate float64
	// Pid is the broker's process, 0 if it is this one or unknown.
	Pid int
	// CPU is the CPU time the broker's process used in each run
	// (warmup, measured time and drain), when Pid is known.
	CPU []time.Duration
	// CPUPerPublish is the median of the runs' CPU time over the
	// publishes sent, when Pid is known.
	CPUPerPublish time.Duration
}

// Comparison is what Compare measured.
type Comparison struct {
	Targets []TargetResult // in the order of CompareConfig.Targets
	// Ratio is the embedded broker's rate over the TLS Mosquitto's: the
	// same transport. The target is Ratio ≥ 1. Zero if either is missing.
	Ratio float64
	// PlainRatio is the embedded broker's rate (TLS) over the plain
	// Mosquitto's (TCP), for reference. Zero if either is missing.
	PlainRatio float64
	// MosquittoVersion is the started Mosquitto's.
	MosquittoVersion string
	// LoadAvg is /proc/loadavg before the runs: other work on the machine
	// skews the figures.
	LoadAvg string
}

// Target returns the named broker's results.
func (c *Comparison) Target(name string) (TargetResult, bool) {
	for _, t := range c.Targets {
		if t.Name == name {
			return t, true
		}
	}
	return TargetResult{}, false
}

// Compare loads each broker selected in turn with the same load, Runs
// times, rotating which goes first so that a drift in the machine's load
// does not favour one. It starts the embedded broker and the TLS
// Mosquitto itself and stops them before returning.
func Compare(ctx context.Context, cfg CompareConfig) (Comparison, error) {
	var cmp Comparison
	names := cfg.Targets
	if names == nil {
		names = Targets
	}
	for _, n := range names {
		if !slices.Contains(Targets, n) {
			return cmp, fmt.Errorf("mqttload: unknown target %q", n)
		}
	}
	runs := max(cfg.Runs, 1)
	load := Config{Clients: cfg.Clients, Window: cfg.Window, Size: cfg.Size, Duration: cfg.Duration, Warmup: cfg.Warmup}
	if err := load.checkLoad(); err != nil {
		return cmp, err
	}

	if slices.Contains(names, TargetEmbedded) && cfg.Size > registry.PresenceStatusBytesMax {
		return cmp, fmt.Errorf("mqttload: the embedded broker refuses a status over %d bytes", registry.PresenceStatusBytesMax)
	}

	f, err := NewFixture(cfg.Clients)
	if err != nil {
		return cmp, err
	}
	f.Apply(&load)
	cmp.Targets = make([]TargetResult, len(names))
	addrs := make([]string, len(names))
	for i, n := range names {
		t := &cmp.Targets[i]
		t.Name = n
		switch n {
		case TargetEmbedded:
			stop, err := cmp.startEmbedded(ctx, cfg, f, t, &addrs[i])
			if err != nil {
				return cmp, err
			}
			defer stop()
		case TargetMosquittoTLS:
			m, err := f.StartMosquitto(ctx, cfg.Mosquitto, MosquittoOptions{NoDelay: !cfg.MosquittoNagle})
			if err != nil {
				return cmp, err
			}
			defer m.Close()
			addrs[i], t.Pid, cmp.MosquittoVersion = m.Addr, m.Pid(), m.Version
		case TargetMosquittoTCP:
			addrs[i] = cmp.plainAddr(cfg)
			if err := reachable(ctx, addrs[i]); err != nil {
				return cmp, fmt.Errorf("mqttload: no Mosquitto at %s: %w", addrs[i], err)
			}
			t.Pid = listenerPid(addrs[i])
		}
	}

	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		cmp.LoadAvg = strings.TrimSpace(string(b))
	}
	for r := range runs {
		for k := range names {
			i := (r + k) % len(names)
			t := &cmp.Targets[i]
			c := load
			c.Addr = addrs[i]
			if t.Name == TargetMosquittoTCP {
				c.ClientTLS = nil
			}
			before, cpuErr := processCPU(t.Pid)
			res, err := Run(ctx, c)
			if err != nil {
				return cmp, fmt.Errorf("mqttload: %s, run %d: %w", t.Name, r+1, err)
			}
			t.Runs = append(t.Runs, res)
			if after, err := processCPU(t.Pid); t.Pid != 0 && cpuErr == nil && err == nil {
				t.CPU = append(t.CPU, after-before)
			}
		}
	}
	for i := range cmp.Targets {
		t := &cmp.Targets[i]
		t.Rate = medianRate(t.Runs)
		if len(t.CPU) == len(t.Runs) && len(t.CPU) > 0 {
			t.CPUPerPublish = medianCPUPerPublish(t.Runs, t.CPU)
		} else {
			t.CPU = nil
		}
	}
	cmp.Ratio = cmp.ratio(TargetEmbedded, TargetMosquittoTLS)
	cmp.PlainRatio = cmp.ratio(TargetEmbedded, TargetMosquittoTCP)
	return cmp, nil
}

// startEmbedded starts the embedded broker, in this process or in one of
// its own, and sets its address and process.
func (c *Comparison) startEmbedded(ctx context.Context, cfg CompareConfig, f *Fixture, t *TargetResult, addr *string) (stop func(), err error) {
	if len(cfg.EmbeddedCommand) > 0 {
		p, err := f.StartEmbeddedProcess(ctx, cfg.EmbeddedCommand)
		if err != nil {
			return nil, err
		}
		*addr, t.Pid = p.Addr, p.Pid()
		return func() { p.Close() }, nil
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b, err := f.StartEmbedded(log)
	if err != nil {
		return nil, err
	}
	*addr = b.Addr()
	return func() { b.Close() }, nil
}

func (c *Comparison) plainAddr(cfg CompareConfig) string {
	if cfg.PlainAddr != "" {
		return cfg.PlainAddr
	}
	return DefaultPlainAddr
}

func (c *Comparison) ratio(a, b string) float64 {
	ta, okA := c.Target(a)
	tb, okB := c.Target(b)
	if !okA || !okB || tb.Rate == 0 {
		return 0
	}
	return ta.Rate / tb.Rate
}

// medianCPUPerPublish is the median over runs of CPU time per publish sent.
func medianCPUPerPublish(runs []Result, cpu []time.Duration) time.Duration {
	per := make([]float64, len(runs))
	for i, r := range runs {
		per[i] = float64(cpu[i]) / float64(max(r.Sent, 1))
	}
	return time.Duration(median(per))
}

// medianRate is the median of the runs' rates.
func medianRate(runs []Result) float64 {
	rates := make([]float64, len(runs))
	for i, r := range runs {
		rates[i] = r.Rate
	}
	return median(rates)
}

// median is the median of v (the mean of the middle two for an even
// number); it sorts v.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	m := len(v) / 2
	if len(v)%2 == 1 {
		return v[m]
	}
	return (v[m-1] + v[m]) / 2
}

// ErrNoMosquitto says Mosquitto is not installed.
var ErrNoMosquitto = errors.New("mqttload: mosquitto not installed")

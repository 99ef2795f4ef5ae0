// Package sim is a fleet simulator: it enrolls up to 100,000 devices of
// the four reference products (platform/rules), each with its own key in
// memory, its own certificate, a funded payer account and a mandate, then
// drives a running iotpayd with their signed payment requests over
// MQTT/TLS and CoAP/DTLS at an open-loop rate, verifies every receipt and
// measures throughput and latency, errors by reason, and whether the
// ledger still balances.
//
// The platform is a remote iotpayd (Target) or one started in this
// process (StartLocal). Run is the whole of it, for the CLI ('iotpay
// sim') and for Go callers alike.
//
// Connections: a device holds one transport while it can, but at most
// Config.Connections are open at once. File descriptors bound this: an
// MQTT connection costs the simulator one and, in-process, the platform
// another, under one RLIMIT_NOFILE (20,000 here, not raisable), so one
// connection per device stops near 9,000 devices in-process. Devices
// beyond behave as sleepy devices: one with an event and no transport
// connects, first closing the transport of the device idle longest (LRU),
// and its connection time is measured apart from its payment's latency.
package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/iotpay/iotpay/wire"
)

// Transports a fleet's devices use.
const (
	TransportMQTT = "mqtt"
	TransportCoAP = "coap"
	TransportMix  = "mix" // every other device on each
)

// Bounds and defaults.
const (
	DevicesMax = 100_000
	// ConnectionsMax is the platform's own bound on MQTT connections and
	// on CoAP sessions (platform/mqtt.ConnectionsMax, coap.SessionsMax).
	ConnectionsMax     = 10_000
	ConnectionsDefault = 4_000
	// ConcurrencyDefault is the events in flight when the rate is 0:
	// enough for the platform's writer to batch well.
	ConcurrencyDefault  = 256
	SetupWorkersDefault = 64
	DurationMax         = 24 * time.Hour
	// fdReserve is the descriptors kept aside from connections: the
	// database, the API, the setup's workers, the runtime.
	fdReserve = 256
)

// Config is what a run does. Zero fields take their defaults.
type Config struct {
	Devices   int    // 1 to DevicesMax
	Mix       Mix    // products by weight; DefaultMix when nil
	Suite     string // wire.SuiteIntl (default) or wire.SuiteGM
	Transport string // TransportMQTT (default), TransportCoAP or TransportMix
	// Connections bounds the transports open at once: min(Devices,
	// ConnectionsDefault) when 0.
	Connections int
	// Rate is the events per second the fleet sends in all, open loop;
	// 0 is as fast as Concurrency events in flight allow.
	Rate float64
	// Concurrency bounds the events in flight: ConcurrencyDefault with
	// Rate 0, else Connections; never more than Devices or Connections.
	Concurrency int
	// RampUp raises the rate (with Rate 0, the events in flight)
	// linearly from 0 over its length, at the start of Duration.
	RampUp   time.Duration
	Duration time.Duration
	// SetupWorkers bounds the enrollments (and first connections) under
	// way at once.
	SetupWorkers int
	// Target is the platform; with an empty APIURL Run starts one in
	// this process, in DataDir (a temporary directory when empty).
	Target  Target
	DataDir string
	// Progress, when set, gets a live status line (carriage returns,
	// no newline until the end): elapsed, events, ok, errors, rate, p99.
	Progress io.Writer
	Logger   *slog.Logger // the in-process platform's log; discarded when nil
	Seed     uint64       // products, scenarios and device picks; 1 when 0
}

// Local reports whether the run starts its own platform.
func (c *Config) Local() bool { return c.Target.APIURL == "" }

// withDefaults fills in the defaults and checks the bounds.
func (c Config) withDefaults() (Config, error) {
	if c.Mix == nil {
		c.Mix = DefaultMix()
	}
	if c.Suite == "" {
		c.Suite = wire.SuiteIntl
	}
	if c.Transport == "" {
		c.Transport = TransportMQTT
	}
	if c.Connections == 0 {
		c.Connections = min(c.Devices, ConnectionsDefault)
	}
	if c.Concurrency == 0 {
		c.Concurrency = c.Connections
		if c.Rate == 0 {
			c.Concurrency = ConcurrencyDefault
		}
	}
	c.Concurrency = min(c.Concurrency, c.Devices, c.Connections)
	if c.SetupWorkers == 0 {
		c.SetupWorkers = SetupWorkersDefault
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	switch {
	case c.Devices < 1 || c.Devices > DevicesMax:
		return c, fmt.Errorf("sim: devices must be 1 to %d", DevicesMax)
	case c.Connections < 1 || c.Connections > ConnectionsMax:
		return c, fmt.Errorf("sim: connections must be 1 to %d (the platform's bound)", ConnectionsMax)
	case c.Concurrency < 1 || c.SetupWorkers < 1 || c.SetupWorkers > 1024:
		return c, errors.New("sim: concurrency must be at least 1, setup workers 1 to 1024")
	case c.Rate < 0 || c.Rate > 1e6:
		return c, errors.New("sim: rate must be 0 (as fast as possible) to 1,000,000 events/s")
	case c.Duration <= 0 || c.Duration > DurationMax:
		return c, fmt.Errorf("sim: duration must be above 0 and at most %v", DurationMax)
	case c.RampUp < 0 || c.RampUp >= c.Duration:
		return c, errors.New("sim: ramp-up must be shorter than the duration")
	case c.Transport != TransportMQTT && c.Transport != TransportCoAP && c.Transport != TransportMix:
		return c, fmt.Errorf("sim: transport %q: want mqtt, coap or mix", c.Transport)
	}
	if _, err := wire.SuiteByName(c.Suite); err != nil {
		return c, err
	}
	if err := c.Mix.check(); err != nil {
		return c, err
	}
	if !c.Local() {
		if c.Transport != TransportCoAP && c.Target.MQTTAddr == "" || c.Transport != TransportMQTT && c.Target.CoAPAddr == "" {
			return c, errors.New("sim: a remote platform needs its MQTT address (and CoAP address) for the transport chosen")
		}
	}
	// Each connection costs a descriptor here and, in-process, an MQTT
	// one costs the platform another (a CoAP session shares its socket);
	// so does each setup worker's API connection.
	need, ends := c.Connections+c.SetupWorkers+fdReserve, 1
	if c.Local() {
		need += c.SetupWorkers
		if c.Transport != TransportCoAP {
			need, ends = need+c.Connections, 2
		}
	}
	if limit := fdLimit(); limit > 0 && need > limit {
		return c, fmt.Errorf("sim: %d connections need about %d file descriptors, over the limit of %d: lower --connections "+
			"to %d or less (devices beyond share them, connecting when they pay)", c.Connections, need, limit, (limit-(need-ends*c.Connections))/ends)
	}
	return c, nil
}

// Result is what a run measured. Latency is from signing a request to
// its receipt verified, on an open transport; connecting a sleepy device
// is measured apart (Connect*).
type Result struct {
	Devices     int     `json:"devices"`
	Transport   string  `json:"transport"`
	Suite       string  `json:"suite"`
	Mix         string  `json:"mix"`
	Remote      bool    `json:"remote"`
	Rate        float64 `json:"rate"` // the target; 0: as fast as possible
	Concurrency int     `json:"concurrency"`
	Connections int     `json:"connections"`
	RampUpS     float64 `json:"ramp_up_s"`
	// DurationS is from the first event sent to the last answered.
	DurationS      float64 `json:"duration_s"`
	Events         int64   `json:"events"`
	Payments       int64   `json:"payments"` // approved receipts that moved money: charge, bill, capture
	PaymentsPerSec float64 `json:"payments_per_sec"`
	EventsPerSec   float64 `json:"events_per_sec"`
	P50Ms          float64 `json:"p50_ms"`
	P95Ms          float64 `json:"p95_ms"`
	P99Ms          float64 `json:"p99_ms"`
	MaxMs          float64 `json:"max_ms"`
	// Outcomes counts the events by outcome: approved, declined,
	// rejected, review, error (no verified receipt).
	Outcomes map[string]int64 `json:"outcomes"`
	// Errors counts every event not approved by "outcome: reason".
	Errors map[string]int64 `json:"errors"`
	// Behind is the events due at the rate that were never sent: the
	// devices or the concurrency were all busy.
	Behind int64 `json:"behind"`
	// Connects are the transports opened during the run (sleepy
	// devices), Evictions the ones closed to make room, Drops the ones
	// closed after a failed exchange.
	Connects     int64   `json:"connects"`
	Evictions    int64   `json:"evictions"`
	Drops        int64   `json:"drops"`
	ConnectP50Ms float64 `json:"connect_p50_ms"`
	ConnectP99Ms float64 `json:"connect_p99_ms"`
	// LedgerBalanced is GET /v1/ledger/check after the run.
	LedgerBalanced bool `json:"ledger_balanced"`
	// SetupS is products, enrollments and first connections; EnrollS
	// and ConnectS are its parts.
	SetupS      float64 `json:"setup_s"`
	EnrollS     float64 `json:"enroll_s"`
	ConnectS    float64 `json:"connect_s"`
	Interrupted bool    `json:"interrupted,omitempty"`
	Series      []Point `json:"series"`
}

// Point is one second of the run.
type Point struct {
	T        int     `json:"t"` // seconds since the run's start, the second ending then
	Events   int64   `json:"events"`
	Payments int64   `json:"payments"`
	Errors   int64   `json:"errors"` // events without a verified receipt
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
}

// Run sets the fleet up on the platform (starting one in-process when
// cfg.Target has no API URL), runs it for cfg.Duration and checks the
// ledger. A cancelled ctx ends the run early: the events in flight are
// answered and the result says Interrupted.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	target := cfg.Target
	if cfg.Local() {
		l, err := StartLocal(ctx, cfg.DataDir, cfg.Logger)
		if err != nil {
			return nil, err
		}
		defer l.Close()
		target = l.Target
	}
	f := newFleet(&cfg, target)
	defer f.api.Close()
	res := &Result{Devices: cfg.Devices, Transport: cfg.Transport, Suite: cfg.Suite, Mix: cfg.Mix.String(), Remote: !cfg.Local(),
		Rate: cfg.Rate, Concurrency: cfg.Concurrency, Connections: cfg.Connections, RampUpS: cfg.RampUp.Seconds()}

	p := &pool{max: cfg.Connections, dial: f.dial}
	defer p.closeAll(cfg.SetupWorkers)
	if err := f.setup(ctx, p, res); err != nil {
		return nil, err
	}
	r := newRunner(f, p)
	r.loop(ctx)
	r.result(res)
	res.Interrupted = ctx.Err() != nil

	// The check is asked even after an interruption, within its own time.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	var check struct {
		Balanced bool `json:"balanced"`
	}
	if err := f.api.Do(cctx, "GET", "/v1/ledger/check", "", nil, &check); err != nil {
		return res, fmt.Errorf("sim: ledger check: %w", err)
	}
	res.LedgerBalanced = check.Balanced
	return res, nil
}

// setup creates the products, enrolls the fleet and opens the first
// connections, showing its progress.
func (f *fleet) setup(ctx context.Context, p *pool, res *Result) error {
	start := time.Now()
	stop := f.showSetup(start)
	defer stop()
	if err := f.setupProducts(ctx); err != nil {
		return err
	}
	if err := f.enrollAll(ctx); err != nil {
		return err
	}
	res.EnrollS = time.Since(start).Seconds()
	// The first Connections devices connect now, as a fleet that is
	// already up would be; the others connect when they pay.
	cstart := time.Now()
	var failed error
	var once sync.Once
	n := min(len(f.devices), p.max)
	each(n, f.cfg.SetupWorkers, func(i int) {
		d := f.devices[i]
		if _, err := p.acquire(ctx, d); err != nil {
			once.Do(func() { failed = fmt.Errorf("sim: connecting device %d (%s): %w", i, d.transport, err) })
			return
		}
		p.release(d, false)
		f.connected.Add(1)
	})
	if failed != nil {
		return failed
	}
	p.mu.Lock()
	p.dials, p.connect = 0, Histogram{} // the run's connections are counted from here
	p.mu.Unlock()
	res.ConnectS = time.Since(cstart).Seconds()
	res.SetupS = time.Since(start).Seconds()
	return nil
}

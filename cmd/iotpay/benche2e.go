package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/iotpay/iotpay/bench/ceiling"
	"github.com/iotpay/iotpay/sim"
	"github.com/iotpay/iotpay/wire"
)

// e2eResult is what `iotpay bench e2e` measures, in one run: the
// crypto-only ceiling, the durable payments per second through a platform
// in its own process driven by the fleet simulator, their ratio, and the
// latency at half that rate.
type e2eResult struct {
	Suite string `json:"suite"`
	// CeilingPerSec is device sign + platform verify + receipt sign +
	// device verify, on all cores, nothing else.
	CeilingPerSec float64 `json:"ceiling_per_sec"`
	// PaymentsPerSec is durable payments (a verified receipt of a
	// committed charge) per second at the most the platform takes.
	PaymentsPerSec float64 `json:"payments_per_sec"`
	Ratio          float64 `json:"ratio"`
	// P99Ms is the 99th percentile latency at half PaymentsPerSec, open
	// loop; P99AtMaxMs at the maximum.
	P99Ms          float64 `json:"p99_ms"`
	P50Ms          float64 `json:"p50_ms"`
	HalfRate       float64 `json:"half_rate"`
	HalfRateAchiev float64 `json:"half_rate_achieved"`
	P99AtMaxMs     float64 `json:"p99_at_max_ms"`
	Devices        int     `json:"devices"`
	Transport      string  `json:"transport"`
	Mix            string  `json:"mix"`
	Errors         int64   `json:"errors"`
	LedgerBalanced bool    `json:"ledger_balanced"`
	// PlatformAtMax and Platform are what the platform process's Go
	// runtime counted during the phase at the maximum and at half the
	// rate: how long its goroutines waited for a core, and its GC.
	PlatformAtMax *platformRuntime `json:"platform_at_max,omitempty"`
	Platform      *platformRuntime `json:"platform_half,omitempty"`
	Max           *sim.Result      `json:"max,omitempty"`
	Half          *sim.Result      `json:"half,omitempty"`
}

// benchE2E is `iotpay bench e2e`.
func benchE2E(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench e2e", flag.ContinueOnError)
	fs.SetOutput(stderr)
	suite := fs.String("suite", wire.SuiteIntl, "the devices' crypto suite: intl or gm")
	asJSON := fs.Bool("json", false, "print one JSON object (payments_per_sec, ceiling_per_sec, ratio, p99_ms, …)")
	devices := fs.Int("devices", 1000, "devices in the fleet (vending machines: one sale an event)")
	concurrency := fs.Int("concurrency", 256, "events in flight at the maximum rate")
	dur := fs.Duration("duration", 20*time.Second, "how long each phase runs")
	transport := fs.String("transport", sim.TransportMQTT, "mqtt or coap")
	mix := fs.String("mix", "vending=1", "products by weight (see iotpay sim)")
	series := fs.Bool("series", false, "with --json, keep each phase's simulator result (per-second series)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	m, err := sim.ParseMix(*mix)
	if err != nil {
		return err
	}
	say := func(format string, a ...any) {
		if !*asJSON {
			fmt.Fprintf(stdout, format+"\n", a...)
		}
	}
	res := &e2eResult{Suite: *suite, Devices: *devices, Transport: *transport, Mix: m.String()}

	say("crypto-only ceiling (%s, all cores, %v)…", *suite, *dur/4)
	c, err := ceiling.Run(ctx, ceiling.Config{Suite: *suite, Duration: *dur / 4})
	if err != nil {
		return err
	}
	res.CeilingPerSec = c.PerSec
	say("  %.0f payments/s", c.PerSec)

	p, err := startPlatform(ctx)
	if err != nil {
		return err
	}
	defer p.Stop()
	target := sim.Target{APIURL: p.API, APIKey: p.Key, MQTTAddr: p.MQTT, CoAPAddr: p.CoAP}
	run := func(rate float64) (*sim.Result, error) {
		return sim.Run(ctx, sim.Config{Devices: *devices, Mix: m, Suite: *suite, Transport: *transport, Rate: rate,
			Concurrency: *concurrency, Duration: *dur, Target: target})
	}
	// What the platform's runtime counts is taken phase by phase.
	phase := func(rate float64) (*sim.Result, *platformRuntime, error) {
		if _, err := p.runtime(); err != nil {
			return nil, nil, err
		}
		r, err := run(rate)
		if err != nil {
			return nil, nil, err
		}
		rt, err := p.runtime()
		if err == nil {
			say("  the platform's goroutines waited for a core: p50 %.2f ms, p99 %.1f ms; GC %.0f%% of its busy time, pauses p99 %.1f ms",
				rt.SchedP50Ms, rt.SchedP99Ms, 100*rt.GCShare, rt.GCPauseP99Ms)
		}
		return r, rt, err
	}
	say("end to end at the most iotpayd takes (%d devices, %d in flight, %v)…", *devices, *concurrency, *dur)
	max, rtMax, err := phase(0)
	if err != nil {
		return err
	}
	res.PlatformAtMax = rtMax
	res.PaymentsPerSec, res.P99AtMaxMs = max.PaymentsPerSec, max.P99Ms
	res.Ratio = res.PaymentsPerSec / res.CeilingPerSec
	say("  %.0f payments/s (%.0f%% of the ceiling), p99 %.1f ms", max.PaymentsPerSec, 100*res.Ratio, max.P99Ms)

	res.HalfRate = max.EventsPerSec / 2
	say("end to end at half that rate (%.0f events/s, open loop, %v)…", res.HalfRate, *dur)
	half, rtHalf, err := phase(res.HalfRate)
	if err != nil {
		return err
	}
	res.Platform = rtHalf
	res.P99Ms, res.P50Ms, res.HalfRateAchiev = half.P99Ms, half.P50Ms, half.EventsPerSec
	say("  p50 %.1f ms, p99 %.1f ms (%.0f events/s achieved)", half.P50Ms, half.P99Ms, half.EventsPerSec)
	for _, r := range []*sim.Result{max, half} {
		for _, n := range r.Errors {
			res.Errors += n
		}
	}
	res.LedgerBalanced = max.LedgerBalanced && half.LedgerBalanced
	if *series {
		res.Max, res.Half = max, half
	}
	if *asJSON {
		b, _ := json.Marshal(res)
		fmt.Fprintln(stdout, string(b))
	} else {
		say("ledger balanced: %v; events not approved: %d", res.LedgerBalanced, res.Errors)
	}
	if !res.LedgerBalanced {
		return fmt.Errorf("the ledger does not balance")
	}
	return nil
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/iotpay/iotpay/sim"
	"github.com/iotpay/iotpay/wire"
)

// runSim runs a fleet of simulated devices against a platform (package
// sim): a remote iotpayd with --api, or one started in-process. While it
// runs, stdout stays empty; the progress line goes to stderr.
func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("iotpay sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	devices := fs.Int("devices", 100, fmt.Sprintf("devices in the fleet, 1 to %d, each enrolled with its own key", sim.DevicesMax))
	mix := fs.String("mix", sim.DefaultMix().String(), "products by weight: vending, ev, meter, parking")
	suite := fs.String("suite", wire.SuiteIntl, "the devices' crypto suite: intl (ECDSA P-256) or gm (SM2, with a P-256 transport key)")
	transport := fs.String("transport", sim.TransportMQTT, "mqtt (TLS 1.3), coap (DTLS 1.2), or mix (every other device)")
	conns := fs.Int("connections", 0, fmt.Sprintf("transports open at once, at most %d (default min(devices, %d)); "+
		"devices beyond connect when they pay, closing the least recently used", sim.ConnectionsMax, sim.ConnectionsDefault))
	rate := fs.Float64("rate", 0, "events per second, in all, open loop (0: as fast as --concurrency allows)")
	concurrency := fs.Int("concurrency", 0, fmt.Sprintf("events in flight at most (default %d with --rate 0, else --connections)", sim.ConcurrencyDefault))
	rampUp := fs.Duration("ramp-up", 0, "raise the rate (with --rate 0, the events in flight) linearly from 0 over this time")
	duration := fs.Duration("duration", 30*time.Second, "how long events are sent, ramp-up included")
	workers := fs.Int("setup-workers", sim.SetupWorkersDefault, "enrollments under way at once")
	seed := fs.Uint64("seed", 1, "seed of the products' order, the scenarios and the devices' picks")
	asJSON := fs.Bool("json", false, "print the result as one JSON object on stdout")
	report := fs.String("report", "", "write an HTML report (charts in inline SVG) to this file")
	progress := fs.Bool("progress", false, "show the progress line on stderr even when it is not a terminal")
	api := fs.String("api", os.Getenv("IOTPAY_URL"), "a remote platform's HTTP API URL (env IOTPAY_URL; key in IOTPAY_API_KEY); none: an in-process platform")
	mqttAddr := fs.String("mqtt", "", "the remote platform's MQTT/TLS address, host:port")
	coapAddr := fs.String("coap", "", "the remote platform's CoAP/DTLS address, host:port")
	data := fs.String("data", "", "in-process: the platform's data directory, which must be new (default: a temporary one, removed at the end)")
	verbose := fs.Bool("v", false, "in-process: show the platform's log on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("sim: unexpected arguments %q", fs.Args())
	}
	m, err := sim.ParseMix(*mix)
	if err != nil {
		return err
	}
	cfg := sim.Config{Devices: *devices, Mix: m, Suite: *suite, Transport: *transport, Connections: *conns, Rate: *rate,
		Concurrency: *concurrency, RampUp: *rampUp, Duration: *duration, SetupWorkers: *workers, Seed: *seed, DataDir: *data}
	if *api != "" {
		key := os.Getenv("IOTPAY_API_KEY")
		if key == "" {
			return errors.New("sim: set IOTPAY_API_KEY to the remote platform's operator API key")
		}
		cfg.Target = sim.Target{APIURL: *api, APIKey: key, MQTTAddr: *mqttAddr, CoAPAddr: *coapAddr}
		fmt.Fprintf(stderr, "sim: platform at %s\n", *api)
	} else {
		if *mqttAddr != "" || *coapAddr != "" {
			return errors.New("sim: --mqtt and --coap name a remote platform's addresses: give its --api too")
		}
		fmt.Fprintln(stderr, "sim: no --api: running an in-process iotpayd on 127.0.0.1")
		if *verbose {
			cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
		}
	}
	if *progress || simTerminal(stderr) {
		cfg.Progress = stderr
	}
	res, err := sim.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *report != "" {
		if err := simWriteReport(*report, res); err != nil {
			return err
		}
	}
	if *asJSON {
		b, err := json.Marshal(res)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(b))
	} else {
		sim.WriteSummary(stdout, res)
	}
	if !res.LedgerBalanced {
		return errors.New("sim: the ledger does not balance")
	}
	return nil
}

// simWriteReport writes res's HTML report to path.
func simWriteReport(path string, res *sim.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := sim.WriteReport(f, res); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// simTerminal reports whether w is a terminal (a character device).
func simTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

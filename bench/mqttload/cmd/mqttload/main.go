// Command mqttload compares the platform's embedded MQTT broker with
// Mosquitto under the same QoS 1 publish load (package bench/mqttload)
// and prints publishes acknowledged per second, latencies and the ratio.
//
//	go run ./bench/mqttload/cmd/mqttload -clients 64 -window 64 -size 64 -duration 10s -runs 3
//
// With -process, the embedded broker runs in a process of its own (this
// command, as "mqttload -serve-embedded DIR"), as Mosquitto does, and the
// CPU time each broker used per publish is printed too.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/iotpay/iotpay/bench/mqttload"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	m := &Main{Stdout: os.Stdout, Stderr: os.Stderr}
	if err := m.Run(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "mqttload:", err)
		}
		os.Exit(1)
	}
}

// Main is the command: it parses its flags, runs the comparison and
// prints it.
type Main struct {
	Stdout, Stderr io.Writer
}

// Run runs the command with args.
func (m *Main) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("mqttload", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	var cfg mqttload.CompareConfig
	fs.IntVar(&cfg.Clients, "clients", 64, "concurrent connections")
	fs.IntVar(&cfg.Window, "window", 64, "unacknowledged publishes per connection")
	fs.IntVar(&cfg.Size, "size", 64, "payload bytes per message")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured time per broker and run")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "load before the measured time, not counted")
	fs.IntVar(&cfg.Runs, "runs", 3, "runs per broker")
	fs.StringVar(&cfg.PlainAddr, "plain", mqttload.DefaultPlainAddr, "the machine's Mosquitto, plain TCP")
	fs.StringVar(&cfg.Mosquitto, "mosquitto", mqttload.DefaultMosquitto, "Mosquitto binary started with TLS")
	fs.BoolVar(&cfg.MosquittoNagle, "nagle", false, "leave Nagle's algorithm on in the started Mosquitto (its default)")
	process := fs.Bool("process", false, "run the embedded broker in a process of its own")
	serve := fs.Bool("serve-embedded", false, "serve the embedded broker with the server files in the directory argument (used by -process)")
	targets := fs.String("targets", strings.Join(mqttload.Targets, ","), "brokers to load")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the runs to `file`")
	asJSON := fs.Bool("json", false, "print the comparison as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *serve {
		if fs.NArg() != 1 {
			return errors.New("-serve-embedded needs the directory of the server files")
		}
		return m.serveEmbedded(ctx, fs.Arg(0), *cpuProfile)
	}
	cfg.Targets = strings.Split(*targets, ",")
	if *process {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		cfg.EmbeddedCommand = []string{exe, "-serve-embedded"}
		if *cpuProfile != "" {
			// The profile that matters is the broker's.
			cfg.EmbeddedCommand = append(cfg.EmbeddedCommand, "-cpuprofile", *cpuProfile)
			*cpuProfile = ""
		}
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	cmp, err := mqttload.Compare(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(m.Stdout).Encode(cmp) // one line, as bench/run.sh prints each result
	}
	return m.print(cfg, cmp)
}

func (m *Main) print(cfg mqttload.CompareConfig, cmp mqttload.Comparison) error {
	fmt.Fprintf(m.Stdout, "%d clients, window %d, %d-byte payload, QoS 1, %v per run (+%v warmup); load average before: %s\n",
		cfg.Clients, cfg.Window, cfg.Size, cfg.Duration, cfg.Warmup, cmp.LoadAvg)
	if cmp.MosquittoVersion != "" {
		fmt.Fprintln(m.Stdout, cmp.MosquittoVersion)
	}
	w := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "broker\trun\ttransport\tpublishes/s\tp50\tp99\tp99.9\tmax\tbroker CPU/publish\t")
	for _, t := range cmp.Targets {
		for i, r := range t.Runs {
			cpu := "-"
			if i < len(t.CPU) {
				cpu = fmt.Sprintf("%.2fµs", float64(t.CPU[i])/float64(max(r.Sent, 1))/1e3)
			}
			fmt.Fprintf(w, "%s\t%d\t%s\t%.0f\t%v\t%v\t%v\t%v\t%s\t\n", t.Name, i+1, r.Transport, r.Rate,
				round(r.Latency.P50), round(r.Latency.P99), round(r.Latency.P999), round(r.Latency.Max), cpu)
		}
		cpu := "-"
		if t.CPUPerPublish > 0 {
			cpu = fmt.Sprintf("%.2fµs", float64(t.CPUPerPublish)/1e3)
		}
		fmt.Fprintf(w, "%s\tmedian\t\t%.0f\t\t\t\t\t%s\t\n", t.Name, t.Rate, cpu)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if cmp.Ratio != 0 {
		fmt.Fprintf(m.Stdout, "embedded / mosquitto, both TLS: %.2f\n", cmp.Ratio)
	}
	if cmp.PlainRatio != 0 {
		fmt.Fprintf(m.Stdout, "embedded (TLS) / mosquitto (TCP), for reference: %.2f\n", cmp.PlainRatio)
	}
	return nil
}

// serveEmbedded serves the embedded broker until interrupted, writing a
// CPU profile of it if asked.
func (m *Main) serveEmbedded(ctx context.Context, dir, cpuProfile string) error {
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	return mqttload.ServeEmbedded(ctx, dir, nil, func(addr string) {
		fmt.Fprint(m.Stdout, mqttload.ReadyLine(addr))
	})
}

func round(d time.Duration) time.Duration {
	if d > time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

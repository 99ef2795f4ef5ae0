package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/iotpay/iotpay/bench/conns"
	"github.com/iotpay/iotpay/platform/daemon"
	"github.com/iotpay/iotpay/platform/mqtt"
)

// platformInfo is what `iotpay bench platform` prints once its platform
// is up: where to reach it, and its process.
type platformInfo struct {
	API  string `json:"api"`
	MQTT string `json:"mqtt"`
	CoAP string `json:"coap"`
	Key  string `json:"key"`
	PID  int    `json:"pid"`
}

// benchPlatform runs a platform on its embedded defaults in a data
// directory, prints a platformInfo line on stdout, and runs until its
// standard input ends: the process a benchmark measures. Each "runtime"
// line on its standard input gets a platformRuntime line back.
func benchPlatform(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench platform", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("data", "", "data directory (required, fresh)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("--data is required")
	}
	if path := os.Getenv("IOTPAY_BENCH_HEAP_PROFILE"); path != "" {
		heapProfileOnSignal(path)
	}
	if path := os.Getenv("IOTPAY_BENCH_CPU_PROFILE"); path != "" {
		// The platform's own CPU profile, from start to stop.
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	d, err := daemon.Open(ctx, daemon.Config{DataDir: *dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
		DeviceHTTPAddr: "127.0.0.1:0", CoAPAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
		// As many device connections as the open-file limit leaves room
		// for, past what the platform's own files take.
		MQTTConnectionsMax: max(mqtt.ConnectionsMax, int(conns.NoFileLimit())-1000)})
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Start(); err != nil {
		return err
	}
	info, _ := json.Marshal(platformInfo{API: "http://" + d.HTTPAddr(), MQTT: d.MQTTAddr(), CoAP: d.CoAPAddr(), Key: d.APIKey, PID: os.Getpid()})
	fmt.Fprintln(stdout, string(info))
	done := make(chan struct{})
	go func() { serveRuntime(os.Stdin, stdout); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// heapProfileOnSignal writes the process's heap profile to path each time
// it gets SIGUSR1: what a benchmark's platform holds at that moment.
func heapProfileOnSignal(path string) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	go func() {
		for range sig {
			if f, err := os.Create(path); err == nil {
				runtime.GC()
				pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}
	}()
}

// platformProc is a platform running in a process of its own.
type platformProc struct {
	platformInfo
	cmd   *exec.Cmd
	stdin io.WriteCloser
	dir   string
	lines chan []byte // its standard output's lines after the first
}

// startPlatform starts `iotpay bench platform` (this program) on a fresh
// temporary data directory and waits for it to be up.
func startPlatform(ctx context.Context) (*platformProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "iotpay-bench-platform-")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "bench", "platform", "--data", filepath.Join(dir, "data"))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p := &platformProc{cmd: cmd, stdin: stdin, dir: dir, lines: make(chan []byte, 1)}
	line := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if !sc.Scan() {
			line <- fmt.Errorf("the platform process said nothing: %v", sc.Err())
			return
		}
		line <- json.Unmarshal(sc.Bytes(), &p.platformInfo)
		defer close(p.lines)
		for sc.Scan() {
			select {
			case p.lines <- append([]byte(nil), sc.Bytes()...):
			default: // nobody asked for it
			}
		}
	}()
	select {
	case err = <-line:
	case <-time.After(time.Minute):
		err = errors.New("the platform process did not come up in a minute")
	}
	if err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// Stop ends the platform process and removes its data.
func (p *platformProc) Stop() {
	p.stdin.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(p.dir)
}

// benchConns is `iotpay bench conns`: how many mutual-TLS device
// connections a platform in its own process holds, and its memory per
// connection.
func benchConns(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench conns", flag.ContinueOnError)
	fs.SetOutput(stderr)
	devices := fs.Int("devices", 10_000, "devices to enroll and connect (each an MQTT/TLS connection with its own certificate)")
	hold := fs.Duration("hold", 10*time.Second, "how long all connections are held before the platform's memory is read")
	workers := fs.Int("workers", 64, "enrollments and connections at once")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := fs.Parse(args); err != nil {
		return err
	}
	p, err := startPlatform(ctx)
	if err != nil {
		return err
	}
	defer p.Stop()
	progress := func(enrolled, connected int) {
		if !*asJSON {
			fmt.Fprintf(stderr, "\renrolled %d, connected %d of %d", enrolled, connected, *devices)
		}
	}
	var measure func()
	if os.Getenv("IOTPAY_BENCH_HEAP_PROFILE") != "" {
		// The platform writes its heap profile with every connection held.
		measure = func() { syscall.Kill(p.PID, syscall.SIGUSR1); time.Sleep(3 * time.Second) }
	}
	res, err := conns.Run(ctx, conns.Config{API: p.API, Key: p.Key, MQTT: p.MQTT, Devices: *devices, Workers: *workers,
		Hold: *hold, PID: p.PID, Progress: progress, Measure: measure})
	if err != nil {
		return err
	}
	if *asJSON {
		b, _ := json.Marshal(res)
		fmt.Fprintln(stdout, string(b))
	} else {
		fmt.Fprintf(stderr, "\n")
		fmt.Fprintf(stdout, "%d of %d devices connected (%d still open after %.0f s) in %.1f s (%.0f connections/s); enrolled in %.1f s\n",
			res.Connected, res.Devices, res.StillOpen, res.HeldSeconds, res.ConnectSeconds, res.ConnectsPerSec, res.EnrollSeconds)
		fmt.Fprintf(stdout, "platform RSS %.0f MiB before, %.0f MiB holding them: %.1f KiB a connection (open-file limit here: %d)\n",
			float64(res.RSSBeforeBytes)/(1<<20), float64(res.RSSAfterBytes)/(1<<20), float64(res.RSSPerConnection)/1024, res.NoFileLimit)
		for e, n := range res.Errors {
			fmt.Fprintf(stdout, "  %6d × %s\n", n, e)
		}
	}
	if res.Connected < res.Devices {
		return fmt.Errorf("%d of %d devices could not connect", res.Devices-res.Connected, res.Devices)
	}
	return nil
}

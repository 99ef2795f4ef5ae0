package mqttload

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"testing"
	"time"
)

// serveEnv makes the test binary serve the embedded broker, with the
// server files in the directory it names, as the command does with
// -serve-embedded: TestCompareProcess runs the embedded broker so.
const serveEnv = "MQTTLOAD_TEST_SERVE_EMBEDDED"

func TestMain(m *testing.M) {
	if os.Getenv(serveEnv) != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		err := ServeEmbedded(ctx, os.Args[len(os.Args)-1], nil, func(addr string) { fmt.Print(ReadyLine(addr)) })
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testRun is the short load of the tests: about a second.
func testRun(clients int) Config {
	return Config{Clients: clients, Window: 16, Size: 64, Duration: 800 * time.Millisecond, Warmup: 200 * time.Millisecond}
}

func newFixture(t *testing.T, n int) *Fixture {
	t.Helper()
	f, err := NewFixture(n)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// checkResult checks a run that must have succeeded.
func checkResult(t *testing.T, res Result, err error) {
	t.Helper()
	t.Logf("%s: %.0f publishes/s acknowledged, %d sent, latency %+v", res.Transport, res.Rate, res.Sent, res.Latency)
	if err != nil {
		t.Fatalf("run failed: %v", err)
	}
	if res.Acked <= 0 || res.Rate <= 0 {
		t.Fatalf("no publish acknowledged: %+v", res)
	}
	if res.Unacked != 0 {
		t.Errorf("%d publishes without a PUBACK", res.Unacked)
	}
	if res.Acked > res.Sent || res.Latency.P50 <= 0 || res.Latency.P50 > res.Latency.Max {
		t.Errorf("inconsistent result %+v", res)
	}
}

func TestRunEmbedded(t *testing.T) {
	f := newFixture(t, 4)
	b, err := f.StartEmbedded(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cfg := testRun(4)
	cfg.Addr = b.Addr()
	f.Apply(&cfg)
	res, err := Run(context.Background(), cfg)
	checkResult(t, res, err)
	if !strings.HasPrefix(res.Transport, "tls TLS 1.3 ") {
		t.Errorf("transport %q, want TLS 1.3", res.Transport)
	}
}

// needMosquitto skips the test if Mosquitto is not installed, or fails
// it under CI, where scripts/setup.sh installs it.
func needMosquitto(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath(DefaultMosquitto); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("mosquitto not installed: make test installs it (scripts/setup.sh)")
		}
		t.Skip("mosquitto not installed (apt-get install mosquitto; make test installs it)")
	}
}

// needPlainMosquitto is needMosquitto for the machine's Mosquitto on
// DefaultPlainAddr, which must also be running.
func needPlainMosquitto(t *testing.T) {
	t.Helper()
	needMosquitto(t)
	if err := reachable(context.Background(), DefaultPlainAddr); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mosquitto not running on %s: %v", DefaultPlainAddr, err)
		}
		t.Skipf("mosquitto installed but not running on %s (scripts/setup.sh starts it): %v", DefaultPlainAddr, err)
	}
}

func TestRunMosquittoPlain(t *testing.T) {
	needPlainMosquitto(t)
	cfg := testRun(4)
	cfg.Addr = DefaultPlainAddr
	// Unique client ids: another test may load the same Mosquitto.
	id := fmt.Sprintf("mqttload-test-%d", time.Now().UnixNano())
	cfg.ClientID = func(i int) string { return fmt.Sprintf("%s-%d", id, i) }
	res, err := Run(context.Background(), cfg)
	checkResult(t, res, err)
	if res.Transport != "tcp" {
		t.Errorf("transport %q, want tcp", res.Transport)
	}
}

func TestRunMosquittoTLS(t *testing.T) {
	needMosquitto(t)
	f := newFixture(t, 4)
	m, err := f.StartMosquitto(context.Background(), "", MosquittoOptions{NoDelay: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cfg := testRun(4)
	cfg.Addr = m.Addr
	f.Apply(&cfg)
	res, err := Run(context.Background(), cfg)
	checkResult(t, res, err)
	if want := "tls TLS 1.3 " + tls13Suite; res.Transport != want {
		t.Errorf("transport %q, want %q", res.Transport, want)
	}
	if cpu, err := processCPU(m.Pid()); err != nil || cpu <= 0 {
		t.Errorf("mosquitto's CPU time: %v, %v", cpu, err)
	}
}

// TestRunRefused checks that a broker's refusal fails the run: the
// embedded broker admits a client only under its certificate's device id.
func TestRunRefused(t *testing.T) {
	f := newFixture(t, 2)
	b, err := f.StartEmbedded(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cfg := testRun(2)
	cfg.Addr = b.Addr()
	f.Apply(&cfg)
	cfg.ClientID = func(i int) string { return f.ClientID(1 - i) } // swapped
	_, err = Run(context.Background(), cfg)
	if !errors.Is(err, errConnRefused) || !strings.Contains(err.Error(), "identifier rejected") {
		t.Fatalf("error %v, want the CONNACK refusal", err)
	}
}

// TestRunBrokerGone checks that a broker closing during the run fails it.
func TestRunBrokerGone(t *testing.T) {
	f := newFixture(t, 2)
	b, err := f.StartEmbedded(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testRun(2)
	cfg.Addr, cfg.Duration = b.Addr(), 10*time.Second
	f.Apply(&cfg)
	time.AfterFunc(500*time.Millisecond, func() { b.Close() })
	start := time.Now()
	if _, err := Run(context.Background(), cfg); err == nil {
		t.Fatal("run succeeded though the broker closed")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("run took %v after the broker closed", d)
	}
}

// TestRunCanceled checks that a canceled context ends a run at once.
func TestRunCanceled(t *testing.T) {
	f := newFixture(t, 2)
	b, err := f.StartEmbedded(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cfg := testRun(2)
	cfg.Addr, cfg.Duration = b.Addr(), 10*time.Second
	f.Apply(&cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := Run(ctx, cfg); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the context's", err)
	}
}

func TestRunNoBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := testRun(2)
	cfg.Addr = addr
	if _, err := Run(context.Background(), cfg); err == nil {
		t.Fatal("run without a broker succeeded")
	}
}

func TestConfigCheck(t *testing.T) {
	ok := Config{Addr: "127.0.0.1:1", Clients: 1, Window: 1, Size: 0, Duration: time.Second}
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"no address", func(c *Config) { c.Addr = "" }},
		{"no client", func(c *Config) { c.Clients = 0 }},
		{"too many clients", func(c *Config) { c.Clients = ClientsMax + 1 }},
		{"no window", func(c *Config) { c.Window = 0 }},
		{"window too large", func(c *Config) { c.Window = WindowMax + 1 }},
		{"negative size", func(c *Config) { c.Size = -1 }},
		{"size too large", func(c *Config) { c.Size = SizeMax + 1 }},
		{"payload not of size", func(c *Config) { c.Payload = []byte("ab") }},
		{"no duration", func(c *Config) { c.Duration = 0 }},
		{"negative warmup", func(c *Config) { c.Warmup = -time.Second }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			if _, err := Run(context.Background(), c); err == nil {
				t.Error("accepted")
			}
		})
	}
	if err := ok.check(); err != nil {
		t.Errorf("valid configuration refused: %v", err)
	}
}

// TestPacketIDsWrap makes packet ids wrap many times in a short run.
func TestPacketIDsWrap(t *testing.T) {
	defer func(n int) { packetIDsMax = n }(packetIDsMax)
	packetIDsMax = 100 // with a window of 16, ids cycle through 1…96
	f := newFixture(t, 2)
	b, err := f.StartEmbedded(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cfg := testRun(2)
	cfg.Addr = b.Addr()
	f.Apply(&cfg)
	res, err := Run(context.Background(), cfg)
	checkResult(t, res, err)
	if res.Sent < 2*100*2 {
		t.Errorf("%d publishes sent: ids did not wrap", res.Sent)
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	if q := h.quantile(0.5); q != 0 {
		t.Errorf("empty histogram's median %v", q)
	}
	// 1µs, 2µs, …, 10ms.
	for i := 1; i <= 10000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	var o histogram
	o.add(time.Hour)
	h.merge(&o)
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 5 * time.Millisecond},
		{0.9, 9 * time.Millisecond},
		{0.99, 9900 * time.Microsecond},
	} {
		got := h.quantile(tc.q)
		// A bucket is at most 1/32 of its values wide, and the bound
		// reported is its upper one.
		if got < tc.want || float64(got) > float64(tc.want)*(1+1.0/32) {
			t.Errorf("quantile(%v) = %v, want %v within 1/32 above", tc.q, got, tc.want)
		}
	}
	if l := h.latency(); l.Max != time.Hour || float64(l.P999) > float64(10*time.Millisecond)*(1+1.0/32) {
		t.Errorf("latency %+v", l)
	}
	// Every value falls in a bucket whose bounds hold it.
	for _, v := range []int64{0, 1, 63, 64, 65, 127, 128, 1000, 1 << 40, math.MaxInt64} {
		i := histIndex(v)
		if i < 0 || i >= histBuckets || histUpper(i) < v || i > 0 && histUpper(i-1) >= v {
			t.Errorf("value %d in bucket %d, bounds (%d, %d]", v, i, histUpper(max(i-1, 0)), histUpper(i))
		}
	}
}

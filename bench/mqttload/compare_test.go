package mqttload

import (
	"context"
	"os"
	"testing"
	"time"
)

func testCompare(targets ...string) CompareConfig {
	return CompareConfig{Clients: 4, Window: 16, Size: 64, Duration: 400 * time.Millisecond, Warmup: 100 * time.Millisecond,
		Runs: 1, Targets: targets}
}

func checkComparison(t *testing.T, cmp Comparison, err error, targets ...string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if len(cmp.Targets) != len(targets) {
		t.Fatalf("%d targets, want %d", len(cmp.Targets), len(targets))
	}
	for i, tr := range cmp.Targets {
		t.Logf("%s: %.0f publishes/s, pid %d, CPU per publish %v", tr.Name, tr.Rate, tr.Pid, tr.CPUPerPublish)
		if tr.Name != targets[i] || len(tr.Runs) != 1 || tr.Rate <= 0 || tr.Rate != tr.Runs[0].Rate {
			t.Errorf("target %d: %+v", i, tr)
		}
	}
}

// TestCompare runs a short comparison of the embedded broker, a TLS
// Mosquitto and the machine's Mosquitto.
func TestCompare(t *testing.T) {
	needPlainMosquitto(t)
	cmp, err := Compare(context.Background(), testCompare(Targets...))
	checkComparison(t, cmp, err, Targets...)
	if cmp.Ratio <= 0 || cmp.PlainRatio <= 0 {
		t.Errorf("ratios %v and %v", cmp.Ratio, cmp.PlainRatio)
	}
	emb, _ := cmp.Target(TargetEmbedded)
	mtls, _ := cmp.Target(TargetMosquittoTLS)
	if got := emb.Rate / mtls.Rate; got != cmp.Ratio {
		t.Errorf("ratio %v, want %v", cmp.Ratio, got)
	}
	if emb.Pid != 0 || mtls.Pid == 0 || mtls.CPUPerPublish <= 0 {
		t.Errorf("processes: embedded %d, mosquitto %d (CPU per publish %v)", emb.Pid, mtls.Pid, mtls.CPUPerPublish)
	}
	if cmp.MosquittoVersion == "" {
		t.Error("no Mosquitto version")
	}
}

// TestCompareProcess runs the embedded broker in a process of its own:
// this test binary, serving it (see TestMain).
func TestCompareProcess(t *testing.T) {
	needMosquitto(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(serveEnv, "1")
	cfg := testCompare(TargetMosquittoTLS, TargetEmbedded)
	cfg.EmbeddedCommand = []string{exe}
	cmp, err := Compare(context.Background(), cfg)
	checkComparison(t, cmp, err, TargetMosquittoTLS, TargetEmbedded)
	emb, _ := cmp.Target(TargetEmbedded)
	if emb.Pid == 0 || emb.Pid == os.Getpid() || len(emb.CPU) != 1 || emb.CPUPerPublish <= 0 {
		t.Errorf("embedded broker's process %d, CPU %v", emb.Pid, emb.CPU)
	}
	if cmp.Ratio <= 0 || cmp.PlainRatio != 0 {
		t.Errorf("ratios %v and %v", cmp.Ratio, cmp.PlainRatio)
	}
}

func TestCompareRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*CompareConfig)
	}{
		{"unknown target", func(c *CompareConfig) { c.Targets = []string{"nats"} }},
		{"status too large for the embedded broker", func(c *CompareConfig) { c.Size = 257 }},
		{"no client", func(c *CompareConfig) { c.Clients = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testCompare(TargetEmbedded)
			tc.edit(&c)
			if _, err := Compare(context.Background(), c); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestListenerPid(t *testing.T) {
	needPlainMosquitto(t)
	pid := listenerPid(DefaultPlainAddr)
	if pid == 0 {
		t.Skip("no permission to find the listening process")
	}
	if _, err := processCPU(pid); err != nil {
		t.Errorf("CPU time of process %d: %v", pid, err)
	}
	if listenerPid("127.0.0.1:1") != 0 || listenerPid("not an address") != 0 {
		t.Error("a process found where none listens")
	}
}

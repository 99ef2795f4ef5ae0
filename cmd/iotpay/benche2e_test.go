package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
)

// TestMain lets this test binary be the platform process the benchmarks
// start (`iotpay bench platform`, run as os.Executable()).
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "bench" && os.Args[2] == "platform" {
		if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestBenchE2E: a short run of every phase prints one JSON object with
// the figures the issue names, measured (not zero), and a balanced ledger.
func TestBenchE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a platform process and a fleet")
	}
	var out strings.Builder
	if err := run(context.Background(), []string{"bench", "e2e", "--duration", "2s", "--devices", "20", "--concurrency", "8", "--json"},
		&out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var r e2eResult
	if err := json.Unmarshal([]byte(out.String()), &r); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	if r.PaymentsPerSec <= 0 || r.CeilingPerSec <= 0 || r.Ratio <= 0 || r.Ratio != r.PaymentsPerSec/r.CeilingPerSec || r.P99Ms <= 0 || !r.LedgerBalanced || r.Errors != 0 {
		t.Fatalf("%+v", r)
	}
	for _, rt := range []*platformRuntime{r.PlatformAtMax, r.Platform} {
		// Each phase's own: the platform did work in it, and its
		// goroutines were scheduled.
		if rt == nil || rt.BusySeconds <= 0 || rt.SchedP99Ms <= 0 || rt.SchedP50Ms > rt.SchedP99Ms || rt.GCShare < 0 || rt.GCShare > 1 {
			t.Fatalf("platform runtime %+v in %q", rt, out.String())
		}
	}
}

// TestBenchConns: devices enrolled on a platform in its own process each
// hold a mutual-TLS connection; its memory is read from /proc.
func TestBenchConns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a platform process")
	}
	var out strings.Builder
	if err := run(context.Background(), []string{"bench", "conns", "--devices", "20", "--hold", "200ms", "--json"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var r struct {
		Connected int   `json:"connected"`
		StillOpen int   `json:"still_open"`
		RSSAfter  int64 `json:"rss_after_bytes"`
	}
	if err := json.Unmarshal([]byte(out.String()), &r); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	if r.Connected != 20 || r.StillOpen != 20 || r.RSSAfter <= 0 {
		t.Fatalf("%s", out.String())
	}
}

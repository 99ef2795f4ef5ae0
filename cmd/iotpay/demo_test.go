package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestDemoJSON(t *testing.T) { testDemo(t) }

// TestDemoGM runs the whole demo with gm devices: SM2 keys and
// certificates, SM2 request and receipt signatures.
func TestDemoGM(t *testing.T) {
	out := testDemo(t, "--suite", "gm")
	if !strings.Contains(out, "crypto suite of the devices: gm") || !strings.Contains(out, "SM2 key in keystore") {
		t.Errorf("demo did not run in the gm suite:\n%s", out)
	}
}

func testDemo(t *testing.T, args ...string) string {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), append([]string{"demo", "--json"}, args...), &out, &errOut); err != nil {
		t.Fatalf("demo: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var s demoSummary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &s); err != nil {
		t.Fatalf("last line is not the JSON summary: %v\n%s", err, out.String())
	}
	if !s.LedgerBalanced || !s.LogVerified || s.LogLeaves < 10 || s.PaymentsOK < 1 || s.ReceiptsVerified < s.PaymentsOK || s.PaymentsDeclined < 1 ||
		s.ReplaysRejected < 1 || s.DuplicatesAnswered < 1 || s.ForgeriesRejected < 1 ||
		// The four reference products' rules: every action they take.
		s.Actions["hold"] != 2 || s.Actions["increment"] != 3 || s.Actions["capture"] != 2 || s.Actions["bill"] != 2 ||
		s.Actions["refill"] != 1 || s.Actions["none"] < 4 || s.Actions["charge"] < 8 {
		t.Fatalf("summary = %+v\n%s", s, out.String())
	}
	return out.String()
}

func TestUnknownCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"frobnicate"}, &out, &errOut); err == nil {
		t.Fatal("unknown command accepted")
	}
	if !strings.Contains(errOut.String(), "Usage") {
		t.Errorf("no usage printed: %q", errOut.String())
	}
}

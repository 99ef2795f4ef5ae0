package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestDemoJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"demo", "--json"}, &out, &errOut); err != nil {
		t.Fatalf("demo: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var s demoSummary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &s); err != nil {
		t.Fatalf("last line is not the JSON summary: %v\n%s", err, out.String())
	}
	if !s.LedgerBalanced || s.PaymentsOK < 1 || s.ReceiptsVerified < s.PaymentsOK || s.PaymentsDeclined < 1 ||
		s.ReplaysRejected < 1 || s.DuplicatesAnswered < 1 || s.ForgeriesRejected < 1 {
		t.Fatalf("summary = %+v\n%s", s, out.String())
	}
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

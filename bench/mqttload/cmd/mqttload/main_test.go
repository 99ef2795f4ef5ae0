package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/iotpay/iotpay/bench/mqttload"
)

// TestMainJSON runs a short comparison on the embedded broker alone and
// reads its JSON.
func TestMainJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errOut}
	args := []string{"-targets", mqttload.TargetEmbedded, "-clients", "2", "-window", "8", "-duration", "300ms",
		"-warmup", "0s", "-runs", "1", "-json"}
	if err := m.Run(context.Background(), args); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	var cmp mqttload.Comparison
	if err := json.Unmarshal(out.Bytes(), &cmp); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if len(cmp.Targets) != 1 || cmp.Targets[0].Rate <= 0 {
		t.Fatalf("comparison %+v", cmp)
	}
}

func TestMainTable(t *testing.T) {
	var out, errOut bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errOut}
	args := []string{"-targets", mqttload.TargetEmbedded, "-clients", "2", "-window", "8", "-duration", "300ms",
		"-warmup", "0s", "-runs", "1"}
	if err := m.Run(context.Background(), args); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "embedded-tls  median") {
		t.Errorf("no median row in\n%s", out.String())
	}
}

func TestMainRefuses(t *testing.T) {
	for _, args := range [][]string{
		{"-targets", "nats"},
		{"-serve-embedded"},
		{"-no-such-flag"},
	} {
		var out, errOut bytes.Buffer
		if err := (&Main{Stdout: &out, Stderr: &errOut}).Run(context.Background(), args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

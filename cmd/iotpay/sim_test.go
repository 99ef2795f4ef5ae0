package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iotpay/iotpay/sim"
)

// simJSON runs 'iotpay sim --json' with args on an in-process platform
// and checks that stdout is exactly one JSON object with the fields a
// reader expects, from a run of every product with no failures but
// declines and a balanced ledger.
func simJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	t.Setenv("IOTPAY_URL", "")
	var out, errOut bytes.Buffer
	if err := run(context.Background(), append([]string{"sim", "--json"}, args...), &out, &errOut); err != nil {
		t.Fatalf("sim: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(errOut.String(), "in-process iotpayd") {
		t.Errorf("sim did not say it runs the platform in-process: %q", errOut.String())
	}
	dec := json.NewDecoder(&out)
	var res map[string]any
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, out.String())
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON object:\n%s", out.String())
	}
	for _, f := range []string{"devices", "transport", "suite", "duration_s", "events", "payments", "payments_per_sec", "events_per_sec",
		"p50_ms", "p95_ms", "p99_ms", "max_ms", "errors", "ledger_balanced", "setup_s", "series"} {
		if _, ok := res[f]; !ok {
			t.Errorf("no %q in %v", f, res)
		}
	}
	if res["events"].(float64) <= 0 || res["payments"].(float64) <= 0 || res["p99_ms"].(float64) <= 0 || res["ledger_balanced"] != true ||
		len(res["series"].([]any)) == 0 {
		t.Errorf("result %v", res)
	}
	for reason := range res["errors"].(map[string]any) {
		if !strings.HasPrefix(reason, "declined: ") {
			t.Errorf("error %q (counts: %v)", reason, res["errors"])
		}
	}
	return res
}

// TestSimMQTT: twenty devices of the four products over MQTT, as fast as
// they go for 2 s, and the HTML report.
func TestSimMQTT(t *testing.T) {
	report := filepath.Join(t.TempDir(), "sim.html")
	res := simJSON(t, "--devices", "20", "--duration", "2s", "--report", report)
	if res["transport"] != "mqtt" || res["devices"] != 20.0 || res["suite"] != "intl" {
		t.Errorf("result %v", res)
	}
	page, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(page, []byte("<svg")) || !bytes.Contains(page, []byte("<html")) {
		t.Errorf("report has no chart:\n%s", page)
	}
}

// TestSimCoAP: the same over CoAP/DTLS.
func TestSimCoAP(t *testing.T) {
	res := simJSON(t, "--devices", "20", "--duration", "2s", "--transport", "coap")
	if res["transport"] != "coap" {
		t.Errorf("result %v", res)
	}
}

// TestSimConnections: fewer connections than devices; the devices without
// one connect when they pay and evict the least recently used.
func TestSimConnections(t *testing.T) {
	res := simJSON(t, "--devices", "20", "--connections", "5", "--duration", "1500ms", "--mix", "vending=1,ev=1,meter=1,parking=1")
	if res["connections"] != 5.0 || res["connects"].(float64) == 0 || res["evictions"].(float64) == 0 {
		t.Errorf("connections not shared: %v", res)
	}
}

// TestSimSummary: without --json a short summary for a person; with a
// remote platform's addresses but no API, a refusal.
func TestSimSummary(t *testing.T) {
	t.Setenv("IOTPAY_URL", "")
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"sim", "--devices", "4", "--duration", "500ms", "--rate", "20"}, &out, &errOut); err != nil {
		t.Fatalf("sim: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{"4 devices", "at 20 events/s", "payments", "p99", "ledger     balanced"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	if err := run(context.Background(), []string{"sim", "--mqtt", "127.0.0.1:8883"}, &out, &errOut); err == nil {
		t.Error("--mqtt without --api accepted")
	}
}

// TestSimRemote drives a platform the test starts, given by its API URL,
// key and device addresses as a remote one is: the devices trust the CA
// their enrollment returns.
func TestSimRemote(t *testing.T) {
	l, err := sim.StartLocal(context.Background(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("IOTPAY_API_KEY", l.APIKey)
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"sim", "--json", "--api", l.APIURL, "--mqtt", l.MQTTAddr, "--coap", l.CoAPAddr,
		"--transport", "mix", "--devices", "8", "--duration", "1s"}, &out, &errOut); err != nil {
		t.Fatalf("sim: %v\n%s", err, errOut.String())
	}
	var res sim.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if !res.Remote || res.Events == 0 || !res.LedgerBalanced || res.Outcomes["error"] > 0 || !strings.Contains(errOut.String(), l.APIURL) {
		t.Errorf("remote run: %+v\n%s", res, errOut.String())
	}
}

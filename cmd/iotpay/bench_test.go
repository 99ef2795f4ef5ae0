package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/iotpay/iotpay/store/postgres/pgtest"
)

// TestBenchLedger runs a short `iotpay bench ledger --json` on both stores
// and checks its one JSON object: every rate measured, the ledger balanced.
// (The figures themselves are in BENCHMARKS.md; a test asserts no speed.)
func TestBenchLedger(t *testing.T) {
	for _, store := range []string{"sqlite", pgtest.Server()} {
		var out, errOut bytes.Buffer
		args := []string{"bench", "ledger", "--store", store, "--json", "--duration", "300ms", "--clients", "16",
			"--accounts", "20", "--devices", "4"}
		if err := run(context.Background(), args, &out, &errOut); err != nil {
			t.Fatalf("bench on %s: %v\n%s", store, err, errOut.String())
		}
		var res map[string]any
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatalf("bench --json printed %q: %v", out.String(), err)
		}
		for _, k := range []string{"transfers_per_sec", "hot_account_transfers_per_sec", "payments_per_sec"} {
			if v, ok := res[k].(float64); !ok || v <= 0 {
				t.Errorf("%s: %s = %v", store, k, res[k])
			}
		}
		if res["ledger_balanced"] != true {
			t.Errorf("%s: ledger not balanced: %v", store, res)
		}
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"bench", "ledger", "--store", "mysql://x"}, &out, &errOut); err == nil {
		t.Error("an unknown store was accepted")
	}
}

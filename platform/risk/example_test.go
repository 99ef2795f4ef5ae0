package risk_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/iotpay/iotpay/platform/risk"
)

// The caller parses the product's policy once, counts what Windows asks
// for, and decides each payment in its transaction.
func ExampleDecide() {
	p, err := risk.ParsePolicy([]byte(`{
		"velocity": [{"scope": "device", "window": "1m", "max_count": 2}],
		"offline_max": "1h",
		"clock_skew_max": "30s"
	}`))
	if err != nil {
		panic(err)
	}
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	in := &risk.Input{
		Now: now, Amount: 250, Currency: "EUR", DeviceTime: now.Add(-45 * time.Second),
		OfflineFor: 2 * time.Hour,
		Velocity:   make([]risk.Counted, len(p.Windows())), // counted by the caller
	}
	in.Velocity[0] = risk.Counted{Count: 1, Amount: 300}
	b, _ := json.MarshalIndent(risk.Decide(p, in), "", "  ")
	fmt.Println(string(b))
	// Output:
	// {
	//   "outcome": "review",
	//   "score": 60,
	//   "reasons": [
	//     {
	//       "code": "offline_too_long",
	//       "detail": "device offline 2h0m0s before this payment, max 1h0m0s",
	//       "points": 30
	//     },
	//     {
	//       "code": "clock_skew",
	//       "detail": "device clock 45s behind the platform's, max 30s",
	//       "points": 30
	//     }
	//   ]
	// }
}

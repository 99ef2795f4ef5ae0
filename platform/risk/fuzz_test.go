package risk

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/iotpay/iotpay"
)

// FuzzParsePolicy checks that ParsePolicy never panics, refuses with
// EINVALID only, and that a policy it accepts marshals to JSON it parses
// back equal, marshalled again to the same bytes; and that Decide on it
// does not panic.
func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{
		fullJSON,
		`{}`, `null`, ``, `[]`, `{"x":1}`, `{} {}`,
		`{"velocity":[{"scope":"account","window":"90s","max_amount":1000,"action":"review"}]}`,
		`{"velocity":[{"scope":"device","window":"0s","max_count":1}]}`,
		`{"velocity":[]}`,
		`{"geofence":{"lat_e7":-338688000,"lon_e7":1512093000,"radius_m":250}}`,
		`{"geofence":{"lat_e7":0,"lon_e7":0,"radius_m":0}}`,
		`{"hours":{"from":"22:00","to":"06:00","zone":"Asia/Tokyo"}}`,
		`{"hours":{"from":"08:00","to":"24:00"}}`,
		`{"hours":{"from":"8:00","to":"20:00","zone":"Local"}}`,
		`{"offline_max":"1.5h","clock_skew_max":"0.5m"}`,
		`{"offline_max":60}`,
		`{"cool_off":{"period":"24h","amount_max":0},"anomaly":{"min_history":5,"review_z":2.5,"decline_z":6}}`,
		`{"anomaly":{"review_z":1e-300}}`,
		`{"review_score":30,"decline_score":60}`,
		`{"review_score":80}`,
		`{"Velocity":[{"Scope":"device","WINDOW":"1m","max_count":2}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePolicy(b)
		if err != nil {
			if iotpay.ErrorCode(err) != iotpay.EINVALID {
				t.Fatalf("error code %s: %v", iotpay.ErrorCode(err), err)
			}
			return
		}
		b1, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		p2, err := ParsePolicy(b1)
		if err != nil {
			t.Fatalf("re-parse %s: %v", b1, err)
		}
		if diff := cmp.Diff(p, p2, policyEq); diff != "" {
			t.Fatalf("round trip of %s (-first +second)\n%s", b1, diff)
		}
		b2, err := json.Marshal(p2)
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("marshal not stable:\n%s\n%s", b1, b2)
		}
		in := input()
		in.Velocity = make([]Counted, len(p.Windows()))
		d := Decide(p, in)
		if d.Score < 0 || d.Score > ScoreMax || d.Outcome == "" {
			t.Fatalf("decision %+v", d)
		}
	})
}

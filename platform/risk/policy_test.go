package risk

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/iotpay/iotpay"
)

// fullJSON is fullPolicy as an operator writes it, in canonical form.
const fullJSON = `{"velocity":[{"scope":"device","window":"1m0s","max_count":3},` +
	`{"scope":"account","window":"24h0m0s","max_count":50,"max_amount":50000,"action":"review"}],` +
	`"geofence":{"lat_e7":488566000,"lon_e7":23522000,"radius_m":5000},` +
	`"hours":{"from":"06:00","to":"23:00","zone":"Europe/Paris"},` +
	`"require_attested_firmware":true,"decline_tamper":true,"offline_max":"1h0m0s","clock_skew_max":"30s",` +
	`"cool_off":{"period":"168h0m0s","amount_max":1000},"anomaly":{}}`

var policyEq = cmp.Options{cmpopts.IgnoreUnexported(Policy{}), cmpopts.EquateEmpty()}

func TestPolicyJSON(t *testing.T) {
	p, err := ParsePolicy([]byte(fullJSON))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fullPolicy(t), p, policyEq); diff != "" {
		t.Errorf("parsed (-want +got)\n%s", diff)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != fullJSON {
		t.Errorf("marshalled\n%s\nwant\n%s", b, fullJSON)
	}
	// Durations in any Go form read; they are written in canonical form.
	p2, err := ParsePolicy([]byte(`{"offline_max":"90m","clock_skew_max":"0.5m","review_score":40,"decline_score":90,` +
		`"anomaly":{"min_history":10,"review_z":3.5,"decline_z":7.25},"velocity":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &Policy{OfflineMax: dur(90 * time.Minute), ClockSkewMax: dur(30 * time.Second), ReviewScore: 40, DeclineScore: 90,
		Anomaly: &Anomaly{MinHistory: 10, ReviewZ: 3.5, DeclineZ: 7.25}}
	if diff := cmp.Diff(want, p2, policyEq); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	if p2.Velocity != nil {
		t.Error("empty velocity not normalized to nil")
	}
	b, _ = json.Marshal(p2)
	if want := `{"offline_max":"1h30m0s","clock_skew_max":"30s","anomaly":{"min_history":10,"review_z":3.5,"decline_z":7.25},` +
		`"review_score":40,"decline_score":90}`; string(b) != want {
		t.Errorf("marshalled\n%s\nwant\n%s", b, want)
	}
	for _, s := range []string{`{}`, `null`, " {} \n"} {
		p, err := ParsePolicy([]byte(s))
		if err != nil || !cmp.Equal(p, &Policy{}, policyEq) {
			t.Errorf("%q: %+v, %v", s, p, err)
		}
		if b, _ := json.Marshal(p); string(b) != `{}` {
			t.Errorf("%q marshals as %s", s, b)
		}
	}
}

func TestParsePolicyErrors(t *testing.T) {
	tests := []struct {
		json string
		msg  string // part of the message
	}{
		// Decoding.
		{``, "EOF"},
		{`[]`, "cannot unmarshal array"},
		{`{"velocty":[]}`, `unknown field "velocty"`},
		{`{"geofence":{"lat_e7":1,"lon_e7":1,"radius_m":1,"alt":3}}`, `unknown field "alt"`},
		{`{} {}`, "data after the policy"},
		{`{}x`, "data after the policy"},
		{`{"offline_max":60}`, `duration 60 must be a string`},
		{`{"offline_max":"60"}`, `duration "60" must be such as`},
		{`{"offline_max":""}`, `duration "" must be such as`},
		{`{"offline_max":"1 h"}`, `duration "1 h" must be such as`},
		{`{"geofence":{"lat_e7":1.5,"lon_e7":1,"radius_m":1}}`, "geofence.lat_e7: number 1.5 where int64 is expected"},
		{`{"review_score":"50"}`, "review_score: string where int is expected"},
		{`{"hours":{"from":8}}`, "hours.from: number where string is expected"},
		{`{"velocity":{}}`, "velocity: object where []risk.VelocityRule is expected"},
		{`{"decline_tamper":"yes"}`, "decline_tamper: string where bool is expected"},
		{`{"offline_max":"1h"` + strings.Repeat(" ", PolicyBytesMax) + `}`, "larger than 65536 bytes"},
		// Velocity.
		{`{"velocity":[{"scope":"payer","window":"1m","max_count":1}]}`, `velocity[0].scope must be "device" or "account"`},
		{`{"velocity":[{"window":"1m","max_count":1}]}`, `velocity[0].scope must be`},
		{`{"velocity":[{"scope":"device","window":"1m","max_count":1},{"scope":"device","window":"999ms","max_count":1}]}`,
			"velocity[1].window must be 1s to 744h0m0s"},
		{`{"velocity":[{"scope":"device","window":"745h","max_count":1}]}`, "velocity[0].window must be 1s to 744h0m0s"},
		{`{"velocity":[{"scope":"device","max_count":1}]}`, "velocity[0].window must be"},
		{`{"velocity":[{"scope":"device","window":"1m"}]}`, "velocity[0]: set max_count, max_amount or both"},
		{`{"velocity":[{"scope":"device","window":"1m","max_count":-1}]}`, "velocity[0]: max_count and max_amount must not be negative"},
		{`{"velocity":[{"scope":"device","window":"1m","max_amount":-1,"max_count":1}]}`, "must not be negative"},
		{`{"velocity":[{"scope":"device","window":"1m","max_count":1,"action":"approve"}]}`, `velocity[0].action must be "decline" or "review"`},
		{`{"velocity":[` + strings.Repeat(`{"scope":"device","window":"1m","max_count":1},`, VelocityMax) +
			`{"scope":"device","window":"1m","max_count":1}]}`, "velocity: at most 16 rules"},
		// Geofence.
		{`{"geofence":{"lat_e7":0,"lon_e7":0,"radius_m":0}}`, "geofence.radius_m must be 1 to 20000000"},
		{`{"geofence":{"lat_e7":0,"lon_e7":0,"radius_m":-5}}`, "geofence.radius_m must be 1 to 20000000"},
		{`{"geofence":{"lat_e7":0,"lon_e7":0,"radius_m":20000001}}`, "geofence.radius_m must be"},
		{`{"geofence":{"lat_e7":900000001,"lon_e7":0,"radius_m":1}}`, "geofence.lat_e7 must be -900000000 to 900000000"},
		{`{"geofence":{"lat_e7":0,"lon_e7":-1800000001,"radius_m":1}}`, "geofence.lon_e7 must be -1800000000 to 1800000000"},
		// Hours.
		{`{"hours":{"from":"8:00","to":"20:00"}}`, `hours.from "8:00" must be HH:MM`},
		{`{"hours":{"from":"08:60","to":"20:00"}}`, `hours.from "08:60" must be HH:MM`},
		{`{"hours":{"from":"24:00","to":"20:00"}}`, `hours.from "24:00" must be HH:MM, 00:00 to 23:59`},
		{`{"hours":{"from":"08:00","to":"24:01"}}`, `hours.to "24:01" must be HH:MM, 00:00 to 24:00`},
		{`{"hours":{"from":"08:00","to":"25:00"}}`, `hours.to "25:00"`},
		{`{"hours":{"from":"08:00","to":"2000"}}`, `hours.to "2000"`},
		{`{"hours":{"from":"08:00","to":"+1:00"}}`, `hours.to "+1:00"`},
		{`{"hours":{"from":"08:00"}}`, `hours.to "" must be HH:MM`},
		{`{"hours":{"from":"08:00","to":"08:00"}}`, "hours: from and to must differ"},
		{`{"hours":{"from":"08:00","to":"20:00","zone":"Mars/Olympus"}}`, `hours.zone "Mars/Olympus" is not a known IANA time zone`},
		{`{"hours":{"from":"08:00","to":"20:00","zone":"Local"}}`, `hours.zone "Local" is not an IANA time zone`},
		{`{"hours":{"from":"08:00","to":"20:00","zone":"../../etc/passwd"}}`, `is not an IANA time zone`},
		{`{"hours":{"from":"08:00","to":"20:00","zone":"Europe/Berlin "}}`, `is not an IANA time zone`},
		// Durations.
		{`{"offline_max":"-1s"}`, "offline_max must be 1s to 8760h0m0s"},
		{`{"offline_max":"999ms"}`, "offline_max must be 1s to"},
		{`{"offline_max":"8761h"}`, "offline_max must be 1s to"},
		{`{"clock_skew_max":"5m1s"}`, "clock_skew_max must be 1s to 5m0s"},
		{`{"clock_skew_max":"-30s"}`, "clock_skew_max must be 1s to 5m0s"},
		// Cool-off.
		{`{"cool_off":{"amount_max":100}}`, "cool_off.period must be 1s to 8760h0m0s"},
		{`{"cool_off":{"period":"8761h","amount_max":100}}`, "cool_off.period must be"},
		{`{"cool_off":{"period":"1h","amount_max":-1}}`, "cool_off.amount_max must not be negative"},
		// Anomaly.
		{`{"anomaly":{"min_history":1}}`, "anomaly.min_history must be 2 to 1000000"},
		{`{"anomaly":{"min_history":-3}}`, "anomaly.min_history must be 2 to 1000000"},
		{`{"anomaly":{"review_z":-1}}`, "anomaly.review_z must be 0 (the default, 4) to 100"},
		{`{"anomaly":{"decline_z":101}}`, "anomaly.decline_z must be 0 (the default, 8) to 100"},
		{`{"anomaly":{"review_z":8}}`, "anomaly: review_z (8) must be below decline_z (8)"},
		{`{"anomaly":{"review_z":5,"decline_z":3}}`, "anomaly: review_z (5) must be below decline_z (3)"},
		// Thresholds.
		{`{"review_score":101}`, "review_score must be 1 to 100"},
		{`{"review_score":-1}`, "review_score must be 1 to 100"},
		{`{"decline_score":101}`, "decline_score must be 1 to 100"},
		{`{"review_score":80}`, "review_score (80) must be below decline_score (80)"},
		{`{"review_score":60,"decline_score":40}`, "review_score (60) must be below decline_score (40)"},
		{`{"decline_score":50}`, "review_score (50) must be below decline_score (50)"},
	}
	for _, tt := range tests {
		p, err := ParsePolicy([]byte(tt.json))
		if err == nil {
			t.Errorf("%.80s: parsed %+v", tt.json, p)
			continue
		}
		if iotpay.ErrorCode(err) != iotpay.EINVALID || !strings.HasPrefix(iotpay.ErrorMessage(err), "risk policy: ") ||
			!strings.Contains(iotpay.ErrorMessage(err), tt.msg) {
			t.Errorf("%.80s: error %q (%s), want %q", tt.json, iotpay.ErrorMessage(err), iotpay.ErrorCode(err), tt.msg)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := (*Policy)(nil).Validate(); err != nil {
		t.Errorf("nil policy: %v", err)
	}
	// Boundaries that are valid.
	for _, s := range []string{
		`{"velocity":[{"scope":"device","window":"1s","max_count":1},{"scope":"account","window":"744h","max_amount":1,"action":"decline"}]}`,
		`{"geofence":{"lat_e7":-900000000,"lon_e7":1800000000,"radius_m":20000000}}`,
		`{"geofence":{"lat_e7":900000000,"lon_e7":-1800000000,"radius_m":1}}`,
		`{"hours":{"from":"00:00","to":"23:59"}}`,
		`{"hours":{"from":"23:59","to":"00:00","zone":"UTC"}}`,
		`{"hours":{"from":"00:00","to":"24:00","zone":"America/Argentina/Buenos_Aires"}}`,
		`{"hours":{"from":"00:00","to":"24:00","zone":"Etc/GMT+5"}}`,
		`{"offline_max":"1s","clock_skew_max":"5m"}`,
		`{"offline_max":"8760h","clock_skew_max":"1s"}`,
		`{"cool_off":{"period":"1s","amount_max":0}}`,
		`{"anomaly":{"min_history":2,"review_z":0.1,"decline_z":100}}`,
		`{"review_score":1,"decline_score":2}`,
		`{"review_score":99,"decline_score":100}`,
		`{"review_score":79}`,
		`{"decline_score":51}`,
	} {
		if _, err := ParsePolicy([]byte(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	// Validate forgets what it resolved when the policy turns invalid.
	p := fullPolicy(t)
	if !p.valid || p.loc == nil || p.from != 6*60 || p.to != 23*60 {
		t.Fatalf("resolved %v %v %d %d", p.valid, p.loc, p.from, p.to)
	}
	p.Hours.Zone = "Nowhere/Atall"
	if err := p.Validate(); err == nil || p.valid || p.loc != nil {
		t.Errorf("revalidated: %v %v", err, p.valid)
	}
}

func TestDurationJSON(t *testing.T) {
	var d Duration
	if err := json.Unmarshal([]byte(`"1h30m"`), &d); err != nil || d.Duration != 90*time.Minute {
		t.Errorf("%v %v", d, err)
	}
	if err := json.Unmarshal([]byte(`null`), &d); err != nil || d.Duration != 90*time.Minute {
		t.Errorf("null: %v %v", d, err)
	}
	for _, s := range []string{`90`, `true`, `"90"`, `""`, `{}`, `"1x"`} {
		if err := json.Unmarshal([]byte(s), &d); iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("%s: %v", s, err)
		}
	}
	b, err := json.Marshal(struct {
		A Duration `json:"a"`
		B Duration `json:"b,omitzero"`
	}{A: dur(1500 * time.Millisecond)})
	if err != nil || string(b) != `{"a":"1.5s"}` {
		t.Errorf("%s %v", b, err)
	}
}

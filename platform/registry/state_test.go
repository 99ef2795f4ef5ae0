package registry

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/iotpay/iotpay/wire"
)

func TestApplyReport(t *testing.T) {
	good := bytes.Repeat([]byte{0xab}, 32)
	allowed := []Firmware{{Version: "1.0", Measurement: strings.ToUpper(hex.EncodeToString(good))}}
	now := time.UnixMilli(1_700_000_000_000)
	st := NewState("dev_x")
	bat, lat, lon := int64(55), int64(10), int64(-20)
	tampered, unattested := ApplyReport(st, &wire.Report{Firmware: "1.0", Measurement: good, Battery: &bat, LatE7: &lat, LonE7: &lon,
		Num: map[string]int64{"stock": 4}, Str: map[string]string{"mode": "eco"}}, allowed, now)
	if tampered || unattested || !st.Attested || *st.Battery != 55 || st.Location.LonE7 != -20 || st.Version != 1 ||
		st.Reported["stock"] != 4.0 || st.Reported["mode"] != "eco" || !st.ReportedAt.Equal(now) {
		t.Fatalf("first report: %+v", st)
	}
	// Another image under the allowed version: not attested, and said once.
	other := bytes.Repeat([]byte{0xcd}, 32)
	if _, unattested := ApplyReport(st, &wire.Report{Firmware: "1.0", Measurement: other}, allowed, now); !unattested || st.Attested {
		t.Fatalf("unknown image: attested %v", st.Attested)
	}
	if _, unattested := ApplyReport(st, &wire.Report{Firmware: "1.0", Measurement: other}, allowed, now); unattested {
		t.Fatal("the same unattested firmware reported twice")
	}
	if tampered, _ := ApplyReport(st, &wire.Report{Tamper: true}, allowed, now); !tampered || !st.Tamper {
		t.Fatal("tamper not recorded")
	}
	if tampered, _ := ApplyReport(st, &wire.Report{}, allowed, now); tampered || !st.Tamper {
		t.Fatal("a report without the flag cleared it, or raised it again")
	}
	// The applied desired version never goes beyond what was desired.
	st.DesiredVersion = 2
	ApplyReport(st, &wire.Report{Applied: 5}, allowed, now)
	ApplyReport(st, &wire.Report{Applied: 2}, allowed, now)
	if st.Applied != 2 {
		t.Fatalf("applied %d", st.Applied)
	}
	if Attests(allowed, "1.0", nil) || Attests(allowed, "2.0", good) || !Attests(allowed, "1.0", good) {
		t.Fatal("Attests")
	}
}

func TestCheckShadow(t *testing.T) {
	for name, tc := range map[string]struct {
		m    map[string]any
		want string
	}{
		"scalars":  {map[string]any{"a": 1.0, "b": "x", "c": true}, ""},
		"fraction": {map[string]any{"a": 1.5}, "integer"},
		"object":   {map[string]any{"a": map[string]any{}}, "must be"},
		"long":     {map[string]any{"a": strings.Repeat("x", ShadowValueLenMax+1)}, "too long"},
		"empty":    {map[string]any{"": 1.0}, "bad field name"},
	} {
		err := checkShadow("desired", tc.m)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

package wire_test

import (
	"crypto/rand"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

func ptr(v int64) *int64 { return &v }

// reportRequest is a state report with every field set.
func reportRequest() *wire.Request {
	r := eventRequest()
	r.Event = &wire.Event{Type: wire.EventState}
	r.Report = &wire.Report{Firmware: "2.4.1", Measurement: seq(wire.MeasurementBytes, 0x30), Tamper: true,
		Battery: ptr(87), LatE7: ptr(488_566_000), LonE7: ptr(23_522_000),
		Num: map[string]int64{"stock_a1": 4}, Str: map[string]string{"mode": "eco"}, Applied: 3}
	return r
}

func TestReportValidate(t *testing.T) {
	dev := testKey(t, "device")
	for name, tc := range map[string]struct {
		mutate func(*wire.Report)
		want   string // "" valid
	}{
		"full":                {func(*wire.Report) {}, ""},
		"measurement size":    {func(r *wire.Report) { r.Measurement = r.Measurement[:31] }, "measurement must be 32 bytes"},
		"measurement without": {func(r *wire.Report) { r.Firmware = "" }, "needs its version"},
		"battery":             {func(r *wire.Report) { r.Battery = ptr(101) }, "battery"},
		"half a location":     {func(r *wire.Report) { r.LonE7 = nil }, "both latitude and longitude"},
		"latitude":            {func(r *wire.Report) { r.LatE7 = ptr(90e7 + 1) }, "out of range"},
		"field twice":         {func(r *wire.Report) { r.Str["stock_a1"] = "x" }, "reported twice"},
		"control character":   {func(r *wire.Report) { r.Str["mode"] = "e\x07co" }, "bad field"},
		"too many fields": {func(r *wire.Report) {
			for i := range wire.ReportFieldsMax {
				r.Num[strings.Repeat("k", i+1)] = 1
			}
		}, "more than"},
	} {
		t.Run(name, func(t *testing.T) {
			r := reportRequest()
			tc.mutate(r.Report)
			_, err := wire.SignRequest(wire.Intl, dev, nil, r)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || iotpay.ErrorCode(err) != iotpay.EINVALID) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	// A state event without a report says nothing.
	r := reportRequest()
	r.Report = nil
	if _, err := wire.SignRequest(wire.Intl, dev, nil, r); err == nil {
		t.Fatal("a state event without a report signed")
	}
	// A report rides with any event, and round-trips.
	r = eventRequest()
	r.Report = &wire.Report{Battery: ptr(12)}
	b, err := wire.SignRequest(wire.Intl, dev, nil, r)
	if err != nil {
		t.Fatal(err)
	}
	_, got, err := wire.ParseRequest(b)
	if err != nil || got.Report == nil || *got.Report.Battery != 12 {
		t.Fatalf("parsed %+v, %v", got, err)
	}
}

func TestDesired(t *testing.T) {
	for _, suite := range []wire.Suite{wire.Intl, wire.GM} {
		t.Run(suite.Name(), func(t *testing.T) {
			key := suiteKey(t, suite, "platform")
			d := &wire.Desired{Device: testDevice, Version: 4, Num: map[string]int64{"max_kw": 11}, Str: map[string]string{"mode": "eco"}, TimeMs: 1_750_000_000_000}
			b, err := wire.SignDesired(suite, key, rand.Reader, platformKid, d)
			if err != nil {
				t.Fatal(err)
			}
			got, err := wire.OpenDesired(suite, key.Public(), b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(d, got); diff != "" {
				t.Fatalf("desired changed (-sent +opened):\n%s", diff)
			}
			// Neither a receipt nor a request: the content type tells them apart.
			if _, err := wire.OpenReceipt(suite, key.Public(), b); err == nil {
				t.Fatal("a desired state opened as a receipt")
			}
			other := suiteKey(t, suite, "device")
			if _, err := wire.OpenDesired(suite, other.Public(), b); iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
				t.Fatalf("under another key: %v", err)
			}
			rc, _ := wire.SignReceipt(suite, key, rand.Reader, platformKid, testReceipt())
			if _, err := wire.OpenDesired(suite, key.Public(), rc); err == nil {
				t.Fatal("a receipt opened as a desired state")
			}
		})
	}
}

func FuzzOpenDesired(f *testing.F) {
	_, platform := fuzzKeys(f)
	b, err := wire.SignDesired(wire.Intl, platform, nil, platformKid, &wire.Desired{Device: testDevice, Version: 1, Num: map[string]int64{"a": 1}, TimeMs: 1})
	if err != nil {
		f.Fatal(err)
	}
	addSeeds(f, b)
	addGarbage(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := wire.OpenDesired(wire.Intl, &platform.PublicKey, data)
		if err != nil {
			return
		}
		again, err := wire.SignDesired(wire.Intl, platform, nil, platformKid, d)
		if err != nil {
			t.Fatal(err)
		}
		if d2, err := wire.OpenDesired(wire.Intl, &platform.PublicKey, again); err != nil || !cmp.Equal(d, d2, equateEmpty) {
			t.Fatalf("re-signed desired state: %v", err)
		}
	})
}

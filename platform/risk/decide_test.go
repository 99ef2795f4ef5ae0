package risk

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var now = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func dur(d time.Duration) Duration { return Duration{d} }

// valid validates p for a test.
func valid(t testing.TB, p *Policy) *Policy {
	t.Helper()
	if err := p.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return p
}

// input is a payment that passes every check of fullPolicy.
func input() *Input {
	return &Input{
		Now: now, Amount: 250, Currency: "EUR", DeviceTime: now.Add(2 * time.Second),
		Enrolled: now.Add(-90 * 24 * time.Hour),
		Firmware: Firmware{Version: "1.4.2", Attested: true, Reported: true},
		Location: &Point{LatE7: 488_566_000, LonE7: 23_522_000},
		Velocity: []Counted{{Count: 1, Amount: 250}, {Count: 10, Amount: 2500}},
		History:  history(30, 200, 300),
	}
}

// fullPolicy has every check.
func fullPolicy(t testing.TB) *Policy {
	return valid(t, &Policy{
		Velocity: []VelocityRule{
			{Scope: ScopeDevice, Window: dur(time.Minute), MaxCount: 3},
			{Scope: ScopeAccount, Window: dur(24 * time.Hour), MaxCount: 50, MaxAmount: 50_000, Action: Review},
		},
		Geofence:                &Geofence{LatE7: 488_566_000, LonE7: 23_522_000, RadiusM: 5000},
		Hours:                   &Hours{From: "06:00", To: "23:00", Zone: "Europe/Paris"},
		RequireAttestedFirmware: true,
		DeclineTamper:           true,
		OfflineMax:              dur(time.Hour),
		ClockSkewMax:            dur(30 * time.Second),
		CoolOff:                 &CoolOff{Period: dur(7 * 24 * time.Hour), AmountMax: 1000},
		Anomaly:                 &Anomaly{},
	})
}

// history is n amounts cycling from lo to hi.
func history(n int, lo, hi int64) Stats {
	var s Stats
	for i := range n {
		s = s.Add(lo + int64(i)*(hi-lo)/int64(max(n-1, 1)))
	}
	return s
}

func codes(d Decision) []string {
	var cs []string
	for _, r := range d.Reasons {
		cs = append(cs, r.Code)
	}
	return cs
}

func TestDecideEmpty(t *testing.T) {
	parsed, err := ParsePolicy([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*Policy{
		"nil": nil, "zero": {}, "parsed": parsed, "thresholds only": valid(t, &Policy{ReviewScore: 10, DeclineScore: 20}),
	} {
		in := input()
		in.Tamper, in.Location, in.Firmware, in.OfflineFor = true, nil, Firmware{}, 1000*time.Hour
		got := Decide(p, in)
		if diff := cmp.Diff(Decision{Outcome: Approve}, got); diff != "" {
			t.Errorf("%s: (-want +got)\n%s", name, diff)
		}
	}
	if got := Decide(fullPolicy(t), input()); got.Outcome != Approve || got.Score != 0 || len(got.Reasons) != 0 {
		t.Errorf("full policy, ordinary payment: %+v", got)
	}
}

func TestVelocity(t *testing.T) {
	count := &VelocityRule{Scope: ScopeDevice, Window: dur(time.Minute), MaxCount: 2}
	amount := &VelocityRule{Scope: ScopeAccount, Window: dur(time.Hour), MaxAmount: 1000}
	both := &VelocityRule{Scope: ScopeDevice, Window: dur(time.Hour), MaxCount: 2, MaxAmount: 1000}
	withAction := func(r *VelocityRule, a Outcome) *VelocityRule { c := *r; c.Action = a; return &c }
	tests := []struct {
		name   string
		rule   *VelocityRule
		before Counted
		amount int64
		want   Decision
	}{
		{"count below", count, Counted{Count: 0}, 100, Decision{Outcome: Approve}},
		{"count at max", count, Counted{Count: 1}, 100, Decision{Outcome: Approve}},
		{"count above", count, Counted{Count: 2}, 100, Decision{Outcome: Decline, Score: 100, Reasons: []Reason{
			{CodeVelocityCount, "3 payments in 1m0s on this device, max 2", 100}}}},
		{"count above, explicit decline", withAction(count, Decline), Counted{Count: 2}, 100, Decision{Outcome: Decline, Score: 100,
			Reasons: []Reason{{CodeVelocityCount, "3 payments in 1m0s on this device, max 2", 100}}}},
		{"count above, review", withAction(count, Review), Counted{Count: 5}, 100, Decision{Outcome: Review, Score: 50, Reasons: []Reason{
			{CodeVelocityCount, "6 payments in 1m0s on this device, max 2", 50}}}},
		{"amount at max", amount, Counted{Count: 4, Amount: 700}, 300, Decision{Outcome: Approve}},
		{"amount above", amount, Counted{Count: 4, Amount: 700}, 301, Decision{Outcome: Decline, Score: 100, Reasons: []Reason{
			{CodeVelocityAmount, "10.01 EUR in 1h0m0s on the payer's account, max 10.00 EUR", 100}}}},
		{"amount alone above", amount, Counted{}, 1001, Decision{Outcome: Decline, Score: 100, Reasons: []Reason{
			{CodeVelocityAmount, "10.01 EUR in 1h0m0s on the payer's account, max 10.00 EUR", 100}}}},
		{"both above, decline", both, Counted{Count: 2, Amount: 900}, 200, Decision{Outcome: Decline, Score: 100, Reasons: []Reason{
			{CodeVelocityCount, "3 payments in 1h0m0s on this device, max 2", 100},
			{CodeVelocityAmount, "11.00 EUR in 1h0m0s on this device, max 10.00 EUR", 100}}}},
		{"both above, review counts once", withAction(both, Review), Counted{Count: 2, Amount: 900}, 200, Decision{Outcome: Review, Score: 50,
			Reasons: []Reason{
				{CodeVelocityCount, "3 payments in 1h0m0s on this device, max 2", 50},
				{CodeVelocityAmount, "11.00 EUR in 1h0m0s on this device, max 10.00 EUR", 0}}}},
		{"saturating", both, Counted{Count: math.MaxInt64, Amount: math.MaxInt64}, 1, Decision{Outcome: Decline, Score: 100, Reasons: []Reason{
			{CodeVelocityCount, "9223372036854775807 payments in 1h0m0s on this device, max 2", 100},
			{CodeVelocityAmount, "92233720368547758.07 EUR in 1h0m0s on this device, max 10.00 EUR", 100}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := valid(t, &Policy{Velocity: []VelocityRule{*tt.rule}})
			in := input()
			in.Amount, in.Velocity = tt.amount, []Counted{tt.before}
			if diff := cmp.Diff(tt.want, Decide(p, in)); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestVelocityRulesInOrder(t *testing.T) {
	p := valid(t, &Policy{Velocity: []VelocityRule{
		{Scope: ScopeDevice, Window: dur(time.Minute), MaxCount: 1, Action: Review},
		{Scope: ScopeDevice, Window: dur(time.Hour), MaxCount: 100},
		{Scope: ScopeAccount, Window: dur(24 * time.Hour), MaxAmount: 100, Action: Review},
	}})
	in := input()
	in.Velocity = []Counted{{Count: 1}, {Count: 1}, {Amount: 1}}
	got := Decide(p, in)
	if got.Outcome != Decline || got.Score != 100 || !slices.Equal(codes(got), []string{CodeVelocityCount, CodeVelocityAmount}) {
		t.Errorf("two review rules breached: %+v", got)
	}
	// A count the caller did not pass fails towards review.
	in.Velocity = []Counted{{}}
	got = Decide(p, in)
	want := Decision{Outcome: Decline, Score: 100, Reasons: []Reason{
		{CodeVelocityUnknown, "no count for the 1h0m0s window on this device", 50},
		{CodeVelocityUnknown, "no count for the 24h0m0s window on the payer's account", 50},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("missing counts (-want +got)\n%s", diff)
	}
	if w := p.Windows(); len(w) != 3 || w[2].Window.Duration != 24*time.Hour {
		t.Errorf("Windows = %+v", w)
	}
	p.Windows()[0].MaxCount = 99
	if p.Velocity[0].MaxCount != 1 {
		t.Error("Windows returned the policy's own slice")
	}
	if (*Policy)(nil).Windows() != nil {
		t.Error("nil policy has windows")
	}
}

// north returns a point metres north of p along its meridian, and the
// distance the haversine formula must give for it.
func north(p Point, dLatE7 int64) (Point, float64) {
	return Point{LatE7: p.LatE7 + dLatE7, LonE7: p.LonE7}, earthRadiusM * float64(dLatE7) * math.Pi / 180 / 1e7
}

func TestGeofence(t *testing.T) {
	centre := Point{LatE7: 488_566_000, LonE7: 23_522_000}
	edge, m := north(centre, 90_000) // 1000.75 m
	if m < 1000.5 || m > 1001 {
		t.Fatalf("test point %v m away", m)
	}
	fence := func(r int64) *Policy {
		return valid(t, &Policy{Geofence: &Geofence{LatE7: centre.LatE7, LonE7: centre.LonE7, RadiusM: r}})
	}
	tests := []struct {
		name   string
		p      *Policy
		at     *Point
		want   Outcome
		reason Reason
	}{
		{"centre", fence(1), &centre, Approve, Reason{}},
		{"inside the edge", fence(1001), &edge, Approve, Reason{}},
		{"outside the edge", fence(1000), &edge, Decline, Reason{CodeGeofence, "device 1001 m from the geofence centre, radius 1000 m", 100}},
		{"far away", fence(5000), &Point{LatE7: 515_072_000, LonE7: -1_276_000}, Decline,
			Reason{CodeGeofence, "device 343530 m from the geofence centre, radius 5000 m", 100}},
		{"across the antimeridian", valid(t, &Policy{Geofence: &Geofence{LatE7: 0, LonE7: 1_799_990_000, RadiusM: 300}}),
			&Point{LatE7: 0, LonE7: -1_799_990_000}, Approve, Reason{}},
		{"unknown", fence(1000), nil, Review, Reason{CodeLocationUnknown, "device location unknown; the product has a geofence", 50}},
		{"invalid", fence(1000), &Point{LatE7: 91 * 1e7}, Decline, Reason{CodeGeofence, "device location 910000000,0 is invalid", 100}},
		{"no fence", valid(t, &Policy{}), nil, Approve, Reason{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := input()
			in.Location = tt.at
			got := Decide(tt.p, in)
			want := Decision{Outcome: tt.want}
			if tt.reason.Code != "" {
				want.Score, want.Reasons = tt.reason.Points, []Reason{tt.reason}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
	if d := distanceM(centre, edge); math.Abs(d-m) > 1e-6 {
		t.Errorf("distance along a meridian = %v, want %v", d, m)
	}
}

func TestHours(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		from, to, zone string
		now            string
		in             bool
	}{
		{"08:00", "20:00", "", "2026-03-10T07:59:59Z", false},
		{"08:00", "20:00", "", "2026-03-10T08:00:00Z", true},
		{"08:00", "20:00", "", "2026-03-10T19:59:59Z", true},
		{"08:00", "20:00", "", "2026-03-10T20:00:00Z", false},
		{"08:00", "20:00", "UTC", "2026-03-10T20:00:00Z", false},
		// Wrapping midnight.
		{"22:00", "06:00", "", "2026-03-10T21:59:00Z", false},
		{"22:00", "06:00", "", "2026-03-10T22:00:00Z", true},
		{"22:00", "06:00", "", "2026-03-10T23:59:59Z", true},
		{"22:00", "06:00", "", "2026-03-11T00:00:00Z", true},
		{"22:00", "06:00", "", "2026-03-11T05:59:00Z", true},
		{"22:00", "06:00", "", "2026-03-11T06:00:00Z", false},
		{"22:00", "06:00", "", "2026-03-11T12:00:00Z", false},
		{"20:00", "24:00", "", "2026-03-10T23:59:00Z", true},
		{"20:00", "24:00", "", "2026-03-11T00:00:00Z", false},
		{"00:00", "24:00", "", "2026-03-11T00:00:00Z", true},
		// Zones: Berlin is UTC+1 in winter, UTC+2 in summer.
		{"08:00", "20:00", "Europe/Berlin", "2026-01-15T06:59:00Z", false},
		{"08:00", "20:00", "Europe/Berlin", "2026-01-15T07:00:00Z", true},
		{"08:00", "20:00", "Europe/Berlin", "2026-01-15T18:59:00Z", true},
		{"08:00", "20:00", "Europe/Berlin", "2026-01-15T19:00:00Z", false},
		{"08:00", "20:00", "Europe/Berlin", "2026-07-15T05:59:00Z", false},
		{"08:00", "20:00", "Europe/Berlin", "2026-07-15T06:00:00Z", true},
		{"08:00", "20:00", "Europe/Berlin", "2026-07-15T18:00:00Z", false},
		// Half-hour offset (UTC+5:30), and a wrap in a zone west of UTC.
		{"09:00", "17:00", "Asia/Kolkata", "2026-03-10T03:29:00Z", false},
		{"09:00", "17:00", "Asia/Kolkata", "2026-03-10T03:30:00Z", true},
		{"21:00", "03:00", "America/New_York", "2026-03-10T02:00:00Z", true},  // 22:00 EDT
		{"21:00", "03:00", "America/New_York", "2026-03-10T07:00:00Z", false}, // 03:00 EDT
		{"21:00", "03:00", "America/New_York", "2026-03-10T06:59:00Z", true},
	}
	for _, tt := range tests {
		p := valid(t, &Policy{Hours: &Hours{From: tt.from, To: tt.to, Zone: tt.zone}})
		in := input()
		in.Now = at(tt.now)
		in.DeviceTime = in.Now
		got := Decide(p, in)
		if gotIn := len(got.Reasons) == 0; gotIn != tt.in {
			t.Errorf("%s-%s %s at %s: in window %v, want %v (%+v)", tt.from, tt.to, tt.zone, tt.now, gotIn, tt.in, got)
		}
		if !tt.in && (got.Outcome != Review || got.Score != PointsOutsideHours || got.Reasons[0].Code != CodeOutsideHours) {
			t.Errorf("%s-%s %s at %s: %+v", tt.from, tt.to, tt.zone, tt.now, got)
		}
	}
	p := valid(t, &Policy{Hours: &Hours{From: "08:00", To: "20:00", Zone: "Europe/Berlin"}})
	in := input()
	in.Now = at("2026-01-15T22:15:00Z")
	if got, want := Decide(p, in).Reasons[0].Detail, "payment at 23:15 Europe/Berlin, outside 08:00-20:00"; got != want {
		t.Errorf("detail %q, want %q", got, want)
	}
	p = valid(t, &Policy{Hours: &Hours{From: "20:00", To: "24:00"}})
	if got, want := Decide(p, input()).Reasons[0].Detail, "payment at 12:00 UTC, outside 20:00-24:00"; got != want {
		t.Errorf("detail %q, want %q", got, want)
	}
}

func TestFirmwareAndTamper(t *testing.T) {
	tests := []struct {
		name    string
		require bool
		decline bool
		fw      Firmware
		tamper  bool
		want    []Reason
	}{
		{"attested", true, true, Firmware{Version: "2.0", Attested: true, Reported: true}, false, nil},
		{"not attested, not required", false, false, Firmware{Version: "2.0", Reported: true}, false, nil},
		{"not attested", true, false, Firmware{Version: "2.0", Reported: true}, false,
			[]Reason{{CodeFirmwareNotAttested, `firmware "2.0" not attested`, 100}}},
		{"never reported", true, false, Firmware{}, false,
			[]Reason{{CodeFirmwareNotAttested, "device never reported its firmware; the product requires attested firmware", 100}}},
		{"tamper", false, true, Firmware{}, true, []Reason{{CodeTamper, "device reports tampering", 100}}},
		{"tamper, not declined", false, false, Firmware{}, true, nil},
		{"no tamper", false, true, Firmware{}, false, nil},
		{"both", true, true, Firmware{Version: "x", Reported: true}, true, []Reason{
			{CodeFirmwareNotAttested, `firmware "x" not attested`, 100}, {CodeTamper, "device reports tampering", 100}}},
	}
	for _, tt := range tests {
		p := valid(t, &Policy{RequireAttestedFirmware: tt.require, DeclineTamper: tt.decline})
		in := input()
		in.Firmware, in.Tamper = tt.fw, tt.tamper
		want := Decision{Outcome: Approve, Reasons: tt.want}
		if tt.want != nil {
			want.Outcome, want.Score = Decline, 100
		}
		if diff := cmp.Diff(want, Decide(p, in)); diff != "" {
			t.Errorf("%s: (-want +got)\n%s", tt.name, diff)
		}
	}
}

func TestOfflineAndClockSkew(t *testing.T) {
	p := valid(t, &Policy{OfflineMax: dur(time.Hour), ClockSkewMax: dur(30 * time.Second)})
	tests := []struct {
		name    string
		offline time.Duration
		device  time.Time
		want    Decision
	}{
		{"connected", 0, now, Decision{Outcome: Approve}},
		{"offline at max", time.Hour, now, Decision{Outcome: Approve}},
		{"offline above", time.Hour + time.Second, now, Decision{Outcome: Approve, Score: 30, Reasons: []Reason{
			{CodeOfflineTooLong, "device offline 1h0m1s before this payment, max 1h0m0s", 30}}}},
		{"skew ahead at max", 0, now.Add(30 * time.Second), Decision{Outcome: Approve}},
		{"skew behind at max", 0, now.Add(-30 * time.Second), Decision{Outcome: Approve}},
		{"skew ahead", 0, now.Add(31 * time.Second), Decision{Outcome: Approve, Score: 30, Reasons: []Reason{
			{CodeClockSkew, "device clock 31s ahead of the platform's, max 30s", 30}}}},
		{"skew behind", 0, now.Add(-30*time.Second - time.Millisecond), Decision{Outcome: Approve, Score: 30, Reasons: []Reason{
			{CodeClockSkew, "device clock 30.001s behind the platform's, max 30s", 30}}}},
		{"no device time", 0, time.Time{}, Decision{Outcome: Approve, Score: 30, Reasons: []Reason{
			{CodeClockSkew, "device time missing", 30}}}},
		{"both", 2 * time.Hour, now.Add(-time.Minute), Decision{Outcome: Review, Score: 60, Reasons: []Reason{
			{CodeOfflineTooLong, "device offline 2h0m0s before this payment, max 1h0m0s", 30},
			{CodeClockSkew, "device clock 1m0s behind the platform's, max 30s", 30}}}},
	}
	for _, tt := range tests {
		in := input()
		in.OfflineFor, in.DeviceTime = tt.offline, tt.device
		if diff := cmp.Diff(tt.want, Decide(p, in)); diff != "" {
			t.Errorf("%s: (-want +got)\n%s", tt.name, diff)
		}
	}
	// An extreme skew does not overflow.
	in := input()
	in.DeviceTime = time.Date(1, 1, 2, 0, 0, 0, 0, time.UTC)
	if got := Decide(p, in); got.Score != 30 || !strings.Contains(got.Reasons[0].Detail, "behind") {
		t.Errorf("extreme skew: %+v", got)
	}
}

func TestCoolOff(t *testing.T) {
	p := valid(t, &Policy{CoolOff: &CoolOff{Period: dur(24 * time.Hour), AmountMax: 1000}})
	tests := []struct {
		name     string
		enrolled time.Time
		amount   int64
		want     string // detail; "" approves
	}{
		{"new, at max", now.Add(-time.Hour), 1000, ""},
		{"new, above", now.Add(-time.Hour), 1001, "amount 10.01 EUR above 10.00 EUR from a device enrolled 1h0m0s ago (cool-off 24h0m0s)"},
		{"just before the end", now.Add(-24*time.Hour + time.Nanosecond), 5000,
			"amount 50.00 EUR above 10.00 EUR from a device enrolled 23h59m59.999999999s ago (cool-off 24h0m0s)"},
		{"at the end", now.Add(-24 * time.Hour), 5000, ""},
		{"old", now.Add(-30 * 24 * time.Hour), 5000, ""},
		{"unknown enrollment", time.Time{}, 1001, "amount 10.01 EUR above 10.00 EUR; the device's enrollment time is unknown (cool-off 24h0m0s)"},
		{"unknown enrollment, small", time.Time{}, 999, ""},
		{"enrolled in the future", now.Add(time.Minute), 1001, "amount 10.01 EUR above 10.00 EUR from a device enrolled 0s ago (cool-off 24h0m0s)"},
	}
	for _, tt := range tests {
		in := input()
		in.Enrolled, in.Amount = tt.enrolled, tt.amount
		want := Decision{Outcome: Approve}
		if tt.want != "" {
			want = Decision{Outcome: Review, Score: 50, Reasons: []Reason{{CodeCoolOff, tt.want, 50}}}
		}
		if diff := cmp.Diff(want, Decide(p, in)); diff != "" {
			t.Errorf("%s: (-want +got)\n%s", tt.name, diff)
		}
	}
	// amount_max 0: every payment of a new device is reviewed.
	p = valid(t, &Policy{CoolOff: &CoolOff{Period: dur(time.Hour)}})
	in := input()
	in.Enrolled, in.Amount = now, 1
	if got := Decide(p, in); got.Outcome != Review {
		t.Errorf("amount_max 0: %+v", got)
	}
}

func TestAnomaly(t *testing.T) {
	// A history of one amount has no spread: MinLogStdDev rules, so z is
	// 8·log10(amount/100): 10^0.5 × 100 ≈ 316.2 reviews, 1000 declines.
	flat := history(25, 100, 100)
	spread := history(40, 100, 400)
	tests := []struct {
		name   string
		a      *Anomaly
		hist   Stats
		amount int64
		want   Outcome
		points int
	}{
		{"usual", &Anomaly{}, flat, 100, Approve, 0},
		{"below usual", &Anomaly{}, flat, 1, Approve, 0},
		{"just below review", &Anomaly{}, flat, 316, Approve, 0},
		{"just above review", &Anomaly{}, flat, 317, Review, 50},
		{"halfway", &Anomaly{}, flat, 562, Review, 59}, // z ≈ 5.998
		{"just below decline", &Anomaly{}, flat, 999, Review, 69},
		{"just above decline", &Anomaly{}, flat, 1001, Decline, 100},
		{"short history", &Anomaly{}, history(19, 100, 100), 1_000_000, Approve, 0},
		{"own min_history", &Anomaly{MinHistory: 5}, history(5, 100, 100), 1_000_000, Decline, 100},
		{"own thresholds", &Anomaly{ReviewZ: 1, DeclineZ: 3}, flat, 200, Review, 64}, // z = 8·log10(2) ≈ 2.41
		{"spread, usual", &Anomaly{}, spread, 400, Approve, 0},
		{"spread, outlier", &Anomaly{}, spread, 100_000, Decline, 100},
	}
	for _, tt := range tests {
		p := valid(t, &Policy{Anomaly: tt.a})
		in := input()
		in.History, in.Amount = tt.hist, tt.amount
		got := Decide(p, in)
		if got.Outcome != tt.want || got.Score != tt.points {
			t.Errorf("%s: z %.3f: %+v, want %s %d", tt.name, tt.hist.Z(tt.amount), got, tt.want, tt.points)
		}
		if tt.want != Approve && (len(got.Reasons) != 1 || got.Reasons[0].Code != CodeAnomaly) {
			t.Errorf("%s: reasons %+v", tt.name, got.Reasons)
		}
	}
	p := valid(t, &Policy{Anomaly: &Anomaly{}})
	in := input()
	in.History, in.Amount = flat, 500
	want := "amount 5.00 EUR is 5.6 standard deviations above this device's 25 payments (typical 1.00 EUR)"
	if got := Decide(p, in).Reasons[0].Detail; got != want {
		t.Errorf("detail %q, want %q", got, want)
	}
}

func TestScoring(t *testing.T) {
	p := fullPolicy(t)
	offline := func(in *Input) { in.OfflineFor = 2 * time.Hour }
	skew := func(in *Input) { in.DeviceTime = now.Add(time.Minute) }
	noLocation := func(in *Input) { in.Location = nil }
	night := func(in *Input) {
		in.Now, in.DeviceTime = now.Add(11*time.Hour+30*time.Minute), now.Add(11*time.Hour+30*time.Minute)
	}
	tamper := func(in *Input) { in.Tamper = true }
	firmware := func(in *Input) { in.Firmware.Attested = false }
	away := func(in *Input) { in.Location = &Point{LatE7: 0, LonE7: 0} }
	tests := []struct {
		name    string
		p       *Policy
		changes []func(*Input)
		outcome Outcome
		score   int
		codes   []string
	}{
		{"one weak", p, []func(*Input){offline}, Approve, 30, []string{CodeOfflineTooLong}},
		{"two weak", p, []func(*Input){offline, skew}, Review, 60, []string{CodeOfflineTooLong, CodeClockSkew}},
		{"one strong", p, []func(*Input){noLocation}, Review, 50, []string{CodeLocationUnknown}},
		{"strong and weak", p, []func(*Input){noLocation, offline}, Decline, 80, []string{CodeLocationUnknown, CodeOfflineTooLong}},
		{"capped", p, []func(*Input){noLocation, night, offline, skew}, Decline, 100,
			[]string{CodeLocationUnknown, CodeOutsideHours, CodeOfflineTooLong, CodeClockSkew}},
		{"hard with soft", p, []func(*Input){tamper, offline}, Decline, 100, []string{CodeTamper, CodeOfflineTooLong}},
		{"all hard kept", p, []func(*Input){tamper, firmware, away}, Decline, 100,
			[]string{CodeGeofence, CodeFirmwareNotAttested, CodeTamper}},
		{"own thresholds: weak reviews", valid(t, &Policy{OfflineMax: dur(time.Hour), ReviewScore: 30}),
			[]func(*Input){offline}, Review, 30, []string{CodeOfflineTooLong}},
		{"own thresholds: weak declines", valid(t, &Policy{OfflineMax: dur(time.Hour), ReviewScore: 10, DeclineScore: 30}),
			[]func(*Input){offline}, Decline, 30, []string{CodeOfflineTooLong}},
		{"own thresholds: strong approves", valid(t, &Policy{Geofence: p.Geofence, ReviewScore: 60, DeclineScore: 90}),
			[]func(*Input){noLocation}, Approve, 50, []string{CodeLocationUnknown}},
	}
	for _, tt := range tests {
		in := input()
		for _, f := range tt.changes {
			f(in)
		}
		got := Decide(tt.p, in)
		if got.Outcome != tt.outcome || got.Score != tt.score || !slices.Equal(codes(got), tt.codes) {
			t.Errorf("%s: %+v, want %s %d %v", tt.name, got, tt.outcome, tt.score, tt.codes)
		}
	}
}

// everything makes every check of fullPolicy fire.
func everything() *Input {
	in := input()
	in.Velocity = []Counted{{Count: 3, Amount: 100}, {Count: 50, Amount: 49_999}}
	in.Location = &Point{LatE7: 515_072_000, LonE7: -1_276_000}
	in.Now = now.Add(11*time.Hour + 30*time.Minute)
	in.DeviceTime = in.Now.Add(-5 * time.Minute)
	in.Firmware = Firmware{Version: "0.9", Reported: true}
	in.Tamper = true
	in.OfflineFor = 3 * time.Hour
	in.Enrolled = in.Now.Add(-time.Hour)
	in.Amount = 25_000
	return in
}

func TestReasonOrderAndJSON(t *testing.T) {
	p := fullPolicy(t)
	got := Decide(p, everything())
	want := []string{CodeVelocityCount, CodeVelocityCount, CodeVelocityAmount, CodeGeofence, CodeOutsideHours,
		CodeFirmwareNotAttested, CodeTamper, CodeOfflineTooLong, CodeClockSkew, CodeCoolOff, CodeAnomaly}
	if !slices.Equal(codes(got), want) {
		t.Errorf("codes %v, want %v", codes(got), want)
	}
	b1, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		b2, _ := json.Marshal(Decide(p, everything()))
		if !bytes.Equal(b1, b2) {
			t.Fatalf("not deterministic:\n%s\n%s", b1, b2)
		}
	}
	golden := `{"outcome":"decline","score":100,"reasons":[` +
		`{"code":"velocity_count","detail":"4 payments in 1m0s on this device, max 3","points":100},` +
		`{"code":"velocity_count","detail":"51 payments in 24h0m0s on the payer's account, max 50","points":50},` +
		`{"code":"velocity_amount","detail":"749.99 EUR in 24h0m0s on the payer's account, max 500.00 EUR","points":0},` +
		`{"code":"geofence","detail":"device 343530 m from the geofence centre, radius 5000 m","points":100},` +
		`{"code":"outside_hours","detail":"payment at 00:30 Europe/Paris, outside 06:00-23:00","points":50},` +
		`{"code":"firmware_not_attested","detail":"firmware \"0.9\" not attested","points":100},` +
		`{"code":"tamper","detail":"device reports tampering","points":100},` +
		`{"code":"offline_too_long","detail":"device offline 3h0m0s before this payment, max 1h0m0s","points":30},` +
		`{"code":"clock_skew","detail":"device clock 5m0s behind the platform's, max 30s","points":30},` +
		`{"code":"cool_off","detail":"amount 250.00 EUR above 10.00 EUR from a device enrolled 1h0m0s ago (cool-off 168h0m0s)","points":50},` +
		`{"code":"anomaly","detail":"amount 250.00 EUR is 16.0 standard deviations above this device's 30 payments (typical 2.48 EUR)","points":100}]}`
	if string(b1) != golden {
		t.Errorf("JSON\n%s\nwant\n%s", b1, golden)
	}
	var back Decision
	if err := json.Unmarshal(b1, &back); err != nil || !cmp.Equal(back, got) {
		t.Errorf("round trip: %v %+v", err, back)
	}
}

func TestDecideUnvalidated(t *testing.T) {
	// A policy built in Go and not validated is validated on a copy.
	p := &Policy{Hours: &Hours{From: "08:00", To: "20:00", Zone: "Europe/Berlin"}, OfflineMax: dur(time.Hour)}
	in := input()
	in.Now = time.Date(2026, 1, 15, 6, 30, 0, 0, time.UTC)
	in.OfflineFor = 2 * time.Hour
	got := Decide(p, in)
	if p.valid || p.loc != nil {
		t.Error("Decide wrote the policy")
	}
	if want := Decide(valid(t, p), in); !cmp.Equal(got, want) {
		t.Errorf("unvalidated %+v, validated %+v", got, want)
	}
	bad := &Policy{Hours: &Hours{From: "8am", To: "20:00"}}
	want := Decision{Outcome: Decline, Score: 100, Reasons: []Reason{
		{CodePolicyInvalid, `risk policy: hours.from "8am" must be HH:MM, 00:00 to 23:59`, 100}}}
	if diff := cmp.Diff(want, Decide(bad, input())); diff != "" {
		t.Errorf("invalid policy (-want +got)\n%s", diff)
	}
	if got := Decide(fullPolicy(t), nil); got.Outcome != Decline || got.Reasons[0].Code != CodeInputMissing {
		t.Errorf("nil input: %+v", got)
	}
	if got := Decide(nil, nil); got.Outcome != Approve {
		t.Errorf("nil policy, nil input: %+v", got)
	}
}

// TestDecideInvariants checks random inputs against the full policy: the
// score is in range, the outcome follows the reasons, and a second call
// gives the same decision.
func TestDecideInvariants(t *testing.T) {
	p := fullPolicy(t)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		in := input()
		in.Amount = r.Int64N(1_000_000) + 1
		in.Now = now.Add(time.Duration(r.Int64N(int64(48 * time.Hour))))
		in.DeviceTime = in.Now.Add(time.Duration(r.Int64N(int64(2*time.Minute))) - time.Minute)
		in.Velocity = []Counted{{Count: r.Int64N(5), Amount: r.Int64N(10_000)}, {Count: r.Int64N(60), Amount: r.Int64N(60_000)}}
		in.Location = &Point{LatE7: 488_566_000 + r.Int64N(1_000_000) - 500_000, LonE7: 23_522_000 + r.Int64N(1_000_000) - 500_000}
		if r.IntN(10) == 0 {
			in.Location = nil
		}
		in.Tamper = r.IntN(20) == 0
		in.Firmware.Attested = r.IntN(20) != 0
		in.OfflineFor = time.Duration(r.Int64N(int64(2 * time.Hour)))
		in.Enrolled = in.Now.Add(-time.Duration(r.Int64N(int64(14 * 24 * time.Hour))))
		got := Decide(p, in)
		if got.Score < 0 || got.Score > ScoreMax {
			t.Fatalf("%d: score %d", i, got.Score)
		}
		sum, hard := 0, false
		for _, rs := range got.Reasons {
			sum += rs.Points
			hard = hard || rs.Points == PointsHard
		}
		want := Approve
		switch {
		case hard || min(sum, ScoreMax) >= DefaultDeclineScore:
			want = Decline
		case sum >= DefaultReviewScore:
			want = Review
		}
		if got.Outcome != want || (hard && got.Score != ScoreMax) || (!hard && got.Score != min(sum, ScoreMax)) {
			t.Fatalf("%d: %+v", i, got)
		}
		if again := Decide(p, in); !cmp.Equal(got, again) {
			t.Fatalf("%d: not deterministic", i)
		}
	}
}

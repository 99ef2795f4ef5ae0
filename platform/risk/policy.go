package risk

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/iotpay/iotpay"
)

// Policy bounds. Durations are wall-clock, distances metres, counts
// payments; amounts are minor units of the product's currency.
const (
	PolicyBytesMax  = 64 << 10             // bytes of a policy's JSON
	VelocityMax     = 16                   // velocity rules of one policy
	WindowMin       = time.Second          // shortest velocity window
	WindowMax       = 31 * 24 * time.Hour  // longest velocity window
	RadiusMax       = 20_000_000           // metres: beyond, a geofence is the whole Earth
	LatE7Max        = 90 * 10_000_000      // latitude, degrees × 1e7
	LonE7Max        = 180 * 10_000_000     // longitude, degrees × 1e7
	OfflineMaxLimit = 365 * 24 * time.Hour // longest OfflineMax
	ClockSkewLimit  = 5 * time.Minute      // the platform rejects a larger skew outright
	CoolOffMax      = 365 * 24 * time.Hour // longest cool-off period
	MinHistoryMax   = 1_000_000            // past payments an anomaly may wait for
	ZMax            = 100.0                // largest z threshold: beyond it nothing is anomalous
	zoneMax         = 64                   // bytes of an IANA zone name
	dayMinutes      = 24 * 60
)

// Defaults of a policy's zero fields.
const (
	DefaultReviewScore  = 50  // score at/above which a payment is held for review
	DefaultDeclineScore = 80  // score at/above which a payment is declined
	DefaultMinHistory   = 20  // past payments before the anomaly check runs
	DefaultReviewZ      = 4.0 // z at/above which an amount is reviewed
	DefaultDeclineZ     = 8.0 // z at/above which an amount is declined
)

// Scopes of a velocity rule: whose payments it counts.
const (
	ScopeDevice  = "device"  // the paying device's
	ScopeAccount = "account" // the payer account's, on all its devices
)

// Outcome is what a decision does with a payment.
type Outcome string

// Outcomes.
const (
	Approve Outcome = "approve"
	Decline Outcome = "decline"
	Review  Outcome = "review" // authorized, not captured, until an operator decides
)

// Policy is a product's risk policy. Its zero value approves every payment.
//
// A policy must be valid before Decide uses it: ParsePolicy and Validate
// check it and resolve what Decide needs (the time zone of Hours) once, into
// unexported fields, so a decision does not load a zone. Validate writes the
// policy, so call it before sharing; after that the policy is read-only and
// Decide may use it from many goroutines. A policy changed after Validate
// must be validated again.
type Policy struct {
	Velocity                []VelocityRule `json:"velocity,omitempty"`
	Geofence                *Geofence      `json:"geofence,omitempty"` // the device must be within it, its location known (unknown: review)
	Hours                   *Hours         `json:"hours,omitempty"`    // local time window payments are allowed in (outside: review)
	RequireAttestedFirmware bool           `json:"require_attested_firmware,omitempty"`
	DeclineTamper           bool           `json:"decline_tamper,omitempty"` // tamper flag set: decline
	OfflineMax              Duration       `json:"offline_max,omitzero"`     // offline longer than this before the payment: PointsOffline (0: no check)
	ClockSkewMax            Duration       `json:"clock_skew_max,omitzero"`  // |device time - platform time| above this: PointsClockSkew (0: no check; the platform rejects > 5 min)
	CoolOff                 *CoolOff       `json:"cool_off,omitempty"`       // a new device: for Period after enrollment, amounts above AmountMax: review
	Anomaly                 *Anomaly       `json:"anomaly,omitempty"`        // amount far above the device's history: review, or decline
	ReviewScore             int            `json:"review_score,omitempty"`   // score at/above which: review (0: DefaultReviewScore)
	DeclineScore            int            `json:"decline_score,omitempty"`  // score at/above which: decline (0: DefaultDeclineScore)

	// Filled by Validate.
	valid    bool
	loc      *time.Location // Hours' zone
	from, to int            // Hours' minutes of the day; to may be dayMinutes
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("90s", "15m", "24h").
type Duration struct{ time.Duration }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, d.Duration.String()), nil
}

// UnmarshalJSON reads a duration string; a number is refused, so that a
// bare 60 is not taken for 60 nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil // as encoding/json does for a value it cannot set to nil
	}
	var s string
	if len(b) == 0 || b[0] != '"' || json.Unmarshal(b, &s) != nil {
		return iotpay.Errorf(iotpay.EINVALID, "duration %s must be a string such as \"90s\", \"15m\" or \"24h\"", clip(b))
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return iotpay.Errorf(iotpay.EINVALID, "duration %q must be such as \"90s\", \"15m\" or \"24h\"", clip([]byte(s)))
	}
	d.Duration = v
	return nil
}

// clip keeps an echoed input short.
func clip(b []byte) string {
	const n = 32
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// VelocityRule bounds the payments of a device or of its payer account in
// a sliding window. The caller counts them (Policy.Windows).
type VelocityRule struct {
	Scope     string   `json:"scope"`                // ScopeDevice or ScopeAccount
	Window    Duration `json:"window"`               // WindowMin..WindowMax
	MaxCount  int64    `json:"max_count,omitempty"`  // payments in the window, this one included (0: no bound)
	MaxAmount int64    `json:"max_amount,omitempty"` // minor units in the window, this one included (0: no bound)
	Action    Outcome  `json:"action,omitempty"`     // what a breach does: Decline (default) or Review
}

// Geofence is a circle the device must be in.
type Geofence struct {
	LatE7   int64 `json:"lat_e7"` // centre, degrees × 1e7
	LonE7   int64 `json:"lon_e7"`
	RadiusM int64 `json:"radius_m"` // 1..RadiusMax
}

// Hours is the time of day payments are allowed in, in a zone's wall-clock
// time: From inclusive, To exclusive. To before From wraps midnight
// ("22:00"-"06:00"); To may be "24:00".
type Hours struct {
	From string `json:"from"`           // "HH:MM"
	To   string `json:"to"`             // "HH:MM"
	Zone string `json:"zone,omitempty"` // IANA time zone; UTC when empty
}

// CoolOff holds large payments of a new device for review.
type CoolOff struct {
	Period    Duration `json:"period"`     // after enrollment; 1s..CoolOffMax
	AmountMax int64    `json:"amount_max"` // minor units a payment may be without review (0: every payment is reviewed)
}

// Anomaly compares an amount with the device's own history (Stats.Z).
// Zero fields take the defaults.
type Anomaly struct {
	MinHistory int64   `json:"min_history,omitempty"` // past payments before the check runs (DefaultMinHistory)
	ReviewZ    float64 `json:"review_z,omitempty"`    // z at/above which: review (DefaultReviewZ)
	DeclineZ   float64 `json:"decline_z,omitempty"`   // z at/above which: decline (DefaultDeclineZ)
}

func (a *Anomaly) minHistory() int64 {
	if a.MinHistory == 0 {
		return DefaultMinHistory
	}
	return a.MinHistory
}

func (a *Anomaly) reviewZ() float64 {
	if a.ReviewZ == 0 {
		return DefaultReviewZ
	}
	return a.ReviewZ
}

func (a *Anomaly) declineZ() float64 {
	if a.DeclineZ == 0 {
		return DefaultDeclineZ
	}
	return a.DeclineZ
}

func (p *Policy) reviewScore() int {
	if p.ReviewScore == 0 {
		return DefaultReviewScore
	}
	return p.ReviewScore
}

func (p *Policy) declineScore() int {
	if p.DeclineScore == 0 {
		return DefaultDeclineScore
	}
	return p.DeclineScore
}

// Windows returns the velocity rules, in order: for each the caller counts
// the payments (and their amount) of the rule's scope since Now - Window,
// before this payment, and passes them as Input.Velocity in the same order.
// The slice is a copy.
func (p *Policy) Windows() []VelocityRule {
	if p == nil {
		return nil
	}
	return slices.Clone(p.Velocity)
}

// ParsePolicy decodes a policy strictly (an unknown field or trailing data
// is refused) and validates it.
func ParsePolicy(b []byte) (*Policy, error) {
	if len(b) > PolicyBytesMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "risk policy: larger than %d bytes", PolicyBytesMax)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, iotpay.Errorf(iotpay.EINVALID, "risk policy: data after the policy")
	}
	if len(p.Velocity) == 0 {
		p.Velocity = nil // one form for "no rules", so a round trip is equal
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

func decodeError(err error) error {
	var e *iotpay.Error
	if errors.As(err, &e) {
		return iotpay.Errorf(iotpay.EINVALID, "risk policy: %s", e.Message)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" && te.Type != nil {
		return iotpay.Wrap(iotpay.EINVALID, "risk policy: "+te.Field+": "+te.Value+" where "+te.Type.String()+" is expected", err)
	}
	// encoding/json's messages name the offset or the unknown field and
	// quote nothing secret.
	return iotpay.Wrap(iotpay.EINVALID, "risk policy: "+err.Error(), err)
}

// Validate reports whether p is well formed, as an *iotpay.Error with code
// EINVALID naming the field, and resolves what Decide needs (see Policy).
// A nil policy is valid.
func (p *Policy) Validate() error {
	if p == nil {
		return nil
	}
	p.valid, p.loc, p.from, p.to = false, nil, 0, 0
	if len(p.Velocity) > VelocityMax {
		return bad("velocity: at most %d rules", VelocityMax)
	}
	for i, r := range p.Velocity {
		f := "velocity[" + strconv.Itoa(i) + "]"
		if r.Scope != ScopeDevice && r.Scope != ScopeAccount {
			return bad("%s.scope must be %q or %q", f, ScopeDevice, ScopeAccount)
		}
		if r.Window.Duration < WindowMin || r.Window.Duration > WindowMax {
			return bad("%s.window must be %v to %v", f, WindowMin, WindowMax)
		}
		if r.MaxCount < 0 || r.MaxAmount < 0 {
			return bad("%s: max_count and max_amount must not be negative", f)
		}
		if r.MaxCount == 0 && r.MaxAmount == 0 {
			return bad("%s: set max_count, max_amount or both", f)
		}
		if r.Action != "" && r.Action != Decline && r.Action != Review {
			return bad("%s.action must be %q or %q", f, Decline, Review)
		}
	}
	if g := p.Geofence; g != nil {
		if g.LatE7 < -LatE7Max || g.LatE7 > LatE7Max {
			return bad("geofence.lat_e7 must be %d to %d", -LatE7Max, LatE7Max)
		}
		if g.LonE7 < -LonE7Max || g.LonE7 > LonE7Max {
			return bad("geofence.lon_e7 must be %d to %d", -LonE7Max, LonE7Max)
		}
		if g.RadiusM <= 0 || g.RadiusM > RadiusMax {
			return bad("geofence.radius_m must be 1 to %d", RadiusMax)
		}
	}
	var loc *time.Location
	var from, to int
	if h := p.Hours; h != nil {
		var ok bool
		if from, ok = parseHHMM(h.From, false); !ok {
			return bad("hours.from %q must be HH:MM, 00:00 to 23:59", clip([]byte(h.From)))
		}
		if to, ok = parseHHMM(h.To, true); !ok {
			return bad("hours.to %q must be HH:MM, 00:00 to 24:00", clip([]byte(h.To)))
		}
		if from == to {
			return bad("hours: from and to must differ")
		}
		var err error
		if loc, err = loadZone(h.Zone); err != nil {
			return err
		}
	}
	if d := p.OfflineMax.Duration; d != 0 && (d < time.Second || d > OfflineMaxLimit) {
		return bad("offline_max must be 1s to %v", OfflineMaxLimit)
	}
	if d := p.ClockSkewMax.Duration; d != 0 && (d < time.Second || d > ClockSkewLimit) {
		return bad("clock_skew_max must be 1s to %v", ClockSkewLimit)
	}
	if c := p.CoolOff; c != nil {
		if c.Period.Duration < time.Second || c.Period.Duration > CoolOffMax {
			return bad("cool_off.period must be 1s to %v", CoolOffMax)
		}
		if c.AmountMax < 0 {
			return bad("cool_off.amount_max must not be negative")
		}
	}
	if a := p.Anomaly; a != nil {
		if a.MinHistory != 0 && (a.MinHistory < 2 || a.MinHistory > MinHistoryMax) {
			return bad("anomaly.min_history must be 2 to %d", MinHistoryMax)
		}
		if a.ReviewZ < 0 || a.ReviewZ > ZMax {
			return bad("anomaly.review_z must be 0 (the default, %v) to %v", DefaultReviewZ, ZMax)
		}
		if a.DeclineZ < 0 || a.DeclineZ > ZMax {
			return bad("anomaly.decline_z must be 0 (the default, %v) to %v", DefaultDeclineZ, ZMax)
		}
		if a.reviewZ() >= a.declineZ() {
			return bad("anomaly: review_z (%v) must be below decline_z (%v)", a.reviewZ(), a.declineZ())
		}
	}
	if p.ReviewScore < 0 || p.ReviewScore > 100 {
		return bad("review_score must be 1 to 100 (0: %d)", DefaultReviewScore)
	}
	if p.DeclineScore < 0 || p.DeclineScore > 100 {
		return bad("decline_score must be 1 to 100 (0: %d)", DefaultDeclineScore)
	}
	if p.reviewScore() >= p.declineScore() {
		return bad("review_score (%d) must be below decline_score (%d)", p.reviewScore(), p.declineScore())
	}
	p.valid, p.loc, p.from, p.to = true, loc, from, to
	return nil
}

func bad(format string, args ...any) error {
	return iotpay.Errorf(iotpay.EINVALID, "risk policy: "+format, args...)
}

// parseHHMM returns the minute of the day of "HH:MM"; end allows "24:00".
func parseHHMM(s string, end bool) (int, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	for _, i := range [...]int{0, 1, 3, 4} {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if m > 59 || h > 24 || h == 24 && (!end || m != 0) {
		return 0, false
	}
	return h*60 + m, true
}

// loadZone loads an IANA zone, refusing "Local": a decision must not depend
// on the machine it runs on.
func loadZone(name string) (*time.Location, error) {
	ok := len(name) <= zoneMax && name != "Local"
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '/' || c == '_' || c == '-' || c == '+'
	}
	if !ok {
		return nil, bad("hours.zone %q is not an IANA time zone", clip([]byte(name)))
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, bad("hours.zone %q is not a known IANA time zone", name)
	}
	return loc, nil
}

package risk

import (
	"math"
	"strconv"
	"time"

	"github.com/iotpay/iotpay"
)

// Points a finding adds to the score. A hard finding declines outright;
// the soft ones add up, the sum capped at ScoreMax, and the policy's
// ReviewScore and DeclineScore turn the score into an outcome. With the
// default thresholds (50, 80) a strong finding (50 or more) holds a payment
// for review on its own; the weak ones (30: offline, clock skew, which an
// honest device that was off the network often shows together) review only
// together or with another; a strong and any other finding decline. A
// product that wants a weak finding alone reviewed sets review_score 30.
const (
	ScoreMax = 100 // a score's ceiling, and the score of a hard decline

	PointsHard            = ScoreMax // tamper, geofence, firmware, velocity (decline), anomaly at DeclineZ, invalid policy
	PointsVelocityReview  = 50       // a velocity rule with action review breached (once per rule, count and amount together)
	PointsVelocityUnknown = 50       // the caller passed no count for a velocity rule
	PointsLocationUnknown = 50       // a geofence and no location
	PointsOutsideHours    = 50       // outside the allowed hours
	PointsOffline         = 30       // offline longer than OfflineMax
	PointsClockSkew       = 30       // device clock off by more than ClockSkewMax
	PointsCoolOff         = 50       // a new device's amount above CoolOff.AmountMax
	PointsAnomalyMin      = 50       // an amount at ReviewZ ...
	PointsAnomalyMax      = 70       // ... rising linearly towards this at DeclineZ
)

// Reason codes, stable: the audit log and operators' tools read them.
const (
	CodeVelocityCount       = "velocity_count"
	CodeVelocityAmount      = "velocity_amount"
	CodeVelocityUnknown     = "velocity_unknown" // no count passed for a rule: fail towards review
	CodeGeofence            = "geofence"
	CodeLocationUnknown     = "location_unknown"
	CodeOutsideHours        = "outside_hours"
	CodeFirmwareNotAttested = "firmware_not_attested"
	CodeTamper              = "tamper"
	CodeOfflineTooLong      = "offline_too_long"
	CodeClockSkew           = "clock_skew"
	CodeCoolOff             = "cool_off"
	CodeAnomaly             = "anomaly"
	CodePolicyInvalid       = "policy_invalid" // Decide was given a policy that does not validate
	CodeInputMissing        = "input_missing"  // Decide was given no input
)

// Input is what Decide reads about a payment. The caller loads it in the
// transaction that records the decision.
type Input struct {
	Now        time.Time       // the platform's time of the payment
	Amount     int64           // minor units of this payment
	Currency   iotpay.Currency // of Amount and of the policy's amounts; used in reasons
	DeviceTime time.Time       // the device's clock in its signed request
	Enrolled   time.Time       // when the device enrolled (zero: unknown, taken as new)
	Firmware   Firmware
	Tamper     bool          // the device's tamper flag is set
	Location   *Point        // the device's last location; nil: unknown
	OfflineFor time.Duration // how long the device had been offline before this request (0: connected)
	// Velocity holds one count per Policy.Windows rule, in order: the
	// payments, and their amount, in the rule's window before this one.
	Velocity []Counted
	History  Stats // the device's past approved amounts
}

// Firmware is the device's firmware as the platform last saw it.
type Firmware struct {
	Version  string
	Attested bool // its measurement matched the product's allowed list
	Reported bool // the device ever reported a firmware
}

// Point is a location, degrees × 1e7.
type Point struct {
	LatE7 int64 `json:"lat_e7"`
	LonE7 int64 `json:"lon_e7"`
}

// Counted is what a velocity rule's window already holds.
type Counted struct {
	Count  int64 // payments
	Amount int64 // their minor units
}

// Reason is one finding of a decision.
type Reason struct {
	Code   string `json:"code"`   // one of the Code constants
	Detail string `json:"detail"` // for a person: "3 payments in 1m0s on this device, max 2"
	Points int    `json:"points"` // what it added to the score
}

// Decision is the outcome of a payment's risk check. For the same policy
// and input it is the same, and encodes to the same JSON.
type Decision struct {
	Outcome Outcome  `json:"outcome"`
	Score   int      `json:"score"` // 0..ScoreMax
	Reasons []Reason `json:"reasons,omitempty"`
}

// Decide scores a proposed payment against a policy. A hard finding
// declines with score ScoreMax; otherwise the points of the soft findings,
// capped at ScoreMax, are compared with the policy's thresholds. Every
// finding is kept as a reason, in the order of the checks: velocity (rule
// by rule), geofence, hours, firmware, tamper, offline, clock skew,
// cool-off, anomaly. A nil policy approves with score 0.
//
// On a validated policy (ParsePolicy, Validate) Decide is pure: it reads
// no clock, does no I/O and writes neither argument, so it may run
// concurrently on a shared policy; an approval allocates nothing. A policy
// not validated is validated on a copy at each call, which loads its time
// zone (the slow path); one that does not validate declines
// (CodePolicyInvalid), as does a nil input (CodeInputMissing).
func Decide(p *Policy, in *Input) Decision {
	if p == nil {
		return Decision{Outcome: Approve}
	}
	if !p.valid {
		q := *p
		if err := q.Validate(); err != nil {
			return hardDecision(CodePolicyInvalid, iotpay.ErrorMessage(err))
		}
		p = &q
	}
	if in == nil {
		return hardDecision(CodeInputMissing, "no input to decide on")
	}
	d := decider{p: p, in: in}
	d.velocity()
	d.geofence()
	d.hours()
	d.firmware()
	d.tamper()
	d.offline()
	d.clockSkew()
	d.coolOff()
	d.anomaly()
	return d.decision()
}

func hardDecision(code, detail string) Decision {
	return Decision{Outcome: Decline, Score: ScoreMax, Reasons: []Reason{{Code: code, Detail: detail, Points: PointsHard}}}
}

// reasonsMax bounds the reasons of one decision: two per velocity rule and
// one per other check.
const reasonsMax = 2*VelocityMax + 8

// decider collects the findings of one decision. The details are appended
// to one buffer and become substrings of one string at the end, so a
// decision with many reasons allocates little.
type decider struct {
	p       *Policy
	in      *Input
	reasons []Reason
	buf     []byte
	ends    [reasonsMax]int // end of each reason's detail in buf
	points  int
	hard    bool
}

// add records a finding whose detail was appended to d.buf since the
// previous one.
func (d *decider) add(code string, points int) {
	if len(d.reasons) == 0 {
		d.reasons = make([]Reason, 0, 4)
	}
	if len(d.reasons) == reasonsMax { // cannot happen with a valid policy
		return
	}
	d.ends[len(d.reasons)] = len(d.buf)
	d.reasons = append(d.reasons, Reason{Code: code, Points: points})
	d.points = min(d.points+points, ScoreMax)
}

func (d *decider) addHard(code string) {
	d.add(code, PointsHard)
	d.hard = true
}

func (d *decider) decision() Decision {
	if len(d.reasons) > 0 {
		all, from := string(d.buf), 0
		for i := range d.reasons {
			d.reasons[i].Detail, from = all[from:d.ends[i]], d.ends[i]
		}
	}
	out := Decision{Score: d.points, Reasons: d.reasons}
	switch {
	case d.hard:
		out.Outcome, out.Score = Decline, ScoreMax
	case d.points >= d.p.declineScore():
		out.Outcome = Decline
	case d.points >= d.p.reviewScore():
		out.Outcome = Review
	default:
		out.Outcome = Approve
	}
	return out
}

// detailBytes is the room first made for a decision's details: most
// decisions have none (an approval allocates nothing) and the rest need
// this much or a little more.
const detailBytes = 512

func (d *decider) ensure() {
	if d.buf == nil {
		d.buf = make([]byte, 0, detailBytes)
	}
}

// text appends strings to the detail being written.
func (d *decider) text(ss ...string) {
	d.ensure()
	for _, s := range ss {
		d.buf = append(d.buf, s...)
	}
}

func (d *decider) int(n int64) {
	d.ensure()
	d.buf = strconv.AppendInt(d.buf, n, 10)
}

func (d *decider) dur(t time.Duration) {
	d.ensure()
	d.buf = append(d.buf, t.String()...)
}

// money appends minor units in the input's currency (as iotpay.Money
// formats them), bare when the currency is not one the platform knows.
func (d *decider) money(amount int64) {
	d.ensure()
	c := d.in.Currency
	if !c.Valid() {
		d.int(amount)
		return
	}
	scale := c.Scale()
	u := uint64(amount)
	if amount < 0 {
		d.buf, u = append(d.buf, '-'), -u
	}
	start := len(d.buf)
	d.buf = strconv.AppendUint(d.buf, u, 10)
	if scale > 0 {
		for len(d.buf)-start <= scale { // at least one digit before the point
			d.buf = append(d.buf, 0)
			copy(d.buf[start+1:], d.buf[start:])
			d.buf[start] = '0'
		}
		p := len(d.buf) - scale
		d.buf = append(d.buf, 0)
		copy(d.buf[p+1:], d.buf[p:])
		d.buf[p] = '.'
	}
	d.text(" ", string(c))
}

func (d *decider) velocity() {
	for i := range d.p.Velocity {
		r := &d.p.Velocity[i]
		where := " on this device"
		if r.Scope == ScopeAccount {
			where = " on the payer's account"
		}
		if i >= len(d.in.Velocity) {
			d.text("no count for the ")
			d.dur(r.Window.Duration)
			d.text(" window", where)
			d.add(CodeVelocityUnknown, PointsVelocityUnknown)
			continue
		}
		c := d.in.Velocity[i]
		count := satAdd(max(c.Count, 0), 1)
		amount := satAdd(max(c.Amount, 0), max(d.in.Amount, 0))
		countOver := r.MaxCount > 0 && count > r.MaxCount
		amountOver := r.MaxAmount > 0 && amount > r.MaxAmount
		if !countOver && !amountOver {
			continue
		}
		hard := r.Action != Review
		points := PointsVelocityReview // once per rule: its two bounds are one signal
		if countOver {
			d.int(count)
			d.text(" payments in ")
			d.dur(r.Window.Duration)
			d.text(where, ", max ")
			d.int(r.MaxCount)
			if hard {
				d.addHard(CodeVelocityCount)
			} else {
				d.add(CodeVelocityCount, points)
				points = 0
			}
		}
		if amountOver {
			d.money(amount)
			d.text(" in ")
			d.dur(r.Window.Duration)
			d.text(where, ", max ")
			d.money(r.MaxAmount)
			if hard {
				d.addHard(CodeVelocityAmount)
			} else {
				d.add(CodeVelocityAmount, points)
			}
		}
	}
}

func (d *decider) geofence() {
	g := d.p.Geofence
	if g == nil {
		return
	}
	loc := d.in.Location
	if loc == nil {
		d.text("device location unknown; the product has a geofence")
		d.add(CodeLocationUnknown, PointsLocationUnknown)
		return
	}
	if !validPoint(*loc) {
		d.text("device location ")
		d.int(loc.LatE7)
		d.text(",")
		d.int(loc.LonE7)
		d.text(" is invalid")
		d.addHard(CodeGeofence)
		return
	}
	m := distanceM(Point{LatE7: g.LatE7, LonE7: g.LonE7}, *loc)
	if !(m <= float64(g.RadiusM)) { // NaN breaches
		d.text("device ")
		d.buf = strconv.AppendFloat(d.buf, m, 'f', 0, 64)
		d.text(" m from the geofence centre, radius ")
		d.int(g.RadiusM)
		d.text(" m")
		d.addHard(CodeGeofence)
	}
}

func (d *decider) hours() {
	if d.p.Hours == nil {
		return
	}
	t := d.in.Now.In(d.p.loc)
	m := t.Hour()*60 + t.Minute()
	from, to := d.p.from, d.p.to
	var in bool
	if from < to {
		in = from <= m && m < to
	} else { // wraps midnight
		in = m >= from || m < to
	}
	if in {
		return
	}
	zone := d.p.Hours.Zone
	if zone == "" {
		zone = "UTC"
	}
	d.text("payment at ")
	d.hhmm(m)
	d.text(" ", zone, ", outside ")
	d.hhmm(from)
	d.text("-")
	d.hhmm(to)
	d.add(CodeOutsideHours, PointsOutsideHours)
}

func (d *decider) hhmm(m int) {
	d.buf = append(d.buf, byte('0'+m/600), byte('0'+m/60%10), ':', byte('0'+m%60/10), byte('0'+m%10))
}

func (d *decider) firmware() {
	f := d.in.Firmware
	if !d.p.RequireAttestedFirmware || f.Attested {
		return
	}
	if !f.Reported {
		d.text("device never reported its firmware; the product requires attested firmware")
	} else {
		d.text("firmware ")
		d.buf = strconv.AppendQuote(d.buf, clip([]byte(f.Version)))
		d.text(" not attested")
	}
	d.addHard(CodeFirmwareNotAttested)
}

func (d *decider) tamper() {
	if d.p.DeclineTamper && d.in.Tamper {
		d.text("device reports tampering")
		d.addHard(CodeTamper)
	}
}

func (d *decider) offline() {
	limit := d.p.OfflineMax.Duration
	if limit > 0 && d.in.OfflineFor > limit {
		d.text("device offline ")
		d.dur(d.in.OfflineFor)
		d.text(" before this payment, max ")
		d.dur(limit)
		d.add(CodeOfflineTooLong, PointsOffline)
	}
}

func (d *decider) clockSkew() {
	limit := d.p.ClockSkewMax.Duration
	if limit <= 0 {
		return
	}
	if d.in.DeviceTime.IsZero() {
		d.text("device time missing")
		d.add(CodeClockSkew, PointsClockSkew)
		return
	}
	skew, dir := d.in.DeviceTime.Sub(d.in.Now), " ahead of"
	if skew < 0 {
		skew, dir = -skew, " behind"
		if skew < 0 { // -minDuration
			skew = math.MaxInt64
		}
	}
	if skew > limit {
		d.text("device clock ")
		d.dur(skew)
		d.text(dir, " the platform's, max ")
		d.dur(limit)
		d.add(CodeClockSkew, PointsClockSkew)
	}
}

func (d *decider) coolOff() {
	c := d.p.CoolOff
	if c == nil || d.in.Amount <= c.AmountMax {
		return
	}
	age := d.in.Now.Sub(d.in.Enrolled)
	known := !d.in.Enrolled.IsZero()
	if known && age >= c.Period.Duration {
		return
	}
	d.text("amount ")
	d.money(d.in.Amount)
	d.text(" above ")
	d.money(c.AmountMax)
	if known {
		// A device enrolled "after" now (clocks) is as new as can be.
		d.text(" from a device enrolled ")
		d.dur(max(age, 0))
		d.text(" ago")
	} else {
		d.text("; the device's enrollment time is unknown")
	}
	d.text(" (cool-off ")
	d.dur(c.Period.Duration)
	d.text(")")
	d.add(CodeCoolOff, PointsCoolOff)
}

func (d *decider) anomaly() {
	a := d.p.Anomaly
	h := d.in.History
	if a == nil || h.N < a.minHistory() {
		return
	}
	z := h.Z(d.in.Amount)
	rz, dz := a.reviewZ(), a.declineZ()
	if !(z >= rz) {
		return
	}
	typical := math.Exp(h.Mean) // the geometric mean; below MaxInt64 since z > 0
	d.text("amount ")
	d.money(d.in.Amount)
	d.text(" is ")
	d.buf = strconv.AppendFloat(d.buf, z, 'f', 1, 64)
	d.text(" standard deviations above this device's ")
	d.int(h.N)
	d.text(" payments (typical ")
	d.money(int64(math.Round(min(typical, math.MaxInt64/2))))
	d.text(")")
	if z >= dz {
		d.addHard(CodeAnomaly)
		return
	}
	frac := (z - rz) / (dz - rz) // in [0, 1)
	d.add(CodeAnomaly, PointsAnomalyMin+int(float64(PointsAnomalyMax-PointsAnomalyMin)*frac))
}

// satAdd adds non-negative a and b, saturating at MaxInt64.
func satAdd(a, b int64) int64 {
	if s, ok := iotpay.AddInt64(a, b); ok {
		return s
	}
	return math.MaxInt64
}

// earthRadiusM is the Earth's mean radius (IUGG), in metres.
const earthRadiusM = 6_371_008.8

func validPoint(p Point) bool {
	return -LatE7Max <= p.LatE7 && p.LatE7 <= LatE7Max && -LonE7Max <= p.LonE7 && p.LonE7 <= LonE7Max
}

// distanceM is the great-circle distance between two valid points, in
// metres, by the haversine formula on a sphere: within 0.5% of the
// ellipsoid, ample for a geofence. Floats are fine here: it is not money.
func distanceM(a, b Point) float64 {
	const rad = math.Pi / 180 / 1e7
	φ1, φ2 := float64(a.LatE7)*rad, float64(b.LatE7)*rad
	dφ, dλ := φ2-φ1, float64(b.LonE7-a.LonE7)*rad
	s1, s2 := math.Sin(dφ/2), math.Sin(dλ/2)
	// Explicit conversions stop a fused multiply-add, so every
	// architecture computes the same distance.
	h := float64(s1*s1) + float64(float64(math.Cos(φ1)*math.Cos(φ2))*float64(s2*s2))
	h = min(max(h, 0), 1)
	return 2 * earthRadiusM * math.Asin(math.Sqrt(h))
}

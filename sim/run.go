package sim

import (
	"context"
	"math"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

const (
	// reasonsMax bounds the distinct reasons counted; the rest are
	// "other".
	reasonsMax = 100
	// reasonBytesMax cuts a reason's text.
	reasonBytesMax = 120
	// dispatchSleepMax is the longest the open-loop dispatcher sleeps
	// between looks at the clock.
	dispatchSleepMax = 5 * time.Millisecond
)

// Outcomes of an event.
const (
	outcomeError = "error" // no verified receipt
)

// idleSet is the devices not in flight, from which events pick at random.
type idleSet struct {
	mu  sync.Mutex
	ds  []*simDevice
	pos []int // of each device in ds, by index; -1 when in flight
}

func newIdleSet(ds []*simDevice) *idleSet {
	s := &idleSet{ds: append([]*simDevice(nil), ds...), pos: make([]int, len(ds))}
	for i := range ds {
		s.pos[i] = i
	}
	return s
}

// take removes a device at random; nil when every device is in flight.
func (s *idleSet) take(r *mrand.Rand) *simDevice {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ds) == 0 {
		return nil
	}
	k := r.IntN(len(s.ds))
	d, last := s.ds[k], s.ds[len(s.ds)-1]
	s.ds[k], s.pos[last.i] = last, k
	s.ds = s.ds[:len(s.ds)-1]
	s.pos[d.i] = -1
	return d
}

func (s *idleSet) put(d *simDevice) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pos[d.i] = len(s.ds)
	s.ds = append(s.ds, d)
}

// second is one second of the series.
type second struct {
	lat                      Histogram
	events, payments, errors int64
}

// recorder collects every event's outcome.
type recorder struct {
	mu       sync.Mutex
	start    time.Time
	all      Histogram
	secs     []*second
	events   int64
	payments int64
	outcomes map[string]int64
	reasons  map[string]int64
}

func (rec *recorder) add(at time.Time, lat time.Duration, outcome, reason string, payment bool) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	k := int(at.Sub(rec.start) / time.Second)
	for len(rec.secs) <= k {
		rec.secs = append(rec.secs, &second{})
	}
	s := rec.secs[k]
	s.events++
	rec.events++
	rec.outcomes[outcome]++
	if outcome == outcomeError {
		s.errors++
	} else {
		s.lat.Record(lat)
		rec.all.Record(lat)
	}
	if payment {
		s.payments++
		rec.payments++
	}
	if outcome != string(wire.Approved) {
		key := outcome + ": " + reason
		if _, ok := rec.reasons[key]; !ok && len(rec.reasons) >= reasonsMax {
			key = outcome + ": other"
		}
		rec.reasons[key]++
	}
}

// runner runs the fleet's events.
type runner struct {
	f    *fleet
	cfg  *Config
	pool *pool
	idle *idleSet
	rec  *recorder
	// behind counts the events due that were never sent.
	behind int64
	done   time.Time
}

func newRunner(f *fleet, p *pool) *runner {
	return &runner{f: f, cfg: f.cfg, pool: p, idle: newIdleSet(f.devices),
		rec: &recorder{outcomes: map[string]int64{}, reasons: map[string]int64{}}}
}

// loop runs events for the configured duration (or until ctx is
// cancelled), then waits for the events in flight.
func (r *runner) loop(ctx context.Context) {
	r.rec.start = time.Now()
	stop := r.showRun()
	defer stop()
	// An event in flight is answered even after ctx ends: its transport
	// bounds it.
	ectx := context.WithoutCancel(ctx)
	end := r.rec.start.Add(r.cfg.Duration)
	var wg sync.WaitGroup
	if r.cfg.Rate == 0 {
		for w := range r.cfg.Concurrency {
			rng := mrand.New(mrand.NewPCG(r.cfg.Seed, uint64(1e9)+uint64(w)))
			delay := time.Duration(int64(r.cfg.RampUp) * int64(w) / int64(r.cfg.Concurrency))
			wg.Go(func() {
				select {
				case <-ctx.Done():
					return
				case <-time.After(delay):
				}
				for ctx.Err() == nil && time.Now().Before(end) {
					d := r.idle.take(rng)
					if d == nil { // cannot happen: no more workers than devices
						return
					}
					r.event(ectx, d)
					r.idle.put(d)
				}
			})
		}
	} else {
		r.dispatch(ctx, ectx, end, &wg)
	}
	wg.Wait()
	r.done = time.Now()
}

// due is how many events the rate asks for by elapsed t: the ramp's
// triangle, then the rate's rectangle.
func (r *runner) due(t time.Duration) float64 {
	rate, ramp := r.cfg.Rate, r.cfg.RampUp.Seconds()
	s := t.Seconds()
	if s < ramp {
		return rate * s * s / (2 * ramp)
	}
	return rate*ramp/2 + rate*(s-ramp)
}

// dispatch sends events at the configured rate, open loop: an event is
// sent when it is due, whatever the answers to earlier ones, as long as
// an idle device and room in the concurrency are there; the events that
// found none by the end are counted as behind.
func (r *runner) dispatch(ctx, ectx context.Context, end time.Time, wg *sync.WaitGroup) {
	rng := mrand.New(mrand.NewPCG(r.cfg.Seed, 1e9))
	slots := make(chan struct{}, r.cfg.Concurrency)
	var sent int64
	for {
		now := time.Now()
		if ctx.Err() != nil || !now.Before(end) {
			break
		}
		due := int64(r.due(now.Sub(r.rec.start)))
		for sent < due && ctx.Err() == nil && time.Now().Before(end) {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				continue
			case <-time.After(time.Until(end)):
				continue
			}
			d := r.idle.take(rng)
			if d == nil { // cannot happen: no more slots than devices
				<-slots
				break
			}
			sent++
			wg.Go(func() {
				r.event(ectx, d)
				r.idle.put(d)
				<-slots
			})
		}
		// Sleep until the next event is due, looking at the clock at
		// least every dispatchSleepMax.
		next := r.rec.start.Add(r.untilDue(float64(sent + 1)))
		time.Sleep(min(max(time.Until(next), 0), dispatchSleepMax))
	}
	// The events due before the end: one due at the very end is not.
	r.behind = max(int64(r.due(r.cfg.Duration-time.Nanosecond))-sent, 0)
}

// untilDue is when the n-th event is due: due's inverse.
func (r *runner) untilDue(n float64) time.Duration {
	rate, ramp := r.cfg.Rate, r.cfg.RampUp.Seconds()
	var s float64
	if n < rate*ramp/2 {
		s = math.Sqrt(2 * ramp * n / rate)
	} else {
		s = ramp + (n-rate*ramp/2)/rate
	}
	return time.Duration(s * float64(time.Second))
}

// event sends d's next event over its transport and records the answer.
func (r *runner) event(ctx context.Context, d *simDevice) {
	p := d.sc.next(d.rng)
	c, err := r.pool.acquire(ctx, d)
	if err != nil {
		r.rec.add(time.Now(), 0, outcomeError, "connect: "+describe(err), false)
		d.sc.done(p, nil, d.rng)
		return
	}
	start := time.Now()
	rc, err := d.dev.Pay(ctx, c, p)
	now := time.Now()
	r.pool.release(d, err != nil)
	d.sc.done(p, rc, d.rng)
	if err != nil {
		r.rec.add(now, now.Sub(start), outcomeError, describe(err), false)
		return
	}
	reason := rc.Code
	if reason == "" {
		reason = rc.Reason
	}
	r.rec.add(now, now.Sub(start), string(rc.Outcome), cut(reason), moved(rc))
}

// describe is an error's code and message, short.
func describe(err error) string {
	return cut(string(iotpay.ErrorCode(err)) + ": " + iotpay.ErrorMessage(err))
}

func cut(s string) string {
	if len(s) > reasonBytesMax {
		return s[:reasonBytesMax] + "…"
	}
	return s
}

// result fills in what the run measured.
func (r *runner) result(res *Result) {
	rec := r.rec
	rec.mu.Lock()
	defer rec.mu.Unlock()
	elapsed := r.done.Sub(rec.start)
	res.DurationS = elapsed.Seconds()
	res.Events, res.Payments = rec.events, rec.payments
	if s := elapsed.Seconds(); s > 0 {
		res.EventsPerSec = round2(float64(rec.events) / s)
		res.PaymentsPerSec = round2(float64(rec.payments) / s)
	}
	res.P50Ms, res.P95Ms = ms(rec.all.Quantile(0.50)), ms(rec.all.Quantile(0.95))
	res.P99Ms, res.MaxMs = ms(rec.all.Quantile(0.99)), ms(rec.all.Max())
	res.Outcomes, res.Errors = rec.outcomes, rec.reasons
	res.Behind = r.behind
	res.Series = make([]Point, len(rec.secs))
	for i, s := range rec.secs {
		res.Series[i] = Point{T: i + 1, Events: s.events, Payments: s.payments, Errors: s.errors,
			P50Ms: ms(s.lat.Quantile(0.50)), P99Ms: ms(s.lat.Quantile(0.99))}
	}
	p := r.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	res.Connects, res.Evictions, res.Drops = p.dials, p.evictions, p.drops
	res.ConnectP50Ms, res.ConnectP99Ms = ms(p.connect.Quantile(0.50)), ms(p.connect.Quantile(0.99))
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

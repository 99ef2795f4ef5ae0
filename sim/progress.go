package sim

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iotpay/iotpay/wire"
)

// progressEvery is how often the status line is redrawn.
const progressEvery = 500 * time.Millisecond

// status redraws line() on w every progressEvery, over the previous one
// (a carriage return, and spaces over what is left of a longer line),
// until the returned stop draws it a last time and ends the line. A nil
// w shows nothing.
func status(w io.Writer, line func() string) (stop func()) {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		width := 0
		draw := func(end string) {
			s := line()
			pad := max(width-len(s), 0)
			width = len(s)
			fmt.Fprint(w, "\r"+s+strings.Repeat(" ", pad)+end)
		}
		for {
			select {
			case <-done:
				draw("\n")
				return
			case <-t.C:
				draw("")
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// showSetup shows the enrollments' progress.
func (f *fleet) showSetup(start time.Time) (stop func()) {
	return status(f.cfg.Progress, func() string {
		n, el := f.enrolled.Load(), time.Since(start)
		s := fmt.Sprintf("setup %5.1fs  enrolled %s/%s devices (%s/s)", el.Seconds(), group(n), group(int64(len(f.devices))),
			group(int64(float64(n)/max(el.Seconds(), 1e-3))))
		if c := f.connected.Load(); c > 0 {
			s += fmt.Sprintf("  connected %s/%s", group(c), group(int64(min(len(f.devices), f.cfg.Connections))))
		}
		return s
	})
}

// showRun shows the run's progress: elapsed, events, ok, declined,
// errors, the rate since the last line and the p99 so far.
func (r *runner) showRun() (stop func()) {
	var prev int64
	prevAt := time.Now()
	return status(r.cfg.Progress, func() string {
		rec := r.rec
		rec.mu.Lock()
		events, ok := rec.events, rec.outcomes[string(wire.Approved)]
		declined, errs := rec.outcomes[string(wire.Declined)], rec.outcomes[outcomeError]+rec.outcomes[string(wire.Rejected)]
		p99 := rec.all.Quantile(0.99)
		rec.mu.Unlock()
		now := time.Now()
		rate := float64(events-prev) / max(now.Sub(prevAt).Seconds(), 1e-3)
		prev, prevAt = events, now
		return fmt.Sprintf("run %5.1fs/%v  events %s  ok %s  declined %s  errors %s  %s/s  p99 %.1f ms",
			now.Sub(rec.start).Seconds(), r.cfg.Duration, group(events), group(ok), group(declined), group(errs),
			group(int64(rate)), ms(p99))
	})
}

// group writes n with thousands separated by commas.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/iotpay/iotpay/device"
	"github.com/iotpay/iotpay/wire"
)

// Product is one of the four reference products (platform/rules) a
// simulated device can be.
type Product string

// The reference products, by the names --mix uses.
const (
	Vending Product = "vending"
	EV      Product = "ev"
	Meter   Product = "meter"
	Parking Product = "parking"
)

// Products are the reference products in a fixed order.
var Products = []Product{Vending, EV, Meter, Parking}

// Mix is how many devices of each product there are, in proportion: the
// weights of vending=4,ev=3,meter=2,parking=1.
type Mix map[Product]int

// DefaultMix is a fleet of 40% vending machines, 30% EV chargers, 20%
// smart meters and 10% parking barriers.
func DefaultMix() Mix { return Mix{Vending: 4, EV: 3, Meter: 2, Parking: 1} }

// ParseMix reads "vending=4,ev=3,meter=2,parking=1"; a product left out
// has no devices.
func ParseMix(s string) (Mix, error) {
	m := Mix{}
	for part := range strings.SplitSeq(s, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		p := Product(strings.TrimSpace(name))
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if !ok || err != nil || n < 0 || !slices.Contains(Products, p) {
			return nil, fmt.Errorf("sim: mix %q: want product=weight,… with products vending, ev, meter, parking", s)
		}
		if _, dup := m[p]; dup {
			return nil, fmt.Errorf("sim: mix %q names %s twice", s, p)
		}
		m[p] = n
	}
	return m, m.check()
}

func (m Mix) check() error {
	total := 0
	for p, w := range m {
		if !slices.Contains(Products, p) || w < 0 {
			return fmt.Errorf("sim: mix: unknown product %q or negative weight", p)
		}
		total += w
	}
	if total == 0 {
		return fmt.Errorf("sim: mix: no product has a weight")
	}
	return nil
}

// String is the mix as ParseMix reads it.
func (m Mix) String() string {
	var parts []string
	for _, p := range Products {
		if w, ok := m[p]; ok {
			parts = append(parts, fmt.Sprintf("%s=%d", p, w))
		}
	}
	return strings.Join(parts, ",")
}

// assign gives n devices their products: counts in proportion to the
// weights (largest remainders), shuffled by r so the products interleave.
func (m Mix) assign(n int, r *rand.Rand) []Product {
	total := 0
	for _, w := range m {
		total += w
	}
	out := make([]Product, 0, n)
	type rem struct {
		p Product
		r int
	}
	var rems []rem
	for _, p := range Products {
		c := n * m[p] / total
		for range c {
			out = append(out, p)
		}
		rems = append(rems, rem{p, n * m[p] % total})
	}
	slices.SortStableFunc(rems, func(a, b rem) int { return b.r - a.r })
	for i := 0; len(out) < n; i++ {
		out = append(out, rems[i%len(rems)].p)
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// skus are the vending slots a simulated machine dispenses from: three
// priced by the rules, one at their default price.
var skus = []string{"A1", "A2", "B1", "C7"}

// scenario is a device's place in its product's story. It is touched only
// by the goroutine running the device's event (a device has at most one
// in flight).
type scenario struct {
	product Product
	// EV: a session is open, its name, the energy delivered and updates
	// left before it ends; n numbers the sessions.
	open    bool
	session string
	wh      int64
	updates int
	n       int
	// meter: the cumulative reading and the readings sent.
	total    int64
	readings int
	// parking: the car is in.
	inside bool
}

// next is the device's next event.
func (s *scenario) next(r *rand.Rand) device.Payment {
	ev := func(typ string, num map[string]int64, str map[string]string) device.Payment {
		return device.Payment{Event: &wire.Event{Type: typ, Num: num, Str: str}}
	}
	switch s.product {
	case Vending:
		return ev("dispense", nil, map[string]string{"sku": skus[r.IntN(len(skus))]})
	case EV:
		if !s.open {
			s.session = "s" + strconv.Itoa(s.n)
			return ev("session_start", nil, map[string]string{"session": s.session})
		}
		s.wh += 2_000 + r.Int64N(18_000) // 2–20 kWh more
		if s.updates > 0 {
			return ev("session_update", map[string]int64{"wh": s.wh}, map[string]string{"session": s.session})
		}
		return ev("session_end", map[string]int64{"wh": s.wh}, map[string]string{"session": s.session})
	case Meter:
		s.total += 100 + r.Int64N(2_900) // 0.1–3 kWh since the last reading
		s.readings++
		end := s.readings%4 == 0 // a bill every fourth reading
		return ev("reading", map[string]int64{"kwh_total": s.total}, map[string]string{"period_end": strconv.FormatBool(end)})
	case Parking:
		if !s.inside {
			return ev("entry", nil, nil)
		}
		return ev("exit", map[string]int64{"minutes": 5 + r.Int64N(595)}, nil)
	}
	panic("sim: unknown product " + string(s.product))
}

// done moves the story on after the event p got receipt rc (nil: no
// receipt, the exchange failed; the device tries the same step again).
func (s *scenario) done(p device.Payment, rc *wire.Receipt, r *rand.Rand) {
	if rc == nil {
		return
	}
	switch p.Event.Type {
	case "session_start":
		if rc.Outcome == wire.Approved {
			s.open, s.wh, s.updates = true, 0, 1+r.IntN(3)
		} else {
			s.n++ // a declined start: the next is a new session
		}
	case "session_update":
		s.updates--
	case "session_end":
		s.open = false
		s.n++
	case "entry":
		s.inside = true
	case "exit":
		s.inside = false
	}
}

// moved reports whether rc is a payment that moved money to a merchant: a
// sale (charge), a meter's bill, a session's capture.
func moved(rc *wire.Receipt) bool {
	if rc.Outcome != wire.Approved {
		return false
	}
	switch rc.Action {
	case "", "charge", "bill", "capture":
		return true
	}
	return false
}

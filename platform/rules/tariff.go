package rules

import (
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/iotpay/iotpay"
)

// Tariff bounds.
const (
	TariffsMax  = 64            // tariffs of one tenant
	BandsMax    = 48            // bands of one tariff (half-hour bands)
	PerUnitsMax = 1_000_000_000 // units a price is given for
	PriceMax    = 1_000_000_000 // minor units per PerUnits
	dayMinutes  = 24 * 60       // a band ends at most at 24:00
	zoneMax     = 64            // bytes of an IANA zone name
	tariffNameP = `^[a-z][a-z0-9_]{0,31}$`
)

// Tariff is a tenant's named price per quantity, by time of day in a zone.
type Tariff struct {
	Name     string          `json:"name"` // [a-z][a-z0-9_]{0,31}
	Currency iotpay.Currency `json:"currency"`
	PerUnits int64           `json:"per_units"`      // a band's price is per this many units (e.g. 1000 Wh)
	Zone     string          `json:"zone,omitempty"` // IANA time zone; UTC when empty
	Bands    []Band          `json:"bands"`          // cover the whole day, no overlap, no gap
}

// Band is a tariff's price from one time of day to another, in its zone's
// wall-clock time. A band cannot wrap midnight: 22:00-06:00 is written as
// 22:00-24:00 and 00:00-06:00.
type Band struct {
	From       string `json:"from"`        // "HH:MM", inclusive
	To         string `json:"to"`          // "HH:MM", exclusive; "24:00" ends the day
	PriceMinor int64  `json:"price_minor"` // minor units per PerUnits, >= 0
}

var tariffName = regexp.MustCompile(tariffNameP)

// tariff is a validated Tariff ready to price.
type tariff struct {
	name     string
	currency iotpay.Currency
	perUnits int64
	loc      *time.Location
	ends     []int   // end minute of each band, ascending; the last is dayMinutes
	prices   []int64 // price of each band
}

// ValidateTariff reports whether t is a well-formed tariff.
func ValidateTariff(t Tariff) error {
	_, err := newTariff(&t)
	return err
}

func newTariff(t *Tariff) (*tariff, error) {
	if !tariffName.MatchString(t.Name) {
		return nil, iotpay.Errorf(iotpay.EINVALID, "tariff %q: name must match %s", t.Name, tariffNameP)
	}
	bad := func(format string, args ...any) error {
		return iotpay.Errorf(iotpay.EINVALID, "tariff %q: "+format, append([]any{t.Name}, args...)...)
	}
	if !t.Currency.Valid() {
		return nil, bad("unknown currency %q", string(t.Currency))
	}
	if t.PerUnits <= 0 || t.PerUnits > PerUnitsMax {
		return nil, bad("per_units must be in 1..%d", PerUnitsMax)
	}
	// "Local" would make prices depend on the server's configuration.
	if len(t.Zone) > zoneMax || t.Zone == "Local" {
		return nil, bad("unknown zone %q", t.Zone)
	}
	loc, err := time.LoadLocation(t.Zone)
	if err != nil {
		return nil, bad("unknown zone %q", t.Zone)
	}
	if len(t.Bands) == 0 || len(t.Bands) > BandsMax {
		return nil, bad("bands: want 1..%d, have %d", BandsMax, len(t.Bands))
	}
	type span struct {
		from, to int
		price    int64
	}
	spans := make([]span, len(t.Bands))
	for i, b := range t.Bands {
		from, ok := clock(b.From, false)
		if !ok {
			return nil, bad("band %d: from %q is not a time HH:MM (00:00-23:59)", i+1, b.From)
		}
		to, ok := clock(b.To, true)
		if !ok {
			return nil, bad("band %d: to %q is not a time HH:MM (00:01-24:00)", i+1, b.To)
		}
		if to <= from {
			return nil, bad("band %d: %s-%s ends before it starts (split a band over midnight in two)", i+1, b.From, b.To)
		}
		if b.PriceMinor < 0 || b.PriceMinor > PriceMax {
			return nil, bad("band %d: price_minor must be in 0..%d", i+1, PriceMax)
		}
		spans[i] = span{from, to, b.PriceMinor}
	}
	slices.SortFunc(spans, func(a, b span) int { return a.from - b.from })
	out := &tariff{name: t.Name, currency: t.Currency, perUnits: t.PerUnits, loc: loc}
	at := 0
	for _, s := range spans {
		switch {
		case s.from > at:
			return nil, bad("bands leave a gap at %s-%s", hhmm(at), hhmm(s.from))
		case s.from < at:
			return nil, bad("bands overlap at %s-%s", hhmm(s.from), hhmm(min(at, s.to)))
		}
		out.ends = append(out.ends, s.to)
		out.prices = append(out.prices, s.price)
		at = s.to
	}
	if at != dayMinutes {
		return nil, bad("bands leave a gap at %s-24:00", hhmm(at))
	}
	return out, nil
}

// clock parses "HH:MM" into minutes of the day; end allows 24:00 and
// refuses 00:00 (a band cannot end at the start of the day).
func clock(s string, end bool) (int, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	d := func(c byte) int { return int(c - '0') }
	for _, i := range []int{0, 1, 3, 4} {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	h, m := d(s[0])*10+d(s[1]), d(s[3])*10+d(s[4])
	if m > 59 || h > 24 || h == 24 && (!end || m != 0) {
		return 0, false
	}
	at := h*60 + m
	if end && at == 0 {
		return 0, false
	}
	return at, true
}

func hhmm(m int) string {
	return string([]byte{byte('0' + m/600), byte('0' + m/60%10), ':', byte('0' + m%60/10), byte('0' + m%10)})
}

// priceAt returns ceil(quantity × price / perUnits) of the band that now
// falls in, in the tariff's zone.
func (t *tariff) priceAt(now time.Time, quantity int64) (int64, error) {
	if quantity < 0 {
		return 0, fmt.Errorf("price: quantity %d is negative", quantity)
	}
	h, m, _ := now.In(t.loc).Clock()
	at := h*60 + m
	i, _ := slices.BinarySearch(t.ends, at+1) // the first band ending after at
	v, ok := iotpay.MulDivCeil(quantity, t.prices[i], t.perUnits)
	if !ok {
		return 0, fmt.Errorf("price: %d units of tariff %q overflow", quantity, t.name)
	}
	return v, nil
}

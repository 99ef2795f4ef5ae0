package iotpay

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Currency is an ISO 4217 alphabetic code. Its zero value is invalid.
type Currency string

// currencyScales holds the number of minor-unit digits of the currencies the
// platform accepts. A currency missing here is refused rather than guessed.
var currencyScales = map[Currency]int{
	"EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "CNY": 2, "JPY": 0, "KRW": 0,
	"SEK": 2, "NOK": 2, "DKK": 2, "PLN": 2, "CAD": 2, "AUD": 2, "HKD": 2,
	"SGD": 2, "INR": 2, "BRL": 2, "KWD": 3, "BHD": 3, "TND": 3,
}

// ParseCurrency returns the currency named by code (upper case ISO 4217).
func ParseCurrency(code string) (Currency, error) {
	c := Currency(code)
	if _, ok := currencyScales[c]; !ok {
		return "", Errorf(EINVALID, "unknown currency %q", code)
	}
	return c, nil
}

// Valid reports whether c is a currency the platform accepts.
func (c Currency) Valid() bool {
	_, ok := currencyScales[c]
	return ok
}

// Scale is the number of minor-unit digits of c (2 for EUR: 1 EUR = 100 cents).
func (c Currency) Scale() int { return currencyScales[c] }

// Money is an amount of minor units of one currency. There are no floats
// anywhere near an amount.
type Money struct {
	Amount   int64    `json:"amount"` // minor units
	Currency Currency `json:"currency"`
}

// NewMoney returns amount minor units of c, checking c.
func NewMoney(amount int64, c Currency) (Money, error) {
	if !c.Valid() {
		return Money{}, Errorf(EINVALID, "unknown currency %q", string(c))
	}
	return Money{Amount: amount, Currency: c}, nil
}

// Add returns m+o, refusing mixed currencies and overflow.
func (m Money) Add(o Money) (Money, error) {
	if m.Currency != o.Currency {
		return Money{}, Errorf(EINVALID, "currency mismatch: %s and %s", m.Currency, o.Currency)
	}
	s, ok := AddInt64(m.Amount, o.Amount)
	if !ok {
		return Money{}, Errorf(EINVALID, "amount overflow")
	}
	return Money{Amount: s, Currency: m.Currency}, nil
}

// AddInt64 returns a+b and whether it did not overflow.
func AddInt64(a, b int64) (int64, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, false
	}
	return s, true
}

// MulDivCeil returns ceil(a*b/d) for non-negative a, b and positive d, and
// whether the result fits in an int64. It prices metered quantities
// (watt-hours × minor units per kWh / 1000) without floats, rounding up so a
// fraction of a minor unit is never given away.
func MulDivCeil(a, b, d int64) (int64, bool) {
	if a < 0 || b < 0 || d <= 0 {
		return 0, false
	}
	if a != 0 && b > math.MaxInt64/a {
		return 0, false
	}
	p := a * b
	q := p / d
	if p%d != 0 {
		q++
	}
	return q, true
}

// String formats m with its scale, e.g. "12.40 EUR".
func (m Money) String() string {
	scale := m.Currency.Scale()
	if scale == 0 {
		return strconv.FormatInt(m.Amount, 10) + " " + string(m.Currency)
	}
	neg := m.Amount < 0
	u := uint64(m.Amount)
	if neg {
		u = -u
	}
	s := strconv.FormatUint(u, 10)
	if len(s) <= scale {
		s = strings.Repeat("0", scale-len(s)+1) + s
	}
	s = s[:len(s)-scale] + "." + s[len(s)-scale:]
	if neg {
		s = "-" + s
	}
	return fmt.Sprintf("%s %s", s, m.Currency)
}

package iotpay

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCurrency(t *testing.T) {
	for _, tc := range []struct {
		code  string
		ok    bool
		scale int
	}{
		{"EUR", true, 2},
		{"USD", true, 2},
		{"JPY", true, 0},
		{"KRW", true, 0},
		{"KWD", true, 3},
		{"BHD", true, 3},
		{"eur", false, 0},
		{"Eur", false, 0},
		{"", false, 0},
		{"XXX", false, 0},
		{"EURO", false, 0},
		{" EUR", false, 0},
		{"BTC", false, 0},
	} {
		t.Run(tc.code, func(t *testing.T) {
			c, err := ParseCurrency(tc.code)
			if !tc.ok {
				if err == nil {
					t.Fatalf("ParseCurrency(%q) = %q, want an error", tc.code, c)
				}
				if got := ErrorCode(err); got != EINVALID {
					t.Errorf("code %q, want %q", got, EINVALID)
				}
				if Currency(tc.code).Valid() {
					t.Errorf("Currency(%q).Valid() = true", tc.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCurrency(%q): %v", tc.code, err)
			}
			if string(c) != tc.code || !c.Valid() || c.Scale() != tc.scale {
				t.Errorf("got %q valid=%v scale=%d, want scale %d", c, c.Valid(), c.Scale(), tc.scale)
			}
		})
	}
}

func TestNewMoney(t *testing.T) {
	m, err := NewMoney(1240, "EUR")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Money{Amount: 1240, Currency: "EUR"}, m); diff != "" {
		t.Errorf("NewMoney (-want +got):\n%s", diff)
	}
	if _, err := NewMoney(1, "XXX"); ErrorCode(err) != EINVALID {
		t.Errorf("NewMoney with unknown currency: %v, want %s", err, EINVALID)
	}
}

func TestMoneyAdd(t *testing.T) {
	eur := func(n int64) Money { return Money{Amount: n, Currency: "EUR"} }
	for _, tc := range []struct {
		name string
		a, b Money
		want Money
		err  Code
	}{
		{"simple", eur(1240), eur(60), eur(1300), ""},
		{"negative", eur(100), eur(-250), eur(-150), ""},
		{"zero", eur(0), eur(0), eur(0), ""},
		{"to max", eur(math.MaxInt64 - 1), eur(1), eur(math.MaxInt64), ""},
		{"to min", eur(math.MinInt64 + 1), eur(-1), eur(math.MinInt64), ""},
		{"max plus min", eur(math.MaxInt64), eur(math.MinInt64), eur(-1), ""},
		{"overflow", eur(math.MaxInt64), eur(1), Money{}, EINVALID},
		{"overflow both large", eur(math.MaxInt64/2 + 1), eur(math.MaxInt64/2 + 1), Money{}, EINVALID},
		{"underflow", eur(math.MinInt64), eur(-1), Money{}, EINVALID},
		{"currency mismatch", eur(1), Money{Amount: 1, Currency: "USD"}, Money{}, EINVALID},
		{"mismatch with zero amount", eur(0), Money{Amount: 0, Currency: "JPY"}, Money{}, EINVALID},
		{"mismatch with no currency", eur(1), Money{Amount: 1}, Money{}, EINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.a.Add(tc.b)
			if code := ErrorCode(err); code != tc.err {
				t.Fatalf("Add: error %v, want code %q", err, tc.err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Add (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAddInt64(t *testing.T) {
	for _, tc := range []struct {
		a, b int64
		want int64
		ok   bool
	}{
		{1, 2, 3, true},
		{-1, -2, -3, true},
		{math.MaxInt64, 0, math.MaxInt64, true},
		{math.MaxInt64, 1, 0, false},
		{math.MaxInt64, math.MaxInt64, 0, false},
		{math.MinInt64, -1, 0, false},
		{math.MinInt64, math.MinInt64, 0, false},
		{math.MinInt64, math.MaxInt64, -1, true},
		{0, math.MinInt64, math.MinInt64, true},
	} {
		got, ok := AddInt64(tc.a, tc.b)
		if got != tc.want || ok != tc.ok {
			t.Errorf("AddInt64(%d, %d) = %d, %v; want %d, %v", tc.a, tc.b, got, ok, tc.want, tc.ok)
		}
	}
}

func TestMulDivCeil(t *testing.T) {
	for _, tc := range []struct {
		name    string
		a, b, d int64
		want    int64
		ok      bool
	}{
		// 12.345 kWh at 39 cents per kWh is 481.455 cents: charge 482.
		{"metered energy rounds up", 12_345, 39, 1000, 482, true},
		{"exact", 10_000, 39, 1000, 390, true},
		{"one watt-hour is a whole cent", 1, 1, 1000, 1, true},
		{"just below a whole", 999, 1, 1000, 1, true},
		{"just above a whole", 1001, 1, 1000, 2, true},
		{"divide by one", 7, 6, 1, 42, true},
		{"zero quantity", 0, 39, 1000, 0, true},
		{"zero price", 12_345, 0, 1000, 0, true},
		{"zero times huge", 0, math.MaxInt64, 1, 0, true},
		{"product at max", math.MaxInt64, 1, 1, math.MaxInt64, true},
		{"product at max, rounded", math.MaxInt64, 1, 2, math.MaxInt64/2 + 1, true},
		{"overflow", math.MaxInt64, 2, 1000, 0, false},
		{"overflow just past", 1 << 32, 1 << 31, 1, 0, false},
		{"no overflow just below", 1 << 31, 1 << 31, 1, 1 << 62, true},
		{"zero divisor", 1, 1, 0, 0, false},
		{"negative divisor", 1, 1, -1, 0, false},
		{"negative a", -1, 1, 1, 0, false},
		{"negative b", 1, -1, 1, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := MulDivCeil(tc.a, tc.b, tc.d)
			if got != tc.want || ok != tc.ok {
				t.Errorf("MulDivCeil(%d, %d, %d) = %d, %v; want %d, %v", tc.a, tc.b, tc.d, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestMoneyString(t *testing.T) {
	for _, tc := range []struct {
		m    Money
		want string
	}{
		{Money{1240, "EUR"}, "12.40 EUR"},
		{Money{5, "EUR"}, "0.05 EUR"},
		{Money{50, "EUR"}, "0.50 EUR"},
		{Money{100, "EUR"}, "1.00 EUR"},
		{Money{0, "EUR"}, "0.00 EUR"},
		{Money{-5, "EUR"}, "-0.05 EUR"},
		{Money{-1240, "EUR"}, "-12.40 EUR"},
		{Money{math.MaxInt64, "EUR"}, "92233720368547758.07 EUR"},
		{Money{math.MinInt64, "EUR"}, "-92233720368547758.08 EUR"},
		{Money{500, "JPY"}, "500 JPY"},
		{Money{0, "JPY"}, "0 JPY"},
		{Money{-500, "JPY"}, "-500 JPY"},
		{Money{1234, "KWD"}, "1.234 KWD"},
		{Money{1, "KWD"}, "0.001 KWD"},
		{Money{-10, "KWD"}, "-0.010 KWD"},
		{Money{1000, "KWD"}, "1.000 KWD"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.m.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestMoneyJSON(t *testing.T) {
	b, err := json.Marshal(Money{Amount: 1240, Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"amount":1240,"currency":"EUR"}`; got != want {
		t.Errorf("JSON %s, want %s", got, want)
	}
}

package reconcile

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/iotpay/iotpay"
)

var d1 = day(2024, 3, 1)

func item(ref, kind string, m iotpay.Money, date time.Time, line int) Item {
	return Item{Ref: ref, Kind: kind, Amount: m, Date: date, Line: line}
}

func exp(ref, kind string, m iotpay.Money, date time.Time) Expected {
	return Expected{Ref: ref, Kind: kind, Amount: m, Date: date}
}

func withPayment[T Item | Expected](v T, p string) T {
	switch x := any(&v).(type) {
	case *Item:
		x.Payment = p
	case *Expected:
		x.Payment = p
	}
	return v
}

func usd(v int64) iotpay.Money { return iotpay.Money{Amount: v, Currency: "USD"} }

const (
	payA = "pay_5f571dywcm576dhc5sabtswzev"
	payB = "pay_0ssyqm6chmb9fpddb5jywhnk05"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		name     string
		report   []Item
		expected []Expected
		opts     Options
		want     *Report // Totals are left out of the comparison
	}{
		{
			name:     "nothing",
			want:     &Report{},
			report:   nil,
			expected: nil,
		},
		{
			name:     "matched by ref",
			report:   []Item{item("b", KindRefund, eur(500), d1, 3), item("a", KindCapture, eur(1234), d1, 2)},
			expected: []Expected{exp("a", KindCapture, eur(1234), d1), exp("b", KindRefund, eur(500), d1)},
			want: &Report{Matched: []Pair{
				{Item: item("a", KindCapture, eur(1234), d1, 2), Expected: exp("a", KindCapture, eur(1234), d1), By: ByRef},
				{Item: item("b", KindRefund, eur(500), d1, 3), Expected: exp("b", KindRefund, eur(500), d1), By: ByRef},
			}},
		},
		{
			name:     "missing and unexpected",
			report:   []Item{item("a", KindCapture, eur(1), d1, 2), item("z", KindCapture, eur(1), d1, 3)},
			expected: []Expected{exp("b", KindCapture, eur(1), d1), exp("a", KindCapture, eur(1), d1)},
			want: &Report{
				Matched:    []Pair{{Item: item("a", KindCapture, eur(1), d1, 2), Expected: exp("a", KindCapture, eur(1), d1), By: ByRef}},
				Missing:    []Expected{exp("b", KindCapture, eur(1), d1)},
				Unexpected: []Item{item("z", KindCapture, eur(1), d1, 3)},
			},
		},
		{
			name:     "amount differs",
			report:   []Item{item("a", KindCapture, eur(1200), d1, 2)},
			expected: []Expected{exp("a", KindCapture, eur(1234), d1)},
			want: &Report{Mismatched: []Mismatch{{Item: item("a", KindCapture, eur(1200), d1, 2), Expected: exp("a", KindCapture, eur(1234), d1),
				By: ByRef, Fields: []string{FieldAmount}, Reason: "amount 12.00 EUR, expected 12.34 EUR (-0.34 EUR)"}}},
		},
		{
			name:     "amount more than expected",
			report:   []Item{item("a", KindCapture, eur(1300), d1, 2)},
			expected: []Expected{exp("a", KindCapture, eur(1234), d1)},
			want: &Report{Mismatched: []Mismatch{{Item: item("a", KindCapture, eur(1300), d1, 2), Expected: exp("a", KindCapture, eur(1234), d1),
				By: ByRef, Fields: []string{FieldAmount}, Reason: "amount 13.00 EUR, expected 12.34 EUR (+0.66 EUR)"}}},
		},
		{
			name:     "currency differs",
			report:   []Item{item("a", KindCapture, usd(1234), d1, 2)},
			expected: []Expected{exp("a", KindCapture, eur(1234), d1)},
			want: &Report{Mismatched: []Mismatch{{Item: item("a", KindCapture, usd(1234), d1, 2), Expected: exp("a", KindCapture, eur(1234), d1),
				By: ByRef, Fields: []string{FieldCurrency}, Reason: "currency USD, expected EUR"}}},
		},
		{
			name:     "currency and amount differ",
			report:   []Item{item("a", KindCapture, usd(1300), d1, 2)},
			expected: []Expected{exp("a", KindCapture, eur(1234), d1)},
			want: &Report{Mismatched: []Mismatch{{Item: item("a", KindCapture, usd(1300), d1, 2), Expected: exp("a", KindCapture, eur(1234), d1),
				By: ByRef, Fields: []string{FieldCurrency, FieldAmount}, Reason: "currency USD, expected EUR; amount 13.00 USD, expected 12.34 EUR"}}},
		},
		{
			name:     "kind differs",
			report:   []Item{item("a", KindRefund, eur(1234), d1, 2)},
			expected: []Expected{exp("a", KindCapture, eur(1234), d1)},
			want: &Report{Mismatched: []Mismatch{{Item: item("a", KindRefund, eur(1234), d1, 2), Expected: exp("a", KindCapture, eur(1234), d1),
				By: ByRef, Fields: []string{FieldKind}, Reason: "kind refund, expected capture"}}},
		},
		{
			name:     "date beyond the default tolerance",
			report:   []Item{item("a", KindCapture, eur(1), d1.Add(72*time.Hour+time.Second), 2)},
			expected: []Expected{exp("a", KindCapture, eur(1), d1)},
			want: &Report{Mismatched: []Mismatch{{Item: item("a", KindCapture, eur(1), d1.Add(72*time.Hour+time.Second), 2), Expected: exp("a", KindCapture, eur(1), d1),
				By: ByRef, Fields: []string{FieldDate}, Reason: "date 2024-03-04T00:00:01Z, expected 2024-03-01 (72h0m1s apart, more than 3d)"}}},
		},
		{
			name:     "date before, beyond a set tolerance",
			report:   []Item{item("a", KindCapture, eur(1), day(2024, 2, 27), 2)},
			expected: []Expected{exp("a", KindCapture, eur(1), d1)},
			opts:     Options{DateTolerance: 24 * time.Hour},
			want: &Report{Mismatched: []Mismatch{{Item: item("a", KindCapture, eur(1), day(2024, 2, 27), 2), Expected: exp("a", KindCapture, eur(1), d1),
				By: ByRef, Fields: []string{FieldDate}, Reason: "date 2024-02-27, expected 2024-03-01 (3d apart, more than 1d)"}}},
		},
		{
			name:     "date within the tolerance",
			report:   []Item{item("a", KindCapture, eur(1), d1.Add(72*time.Hour), 2)},
			expected: []Expected{exp("a", KindCapture, eur(1), d1)},
			want:     &Report{Matched: []Pair{{Item: item("a", KindCapture, eur(1), d1.Add(72*time.Hour), 2), Expected: exp("a", KindCapture, eur(1), d1), By: ByRef}}},
		},
		{
			name:     "dates not compared",
			report:   []Item{item("a", KindCapture, eur(1), day(2031, 1, 1), 2)},
			expected: []Expected{exp("a", KindCapture, eur(1), d1)},
			opts:     Options{DateTolerance: -1},
			want:     &Report{Matched: []Pair{{Item: item("a", KindCapture, eur(1), day(2031, 1, 1), 2), Expected: exp("a", KindCapture, eur(1), d1), By: ByRef}}},
		},
		{
			name:     "undated ledger entry",
			report:   []Item{item("a", KindCapture, eur(1), day(2031, 1, 1), 2)},
			expected: []Expected{exp("a", KindCapture, eur(1), time.Time{})},
			want:     &Report{Matched: []Pair{{Item: item("a", KindCapture, eur(1), day(2031, 1, 1), 2), Expected: exp("a", KindCapture, eur(1), time.Time{}), By: ByRef}}},
		},
		{
			name:     "everything differs",
			report:   []Item{item("a", KindRefund, usd(1), day(2024, 4, 1), 2)},
			expected: []Expected{exp("a", KindCapture, eur(2), d1)},
			want: &Report{Mismatched: []Mismatch{{Item: item("a", KindRefund, usd(1), day(2024, 4, 1), 2), Expected: exp("a", KindCapture, eur(2), d1),
				By: ByRef, Fields: []string{FieldKind, FieldCurrency, FieldAmount, FieldDate},
				Reason: "kind refund, expected capture; currency USD, expected EUR; amount 0.01 USD, expected 0.02 EUR; date 2024-04-01, expected 2024-03-01 (31d apart, more than 3d)"}}},
		},
		{
			name:     "a repeated ref is a duplicate, not merged",
			report:   []Item{item("a", KindCapture, eur(1), d1, 2), item("a", KindCapture, eur(1), d1, 5)},
			expected: []Expected{exp("a", KindCapture, eur(1), d1)},
			want: &Report{
				Matched:    []Pair{{Item: item("a", KindCapture, eur(1), d1, 2), Expected: exp("a", KindCapture, eur(1), d1), By: ByRef}},
				Unexpected: []Item{item("a", KindCapture, eur(1), d1, 5)},
				Duplicates: []Duplicate{{Ref: "a", Lines: []int{2, 5}, Expected: 1}},
			},
		},
		{
			name:   "a ref repeated and unknown",
			report: []Item{item("a", KindCapture, eur(1), d1, 7), item("a", KindCapture, eur(1), d1, 3)},
			want: &Report{
				Unexpected: []Item{item("a", KindCapture, eur(1), d1, 3), item("a", KindCapture, eur(1), d1, 7)},
				Duplicates: []Duplicate{{Ref: "a", Lines: []int{3, 7}}},
			},
		},
		{
			name:     "a ref the ledger has twice is no duplicate",
			report:   []Item{item("a", KindRefund, eur(400), d1, 2), item("a", KindCapture, eur(1000), d1, 3)},
			expected: []Expected{exp("a", KindCapture, eur(1000), d1), exp("a", KindRefund, eur(400), d1)},
			want: &Report{Matched: []Pair{
				{Item: item("a", KindRefund, eur(400), d1, 2), Expected: exp("a", KindRefund, eur(400), d1), By: ByRef},
				{Item: item("a", KindCapture, eur(1000), d1, 3), Expected: exp("a", KindCapture, eur(1000), d1), By: ByRef},
			}},
		},
		{
			name: "within a ref, equal first, then the same kind",
			report: []Item{item("a", KindCapture, eur(999), d1, 2), item("a", KindCapture, eur(500), d1, 3),
				item("a", KindRefund, eur(100), d1, 4)},
			expected: []Expected{exp("a", KindRefund, eur(100), d1), exp("a", KindCapture, eur(1000), d1), exp("a", KindCapture, eur(500), d1)},
			want: &Report{
				Matched: []Pair{
					{Item: item("a", KindCapture, eur(500), d1, 3), Expected: exp("a", KindCapture, eur(500), d1), By: ByRef},
					{Item: item("a", KindRefund, eur(100), d1, 4), Expected: exp("a", KindRefund, eur(100), d1), By: ByRef},
				},
				Mismatched: []Mismatch{{Item: item("a", KindCapture, eur(999), d1, 2), Expected: exp("a", KindCapture, eur(1000), d1),
					By: ByRef, Fields: []string{FieldAmount}, Reason: "amount 9.99 EUR, expected 10.00 EUR (-0.01 EUR)"}},
			},
		},
		{
			name: "equal amounts of one ref pair by date",
			report: []Item{item("a", KindCapture, eur(1), day(2024, 3, 20), 2), item("a", KindCapture, eur(1), day(2024, 3, 1), 3),
				item("a", KindCapture, eur(1), day(2024, 3, 10), 4)},
			expected: []Expected{exp("a", KindCapture, eur(1), day(2024, 3, 10)), exp("a", KindCapture, eur(1), day(2024, 3, 19)),
				exp("a", KindCapture, eur(1), day(2024, 3, 2))},
			want: &Report{Matched: []Pair{
				{Item: item("a", KindCapture, eur(1), day(2024, 3, 20), 2), Expected: exp("a", KindCapture, eur(1), day(2024, 3, 19)), By: ByRef},
				{Item: item("a", KindCapture, eur(1), day(2024, 3, 1), 3), Expected: exp("a", KindCapture, eur(1), day(2024, 3, 2)), By: ByRef},
				{Item: item("a", KindCapture, eur(1), day(2024, 3, 10), 4), Expected: exp("a", KindCapture, eur(1), day(2024, 3, 10)), By: ByRef},
			}},
		},
		{
			name:     "by payment id when the ref is unknown",
			report:   []Item{withPayment(item("ch_1", KindCapture, eur(1), d1, 2), payA)},
			expected: []Expected{withPayment(exp("pi_1", KindCapture, eur(1), d1), payA)},
			want: &Report{Matched: []Pair{{Item: withPayment(item("ch_1", KindCapture, eur(1), d1, 2), payA),
				Expected: withPayment(exp("pi_1", KindCapture, eur(1), d1), payA), By: ByPayment}}},
		},
		{
			name:     "by payment id, mismatched",
			report:   []Item{withPayment(item("re_1", KindRefund, eur(2), d1, 2), payA)},
			expected: []Expected{withPayment(exp("", KindRefund, eur(1), d1), payA)},
			want: &Report{Mismatched: []Mismatch{{Item: withPayment(item("re_1", KindRefund, eur(2), d1, 2), payA),
				Expected: withPayment(exp("", KindRefund, eur(1), d1), payA), By: ByPayment,
				Fields: []string{FieldAmount}, Reason: "amount 0.02 EUR, expected 0.01 EUR (+0.01 EUR)"}}},
		},
		{
			name: "ref before payment id",
			report: []Item{withPayment(item("pi_1", KindCapture, eur(1), d1, 2), payB),
				withPayment(item("re_9", KindRefund, eur(1), d1, 3), payA)},
			expected: []Expected{withPayment(exp("pi_1", KindCapture, eur(1), d1), payA),
				withPayment(exp("pi_1", KindRefund, eur(1), d1), payA)},
			want: &Report{Matched: []Pair{
				{Item: withPayment(item("pi_1", KindCapture, eur(1), d1, 2), payB), Expected: withPayment(exp("pi_1", KindCapture, eur(1), d1), payA), By: ByRef},
				{Item: withPayment(item("re_9", KindRefund, eur(1), d1, 3), payA), Expected: withPayment(exp("pi_1", KindRefund, eur(1), d1), payA), By: ByPayment},
			}},
		},
		{
			name: "a known ref is not paired by payment id",
			report: []Item{withPayment(item("pi_1", KindCapture, eur(1), d1, 2), payA),
				withPayment(item("pi_1", KindCapture, eur(1), d1, 3), payA)},
			expected: []Expected{withPayment(exp("pi_1", KindCapture, eur(1), d1), payA),
				withPayment(exp("pi_2", KindCapture, eur(1), d1), payA)},
			want: &Report{
				Matched: []Pair{{Item: withPayment(item("pi_1", KindCapture, eur(1), d1, 2), payA),
					Expected: withPayment(exp("pi_1", KindCapture, eur(1), d1), payA), By: ByRef}},
				Missing:    []Expected{withPayment(exp("pi_2", KindCapture, eur(1), d1), payA)},
				Unexpected: []Item{withPayment(item("pi_1", KindCapture, eur(1), d1, 3), payA)},
				Duplicates: []Duplicate{{Ref: "pi_1", Lines: []int{2, 3}, Expected: 1}},
			},
		},
		{
			name:     "no payment id, no pairing by it",
			report:   []Item{item("x", KindCapture, eur(1), d1, 2)},
			expected: []Expected{exp("y", KindCapture, eur(1), d1)},
			want: &Report{
				Missing:    []Expected{exp("y", KindCapture, eur(1), d1)},
				Unexpected: []Item{item("x", KindCapture, eur(1), d1, 2)},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Match(tc.report, tc.expected, tc.opts)
			if d := cmp.Diff(tc.want, stripped(got)); d != "" {
				t.Errorf("report (-want +got):\n%s", d)
			}
			if ok := len(tc.want.Missing)+len(tc.want.Unexpected)+len(tc.want.Mismatched) == 0; got.OK() != ok {
				t.Errorf("OK() = %v, want %v", got.OK(), ok)
			}
		})
	}
}

// stripped returns r without its totals and with empty lists nil, as the
// test tables write them. Match itself returns empty lists, which marshal
// as [].
func stripped(r *Report) *Report {
	c := *r
	c.Totals = nil
	if len(c.Matched) == 0 {
		c.Matched = nil
	}
	if len(c.Missing) == 0 {
		c.Missing = nil
	}
	if len(c.Unexpected) == 0 {
		c.Unexpected = nil
	}
	if len(c.Mismatched) == 0 {
		c.Mismatched = nil
	}
	if len(c.Duplicates) == 0 {
		c.Duplicates = nil
	}
	return &c
}

func TestMatchTotals(t *testing.T) {
	report := []Item{
		{Ref: "a", Kind: KindCapture, Amount: eur(1000), Fee: 30, Date: d1, Line: 2},
		{Ref: "b", Kind: KindRefund, Amount: eur(200), Fee: 0, Date: d1, Line: 3},
		{Ref: "c", Kind: KindFee, Amount: eur(50), Date: d1, Line: 4},
		{Ref: "d", Kind: KindOther, Amount: eur(7), Date: d1, Line: 5},
		{Ref: "e", Kind: KindCapture, Amount: iotpay.Money{Amount: 1500, Currency: "JPY"}, Fee: 45, Date: d1, Line: 6},
	}
	expected := []Expected{
		exp("a", KindCapture, eur(1000), d1),
		exp("b", KindRefund, eur(250), d1),
		exp("f", KindCapture, usd(99), d1),
	}
	got := Match(report, expected, Options{}).Totals
	want := []Total{
		{Currency: "EUR", Expected: 1250, Reported: 1257, Fees: 80, Net: 1000 - 200 - 30 - 50},
		{Currency: "JPY", Reported: 1500, Fees: 45, Net: 1455},
		{Currency: "USD", Expected: 99},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("totals (-want +got):\n%s", d)
	}
}

func TestMatchTotalsOverflow(t *testing.T) {
	big := iotpay.Money{Amount: math.MaxInt64 - 1, Currency: "EUR"}
	r := Match(nil, []Expected{exp("a", KindCapture, big, d1), exp("b", KindCapture, big, d1)}, Options{})
	if len(r.Totals) != 1 || !r.Totals[0].Overflow {
		t.Fatalf("totals %+v, want an overflow", r.Totals)
	}
	if r.OK() {
		t.Error("OK() with an overflow")
	}
	r.Missing = nil
	if r.OK() {
		t.Error("OK() with an overflow and nothing missing")
	}
}

// TestMatchDeterministic checks that the order of the inputs does not
// change the report.
func TestMatchDeterministic(t *testing.T) {
	var report []Item
	var expected []Expected
	for i := range 200 {
		ref := string(rune('a'+i%7)) + string(rune('a'+i%13))
		report = append(report, Item{Ref: ref, Kind: KindCapture, Amount: eur(int64(i%5 + 1)), Date: d1.Add(time.Duration(i) * time.Hour), Line: i + 2})
		if i%3 != 0 {
			expected = append(expected, exp(ref, KindCapture, eur(int64(i%4+1)), d1.Add(time.Duration(i)*time.Hour)))
		}
	}
	want := Match(report, expected, Options{})
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		r, e := append([]Item(nil), report...), append([]Expected(nil), expected...)
		rng.Shuffle(len(r), func(i, j int) { r[i], r[j] = r[j], r[i] })
		rng.Shuffle(len(e), func(i, j int) { e[i], e[j] = e[j], e[i] })
		got := Match(r, e, Options{})
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("shuffled inputs changed the report (-want +got):\n%s", d)
		}
	}
}

func TestReportJSON(t *testing.T) {
	r := Match(
		[]Item{{Ref: "a", Payment: payA, Kind: KindCapture, Amount: eur(1), Fee: 1, Date: d1, Line: 2}},
		[]Expected{exp("b", KindCapture, eur(1), d1)}, Options{})
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"matched":[]`, `"missing":[{"ref":"b","kind":"capture","amount":{"amount":1,"currency":"EUR"},"date":"2024-03-01T00:00:00Z"}]`,
		`"unexpected":[{"ref":"a","payment":"` + payA + `","kind":"capture","amount":{"amount":1,"currency":"EUR"},"fee":1,"date":"2024-03-01T00:00:00Z","line":2}]`,
		`"mismatched":[]`, `"duplicates":[]`, `"totals":[{"currency":"EUR","expected":1,"reported":1,"fees":1,"net":0}]`} {
		if !bytes.Contains(b, []byte(key)) {
			t.Errorf("JSON %s\ndoes not hold %s", b, key)
		}
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(r, &back); d != "" {
		t.Errorf("JSON round trip (-want +got):\n%s", d)
	}
	b, _ = json.Marshal(Options{DateTolerance: time.Hour})
	if string(b) != `{"date_tolerance":3600000000000}` {
		t.Errorf("options JSON %s", b)
	}
}

func TestWriteText(t *testing.T) {
	r := Match(
		[]Item{
			{Ref: "pi_1", Kind: KindCapture, Amount: eur(1200), Fee: 30, Date: d1, Line: 2},
			{Ref: "pi_2", Kind: KindCapture, Amount: eur(500), Date: d1, Line: 3},
			{Ref: "pi_2", Kind: KindCapture, Amount: eur(500), Date: d1, Line: 4},
			{Ref: "x\ty", Kind: KindOther, Amount: iotpay.Money{Amount: 7, Currency: "JPY"}, Date: d1.Add(90 * time.Minute), Line: 5},
		},
		[]Expected{
			exp("pi_1", KindCapture, eur(1234), d1),
			exp("pi_2", KindCapture, eur(500), d1),
			withPayment(exp("pi_3", KindRefund, eur(100), time.Time{}), payA),
		}, Options{})
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `Reconciliation: NOT OK
  4 reported, 3 expected: 1 matched, 1 mismatched, 1 missing, 2 unexpected, 1 duplicated references

Totals
CURRENCY  EXPECTED  REPORTED  FEES  NET
EUR       18.34     22.00     0.30  21.70
JPY       0         7         0     0

Mismatched (the report and the ledger differ)
REF   LINE  BY   KIND     AMOUNT     REASON
pi_1  2     ref  capture  12.00 EUR  amount 12.00 EUR, expected 12.34 EUR (-0.34 EUR)

Missing (in the ledger, not in the report)
REF   PAYMENT                         KIND    AMOUNT    DATE
pi_3  pay_5f571dywcm576dhc5sabtswzev  refund  1.00 EUR

Unexpected (in the report, not in the ledger)
REF   LINE  PAYMENT  KIND     AMOUNT    DATE
pi_2  4              capture  5.00 EUR  2024-03-01
x?y   5              other    7 JPY     2024-03-01T01:30:00Z

Duplicated references (named more often than the ledger has them)
REF   LINES  EXPECTED
pi_2  3,4    1
`
	if d := cmp.Diff(want, b.String()); d != "" {
		t.Errorf("text (-want +got):\n%s", d)
	}

	var ok strings.Builder
	if err := Match(nil, nil, Options{}).WriteText(&ok); err != nil {
		t.Fatal(err)
	}
	if want := "Reconciliation: OK\n  0 reported, 0 expected: 0 matched, 0 mismatched, 0 missing, 0 unexpected, 0 duplicated references\n"; ok.String() != want {
		t.Errorf("text %q, want %q", ok.String(), want)
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n <= 0 {
		return 0, errors.New("pipe closed")
	}
	w.n--
	return len(p), nil
}

func TestWriteTextError(t *testing.T) {
	r := Match([]Item{item("a", KindCapture, eur(1), d1, 2)}, nil, Options{})
	for n := range 8 {
		if err := r.WriteText(&failWriter{n: n}); err == nil || err.Error() != "pipe closed" {
			t.Errorf("after %d writes: error %v, want pipe closed", n, err)
		}
	}
}

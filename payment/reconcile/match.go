package reconcile

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/iotpay/iotpay"
)

// DateToleranceDefault is how far apart a report's date and the ledger's
// may be, unless Options say otherwise: a settlement books a few days
// after the capture (weekends, cut-off times).
const DateToleranceDefault = 72 * time.Hour

// How an item was paired with the ledger.
const (
	ByRef     = "ref"     // the connector's reference
	ByPayment = "payment" // our payment id, the report's reference being unknown to the ledger
)

// Fields of a Mismatch.
const (
	FieldKind     = "kind"
	FieldCurrency = "currency"
	FieldAmount   = "amount"
	FieldDate     = "date"
)

// Expected is what the ledger says a connector should have settled: the
// caller builds it from its payments and their connector references.
type Expected struct {
	Ref     string       `json:"ref"`
	Payment string       `json:"payment,omitempty"`
	Kind    string       `json:"kind"`
	Amount  iotpay.Money `json:"amount"`
	// Date is when the ledger booked it; the zero time is not compared.
	Date time.Time `json:"date,omitzero"`
}

// Options tune Match.
type Options struct {
	// DateTolerance is how far apart the report's date and the ledger's
	// may be: DateToleranceDefault when zero, not compared when negative.
	DateTolerance time.Duration `json:"date_tolerance"`
}

// Pair is a report item and the ledger's entry it matched.
type Pair struct {
	Item     Item     `json:"item"`
	Expected Expected `json:"expected"`
	By       string   `json:"by"` // ByRef or ByPayment
}

// Mismatch is a report item paired with a ledger entry (by reference or
// payment id) that differs from it.
type Mismatch struct {
	Item     Item     `json:"item"`
	Expected Expected `json:"expected"`
	By       string   `json:"by"`
	// Fields lists what differs: FieldKind, FieldCurrency, FieldAmount,
	// FieldDate.
	Fields []string `json:"fields"`
	Reason string   `json:"reason"`
}

// Duplicate is a reference the report names more than once and more
// often than the ledger does. The extra items are in Unexpected (or
// Mismatched): they are never merged.
type Duplicate struct {
	Ref      string `json:"ref"`
	Lines    []int  `json:"lines"`    // the report's lines naming Ref
	Expected int    `json:"expected"` // how many entries the ledger has with Ref
}

// Total sums one currency's amounts, in minor units.
type Total struct {
	Currency iotpay.Currency `json:"currency"`
	Expected int64           `json:"expected"` // the ledger's amounts, every kind
	Reported int64           `json:"reported"` // the report's amounts, every kind
	// Fees is what the connector kept: the items' Fee and the amounts of
	// fee items.
	Fees int64 `json:"fees"`
	// Net is what the report says should reach us: captures less
	// refunds less Fees (other items left out).
	Net int64 `json:"net"`
	// Overflow says a sum did not fit in an int64: the sums are wrong.
	Overflow bool `json:"overflow,omitempty"`
}

// Report is the outcome of a reconciliation. Every list is sorted by the
// report's reference (the ledger's for Missing), then by line.
type Report struct {
	Matched    []Pair      `json:"matched"`
	Missing    []Expected  `json:"missing"`    // in the ledger, not in the report
	Unexpected []Item      `json:"unexpected"` // in the report, not in the ledger
	Mismatched []Mismatch  `json:"mismatched"`
	Duplicates []Duplicate `json:"duplicates"`
	Totals     []Total     `json:"totals"` // by currency
}

// OK reports whether the report and the ledger agree: everything
// matched and the totals are sound.
func (r *Report) OK() bool {
	if len(r.Missing) > 0 || len(r.Unexpected) > 0 || len(r.Mismatched) > 0 {
		return false
	}
	for _, t := range r.Totals {
		if t.Overflow {
			return false
		}
	}
	return true
}

// Match reconciles a connector's report with what the ledger expects.
//
// An item is paired with a ledger entry of the same reference; an item
// whose reference the ledger does not know at all is paired by payment id
// instead. Among several entries of one reference (or payment id) an item
// goes to an equal one first — same kind, currency and amount, dates
// within the tolerance — then to one of the same kind and currency, of
// the same kind, and last of any kind; a pair that is not equal is a
// Mismatch. What is left is Missing or Unexpected.
func Match(report []Item, expected []Expected, opts Options) *Report {
	m := &matcher{
		tol:      opts.DateTolerance,
		items:    report,
		exps:     expected,
		itemDone: make([]bool, len(report)),
		expDone:  make([]bool, len(expected)),
		pairs:    make([]pairIdx, 0, min(len(report), len(expected))),
		dups:     []Duplicate{},
	}
	if m.tol == 0 {
		m.tol = DateToleranceDefault
	}
	byPayment := m.matchRefs()
	m.matchPayments(byPayment)
	return m.report()
}

// pairIdx is a pair of an item and a ledger entry, by index; mis indexes
// the mismatch's fields and reason, -1 for a match.
type pairIdx struct {
	item, exp, mis int
	by             string
}

type mismatchWhy struct {
	fields []string
	reason string
}

type matcher struct {
	tol      time.Duration
	items    []Item
	exps     []Expected
	itemDone []bool
	expDone  []bool
	pairs    []pairIdx
	why      []mismatchWhy
	dups     []Duplicate
}

// report builds the Report, sorting indices before copying items, which
// are large, once.
func (m *matcher) report() *Report {
	byItem := func(a, b int) int {
		if c := strings.Compare(m.items[a].Ref, m.items[b].Ref); c != 0 {
			return c
		}
		return m.itemOrder(a, b)
	}
	slices.SortFunc(m.pairs, func(a, b pairIdx) int { return byItem(a.item, b.item) })
	nmis := len(m.why)
	r := &Report{
		Matched:    make([]Pair, 0, len(m.pairs)-nmis),
		Mismatched: make([]Mismatch, 0, nmis),
		Duplicates: m.dups,
		Totals:     totals(m.items, m.exps),
	}
	for _, p := range m.pairs {
		it, e := m.items[p.item], m.exps[p.exp]
		if p.mis < 0 {
			r.Matched = append(r.Matched, Pair{Item: it, Expected: e, By: p.by})
			continue
		}
		w := m.why[p.mis]
		r.Mismatched = append(r.Mismatched, Mismatch{Item: it, Expected: e, By: p.by, Fields: w.fields, Reason: w.reason})
	}
	var rest []int
	for i, done := range m.itemDone {
		if !done {
			rest = append(rest, i)
		}
	}
	slices.SortFunc(rest, byItem)
	r.Unexpected = make([]Item, len(rest))
	for k, i := range rest {
		r.Unexpected[k] = m.items[i]
	}
	rest = rest[:0]
	for j, done := range m.expDone {
		if !done {
			rest = append(rest, j)
		}
	}
	slices.SortFunc(rest, func(a, b int) int {
		if c := strings.Compare(m.exps[a].Ref, m.exps[b].Ref); c != 0 {
			return c
		}
		return m.expOrder(a, b)
	})
	r.Missing = make([]Expected, len(rest))
	for k, j := range rest {
		r.Missing[k] = m.exps[j]
	}
	slices.SortFunc(r.Duplicates, func(a, b Duplicate) int { return strings.Compare(a.Ref, b.Ref) })
	return r
}

// sortedBy returns the indices 0..n-1 for which keep holds, ordered by
// key and then by tie, so that the outcome does not depend on the order
// of the inputs.
func sortedBy(n int, key func(int) string, tie func(a, b int) int, keep func(int) bool) []int {
	idx := make([]int, 0, n)
	for i := range n {
		if keep(i) {
			idx = append(idx, i)
		}
	}
	slices.SortFunc(idx, func(a, b int) int {
		if c := strings.Compare(key(a), key(b)); c != 0 {
			return c
		}
		return tie(a, b)
	})
	return idx
}

// itemOrder orders items of one reference: by line, then by content, so
// that only items equal in every field are in no order.
func (m *matcher) itemOrder(a, b int) int {
	x, y := &m.items[a], &m.items[b]
	if c := cmp.Compare(x.Line, y.Line); c != 0 {
		return c
	}
	if c := m.contentOrder(x.Kind, y.Kind, x.Amount, y.Amount, x.Date, y.Date, x.Payment, y.Payment); c != 0 {
		return c
	}
	return cmp.Or(strings.Compare(x.Ref, y.Ref), cmp.Compare(x.Fee, y.Fee))
}

// expOrder orders ledger entries of one reference by content.
func (m *matcher) expOrder(a, b int) int {
	x, y := &m.exps[a], &m.exps[b]
	if c := m.contentOrder(x.Kind, y.Kind, x.Amount, y.Amount, x.Date, y.Date, x.Payment, y.Payment); c != 0 {
		return c
	}
	return strings.Compare(x.Ref, y.Ref)
}

func (*matcher) contentOrder(k1, k2 string, m1, m2 iotpay.Money, d1, d2 time.Time, p1, p2 string) int {
	if c := strings.Compare(k1, k2); c != 0 {
		return c
	}
	if c := strings.Compare(string(m1.Currency), string(m2.Currency)); c != 0 {
		return c
	}
	if c := cmp.Compare(m1.Amount, m2.Amount); c != 0 {
		return c
	}
	if c := d1.Compare(d2); c != 0 {
		return c
	}
	return strings.Compare(p1, p2)
}

// walkGroups calls fn for each key present in both sorted index lists,
// with the runs of that key, and unknown with each run of items whose key
// is absent from exps.
func walkGroups(items, exps []int, ikey, ekey func(int) string, fn func(key string, items, exps []int), unknown func(items []int)) {
	i, j := 0, 0
	for i < len(items) {
		k := ikey(items[i])
		ie := i + 1
		for ie < len(items) && ikey(items[ie]) == k {
			ie++
		}
		for j < len(exps) && ekey(exps[j]) < k {
			j++
		}
		je := j
		for je < len(exps) && ekey(exps[je]) == k {
			je++
		}
		if je > j {
			fn(k, items[i:ie], exps[j:je])
		} else {
			unknown(items[i:ie])
		}
		i, j = ie, je
	}
}

// matchRefs pairs by reference and returns the items left for pairing by
// payment id: those whose reference the ledger does not know.
func (m *matcher) matchRefs() []int {
	items := sortedBy(len(m.items), func(i int) string { return m.items[i].Ref }, m.itemOrder,
		func(i int) bool { return m.items[i].Ref != "" })
	exps := sortedBy(len(m.exps), func(j int) string { return m.exps[j].Ref }, m.expOrder,
		func(j int) bool { return m.exps[j].Ref != "" })
	var rest []int
	for i := range m.items {
		if m.items[i].Ref == "" {
			rest = append(rest, i)
		}
	}
	walkGroups(items, exps,
		func(i int) string { return m.items[i].Ref },
		func(j int) string { return m.exps[j].Ref },
		func(ref string, gi, gj []int) {
			if len(gi) > 1 && len(gi) > len(gj) {
				m.duplicate(ref, gi, len(gj))
			}
			m.pairGroup(gi, gj, ByRef)
		},
		func(gi []int) {
			if len(gi) > 1 {
				m.duplicate(m.items[gi[0]].Ref, gi, 0)
			}
			rest = append(rest, gi...)
		})
	return rest
}

func (m *matcher) duplicate(ref string, items []int, expected int) {
	d := Duplicate{Ref: ref, Lines: make([]int, len(items)), Expected: expected}
	for k, i := range items {
		d.Lines[k] = m.items[i].Line
	}
	slices.Sort(d.Lines)
	m.dups = append(m.dups, d)
}

// matchPayments pairs the items of unknown reference by payment id with
// what is left of the ledger.
func (m *matcher) matchPayments(rest []int) {
	items := sortedBy(len(rest), func(k int) string { return m.items[rest[k]].Payment },
		func(a, b int) int { return m.itemOrder(rest[a], rest[b]) },
		func(k int) bool { return m.items[rest[k]].Payment != "" })
	for k, x := range items {
		items[k] = rest[x]
	}
	exps := sortedBy(len(m.exps), func(j int) string { return m.exps[j].Payment }, m.expOrder,
		func(j int) bool { return !m.expDone[j] && m.exps[j].Payment != "" })
	walkGroups(items, exps,
		func(i int) string { return m.items[i].Payment },
		func(j int) string { return m.exps[j].Payment },
		func(_ string, gi, gj []int) { m.pairGroup(gi, gj, ByPayment) },
		func([]int) {})
}

// pairKey is what pairs a group's items and entries: all of it for an
// equal pair, less for the closest mismatch.
type pairKey struct {
	kind   string
	cur    iotpay.Currency
	amount int64
}

// pairGroup pairs the items and ledger entries of one reference or
// payment id, equal ones first.
func (m *matcher) pairGroup(items, exps []int, by string) {
	if len(items) == 1 && len(exps) == 1 { // the usual case, without maps
		m.pair(items[0], exps[0], by)
		return
	}
	ek := make(map[pairKey][]int)
	for _, j := range exps {
		e := &m.exps[j]
		k := pairKey{e.Kind, e.Amount.Currency, e.Amount.Amount}
		ek[k] = append(ek[k], j)
	}
	ik := make(map[pairKey][]int)
	var keys []pairKey // in the items' order, for a deterministic outcome
	for _, i := range items {
		it := &m.items[i]
		k := pairKey{it.Kind, it.Amount.Currency, it.Amount.Amount}
		if _, ok := ek[k]; !ok {
			continue
		}
		if _, ok := ik[k]; !ok {
			keys = append(keys, k)
		}
		ik[k] = append(ik[k], i)
	}
	for _, k := range keys {
		m.pairDates(ik[k], ek[k], by)
	}
	// What is left pairs as mismatches, the closest first.
	m.pairQueued(items, exps, by, func(kind string, cur iotpay.Currency) pairKey { return pairKey{kind, cur, 0} })
	m.pairQueued(items, exps, by, func(kind string, _ iotpay.Currency) pairKey { return pairKey{kind, "", 0} })
	m.pairQueued(items, exps, by, func(string, iotpay.Currency) pairKey { return pairKey{} })
}

// pairQueued pairs each item not yet paired with the first entry not yet
// paired of the same key.
func (m *matcher) pairQueued(items, exps []int, by string, key func(kind string, cur iotpay.Currency) pairKey) {
	q := make(map[pairKey][]int)
	for _, j := range exps {
		if !m.expDone[j] {
			k := key(m.exps[j].Kind, m.exps[j].Amount.Currency)
			q[k] = append(q[k], j)
		}
	}
	if len(q) == 0 {
		return
	}
	for _, i := range items {
		if m.itemDone[i] {
			continue
		}
		k := key(m.items[i].Kind, m.items[i].Amount.Currency)
		if js := q[k]; len(js) > 0 {
			m.pair(i, js[0], by)
			q[k] = js[1:]
		}
	}
}

// pairDates pairs items and entries that are equal but for their dates,
// as many as are within the tolerance: both sorted by date, the earliest
// pair within reach goes first.
func (m *matcher) pairDates(items, exps []int, by string) {
	if m.tol < 0 {
		for k := 0; k < len(items) && k < len(exps); k++ {
			m.pair(items[k], exps[k], by)
		}
		return
	}
	dated := func(idx []int, date func(int) time.Time) []int {
		var d []int
		for _, x := range idx {
			if !date(x).IsZero() {
				d = append(d, x)
			}
		}
		slices.SortStableFunc(d, func(a, b int) int { return date(a).Compare(date(b)) })
		return d
	}
	idate := func(i int) time.Time { return m.items[i].Date }
	edate := func(j int) time.Time { return m.exps[j].Date }
	di, dj := dated(items, idate), dated(exps, edate)
	for a, b := 0, 0; a < len(di) && b < len(dj); {
		ta, tb := idate(di[a]), edate(dj[b])
		switch {
		case m.dateOK(ta, tb):
			m.pair(di[a], dj[b], by)
			a++
			b++
		case ta.Before(tb):
			a++
		default:
			b++
		}
	}
	m.pairUndated(items, exps, by) // an undated side matches any date
}

// pairUndated pairs, in order, the entries without a date with any item
// left, then the items without a date with any entry left.
func (m *matcher) pairUndated(items, exps []int, by string) {
	k := 0
	for _, j := range exps {
		if m.expDone[j] || !m.exps[j].Date.IsZero() {
			continue
		}
		for k < len(items) && m.itemDone[items[k]] {
			k++
		}
		if k == len(items) {
			return
		}
		m.pair(items[k], j, by)
	}
	k = 0
	for _, i := range items {
		if m.itemDone[i] || !m.items[i].Date.IsZero() {
			continue
		}
		for k < len(exps) && m.expDone[exps[k]] {
			k++
		}
		if k == len(exps) {
			return
		}
		m.pair(i, exps[k], by)
	}
}

func (m *matcher) dateOK(a, b time.Time) bool {
	if m.tol < 0 || a.IsZero() || b.IsZero() {
		return true
	}
	d := a.Sub(b) // saturates rather than overflows
	return d <= m.tol && d >= -m.tol
}

// pair records item i and entry j as a pair, matched or mismatched.
func (m *matcher) pair(i, j int, by string) {
	m.itemDone[i], m.expDone[j] = true, true
	p := pairIdx{item: i, exp: j, mis: -1, by: by}
	if fields, reason := m.diff(&m.items[i], &m.exps[j]); fields != nil {
		p.mis = len(m.why)
		m.why = append(m.why, mismatchWhy{fields, reason})
	}
	m.pairs = append(m.pairs, p)
}

// diff says what differs between an item and a ledger entry, and why in
// words.
func (m *matcher) diff(it *Item, e *Expected) (fields []string, reason string) {
	var why []string
	if it.Kind != e.Kind {
		fields = append(fields, FieldKind)
		why = append(why, fmt.Sprintf("kind %s, expected %s", it.Kind, e.Kind))
	}
	if it.Amount.Currency != e.Amount.Currency {
		fields = append(fields, FieldCurrency)
		why = append(why, fmt.Sprintf("currency %s, expected %s", it.Amount.Currency, e.Amount.Currency))
		if it.Amount.Amount != e.Amount.Amount {
			fields = append(fields, FieldAmount)
			why = append(why, fmt.Sprintf("amount %s, expected %s", it.Amount, e.Amount))
		}
	} else if it.Amount.Amount != e.Amount.Amount {
		fields = append(fields, FieldAmount)
		d := iotpay.Money{Amount: it.Amount.Amount - e.Amount.Amount, Currency: e.Amount.Currency}
		sign := "+"
		if d.Amount < 0 {
			sign = ""
		}
		why = append(why, fmt.Sprintf("amount %s, expected %s (%s%s)", it.Amount, e.Amount, sign, d))
	}
	if !m.dateOK(it.Date, e.Date) {
		fields = append(fields, FieldDate)
		why = append(why, fmt.Sprintf("date %s, expected %s (%s apart, more than %s)",
			fmtDate(it.Date), fmtDate(e.Date), fmtDuration(absDuration(it.Date.Sub(e.Date))), fmtDuration(m.tol)))
	}
	return fields, strings.Join(why, "; ")
}

func absDuration(d time.Duration) time.Duration {
	switch {
	case d == math.MinInt64: // Sub saturates here, and its negation overflows
		return math.MaxInt64
	case d < 0:
		return -d
	}
	return d
}

// fmtDate shows a date without its clock when it has none.
func fmtDate(t time.Time) string {
	if t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0 {
		return t.Format(time.DateOnly)
	}
	return t.Format(time.RFC3339)
}

// fmtDuration shows whole days as "3d" and whole hours as "5h", else in
// Go's form.
func fmtDuration(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d >= day && d%day == 0:
		return fmt.Sprintf("%dd", d/day)
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.Round(time.Second).String()
}

// totals sums amounts by currency.
func totals(report []Item, expected []Expected) []Total {
	by := make(map[iotpay.Currency]*Total)
	get := func(c iotpay.Currency) *Total {
		t := by[c]
		if t == nil {
			t = &Total{Currency: c}
			by[c] = t
		}
		return t
	}
	add := func(t *Total, dst *int64, v int64) {
		s, ok := iotpay.AddInt64(*dst, v)
		if !ok {
			t.Overflow = true
			return
		}
		*dst = s
	}
	for i := range expected {
		e := &expected[i]
		t := get(e.Amount.Currency)
		add(t, &t.Expected, e.Amount.Amount)
	}
	for i := range report {
		it := &report[i]
		t := get(it.Amount.Currency)
		add(t, &t.Reported, it.Amount.Amount)
		add(t, &t.Fees, it.Fee)
		add(t, &t.Net, -it.Fee)
		switch it.Kind {
		case KindCapture:
			add(t, &t.Net, it.Amount.Amount)
		case KindRefund:
			add(t, &t.Net, -it.Amount.Amount)
		case KindFee:
			add(t, &t.Fees, it.Amount.Amount)
			add(t, &t.Net, -it.Amount.Amount)
		}
	}
	out := make([]Total, 0, len(by))
	for _, t := range by {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b Total) int { return strings.Compare(string(a.Currency), string(b.Currency)) })
	return out
}

package reconcile

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/iotpay/iotpay"
)

// WriteText writes r for a person: a summary, the totals, and tables of
// what needs attention — mismatched, missing, unexpected and duplicated
// items. The matched pairs, which may be many, are counted only; the
// JSON form of r lists them.
func (r *Report) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	status := "OK"
	if !r.OK() {
		status = "NOT OK"
	}
	reported, expected := len(r.Matched)+len(r.Mismatched)+len(r.Unexpected), len(r.Matched)+len(r.Mismatched)+len(r.Missing)
	ew.printf("Reconciliation: %s\n", status)
	ew.printf("  %d reported, %d expected: %d matched, %d mismatched, %d missing, %d unexpected, %d duplicated references\n",
		reported, expected, len(r.Matched), len(r.Mismatched), len(r.Missing), len(r.Unexpected), len(r.Duplicates))

	if len(r.Totals) > 0 {
		ew.printf("\nTotals\n")
		tw := ew.table()
		ew.row(tw, "CURRENCY", "EXPECTED", "REPORTED", "FEES", "NET", "")
		for _, t := range r.Totals {
			note := ""
			if t.Overflow {
				note = "overflow: the sums are wrong"
			}
			ew.row(tw, string(t.Currency), amount(t.Expected, t.Currency), amount(t.Reported, t.Currency),
				amount(t.Fees, t.Currency), amount(t.Net, t.Currency), note)
		}
		ew.flush(tw)
	}
	if len(r.Mismatched) > 0 {
		ew.printf("\nMismatched (the report and the ledger differ)\n")
		tw := ew.table()
		ew.row(tw, "REF", "LINE", "BY", "KIND", "AMOUNT", "REASON")
		for _, m := range r.Mismatched {
			ew.row(tw, m.Item.Ref, strconv.Itoa(m.Item.Line), m.By, m.Item.Kind, m.Item.Amount.String(), m.Reason)
		}
		ew.flush(tw)
	}
	if len(r.Missing) > 0 {
		ew.printf("\nMissing (in the ledger, not in the report)\n")
		tw := ew.table()
		ew.row(tw, "REF", "PAYMENT", "KIND", "AMOUNT", "DATE")
		for _, e := range r.Missing {
			date := ""
			if !e.Date.IsZero() {
				date = fmtDate(e.Date)
			}
			ew.row(tw, e.Ref, e.Payment, e.Kind, e.Amount.String(), date)
		}
		ew.flush(tw)
	}
	if len(r.Unexpected) > 0 {
		ew.printf("\nUnexpected (in the report, not in the ledger)\n")
		tw := ew.table()
		ew.row(tw, "REF", "LINE", "PAYMENT", "KIND", "AMOUNT", "DATE")
		for _, it := range r.Unexpected {
			ew.row(tw, it.Ref, strconv.Itoa(it.Line), it.Payment, it.Kind, it.Amount.String(), fmtDate(it.Date))
		}
		ew.flush(tw)
	}
	if len(r.Duplicates) > 0 {
		ew.printf("\nDuplicated references (named more often than the ledger has them)\n")
		tw := ew.table()
		ew.row(tw, "REF", "LINES", "EXPECTED")
		for _, d := range r.Duplicates {
			lines := make([]string, len(d.Lines))
			for k, l := range d.Lines {
				lines[k] = strconv.Itoa(l)
			}
			ew.row(tw, d.Ref, strings.Join(lines, ","), strconv.Itoa(d.Expected))
		}
		ew.flush(tw)
	}
	return ew.err
}

// amount formats minor units of c without the currency code.
func amount(v int64, c iotpay.Currency) string {
	return strings.TrimSuffix(iotpay.Money{Amount: v, Currency: c}.String(), " "+string(c))
}

// errWriter keeps the first write error so the tables need no checks.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) { fmt.Fprintf(e, format, args...) }

func (e *errWriter) table() *tabwriter.Writer {
	return tabwriter.NewWriter(&trimWriter{w: e}, 0, 0, 2, ' ', 0)
}

// trimWriter drops the spaces that end a line: tabwriter pads every cell
// of a column, the last one of a line too when cells after it are empty.
type trimWriter struct {
	w      io.Writer
	spaces int // held back until something other than a newline follows
	buf    []byte
}

func (t *trimWriter) Write(p []byte) (int, error) {
	t.buf = t.buf[:0]
	for _, c := range p {
		switch c {
		case ' ':
			t.spaces++
			continue
		case '\n':
			t.spaces = 0
		}
		for ; t.spaces > 0; t.spaces-- {
			t.buf = append(t.buf, ' ')
		}
		t.buf = append(t.buf, c)
	}
	if _, err := t.w.Write(t.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// row writes one table row; control characters (a tab, a newline) in
// what the caller gave would break the table, so they show as '?'.
func (e *errWriter) row(tw *tabwriter.Writer, cells ...string) {
	for k, c := range cells {
		if k > 0 {
			io.WriteString(tw, "\t")
		}
		io.WriteString(tw, strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return '?'
			}
			return r
		}, c))
	}
	io.WriteString(tw, "\n")
}

func (e *errWriter) flush(tw *tabwriter.Writer) {
	if err := tw.Flush(); err != nil && e.err == nil {
		e.err = err
	}
}

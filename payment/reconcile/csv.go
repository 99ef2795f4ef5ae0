package reconcile

import (
	"encoding/csv"
	"errors"
	"io"
	"strings"

	"github.com/iotpay/iotpay"
)

// csvColumns are the indices of the columns a CSV report uses, -1 when
// absent.
type csvColumns struct {
	ref, amount, currency, date, typ, fee, payment int
}

// csvRole is a column a row is read from and the header names that may
// carry it.
type csvRole struct {
	idx      *int
	names    []string
	required bool
}

// csvRoles lists, for each column a row is read from, the header names
// that may carry it, the preferred first: when a file has both
// "reference" and "source", "reference" is the reference.
func csvRoles(c *csvColumns) []csvRole {
	return []csvRole{
		{&c.ref, []string{"reference", "source", "source_id"}, true},
		{&c.amount, []string{"amount"}, true},
		{&c.currency, []string{"currency"}, true},
		{&c.date, []string{"date", "created", "available_on"}, true},
		{&c.typ, []string{"type"}, false},
		{&c.fee, []string{"fee"}, false},
		{&c.payment, []string{"payment_id", "metadata[iotpay_payment]", "iotpay_payment_(metadata)"}, false},
	}
}

// normalizeHeader folds a header name so that "Created (UTC)" and
// "created" name the same column: lower case, a trailing "(UTC)" dropped,
// spaces as underscores.
func normalizeHeader(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	h = strings.TrimSpace(strings.TrimSuffix(h, "(utc)"))
	return strings.ReplaceAll(h, " ", "_")
}

func parseCSVHeader(header []string) (*csvColumns, error) {
	if len(header) > ColumnsMax {
		return nil, lineError(1, "more than %d columns", ColumnsMax)
	}
	at := make(map[string]int, len(header))
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff") // a byte order mark from a spreadsheet
		}
		n := normalizeHeader(h)
		if n == "" {
			continue
		}
		if _, dup := at[n]; dup {
			return nil, lineError(1, "column %q appears twice", clip(n))
		}
		at[n] = i
	}
	c := &csvColumns{}
	for _, role := range csvRoles(c) {
		*role.idx = -1
		for _, n := range role.names {
			if i, ok := at[n]; ok {
				*role.idx = i
				break
			}
		}
		if *role.idx < 0 && role.required {
			return nil, lineError(1, "missing column %q", role.names[0])
		}
	}
	return c, nil
}

// ParseCSV parses a settlement report in the CSV format the package
// documentation describes. It refuses the whole file, with an
// *iotpay.Error EINVALID naming the line, when one row does not parse.
func ParseCSV(r io.Reader) ([]Item, error) {
	cr := csv.NewReader(newCapped(r))
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, lineError(1, "no header row")
	}
	if err != nil {
		return nil, csvError(err)
	}
	cols, err := parseCSVHeader(header)
	if err != nil {
		return nil, err
	}
	var items []Item
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvError(err)
		}
		line, _ := cr.FieldPos(0)
		if len(items) >= ItemsMax {
			return nil, lineError(line, "more than %d items", ItemsMax)
		}
		it, err := cols.item(rec, line)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, nil
}

func csvError(err error) error {
	var e *iotpay.Error
	if errors.As(err, &e) {
		return e
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return lineError(pe.Line, "%v", pe.Err)
	}
	return readError(err)
}

// csvKind maps a type cell to a kind; Stripe's balance transaction types
// are among the names.
func csvKind(t string) string {
	switch strings.ToLower(t) {
	case "capture", "charge", "payment":
		return KindCapture
	case "refund", "payment_refund":
		return KindRefund
	case "fee", "stripe_fee":
		return KindFee
	}
	return KindOther
}

func (c *csvColumns) item(rec []string, line int) (Item, error) {
	cell := func(i int) string {
		if i < 0 {
			return ""
		}
		return strings.TrimSpace(rec[i])
	}
	it := Item{Ref: cell(c.ref), Line: line}
	if it.Ref == "" {
		return Item{}, lineError(line, "missing reference")
	}
	if err := checkText(it.Ref); err != nil {
		return Item{}, lineError(line, "reference %v", err)
	}
	cs := cell(c.currency)
	cur, err := iotpay.ParseCurrency(strings.ToUpper(cs))
	if err != nil {
		return Item{}, lineError(line, "unknown currency %q", clip(cs))
	}
	as := cell(c.amount)
	v, neg, err := parseAmount(as, cur.Scale())
	if err != nil {
		return Item{}, lineError(line, "amount %q: %v", clip(as), err)
	}
	if v == 0 {
		return Item{}, lineError(line, "amount is zero")
	}
	it.Amount = iotpay.Money{Amount: v, Currency: cur}
	// The kind says the direction; a file without one says it by sign.
	// Stripe writes refunds and fees as negative amounts.
	switch t := cell(c.typ); {
	case t != "":
		it.Kind = csvKind(t)
		if neg && it.Kind == KindCapture {
			return Item{}, lineError(line, "negative amount for a capture")
		}
	case neg:
		it.Kind = KindRefund
	default:
		it.Kind = KindCapture
	}
	ds := cell(c.date)
	if it.Date, err = parseDate(ds); err != nil {
		return Item{}, lineError(line, "date %q: %v", clip(ds), err)
	}
	if fs := cell(c.fee); fs != "" {
		// Connectors write a fee either way round; what was kept is its size.
		if it.Fee, _, err = parseAmount(fs, cur.Scale()); err != nil {
			return Item{}, lineError(line, "fee %q: %v", clip(fs), err)
		}
	}
	if p := cell(c.payment); p != "" {
		if !isPayment(p) {
			return Item{}, lineError(line, "payment id %q is not a payment id", clip(p))
		}
		it.Payment = p
	}
	return it, nil
}

// clip shortens untrusted text quoted in a message.
func clip(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

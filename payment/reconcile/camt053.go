package reconcile

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/iotpay/iotpay"
)

// Camt053Namespace is the namespace prefix of a camt.053
// BankToCustomerStatement Document; the version follows it ("02", "08").
const Camt053Namespace = "urn:iso:std:iso:20022:tech:xsd:camt.053.001."

// Depths in a camt.053 document, counting Document as 1.
const (
	camtEntryDepth = 4 // Document/BkToCstmrStmt/Stmt/Ntry
	camtTxDepth    = 6 // .../Ntry/NtryDtls/TxDtls
)

// camtAmount is an amount element, kept with whether it was there.
type camtAmount struct {
	m   iotpay.Money
	set bool
}

// camtCharges sums the charge records of an entry or a transaction.
type camtCharges struct {
	sum int64
	ccy iotpay.Currency
	n   int
}

func (c *camtCharges) add(m iotpay.Money, line int) error {
	if c.n > 0 && c.ccy != m.Currency {
		return lineError(line, "charges in both %s and %s", c.ccy, m.Currency)
	}
	c.n++
	c.ccy = m.Currency
	c.sum += m.Amount // each is at most AmountMax: no overflow before the check
	if c.sum > AmountMax {
		return lineError(line, "charges too large")
	}
	return nil
}

type camtTx struct {
	line                        int
	amt, txAmt, instdAmt        camtAmount
	cdtDbt                      string
	acctSvcrRef, txID, endToEnd string
	charges                     camtCharges
}

type camtEntry struct {
	line                 int
	amt                  camtAmount
	cdtDbt, sts          string
	stsSet               bool
	booked, value        time.Time
	acctSvcrRef, ntryRef string
	charges              camtCharges
	txs                  []camtTx
}

// camtParser walks a camt.053 document token by token, so that depth
// and sizes are checked as it goes and nothing but the current entry is
// held.
type camtParser struct {
	d     *xml.Decoder
	stack []string // local names from Document down to the current element
	text  []byte   // text of the current element, up to TextLenMax
	long  bool     // the current element's text passed TextLenMax
	leaf  bool     // no child element started since the current one did
	ccy   string   // the Ccy attribute of the element started last
	entry *camtEntry
	tx    *camtTx
	items []Item
}

// ParseCamt053 parses an ISO 20022 camt.053 BankToCustomerStatement
// (any camt.053.001 version; .02 and .08 are tested) into one item per
// booked entry, or one per transaction of a batch entry, as the package
// documentation describes. A document type declaration is refused.
func ParseCamt053(r io.Reader) ([]Item, error) {
	p := &camtParser{d: xml.NewDecoder(newCapped(r))}
	p.d.Strict = true
	// No CharsetReader: a document declared in anything but UTF-8 is
	// refused rather than guessed at.
	return p.run()
}

func (p *camtParser) line() int {
	l, _ := p.d.InputPos()
	return l
}

func (p *camtParser) run() ([]Item, error) {
	root, done := false, false
	for {
		tok, err := p.d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, p.xmlError(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if done {
				return nil, lineError(p.line(), "content after the Document")
			}
			if len(p.stack) >= DepthMax {
				return nil, lineError(p.line(), "nested deeper than %d elements", DepthMax)
			}
			if !root {
				if err := p.checkRoot(t.Name); err != nil {
					return nil, err
				}
				root = true
			}
			p.stack = append(p.stack, t.Name.Local)
			p.text, p.long, p.leaf = p.text[:0], false, true
			p.ccy = ""
			for _, a := range t.Attr {
				if a.Name.Local == "Ccy" {
					p.ccy = a.Value
				}
			}
			if err := p.start(); err != nil {
				return nil, err
			}
		case xml.EndElement:
			if err := p.end(); err != nil {
				return nil, err
			}
			p.stack = p.stack[:len(p.stack)-1]
			p.text, p.long, p.leaf = p.text[:0], false, false
			done = len(p.stack) == 0
		case xml.CharData:
			if len(p.stack) == 0 {
				if len(bytes.TrimSpace(t)) > 0 {
					return nil, lineError(p.line(), "text outside the Document")
				}
				continue
			}
			if len(p.text)+len(t) > TextLenMax {
				p.long = true
			} else {
				p.text = append(p.text, t...)
			}
		case xml.Directive:
			// A DOCTYPE could declare entities; encoding/xml would not
			// expand them, but no statement needs one.
			return nil, lineError(p.line(), "DOCTYPE or other declaration refused")
		}
	}
	if !done {
		return nil, lineError(p.line(), "no camt.053 Document")
	}
	return p.items, nil
}

func (p *camtParser) xmlError(err error) error {
	var e *iotpay.Error
	if errors.As(err, &e) {
		return e
	}
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return lineError(se.Line, "%s", se.Msg)
	}
	return lineError(p.line(), "%v", err)
}

func (p *camtParser) checkRoot(n xml.Name) error {
	v, ok := strings.CutPrefix(n.Space, Camt053Namespace)
	if n.Local != "Document" || !ok || len(v) != 2 || v[0] < '0' || v[0] > '9' || v[1] < '0' || v[1] > '9' {
		return lineError(p.line(), "not a camt.053 Document (element %q in namespace %q)", clip(n.Local), clip(n.Space))
	}
	return nil
}

// under reports whether the current element is at path below the
// element at depth base (counting Document as 1).
func (p *camtParser) under(base int, path ...string) bool {
	if len(p.stack) != base+len(path) {
		return false
	}
	for i, s := range path {
		if p.stack[base+i] != s {
			return false
		}
	}
	return true
}

func (p *camtParser) start() error {
	switch len(p.stack) {
	case camtEntryDepth:
		if p.under(1, "BkToCstmrStmt", "Stmt", "Ntry") {
			p.entry = &camtEntry{line: p.line()}
		}
	case camtTxDepth:
		if p.entry != nil && p.under(camtEntryDepth, "NtryDtls", "TxDtls") {
			if len(p.items)+len(p.entry.txs) >= ItemsMax {
				return lineError(p.line(), "more than %d items", ItemsMax)
			}
			p.entry.txs = append(p.entry.txs, camtTx{line: p.line()})
			p.tx = &p.entry.txs[len(p.entry.txs)-1]
		}
	}
	return nil
}

func (p *camtParser) end() error {
	e := p.entry
	if e == nil {
		return nil
	}
	switch {
	case len(p.stack) == camtEntryDepth:
		p.entry, p.tx = nil, nil
		return p.finish(e)
	case p.tx != nil && len(p.stack) == camtTxDepth:
		p.tx = nil
		return nil
	case p.tx != nil:
		return p.txField(p.tx)
	}
	return p.entryField(e)
}

// field returns the current element's text when it is one the parser
// uses: a leaf of bounded length.
func (p *camtParser) field() (string, error) {
	name := p.stack[len(p.stack)-1]
	if !p.leaf {
		return "", lineError(p.line(), "%s has child elements", name)
	}
	if p.long {
		return "", lineError(p.line(), "%s longer than %d bytes", name, TextLenMax)
	}
	return strings.TrimSpace(string(p.text)), nil
}

func (p *camtParser) setText(dst *string, ref bool) error {
	s, err := p.field()
	if err != nil {
		return err
	}
	name := p.stack[len(p.stack)-1]
	if *dst != "" {
		return lineError(p.line(), "%s repeated", name)
	}
	if ref {
		if err := checkText(s); err != nil {
			return lineError(p.line(), "%s %v", name, err)
		}
	}
	*dst = s
	return nil
}

func (p *camtParser) amount() (iotpay.Money, error) {
	s, err := p.field()
	if err != nil {
		return iotpay.Money{}, err
	}
	cur, err := iotpay.ParseCurrency(p.ccy)
	if err != nil {
		return iotpay.Money{}, lineError(p.line(), "unknown currency %q", clip(p.ccy))
	}
	v, neg, err := parseAmount(s, cur.Scale())
	if err == nil && neg {
		err = errors.New("negative (the direction is in CdtDbtInd)")
	}
	if err != nil {
		return iotpay.Money{}, lineError(p.line(), "amount %q: %v", clip(s), err)
	}
	return iotpay.Money{Amount: v, Currency: cur}, nil
}

func (p *camtParser) setAmount(dst *camtAmount) error {
	if dst.set {
		return lineError(p.line(), "%s repeated", p.stack[len(p.stack)-1])
	}
	m, err := p.amount()
	if err != nil {
		return err
	}
	*dst = camtAmount{m: m, set: true}
	return nil
}

func (p *camtParser) addCharge(c *camtCharges) error {
	m, err := p.amount()
	if err != nil {
		return err
	}
	return c.add(m, p.line())
}

func (p *camtParser) setDate(dst *time.Time) error {
	s, err := p.field()
	if err != nil {
		return err
	}
	if !dst.IsZero() {
		return lineError(p.line(), "date repeated")
	}
	if *dst, err = parseDate(s); err != nil {
		return lineError(p.line(), "date %q: %v", clip(s), err)
	}
	return nil
}

// entryField takes the fields of an entry outside its transactions.
func (p *camtParser) entryField(e *camtEntry) error {
	const b = camtEntryDepth
	switch {
	case p.under(b, "Amt"):
		return p.setAmount(&e.amt)
	case p.under(b, "CdtDbtInd"):
		return p.setText(&e.cdtDbt, false)
	case p.under(b, "Sts") && p.leaf, p.under(b, "Sts", "Cd"): // .02 has the code, later versions Cd
		e.stsSet = true
		return p.setText(&e.sts, false)
	case p.under(b, "Sts", "Prtry"):
		e.stsSet = true
		return p.setText(&e.sts, false)
	case p.under(b, "BookgDt", "Dt"), p.under(b, "BookgDt", "DtTm"):
		return p.setDate(&e.booked)
	case p.under(b, "ValDt", "Dt"), p.under(b, "ValDt", "DtTm"):
		return p.setDate(&e.value)
	case p.under(b, "AcctSvcrRef"):
		return p.setText(&e.acctSvcrRef, true)
	case p.under(b, "NtryRef"):
		return p.setText(&e.ntryRef, true)
	case p.under(b, "Chrgs", "Rcrd", "Amt"), p.under(b, "Chrgs", "Amt"): // .04 and later, .02
		return p.addCharge(&e.charges)
	}
	return nil
}

// txField takes the fields of a transaction of an entry.
func (p *camtParser) txField(tx *camtTx) error {
	const b = camtTxDepth
	switch {
	case p.under(b, "Amt"):
		return p.setAmount(&tx.amt)
	case p.under(b, "AmtDtls", "TxAmt", "Amt"):
		return p.setAmount(&tx.txAmt)
	case p.under(b, "AmtDtls", "InstdAmt", "Amt"):
		return p.setAmount(&tx.instdAmt)
	case p.under(b, "CdtDbtInd"):
		return p.setText(&tx.cdtDbt, false)
	case p.under(b, "Refs", "AcctSvcrRef"):
		return p.setText(&tx.acctSvcrRef, true)
	case p.under(b, "Refs", "TxId"):
		return p.setText(&tx.txID, true)
	case p.under(b, "Refs", "EndToEndId"):
		return p.setText(&tx.endToEnd, true)
	case p.under(b, "Chrgs", "Rcrd", "Amt"), p.under(b, "Chrgs", "Amt"):
		return p.addCharge(&tx.charges)
	}
	return nil
}

func camtKind(ind string, line int) (string, error) {
	switch ind {
	case "CRDT":
		return KindCapture, nil
	case "DBIT":
		return KindRefund, nil
	}
	return "", lineError(line, "CdtDbtInd %q: want CRDT or DBIT", clip(ind))
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func paymentOf(endToEnd string) string {
	if isPayment(endToEnd) {
		return endToEnd
	}
	return "" // NOTPROVIDED, or someone else's id
}

// fee returns the charges as a fee of an item in currency c.
func (c *camtCharges) fee(cur iotpay.Currency, line int) (int64, error) {
	if c.n > 0 && c.ccy != cur {
		return 0, lineError(line, "charges in %s for an amount in %s", c.ccy, cur)
	}
	return c.sum, nil
}

func (p *camtParser) add(it Item) error {
	if len(p.items) >= ItemsMax {
		return lineError(it.Line, "more than %d items", ItemsMax)
	}
	p.items = append(p.items, it)
	return nil
}

// finish turns an entry into items: one for a single payment, one per
// transaction for a batch.
func (p *camtParser) finish(e *camtEntry) error {
	if !e.stsSet {
		return lineError(e.line, "entry without Sts")
	}
	if e.sts != "BOOK" {
		return nil // pending or information only: nothing was settled yet
	}
	if !e.amt.set {
		return lineError(e.line, "entry without Amt")
	}
	if e.amt.m.Amount == 0 {
		return lineError(e.line, "entry amount is zero")
	}
	kind, err := camtKind(e.cdtDbt, e.line)
	if err != nil {
		return err
	}
	date := e.booked
	if date.IsZero() {
		date = e.value
	}
	if date.IsZero() {
		return lineError(e.line, "entry without BookgDt or ValDt")
	}
	if len(e.txs) <= 1 {
		it := Item{Kind: kind, Amount: e.amt.m, Date: date, Line: e.line}
		ch := &e.charges
		if len(e.txs) == 1 {
			tx := &e.txs[0]
			it.Ref = firstOf(tx.acctSvcrRef, tx.txID)
			it.Payment = paymentOf(tx.endToEnd)
			if tx.charges.n > 0 {
				ch = &tx.charges // the entry's, if any, would be the same again
			}
		}
		if it.Ref == "" {
			it.Ref = firstOf(e.acctSvcrRef, e.ntryRef)
		}
		if it.Ref == "" {
			return lineError(e.line, "entry without a reference (AcctSvcrRef, TxId or NtryRef)")
		}
		if it.Fee, err = ch.fee(it.Amount.Currency, e.line); err != nil {
			return err
		}
		return p.add(it)
	}
	txCharges := false
	for i := range e.txs {
		tx := &e.txs[i]
		a := tx.amt
		if !a.set {
			a = tx.txAmt
		}
		if !a.set {
			a = tx.instdAmt
		}
		if !a.set {
			return lineError(tx.line, "transaction of a batch entry without Amt or AmtDtls")
		}
		if a.m.Amount == 0 {
			return lineError(tx.line, "transaction amount is zero")
		}
		it := Item{Kind: kind, Amount: a.m, Date: date, Line: tx.line,
			Ref: firstOf(tx.acctSvcrRef, tx.txID), Payment: paymentOf(tx.endToEnd)}
		if it.Ref == "" {
			return lineError(tx.line, "transaction of a batch entry without AcctSvcrRef or TxId")
		}
		if tx.cdtDbt != "" {
			if it.Kind, err = camtKind(tx.cdtDbt, tx.line); err != nil {
				return err
			}
		}
		if it.Fee, err = tx.charges.fee(it.Amount.Currency, tx.line); err != nil {
			return err
		}
		txCharges = txCharges || tx.charges.n > 0
		if err := p.add(it); err != nil {
			return err
		}
	}
	// Charges on a batch entry belong to no one transaction: they are
	// an item of their own, unless the transactions carry theirs (of
	// which the entry's would be the total).
	if !txCharges && e.charges.sum > 0 {
		ref := firstOf(e.acctSvcrRef, e.ntryRef)
		if ref == "" {
			return lineError(e.line, "charges of a batch entry without AcctSvcrRef or NtryRef")
		}
		return p.add(Item{Ref: ref, Kind: KindFee, Amount: iotpay.Money{Amount: e.charges.sum, Currency: e.charges.ccy},
			Date: date, Line: e.line})
	}
	return nil
}

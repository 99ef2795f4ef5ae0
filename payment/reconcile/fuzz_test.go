package reconcile

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/iotpay/iotpay"
)

// seed adds the testdata files matching pattern and extra inputs to f's
// corpus.
func seed(f *testing.F, pattern string, extra ...string) {
	files, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(files) == 0 {
		f.Fatalf("no testdata %s: %v", pattern, err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range extra {
		f.Add([]byte(s))
	}
}

// checkParsed checks what a parser returned: an *iotpay.Error EINVALID,
// or items every one of which is sound — and that matching the items
// against themselves finds them all.
func checkParsed(t *testing.T, items []Item, err error) {
	t.Helper()
	if err != nil {
		var e *iotpay.Error
		if !errors.As(err, &e) || e.Code != iotpay.EINVALID {
			t.Fatalf("error %v (%T), want an *iotpay.Error EINVALID", err, err)
		}
		if items != nil {
			t.Fatalf("items %v with error %v", items, err)
		}
		return
	}
	if len(items) > ItemsMax {
		t.Fatalf("%d items", len(items))
	}
	exp := make([]Expected, len(items))
	for i, it := range items {
		if it.Amount.Amount <= 0 || it.Amount.Amount > AmountMax || !it.Amount.Currency.Valid() {
			t.Fatalf("item %d: amount %+v", i, it.Amount)
		}
		if it.Fee < 0 || it.Fee > AmountMax {
			t.Fatalf("item %d: fee %d", i, it.Fee)
		}
		switch it.Kind {
		case KindCapture, KindRefund, KindFee, KindOther:
		default:
			t.Fatalf("item %d: kind %q", i, it.Kind)
		}
		if it.Ref == "" || checkText(it.Ref) != nil {
			t.Fatalf("item %d: ref %q", i, it.Ref)
		}
		if it.Payment != "" && !isPayment(it.Payment) {
			t.Fatalf("item %d: payment %q", i, it.Payment)
		}
		if it.Date.IsZero() || it.Line < 1 {
			t.Fatalf("item %d: date %v line %d", i, it.Date, it.Line)
		}
		exp[i] = Expected{Ref: it.Ref, Payment: it.Payment, Kind: it.Kind, Amount: it.Amount, Date: it.Date}
	}
	r := Match(items, exp, Options{})
	if !r.OK() || len(r.Matched) != len(items) {
		t.Fatalf("items matched against themselves: %+v", r)
	}
	if err := r.WriteText(io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Fatal(err)
	}
}

// FuzzParseCSV checks that ParseCSV never panics and returns sound items
// or an EINVALID error.
func FuzzParseCSV(f *testing.F) {
	seed(f, "*.csv",
		"",
		csvHeader,
		csvHeader+"r,1,EUR,2024-01-01\n",
		csvHeader+"r,-1.5,jpy,2024-01-01T10:00:00+09:00\n",
		"reference,amount,currency,date,type,fee,payment_id\nr,3.125,KWD,2024-01-01,fee,-0.001,pay_5f571dywcm576dhc5sabtswzev\n",
		"\ufeffSource,Amount,Currency,Created (UTC)\n\"r\n\",1,EUR,2024-01-01 00:00:00\n",
		csvHeader+"r,99999999999999999999,EUR,2024-01-01\n",
	)
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := ParseCSV(bytes.NewReader(b))
		checkParsed(t, items, err)
	})
}

// FuzzParseCamt053 checks that ParseCamt053 never panics and returns
// sound items or an EINVALID error.
func FuzzParseCamt053(f *testing.F) {
	seed(f, "*.xml",
		"",
		camtHead+camtTail,
		camtHead+camtEntryXML("1.00", "EUR", "CRDT", "2024-01-02", "")+camtTail,
		camtHead+camtEntryXML("1", "JPY", "DBIT", "2024-01-02T10:00:00",
			`<TxDtls><Refs><TxId>A</TxId></Refs><Amt Ccy="JPY">1</Amt></TxDtls><TxDtls><Refs><TxId>B</TxId></Refs><AmtDtls><TxAmt><Amt Ccy="JPY">2</Amt></TxAmt></AmtDtls></TxDtls>`)+camtTail,
		`<!DOCTYPE x><Document/>`,
		`<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt><Stmt><Ntry><Sts>BOOK</Sts></Ntry></Stmt></BkToCstmrStmt></Document>`,
	)
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := ParseCamt053(bytes.NewReader(b))
		checkParsed(t, items, err)
	})
}

package reconcile

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
)

const benchItems = 100_000

// benchData returns a CSV report and a camt.053 statement of n captures
// and the ledger's view of them: all but one in a hundred match, the rest
// differ in amount, and the report's references are in reverse order.
func benchData(n int) (csvReport, camtReport []byte, expected []Expected) {
	var c, x bytes.Buffer
	c.WriteString("reference,type,amount,fee,currency,date,payment_id\n")
	x.WriteString(camtHead)
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := n - 1; i >= 0; i-- {
		ref := fmt.Sprintf("pi_%010d", i)
		pay := iotpay.DeriveID(iotpay.PrefixPayment, ref)
		amount := int64(100 + i%10_000)
		date := base.Add(time.Duration(i%30) * 24 * time.Hour)
		fmt.Fprintf(&c, "%s,charge,%d.%02d,0.25,EUR,%s,%s\n", ref, amount/100, amount%100, date.Format(time.DateOnly), pay)
		fmt.Fprintf(&x, `<Ntry><Amt Ccy="EUR">%d.%02d</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>%s</Dt></BookgDt>`+
			`<NtryDtls><TxDtls><Refs><AcctSvcrRef>%s</AcctSvcrRef><EndToEndId>%s</EndToEndId></Refs><Chrgs><Rcrd><Amt Ccy="EUR">0.25</Amt></Rcrd></Chrgs></TxDtls></NtryDtls></Ntry>`+"\n",
			amount/100, amount%100, date.Format(time.DateOnly), ref, pay)
		if i%100 == 99 {
			amount++
		}
		expected = append(expected, Expected{Ref: ref, Payment: pay, Kind: KindCapture, Amount: eur(amount), Date: date})
	}
	x.WriteString(camtTail)
	return c.Bytes(), x.Bytes(), expected
}

func BenchmarkParseCSV(b *testing.B) {
	report, _, _ := benchData(benchItems)
	b.SetBytes(int64(len(report)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCSV(bytes.NewReader(report)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseCamt053(b *testing.B) {
	_, report, _ := benchData(benchItems)
	b.SetBytes(int64(len(report)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCamt053(bytes.NewReader(report)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	report, _, expected := benchData(benchItems)
	items, err := ParseCSV(bytes.NewReader(report))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r := Match(items, expected, Options{})
		if len(r.Matched) != benchItems*99/100 || len(r.Mismatched) != benchItems/100 {
			b.Fatalf("%d matched, %d mismatched", len(r.Matched), len(r.Mismatched))
		}
	}
}

// BenchmarkParseAndMatch is a whole reconciliation of 100,000 items:
// parse the CSV report, match it with the ledger.
func BenchmarkParseAndMatch(b *testing.B) {
	report, _, expected := benchData(benchItems)
	b.SetBytes(int64(len(report)))
	b.ReportAllocs()
	for b.Loop() {
		items, err := ParseCSV(bytes.NewReader(report))
		if err != nil {
			b.Fatal(err)
		}
		if r := Match(items, expected, Options{}); len(r.Matched) != benchItems*99/100 {
			b.Fatalf("%d matched", len(r.Matched))
		}
	}
}

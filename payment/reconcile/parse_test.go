package reconcile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/iotpay/iotpay"
)

func eur(v int64) iotpay.Money { return iotpay.Money{Amount: v, Currency: "EUR"} }

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func parseFile(t *testing.T, name string, parse func(*os.File) ([]Item, error)) []Item {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	items, err := parse(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return items
}

func csvFile(f *os.File) ([]Item, error)      { return ParseCSV(f) }
func camtFile(f *os.File) ([]Item, error)     { return ParseCamt053(f) }
func parseCSVString(s string) ([]Item, error) { return ParseCSV(strings.NewReader(s)) }
func parseCamtString(s string) ([]Item, error) {
	return ParseCamt053(strings.NewReader(s))
}

func TestParseTestdata(t *testing.T) {
	cet := time.FixedZone("", 3600)
	for _, tc := range []struct {
		file  string
		parse func(*os.File) ([]Item, error)
		want  []Item
	}{
		{"settlement.csv", csvFile, []Item{
			{Ref: "pi_3OqXyZ2eZvKYlo2C0a1b2c3d", Payment: "pay_5f571dywcm576dhc5sabtswzev", Kind: KindCapture,
				Amount: eur(1234), Fee: 42, Date: day(2024, 3, 1), Line: 2},
			{Ref: "RRN409120000017", Payment: "pay_0ssyqm6chmb9fpddb5jywhnk05", Kind: KindCapture,
				Amount: eur(4000), Fee: 60, Date: time.Date(2024, 3, 1, 18, 45, 10, 0, cet), Line: 3},
			{Ref: "re_3OqXyZ2eZvKYlo2C1x2y3z4w", Payment: "pay_5f571dywcm576dhc5sabtswzev", Kind: KindRefund,
				Amount: eur(500), Date: day(2024, 3, 2), Line: 5},
			{Ref: "RRN409120000018", Payment: "pay_0m8aqze7p3xh55e0ace4rbjq2j", Kind: KindCapture,
				Amount: iotpay.Money{Amount: 1500, Currency: "JPY"}, Fee: 12, Date: day(2024, 3, 2), Line: 6},
			{Ref: "RRN409120000019", Kind: KindCapture,
				Amount: iotpay.Money{Amount: 3125, Currency: "KWD"}, Fee: 50, Date: day(2024, 3, 3), Line: 7},
			{Ref: "FEE-2024-03", Kind: KindFee, Amount: eur(1990), Date: day(2024, 3, 31), Line: 9},
			{Ref: "ADJ-2024-03-07", Kind: KindOther, Amount: eur(15), Date: day(2024, 3, 31), Line: 10},
		}},
		{"stripe_balance.csv", csvFile, []Item{
			{Ref: "ch_3OqA1b2eZvKYlo2C0xYz1234", Payment: "pay_3gmq6wb2era509058qqzz30ezf", Kind: KindCapture,
				Amount: eur(2500), Fee: 103, Date: time.Date(2024, 3, 1, 9, 12, 44, 0, time.UTC), Line: 2},
			{Ref: "py_3OqB7c2eZvKYlo2C1pQrStUv", Payment: "pay_31vk2v65kazydf6jx8f7t5vsc7", Kind: KindCapture,
				Amount: eur(1000), Fee: 39, Date: time.Date(2024, 3, 1, 11, 30, 5, 0, time.UTC), Line: 3},
			{Ref: "re_3OqC9d2eZvKYlo2C0vWxYz12", Payment: "pay_3gmq6wb2era509058qqzz30ezf", Kind: KindRefund,
				Amount: eur(500), Date: time.Date(2024, 3, 2, 8, 1, 0, 0, time.UTC), Line: 4},
			{Ref: "ch_3OqD2e2eZvKYlo2C1dDeEfFg", Payment: "pay_2tzn5jjf7dtatyb20tpjynzxf5", Kind: KindCapture,
				Amount: iotpay.Money{Amount: 1500, Currency: "JPY"}, Fee: 45, Date: time.Date(2024, 3, 2, 14, 22, 10, 0, time.UTC), Line: 5},
			{Ref: "fee_1OqE4f2eZvKYlo2CkKlLmMnO", Kind: KindFee, Amount: eur(250), Date: day(2024, 3, 3), Line: 6},
			{Ref: "po_1OqF6g2eZvKYlo2CnNoOpPqR", Kind: KindOther, Amount: eur(2759), Date: time.Date(2024, 3, 5, 3, 0, 0, 0, time.UTC), Line: 7},
		}},
		{"camt053_v08.xml", camtFile, []Item{
			{Ref: "ACQ-7781-000017", Payment: "pay_6r541j51dpy3xa9p404va6ba0h", Kind: KindCapture,
				Amount: eur(2466), Fee: 34, Date: day(2024, 3, 4), Line: 59},
			{Ref: "RFND-20240304-0003", Kind: KindRefund, Amount: eur(750),
				Date: time.Date(2024, 3, 4, 14, 3, 27, 0, cet), Line: 106},
			// Entry 3 is pending: not an item.
			{Ref: "ACQ-7781-000018", Payment: "pay_7dtvq5y8d86fnqyk9ehspjpgqk", Kind: KindCapture,
				Amount: eur(2100), Fee: 26, Date: day(2024, 3, 4), Line: 180},
			{Ref: "ACQ-7781-000019", Kind: KindCapture, Amount: eur(1212), Date: day(2024, 3, 4), Line: 198},
		}},
		{"camt053_v02_batch.xml", camtFile, []Item{
			{Ref: "ZV20240308/000117/1", Payment: "pay_5f571dywcm576dhc5sabtswzev", Kind: KindCapture,
				Amount: eur(5000), Date: day(2024, 3, 8), Line: 65},
			{Ref: "PSPTX8842", Payment: "pay_0ssyqm6chmb9fpddb5jywhnk05", Kind: KindCapture,
				Amount: eur(2420), Date: day(2024, 3, 8), Line: 81},
			{Ref: "ZV20240308/000117/3", Kind: KindCapture, Amount: eur(1250), Date: day(2024, 3, 8), Line: 93},
			{Ref: "ZV20240308/000117", Kind: KindFee, Amount: eur(120), Date: day(2024, 3, 8), Line: 34},
			{Ref: "PSP-RF-4410", Payment: "pay_0m8aqze7p3xh55e0ace4rbjq2j", Kind: KindRefund,
				Amount: eur(1500), Fee: 50, Date: day(2024, 3, 8), Line: 110},
			{Ref: "ZV20240309/000002", Kind: KindCapture, Amount: eur(300), Date: day(2024, 3, 9), Line: 139},
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got := parseFile(t, tc.file, tc.parse)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("items (-want +got):\n%s", d)
			}
		})
	}
}

// wantInvalid checks err is an *iotpay.Error EINVALID whose message holds
// every one of want.
func wantInvalid(t *testing.T, err error, want ...string) {
	t.Helper()
	var e *iotpay.Error
	if !errors.As(err, &e) || e.Code != iotpay.EINVALID {
		t.Fatalf("error %v (%T), want an *iotpay.Error EINVALID", err, err)
	}
	for _, w := range want {
		if !strings.Contains(e.Message, w) {
			t.Errorf("message %q does not say %q", e.Message, w)
		}
	}
}

const csvHeader = "reference,amount,currency,date\n"

func TestParseCSV(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []Item
	}{
		{"header only", csvHeader, nil},
		{"minimal", csvHeader + "r1,1.5,EUR,2024-01-02\n",
			[]Item{{Ref: "r1", Kind: KindCapture, Amount: eur(150), Date: day(2024, 1, 2), Line: 2}}},
		{"negative without type is a refund", csvHeader + "r1,-1.50,eur,2024-01-02\n",
			[]Item{{Ref: "r1", Kind: KindRefund, Amount: eur(150), Date: day(2024, 1, 2), Line: 2}}},
		{"columns in any order and case", " Currency ,DATE,Amount,Reference\r\nEUR,2024-01-02,7,r1\r\n",
			[]Item{{Ref: "r1", Kind: KindCapture, Amount: eur(700), Date: day(2024, 1, 2), Line: 2}}},
		{"reference preferred to source", "source,reference,amount,currency,date\ns1,r1,1,EUR,2024-01-02\n",
			[]Item{{Ref: "r1", Kind: KindCapture, Amount: eur(100), Date: day(2024, 1, 2), Line: 2}}},
		{"available_on when nothing else", "source,amount,currency,available_on,net\ns1,1,EUR,2024-01-05,0.9\n",
			[]Item{{Ref: "s1", Kind: KindCapture, Amount: eur(100), Date: day(2024, 1, 5), Line: 2}}},
		{"metadata payment column", "reference,amount,currency,date,metadata[iotpay_payment]\nr1,1,EUR,2024-01-02,pay_5f571dywcm576dhc5sabtswzev\n",
			[]Item{{Ref: "r1", Payment: "pay_5f571dywcm576dhc5sabtswzev", Kind: KindCapture, Amount: eur(100), Date: day(2024, 1, 2), Line: 2}}},
		{"fee sign ignored", "reference,amount,currency,date,fee,type\nr1,1,EUR,2024-01-02,-0.03,payment_refund\n",
			[]Item{{Ref: "r1", Kind: KindRefund, Amount: eur(100), Fee: 3, Date: day(2024, 1, 2), Line: 2}}},
		{"amount with fewer decimals and spaces", csvHeader + "r1, 0.5 ,BHD,2024-01-02\n",
			[]Item{{Ref: "r1", Kind: KindCapture, Amount: iotpay.Money{Amount: 500, Currency: "BHD"}, Date: day(2024, 1, 2), Line: 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCSVString(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("items (-want +got):\n%s", d)
			}
		})
	}
}

func TestParseCSVErrors(t *testing.T) {
	row := func(s string) string { return csvHeader + "ok,1,EUR,2024-01-01\n" + s + "\n" }
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"empty file", "", []string{"line 1", "no header row"}},
		{"missing reference column", "amount,currency,date\n1,EUR,2024-01-01\n", []string{"line 1", `missing column "reference"`}},
		{"missing amount column", "reference,currency,date\n", []string{"line 1", `missing column "amount"`}},
		{"missing currency column", "reference,amount,date\n", []string{`missing column "currency"`}},
		{"missing date column", "reference,amount,currency\n", []string{`missing column "date"`}},
		{"column twice", "reference,amount,currency,date,Amount\n", []string{"line 1", `column "amount" appears twice`}},
		{"too many columns", strings.Repeat("x,", ColumnsMax) + "y\n", []string{"line 1", "more than 256 columns"}},
		{"bad amount", row("r,12a,EUR,2024-01-01"), []string{"line 3", `amount "12a"`, "malformed"}},
		{"amount with a comma", row(`r,"1,5",EUR,2024-01-01`), []string{"line 3", "malformed"}},
		{"amount with an exponent", row("r,1e3,EUR,2024-01-01"), []string{"line 3", "malformed"}},
		{"amount with a plus", row("r,+1,EUR,2024-01-01"), []string{"line 3", "malformed"}},
		{"amount ending in a dot", row("r,1.,EUR,2024-01-01"), []string{"line 3", "malformed"}},
		{"amount starting with a dot", row("r,.5,EUR,2024-01-01"), []string{"line 3", "malformed"}},
		{"empty amount", row("r,,EUR,2024-01-01"), []string{"line 3", "empty amount"}},
		{"too many decimals", row("r,12.345,EUR,2024-01-01"), []string{"line 3", "more decimals"}},
		{"decimals in JPY", row("r,1234.00,JPY,2024-01-01"), []string{"line 3", "more decimals"}},
		{"amount too large", row("r,11258999068426.25,EUR,2024-01-01"), []string{"line 3", "too large"}},
		{"amount overflowing", row("r,99999999999999999999999,EUR,2024-01-01"), []string{"line 3", "too large"}},
		{"zero amount", row("r,0.00,EUR,2024-01-01"), []string{"line 3", "zero"}},
		{"negative capture", "reference,amount,currency,date,type\nr,-1,EUR,2024-01-01,charge\n", []string{"line 2", "negative amount for a capture"}},
		{"unknown currency", row("r,1,XYZ,2024-01-01"), []string{"line 3", `unknown currency "XYZ"`}},
		{"empty currency", row("r,1,,2024-01-01"), []string{"line 3", "unknown currency"}},
		{"bad date", row("r,1,EUR,01/02/2024"), []string{"line 3", `date "01/02/2024"`}},
		{"impossible date", row("r,1,EUR,2024-02-30"), []string{"line 3", "date"}},
		{"missing reference", row(",1,EUR,2024-01-01"), []string{"line 3", "missing reference"}},
		{"reference too long", row(strings.Repeat("r", RefLenMax+1) + ",1,EUR,2024-01-01"), []string{"line 3", "reference longer"}},
		{"reference with a control character", row("r\x01,1,EUR,2024-01-01"), []string{"line 3", "control character"}},
		{"reference not UTF-8", row("r\xff,1,EUR,2024-01-01"), []string{"line 3", "not UTF-8"}},
		{"bad fee", "reference,amount,currency,date,fee\nr,1,EUR,2024-01-01,0.001\n", []string{"line 2", `fee "0.001"`}},
		{"bad payment id", "reference,amount,currency,date,payment_id\nr,1,EUR,2024-01-01,order-17\n", []string{"line 2", "not a payment id"}},
		{"wrong number of fields", row("r,1,EUR"), []string{"line 3", "wrong number of fields"}},
		{"bad quote", row(`r,1,EUR,"2024-01-01`), []string{"line 3"}},
		{"line after a quoted newline", "reference,amount,currency,date,note\nr,1,EUR,2024-01-01,\"a\nb\"\nr,x,EUR,2024-01-01,\n", []string{"line 4", "malformed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items, err := parseCSVString(tc.in)
			if err == nil {
				t.Fatalf("parsed %v, want an error", items)
			}
			wantInvalid(t, err, tc.want...)
		})
	}
}

const camtHead = `<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt><Stmt>
`
const camtTail = `</Stmt></BkToCstmrStmt></Document>
`

// camtEntry is one booked entry, on lines 3 to 5 of camtHead+entry.
func camtEntryXML(amt, ccy, ind, date, tx string) string {
	return `<Ntry><Amt Ccy="` + ccy + `">` + amt + `</Amt><CdtDbtInd>` + ind + `</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
<BookgDt><Dt>` + date + `</Dt></BookgDt><AcctSvcrRef>E1</AcctSvcrRef>
<NtryDtls>` + tx + `</NtryDtls></Ntry>
`
}

func TestParseCamt053(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []Item
	}{
		{"empty statement", camtHead + camtTail, nil},
		{"entry without details", camtHead + camtEntryXML("1.00", "EUR", "CRDT", "2024-01-02", "") + camtTail,
			[]Item{{Ref: "E1", Kind: KindCapture, Amount: eur(100), Date: day(2024, 1, 2), Line: 3}}},
		{"whitespace around values", camtHead + camtEntryXML(" 2 ", "JPY", "DBIT", " 2024-01-02\n", "") + camtTail,
			[]Item{{Ref: "E1", Kind: KindRefund, Amount: iotpay.Money{Amount: 2, Currency: "JPY"}, Date: day(2024, 1, 2), Line: 3}}},
		{"TxId when no AcctSvcrRef", camtHead + camtEntryXML("1.00", "EUR", "CRDT", "2024-01-02",
			`<TxDtls><Refs><TxId>T1</TxId><EndToEndId>pay_5f571dywcm576dhc5sabtswzev</EndToEndId></Refs></TxDtls>`) + camtTail,
			[]Item{{Ref: "T1", Payment: "pay_5f571dywcm576dhc5sabtswzev", Kind: KindCapture, Amount: eur(100), Date: day(2024, 1, 2), Line: 3}}},
		{"entry charges when the transaction has none", camtHead +
			`<Ntry><Amt Ccy="EUR">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2024-01-02</Dt></BookgDt>
<Chrgs><TtlChrgsAndTaxAmt Ccy="EUR">0.07</TtlChrgsAndTaxAmt><Rcrd><Amt Ccy="EUR">0.03</Amt></Rcrd><Rcrd><Amt Ccy="EUR">0.04</Amt></Rcrd></Chrgs>
<NtryDtls><TxDtls><Refs><AcctSvcrRef>A1</AcctSvcrRef></Refs></TxDtls></NtryDtls></Ntry>` + camtTail,
			[]Item{{Ref: "A1", Kind: KindCapture, Amount: eur(100), Fee: 7, Date: day(2024, 1, 2), Line: 3}}},
		{"batch of mixed direction", camtHead + camtEntryXML("1.00", "EUR", "CRDT", "2024-01-02",
			"\n<TxDtls><Refs><AcctSvcrRef>A1</AcctSvcrRef></Refs><Amt Ccy=\"EUR\">3.00</Amt></TxDtls>"+
				"\n<TxDtls><Refs><AcctSvcrRef>A2</AcctSvcrRef></Refs><Amt Ccy=\"EUR\">2.00</Amt><CdtDbtInd>DBIT</CdtDbtInd></TxDtls>\n") + camtTail,
			[]Item{
				{Ref: "A1", Kind: KindCapture, Amount: eur(300), Date: day(2024, 1, 2), Line: 6},
				{Ref: "A2", Kind: KindRefund, Amount: eur(200), Date: day(2024, 1, 2), Line: 7},
			}},
		{"namespace prefix", `<c:Document xmlns:c="urn:iso:std:iso:20022:tech:xsd:camt.053.001.04"><c:BkToCstmrStmt><c:Stmt>
<c:Ntry><c:Amt Ccy="EUR">1.00</c:Amt><c:CdtDbtInd>CRDT</c:CdtDbtInd><c:Sts>BOOK</c:Sts><c:ValDt><c:DtTm>2024-01-02T10:00:00</c:DtTm></c:ValDt><c:NtryRef>N1</c:NtryRef></c:Ntry>
</c:Stmt></c:BkToCstmrStmt></c:Document>`,
			[]Item{{Ref: "N1", Kind: KindCapture, Amount: eur(100), Date: time.Date(2024, 1, 2, 10, 0, 0, 0, time.UTC), Line: 2}}},
		{"information entry skipped", camtHead + `<Ntry><Amt Ccy="EUR">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>INFO</Cd></Sts></Ntry>` + camtTail, nil},
		{"comments and processing instructions", camtHead + "<!-- a comment --><?pi x?>" + camtTail, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCamtString(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("items (-want +got):\n%s", d)
			}
		})
	}
}

func TestParseCamt053Errors(t *testing.T) {
	entry := func(amt, ccy, ind, date, tx string) string {
		return camtHead + camtEntryXML(amt, ccy, ind, date, tx) + camtTail
	}
	ok := camtHead + camtEntryXML("1.00", "EUR", "CRDT", "2024-01-02", "") + camtTail
	deep := camtHead + strings.Repeat("<X>", DepthMax) + strings.Repeat("</X>", DepthMax) + camtTail
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"empty", "", []string{"no camt.053 Document"}},
		{"not XML", "reference,amount\n", []string{"text outside the Document"}},
		{"camt.052", strings.Replace(ok, "camt.053.001.08", "camt.052.001.08", 1), []string{"line 2", "not a camt.053 Document", "camt.052"}},
		{"no namespace", strings.Replace(ok, ` xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"`, "", 1), []string{"not a camt.053 Document"}},
		{"bad version", strings.Replace(ok, "camt.053.001.08", "camt.053.001.8x", 1), []string{"not a camt.053 Document"}},
		{"root not Document", strings.Replace(strings.Replace(ok, "<Document", "<Doc", 1), "</Document>", "</Doc>", 1), []string{"not a camt.053 Document"}},
		{"DOCTYPE", `<?xml version="1.0"?>
<!DOCTYPE Document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">&xxe;</Document>`, []string{"line 2", "DOCTYPE"}},
		{"undeclared entity", strings.Replace(ok, "E1", "&xxe;", 1), []string{"line 4", "entity"}},
		{"not UTF-8", strings.Replace(ok, "UTF-8", "ISO-8859-1", 1), []string{"line 1", "ISO-8859-1"}},
		{"truncated", ok[:len(ok)-40], []string{"line 5", "unexpected EOF"}},
		{"truncated in a tag", ok[:len(camtHead)+20], []string{"line 3", "unexpected EOF"}},
		{"mismatched tags", strings.Replace(ok, "</Amt>", "</Amount>", 1), []string{"line 3"}},
		{"second root", ok + "<Document/>", []string{"content after the Document"}},
		{"text after root", ok + "junk", []string{"text outside the Document"}},
		{"too deep", deep, []string{"nested deeper than 64"}},
		{"bad amount", entry("1,00", "EUR", "CRDT", "2024-01-02", ""), []string{"line 3", `amount "1,00"`}},
		{"negative amount", entry("-1.00", "EUR", "CRDT", "2024-01-02", ""), []string{"line 3", "negative"}},
		{"too many decimals", entry("1.001", "EUR", "CRDT", "2024-01-02", ""), []string{"line 3", "more decimals"}},
		{"unknown currency", entry("1.00", "XXX", "CRDT", "2024-01-02", ""), []string{"line 3", `unknown currency "XXX"`}},
		{"no currency", strings.Replace(ok, ` Ccy="EUR"`, "", 1), []string{"line 3", "unknown currency"}},
		{"zero amount", entry("0.00", "EUR", "CRDT", "2024-01-02", ""), []string{"line 3", "zero"}},
		{"bad indicator", entry("1.00", "EUR", "CREDIT", "2024-01-02", ""), []string{"line 3", `CdtDbtInd "CREDIT"`}},
		{"bad date", entry("1.00", "EUR", "CRDT", "2024-13-02", ""), []string{"line 4", `date "2024-13-02"`}},
		{"no date", strings.Replace(ok, "<BookgDt><Dt>2024-01-02</Dt></BookgDt>", "", 1), []string{"line 3", "without BookgDt or ValDt"}},
		{"no amount", strings.Replace(ok, `<Amt Ccy="EUR">1.00</Amt>`, "", 1), []string{"line 3", "without Amt"}},
		{"amount twice", strings.Replace(ok, `</Amt>`, `</Amt><Amt Ccy="EUR">1.00</Amt>`, 1), []string{"line 3", "Amt repeated"}},
		{"amount with children", strings.Replace(ok, `1.00</Amt>`, `<X/>1.00</Amt>`, 1), []string{"line 3", "Amt has child elements"}},
		{"no status", strings.Replace(ok, "<Sts><Cd>BOOK</Cd></Sts>", "", 1), []string{"line 3", "without Sts"}},
		{"no reference", strings.Replace(ok, "<AcctSvcrRef>E1</AcctSvcrRef>", "", 1), []string{"line 3", "without a reference"}},
		{"reference too long", strings.Replace(ok, "E1", strings.Repeat("E", RefLenMax+1), 1), []string{"line 4", "AcctSvcrRef longer"}},
		{"text too long", strings.Replace(ok, "E1", strings.Repeat("E", TextLenMax+1), 1), []string{"line 4", "longer than 4096"}},
		{"reference with a newline", strings.Replace(ok, "E1", "E&#10;1", 1), []string{"line 4", "control character"}},
		{"batch transaction without amount", entry("1.00", "EUR", "CRDT", "2024-01-02",
			"<TxDtls><Refs><TxId>A</TxId></Refs><Amt Ccy=\"EUR\">1</Amt></TxDtls>\n<TxDtls><Refs><TxId>B</TxId></Refs></TxDtls>"),
			[]string{"line 6", "without Amt or AmtDtls"}},
		{"batch transaction without reference", entry("1.00", "EUR", "CRDT", "2024-01-02",
			"<TxDtls><Refs><TxId>A</TxId></Refs><Amt Ccy=\"EUR\">1</Amt></TxDtls>\n<TxDtls><Amt Ccy=\"EUR\">1</Amt></TxDtls>"),
			[]string{"line 6", "without AcctSvcrRef or TxId"}},
		{"charges in another currency", entry("1.00", "EUR", "CRDT", "2024-01-02",
			`<TxDtls><Refs><TxId>A</TxId></Refs><Chrgs><Rcrd><Amt Ccy="USD">0.10</Amt></Rcrd></Chrgs></TxDtls>`),
			[]string{"line 3", "charges in USD for an amount in EUR"}},
		{"charges in two currencies", entry("1.00", "EUR", "CRDT", "2024-01-02",
			`<TxDtls><Refs><TxId>A</TxId></Refs><Chrgs><Rcrd><Amt Ccy="EUR">0.10</Amt></Rcrd><Rcrd><Amt Ccy="USD">0.10</Amt></Rcrd></Chrgs></TxDtls>`),
			[]string{"line 5", "charges in both EUR and USD"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items, err := parseCamtString(tc.in)
			if err == nil {
				t.Fatalf("parsed %v, want an error", items)
			}
			wantInvalid(t, err, tc.want...)
		})
	}
}

func TestParseAmount(t *testing.T) {
	for _, tc := range []struct {
		s     string
		scale int
		v     int64
		neg   bool
		err   bool
	}{
		{"12.34", 2, 1234, false, false},
		{"12.3", 2, 1230, false, false},
		{"12", 2, 1200, false, false},
		{"1234", 0, 1234, false, false},
		{"3.125", 3, 3125, false, false},
		{"-0.01", 2, 1, true, false},
		{"007", 2, 700, false, false},
		{"11258999068426.24", 2, AmountMax, false, false},
		{"11258999068426.25", 2, 0, false, true},
		{"1125899906842624", 0, AmountMax, false, false},
		{"1125899906842625", 0, 0, false, true},
		{"1.0", 0, 0, false, true},
		{"1.234", 2, 0, false, true},
		{"", 2, 0, false, true},
		{"-", 2, 0, false, true},
		{"--1", 2, 0, false, true},
		{"1.2.3", 2, 0, false, true},
		{"1 000", 2, 0, false, true},
		{"١٢", 2, 0, false, true},
	} {
		v, neg, err := parseAmount(tc.s, tc.scale)
		if (err != nil) != tc.err || v != tc.v || neg != tc.neg {
			t.Errorf("parseAmount(%q, %d) = %d, %v, %v; want %d, %v, error %v", tc.s, tc.scale, v, neg, err, tc.v, tc.neg, tc.err)
		}
	}
}

// rows is an endless CSV report: a header, then rows with a 1 MiB note.
type rows struct{ n int64 }

func (r *rows) Read(p []byte) (int, error) {
	const head = "reference,amount,currency,date,note\n"
	const rowLen = 1 << 20
	for i := range p {
		switch {
		case r.n < int64(len(head)):
			p[i] = head[r.n]
		case (r.n-int64(len(head)))%rowLen == rowLen-1:
			p[i] = '\n'
		case (r.n-int64(len(head)))%rowLen < 19:
			p[i] = "r,1,EUR,2024-01-01,"[(r.n-int64(len(head)))%rowLen]
		default:
			p[i] = 'x'
		}
		r.n++
	}
	return len(p), nil
}

// spaces is an endless run of spaces.
type spaces struct{}

func (spaces) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

func TestCapped(t *testing.T) {
	n, err := io.Copy(io.Discard, newCapped(io.LimitReader(spaces{}, FileBytesMax)))
	if n != FileBytesMax || err != nil {
		t.Errorf("read %d bytes of a file of FileBytesMax: %v", n, err)
	}
	_, err = io.Copy(io.Discard, newCapped(spaces{}))
	wantInvalid(t, err, "larger than 256 MiB")
}

func TestFileBytesMax(t *testing.T) {
	// A report of 1 MiB rows does not end, and ParseCSV stops at
	// FileBytesMax.
	_, err := ParseCSV(&rows{})
	wantInvalid(t, err, "larger than 256 MiB")
	if testing.Short() || raceEnabled {
		t.Skip("encoding/xml reads byte by byte: 256 MiB take long")
	}
	// An XML document whose whitespace never ends stops there too.
	_, err = ParseCamt053(io.MultiReader(strings.NewReader(camtHead), spaces{}))
	wantInvalid(t, err, "larger than 256 MiB")
}

// failing is a reader that fails.
type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestReadError(t *testing.T) {
	_, err := ParseCSV(failing{})
	wantInvalid(t, err, "reading the report")
	if !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("error %v lost its cause", err)
	}
	_, err = ParseCamt053(failing{})
	wantInvalid(t, err)
}

func TestItemsMax(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("parses a million items")
	}
	var b strings.Builder
	b.WriteString(csvHeader)
	for range ItemsMax + 1 {
		b.WriteString("r,1,EUR,2024-01-01\n")
	}
	_, err := ParseCSV(strings.NewReader(b.String()))
	wantInvalid(t, err, "line 1000002", "more than 1000000 items")
}

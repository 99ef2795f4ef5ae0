package reconcile_test

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/reconcile"
)

func ExampleMatch() {
	report := `reference,type,amount,fee,currency,date
pi_1,charge,12.34,0.42,EUR,2024-03-01
pi_2,charge,5.00,0.20,EUR,2024-03-01
re_1,refund,-2.00,,EUR,2024-03-02
`
	items, err := reconcile.ParseCSV(strings.NewReader(report))
	if err != nil {
		fmt.Println(err)
		return
	}
	day := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	eur := func(v int64) iotpay.Money { return iotpay.Money{Amount: v, Currency: "EUR"} }
	ledger := []reconcile.Expected{
		{Ref: "pi_1", Kind: reconcile.KindCapture, Amount: eur(1234), Date: day},
		{Ref: "pi_2", Kind: reconcile.KindCapture, Amount: eur(550), Date: day},
		{Ref: "pi_3", Kind: reconcile.KindCapture, Amount: eur(100), Date: day},
	}
	r := reconcile.Match(items, ledger, reconcile.Options{})
	if err := r.WriteText(os.Stdout); err != nil {
		fmt.Println(err)
	}
	// Output:
	// Reconciliation: NOT OK
	//   3 reported, 3 expected: 1 matched, 1 mismatched, 1 missing, 1 unexpected, 0 duplicated references
	//
	// Totals
	// CURRENCY  EXPECTED  REPORTED  FEES  NET
	// EUR       18.84     19.34     0.62  14.72
	//
	// Mismatched (the report and the ledger differ)
	// REF   LINE  BY   KIND     AMOUNT    REASON
	// pi_2  3     ref  capture  5.00 EUR  amount 5.00 EUR, expected 5.50 EUR (-0.50 EUR)
	//
	// Missing (in the ledger, not in the report)
	// REF   PAYMENT  KIND     AMOUNT    DATE
	// pi_3           capture  1.00 EUR  2024-03-01
	//
	// Unexpected (in the report, not in the ledger)
	// REF   LINE  PAYMENT  KIND    AMOUNT    DATE
	// re_1  4              refund  2.00 EUR  2024-03-02
}

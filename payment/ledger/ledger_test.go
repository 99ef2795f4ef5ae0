package ledger_test

import (
	"testing"

	"github.com/iotpay/iotpay/payment/ledger/ledgertest"
)

func TestMemConformance(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) ledgertest.DB[*ledgertest.MemTx] { return ledgertest.NewMem() })
}

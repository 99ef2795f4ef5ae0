package audit_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit"
)

func TestParseLeaf(t *testing.T) {
	l := &audit.Leaf{V: 1, Kind: audit.KindPayment, Tenant: "ten_x", Device: "dev_x", RequestHash: []byte{1, 2},
		Outcome: "approved", Amount: 250, Currency: "EUR", TimeMs: time.Now().UnixMilli(),
		Postings: []audit.Posting{{Transfer: "xfr_1", Debit: "acc_a", Credit: "acc_b", Amount: 250, Currency: "EUR"}}}
	data, err := l.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := audit.ParseLeaf(data)
	if err != nil || got.Amount != 250 || !bytes.Equal(got.RequestHash, []byte{1, 2}) || len(got.Postings) != 1 {
		t.Fatalf("ParseLeaf: %+v %v", got, err)
	}
	for name, b := range map[string][]byte{
		"garbage":   {0xff},
		"trailing":  append(bytes.Clone(data), 0),
		"empty map": {0xa0},
	} {
		if _, err := audit.ParseLeaf(b); iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzParseLeaf(f *testing.F) {
	l := &audit.Leaf{V: 1, Kind: audit.KindRejection, Device: "dev_x", RequestHash: []byte{9}, Outcome: "rejected"}
	data, _ := l.Encode()
	f.Add(data)
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := audit.ParseLeaf(b)
		if err != nil {
			return
		}
		again, _ := l.Encode()
		if !bytes.Equal(again, b) {
			t.Fatal("a parsed leaf re-encodes differently")
		}
	})
}

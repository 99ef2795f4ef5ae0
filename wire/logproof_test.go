package wire_test

import (
	"bytes"
	"testing"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

func TestLogQueryAndProof(t *testing.T) {
	q, err := wire.EncodeLogQuery(wire.LogQuery{Index: 7, Trusted: 5})
	if err != nil || !wire.IsLogQuery(q) || wire.IsLogProof(q) {
		t.Fatalf("query %x, %v", q, err)
	}
	got, err := wire.ParseLogQuery(q)
	if err != nil || got.Index != 7 || got.Trusted != 5 {
		t.Fatalf("ParseLogQuery: %+v %v", got, err)
	}
	h := bytes.Repeat([]byte{1}, 32)
	p, _ := wire.EncodeLogProof(wire.LogProof{Index: 7, Checkpoint: []byte("cp"), Leaf: []byte("leaf"), Inclusion: [][]byte{h}, Consistency: [][]byte{h, h}})
	if !wire.IsLogProof(p) {
		t.Fatal("not a log proof")
	}
	if pr, err := wire.ParseLogProof(p); err != nil || len(pr.Consistency) != 2 || string(pr.Leaf) != "leaf" {
		t.Fatalf("ParseLogProof: %+v %v", pr, err)
	}
	e, _ := wire.EncodeLogProof(wire.LogProof{Index: 7, Code: string(iotpay.ENOTFOUND), Reason: "not yet"})
	if _, err := wire.ParseLogProof(e); iotpay.ErrorCode(err) != iotpay.ENOTFOUND {
		t.Fatalf("error answer: %v", err)
	}
	short, _ := wire.EncodeLogProof(wire.LogProof{Index: 7, Checkpoint: []byte("cp"), Leaf: []byte("l"), Inclusion: [][]byte{{1}}})
	for name, b := range map[string][]byte{"short hash": short, "garbage": {0xd9, 0xf0, 0xb1, 0xff}, "query as proof": q,
		"trailing": append(bytes.Clone(p), 0)} {
		if _, err := wire.ParseLogProof(b); iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzParseLogProof(f *testing.F) {
	p, _ := wire.EncodeLogProof(wire.LogProof{Index: 1, Checkpoint: []byte("cp"), Leaf: []byte("x"), Inclusion: [][]byte{make([]byte, 32)}})
	q, _ := wire.EncodeLogQuery(wire.LogQuery{Index: 3})
	f.Add(p)
	f.Add(q)
	f.Fuzz(func(t *testing.T, b []byte) {
		if pr, err := wire.ParseLogProof(b); err == nil {
			again, _ := wire.EncodeLogProof(*pr)
			if !bytes.Equal(again, b) {
				t.Fatal("a parsed log proof re-encodes differently")
			}
		}
		if lq, err := wire.ParseLogQuery(b); err == nil {
			again, _ := wire.EncodeLogQuery(*lq)
			if !bytes.Equal(again, b) {
				t.Fatal("a parsed log query re-encodes differently")
			}
		}
	})
}

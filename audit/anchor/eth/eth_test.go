package eth_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit/anchor/eth"
	"github.com/iotpay/iotpay/audit/anchor/eth/ethtest"
	"github.com/iotpay/iotpay/audit/tlog"
)

func TestAnchor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, keys := ethtest.Chain(t, 2)
	client := b.Client()
	addr, err := eth.Deploy(ctx, client, keys[0], ethtest.ChainID)
	if err != nil {
		t.Fatal(err)
	}
	owner := eth.New(client, addr, keys[0], ethtest.ChainID)
	reader := eth.New(client, addr, nil, ethtest.ChainID)
	intruder := eth.New(client, addr, keys[1], ethtest.ChainID)

	origin := "iotpay.test/log"
	rootA := bytes.Repeat([]byte{0xa}, 32)
	rootB := bytes.Repeat([]byte{0xb}, 32)
	cp5 := tlog.Checkpoint{Origin: origin, Size: 5, Hash: rootA}
	tx, err := owner.Anchor(ctx, []byte("signed note 5"), cp5)
	if err != nil {
		t.Fatal(err)
	}
	if err := owner.Mined(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if err := reader.Verify(ctx, cp5); err != nil {
		t.Fatalf("anchored checkpoint: %v", err)
	}
	if n, err := reader.LatestSize(ctx, origin); err != nil || n != 5 {
		t.Fatalf("latest size %d, %v", n, err)
	}
	// Again: harmless.
	if tx, err := owner.Anchor(ctx, []byte("signed note 5"), cp5); err != nil || owner.Mined(ctx, tx) != nil {
		t.Fatalf("anchoring again: %v", err)
	}

	for name, tc := range map[string]struct {
		a    *eth.Anchor
		cp   tlog.Checkpoint
		code iotpay.Code
	}{
		"split view":     {owner, tlog.Checkpoint{Origin: origin, Size: 5, Hash: rootB}, iotpay.ECONFLICT},
		"size decreases": {owner, tlog.Checkpoint{Origin: origin, Size: 3, Hash: rootB}, iotpay.ECONFLICT},
		"not the owner":  {intruder, tlog.Checkpoint{Origin: origin, Size: 9, Hash: rootB}, iotpay.EUNAUTHORIZED},
		"empty root":     {owner, tlog.Checkpoint{Origin: origin, Size: 9, Hash: make([]byte, 32)}, iotpay.EINVALID},
		"reader":         {reader, tlog.Checkpoint{Origin: origin, Size: 9, Hash: rootB}, iotpay.EINVALID},
	} {
		if _, err := tc.a.Anchor(ctx, []byte("x"), tc.cp); iotpay.ErrorCode(err) != tc.code {
			t.Errorf("%s: %v, want %s", name, err, tc.code)
		}
	}
	if err := reader.Verify(ctx, tlog.Checkpoint{Origin: origin, Size: 5, Hash: rootB}); iotpay.ErrorCode(err) != iotpay.ECONFLICT {
		t.Errorf("verify another root: %v", err)
	}
	if err := reader.Verify(ctx, tlog.Checkpoint{Origin: origin, Size: 6, Hash: rootA}); iotpay.ErrorCode(err) != iotpay.ENOTFOUND {
		t.Errorf("verify an unanchored size: %v", err)
	}
	// Nothing the refusals tried changed the chain.
	if root, err := reader.RootOf(ctx, origin, 5); err != nil || !bytes.Equal(root, rootA) {
		t.Fatalf("root at 5: %x, %v", root, err)
	}
}

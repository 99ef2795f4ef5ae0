package daemon_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit"
	"github.com/iotpay/iotpay/audit/anchor/eth"
	"github.com/iotpay/iotpay/audit/anchor/eth/ethtest"
	"github.com/iotpay/iotpay/audit/tlog"
	"github.com/iotpay/iotpay/audit/verify"
	"github.com/iotpay/iotpay/audit/witness"
	"github.com/iotpay/iotpay/platform/daemon"
	"github.com/iotpay/iotpay/store/sqlstore"
	"github.com/iotpay/iotpay/wire"
)

func TestAuditLog(t *testing.T) { onEachStore(t, testAuditLog) }

// testAuditLog: payments through a running iotpayd land in the audit log,
// whose checkpoints are signed, co-signed in SM2 and by a real witness
// within a second or so; the independent verifier, given only the log's
// URL and keys, proves a receipt's leaf is included and re-hashes the
// whole log; a leaf's amount changed in the database is caught.
func testAuditLog(t *testing.T, store string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The witness is started once the log's key exists (at Open); its URL
	// is needed before.
	var wh atomic.Pointer[witness.Witness]
	wsrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := wh.Load(); h != nil {
			h.ServeHTTP(w, r)
			return
		}
		http.Error(w, "not yet", http.StatusServiceUnavailable)
	}))
	defer wsrv.Close()
	dataDir := filepath.Join(t.TempDir(), "data")
	chain := ethChain(t)
	d, err := daemon.Open(ctx, daemon.Config{DataDir: dataDir, Store: store, HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
		DeviceHTTPAddr: "127.0.0.1:0", CoAPAddr: "127.0.0.1:0", Witnesses: []string{wsrv.URL}, CheckpointInterval: 50 * time.Millisecond,
		Anchors: []audit.Anchor{chain.owner}})
	if err != nil {
		t.Fatal(err)
	}
	wskey, _, _ := note.GenerateKey(rand.Reader, "witness.test/w")
	w, err := witness.New(t.TempDir(), wskey, []string{d.LogKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wh.Store(w)
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	pub, err := os.ReadFile(filepath.Join(dataDir, daemon.LogPubFile))
	if err != nil || !strings.Contains(string(pub), d.LogKey) || !strings.Contains(string(pub), d.GMLogKey) {
		t.Fatalf("%s: %q %v", daemon.LogPubFile, pub, err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := setupOn(t, &platform{t: t, d: d, url: "http://" + d.HTTPAddr()}, key)
	var receipts []*wire.Receipt
	for range 3 {
		rc, err := f.dev.Pay(ctx, f.tr, dispense())
		if err != nil {
			t.Fatal(err)
		}
		receipts = append(receipts, rc)
	}

	logKey, _ := tlog.NewVerifier(d.LogKey)
	gmKey, _ := tlog.NewVerifier(d.GMLogKey)
	wvkey, _ := witness.VerifierKey(wskey)
	wKey, _ := fnote.NewVerifierForCosignatureV1(wvkey)
	last := receipts[len(receipts)-1]
	o := verify.Options{Log: &tlog.Client{URL: f.url + daemon.LogPathPrefix}, LogKey: logKey, Anchor: chain.reader,
		Witnesses: []note.Verifier{gmKey, wKey}, Quorum: 2, Full: true, StatePath: filepath.Join(t.TempDir(), "seen"),
		Leaves: []verify.Leaf{{Index: *last.LogIndex, Name: "receipt", Check: func(data []byte) error {
			l, err := audit.ParseLeaf(data)
			// The leaf holds the request as the device signed it.
			if err == nil && string(wire.Intl.Hash(l.Request)) != string(last.RequestHash) {
				t.Errorf("the leaf's request does not hash to the receipt's request hash")
			}
			if err != nil || string(l.RequestHash) != string(last.RequestHash) || l.Amount != last.AmountMinor {
				t.Errorf("the receipt's leaf: %+v %v", l, err)
			}
			return err
		}}, {Index: *last.LogIndex + 1, Name: "receipt's own leaf", Check: func(data []byte) error {
			// The next leaf is the receipt itself, as the device got it.
			l, err := audit.ParseLeaf(data)
			if err != nil {
				return err
			}
			rc, err := wire.OpenReceipt(wire.Intl, d.ReceiptKey(), l.Receipt)
			if l.Kind != audit.KindReceipt || err != nil || string(rc.RequestHash) != string(last.RequestHash) || *rc.LogIndex != *last.LogIndex {
				t.Errorf("the receipt leaf: kind %q, %v", l.Kind, err)
			}
			return err
		}}}}
	var r *verify.Report
	for {
		if r, err = verify.Run(ctx, o); err == nil && r.OK() && r.Checkpoint.Size > *last.LogIndex {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the log never covered the receipts, co-signed: %+v %v", r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r.Leaves != 2 || r.Rehashed != r.Checkpoint.Size || len(r.Cosigners) != 2 || !r.Anchored {
		t.Fatalf("report: %+v", r)
	}

	// Someone with the database's keys (triggers off) tampers with the
	// leaves: each change is caught, and undoing it passes again.
	o.Leaves = o.Leaves[:1]
	o.Leaves[0].Check = nil
	exec := func(q string, args ...any) {
		t.Helper()
		if err := d.DB.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Exec(ctx, q, args...) }); err != nil {
			t.Fatal(err)
		}
	}
	if store == "" {
		exec(`DROP TRIGGER audit_append_only_u`)
		exec(`DROP TRIGGER audit_append_only_d`)
	} else {
		exec(`ALTER TABLE audit_leaves DISABLE TRIGGER audit_append_only`)
	}
	leaf := func(i uint64) []byte {
		t.Helper()
		var e *audit.Entry
		if err := d.DB.View(ctx, func(tx *sqlstore.Tx) (err error) { e, err = tx.Leaf(ctx, i); return err }); err != nil {
			t.Fatal(err)
		}
		return e.Data
	}
	i, j := *last.LogIndex, *last.LogIndex-1
	orig, other := leaf(i), leaf(j)
	changed, _ := audit.ParseLeaf(orig)
	changed.Amount = 1
	cheaper, _ := changed.Encode()
	for _, tc := range []struct {
		name         string
		tamper, undo func()
		want         string
	}{
		{"an amount changed", func() { exec(`UPDATE audit_leaves SET data = ? WHERE idx = ?`, cheaper, int64(i)) },
			func() { exec(`UPDATE audit_leaves SET data = ? WHERE idx = ?`, orig, int64(i)) }, "do not hash to the tile"},
		{"two leaves swapped", func() {
			exec(`UPDATE audit_leaves SET data = ? WHERE idx = ?`, other, int64(i))
			exec(`UPDATE audit_leaves SET data = ? WHERE idx = ?`, orig, int64(j))
		}, func() {
			exec(`UPDATE audit_leaves SET data = ? WHERE idx = ?`, orig, int64(i))
			exec(`UPDATE audit_leaves SET data = ? WHERE idx = ?`, other, int64(j))
		}, "do not hash to the tile"},
		{"a leaf deleted", func() { exec(`DELETE FROM audit_leaves WHERE idx = ?`, int64(j)) }, nil, "full:"},
	} {
		tc.tamper()
		if r, err := verify.Run(ctx, o); err != nil || r.OK() || !strings.Contains(strings.Join(r.Failures, "\n"), tc.want) {
			t.Fatalf("%s: not caught: %+v %v", tc.name, r, err)
		}
		if tc.undo != nil {
			tc.undo()
			if r, err := verify.Run(ctx, o); err != nil || !r.OK() {
				t.Fatalf("%s undone: %+v %v", tc.name, r, err)
			}
		}
	}
}

// anchorChain is go-ethereum's simulated chain with a CheckpointAnchor
// deployed: the owner's anchor (the platform's) and a reader's (the
// verifier's).
type anchorChain struct{ owner, reader *eth.Anchor }

func ethChain(t *testing.T) anchorChain {
	t.Helper()
	b, keys := ethtest.Chain(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addr, err := eth.Deploy(ctx, b.Client(), keys[0], ethtest.ChainID)
	if err != nil {
		t.Fatal(err)
	}
	return anchorChain{owner: eth.New(b.Client(), addr, keys[0], ethtest.ChainID), reader: eth.New(b.Client(), addr, nil, nil)}
}

// TestDeviceVerifiesItsReceiptIsLogged: the device SDK proves its
// receipt's payment is in the log, under the log key alone, and keeps the
// checkpoint it trusts; a later checkpoint must extend it.
func TestDeviceVerifiesItsReceiptIsLogged(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := setup(t, "")
	logKey, err := tlog.NewVerifier(f.d.LogKey)
	if err != nil {
		t.Fatal(err)
	}
	client := &tlog.Client{URL: f.url + daemon.LogPathPrefix}
	var trusted uint64
	for i := range 2 {
		rc, err := f.dev.Pay(ctx, f.tr, dispense())
		if err != nil {
			t.Fatal(err)
		}
		var cp *tlog.Checkpoint
		for {
			cp, err = f.dev.VerifyLogged(ctx, client, logKey, rc)
			if err == nil {
				break
			}
			if iotpay.ErrorCode(err) != iotpay.ENOTFOUND || ctx.Err() != nil {
				t.Fatalf("payment %d: %v", i, err)
			}
			time.Sleep(100 * time.Millisecond) // the next checkpoint is at most a second away
		}
		if cp.Size <= *rc.LogIndex || cp.Size < trusted {
			t.Fatalf("payment %d: checkpoint of %d leaves", i, cp.Size)
		}
		trusted = cp.Size
	}
	// A receipt whose leaf records another request is refused.
	rc, err := f.dev.Pay(ctx, f.tr, dispense())
	if err != nil {
		t.Fatal(err)
	}
	forged := *rc
	forged.RequestHash = make([]byte, len(rc.RequestHash))
	for {
		_, err = f.dev.VerifyLogged(ctx, client, logKey, &forged)
		if iotpay.ErrorCode(err) != iotpay.ENOTFOUND || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
		t.Fatalf("a receipt for another request: %v", err)
	}
	// Another log key: refused.
	_, otherV, _ := tlog.GenerateLogKey("iotpay-other/log")
	ov, _ := tlog.NewVerifier(otherV)
	if _, err := f.dev.VerifyLogged(ctx, client, ov, rc); iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
		t.Fatalf("another log key: %v", err)
	}
}

// TestOperatorActionsAreLogged: an authorization, capture, void and
// refund asked through the operator API each append a leaf, with the
// transfers that moved money, in the operation that makes them.
func TestOperatorActionsAreLogged(t *testing.T) {
	f := setup(t, "")
	ctx := context.Background()
	var p struct{ ID string }
	f.must("POST", "/v1/payments", map[string]any{"device": f.dev.ID(), "amount": 300, "currency": "EUR"}, &p)
	f.must("POST", "/v1/payments/"+p.ID+"/capture", map[string]any{"amount": 100, "final": false}, nil)
	f.must("POST", "/v1/payments/"+p.ID+"/void", map[string]any{}, nil)
	f.must("POST", "/v1/payments/"+p.ID+"/refund", map[string]any{"amount": 50}, nil)
	// A refused action logs nothing.
	if st := f.api("POST", "/v1/payments/"+p.ID+"/capture", map[string]any{"amount": 10}, nil); st < 400 {
		t.Fatalf("capture after void: status %d", st)
	}
	var kinds []string
	err := f.d.DB.View(ctx, func(tx *sqlstore.Tx) error {
		n, err := tx.LogSize(ctx)
		if err != nil {
			return err
		}
		data, err := tx.Leaves(ctx, 0, int(n))
		if err != nil {
			return err
		}
		for _, d := range data {
			l, err := audit.ParseLeaf(d)
			if err != nil {
				return err
			}
			if l.Kind != audit.KindOperation || l.Payment != p.ID {
				continue
			}
			kinds = append(kinds, l.Outcome)
			if (l.Outcome == "capture" || l.Outcome == "refund") && len(l.Postings) == 0 {
				t.Errorf("%s logged without its postings", l.Outcome)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(kinds, ",") != "authorize,capture,void,refund" {
		t.Fatalf("operation leaves %v", kinds)
	}
	f.assertBalanced()
}

// TestDeviceProvesLoggedOverItsChannel: a device that reaches the platform
// only on its payment channel asks for its receipt's proofs there — over
// MQTT, CoAP/DTLS and HTTPS, in both suites — and verifies them under the
// log key, each check extending the checkpoint it trusted before.
func TestDeviceProvesLoggedOverItsChannel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := setup(t, "")
	f.must("POST", "/v1/accounts/"+string(f.payer)+"/fund", map[string]any{"amount": 100000}, nil)
	logKey, err := tlog.NewVerifier(f.d.LogKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, suite := range []string{wire.SuiteIntl, wire.SuiteGM} {
		s := f.enrollSuite(t, suite)
		for name, tr := range f.transports(t, s) {
			rc, err := s.dev.Pay(ctx, tr, dispense())
			if err != nil || rc.Outcome != wire.Approved {
				t.Fatalf("%s %s: pay: %+v %v", suite, name, rc, err)
			}
			var cp *tlog.Checkpoint
			for {
				if cp, err = s.dev.VerifyLoggedOver(ctx, tr, logKey, rc); iotpay.ErrorCode(err) != iotpay.ENOTFOUND || ctx.Err() != nil {
					break
				}
				time.Sleep(100 * time.Millisecond) // the next checkpoint is at most a second away
			}
			if err != nil || cp.Size <= *rc.LogIndex {
				t.Fatalf("%s %s: %v", suite, name, err)
			}
			// A receipt for another request is refused.
			forged := *rc
			forged.RequestHash = make([]byte, len(rc.RequestHash))
			if _, err := s.dev.VerifyLoggedOver(ctx, tr, logKey, &forged); iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
				t.Fatalf("%s %s: forged receipt: %v", suite, name, err)
			}
		}
	}
}

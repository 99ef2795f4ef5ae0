package audit_test

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm2"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/iotpay/iotpay/audit"
	"github.com/iotpay/iotpay/audit/tlog"
	"github.com/iotpay/iotpay/audit/verify"
	"github.com/iotpay/iotpay/audit/witness"
	"github.com/iotpay/iotpay/store/sqlite"
	"github.com/iotpay/iotpay/store/sqlstore"
)

const origin = "iotpay.test/log"

func appendLeaves(t *testing.T, db *sqlstore.DB, from, n int) {
	t.Helper()
	err := db.Update(context.Background(), func(tx *sqlstore.Tx) error {
		for i := from; i < from+n; i++ {
			l := &audit.Leaf{Kind: audit.KindPayment, Tenant: "ten_x", Device: "dev_x", RequestHash: []byte{byte(i)},
				Outcome: "approved", Amount: int64(i), Currency: "EUR"}
			if _, err := audit.Append(context.Background(), tx, l, time.Now()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCheckpointer runs the checkpointer on a real SQLite store, with an
// SM2 co-signature and a real witness over HTTP, and has the independent
// verifier check what it serves.
func TestCheckpointer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "iotpay.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store := sqlstore.For[audit.LogTx](db)

	skey, vkey, _ := tlog.GenerateLogKey(origin)
	logSigner, _ := note.NewSigner(skey)
	logV, _ := tlog.NewVerifier(vkey)
	smKey, _ := sm2.GenerateKey(rand.Reader)
	sm2Signer, err := tlog.NewSM2Signer(origin, smKey)
	if err != nil {
		t.Fatal(err)
	}
	sm2V, _ := tlog.NewVerifier(sm2Signer.VerifierKey())

	wskey, _, _ := note.GenerateKey(rand.Reader, "witness.test/w")
	wvkey, _ := witness.VerifierKey(wskey)
	wv, _ := fnote.NewVerifierForCosignatureV1(wvkey)
	w, err := witness.New(t.TempDir(), wskey, []string{vkey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wsrv := httptest.NewServer(w)
	defer wsrv.Close()

	c := &audit.Checkpointer{Store: store, Origin: origin, Signers: []note.Signer{logSigner, sm2Signer},
		Anchors: []audit.Anchor{&witness.Anchor{URL: wsrv.URL, Client: wsrv.Client()}}, Interval: 10 * time.Millisecond}
	if cp, err := c.Step(ctx); err != nil || cp != nil {
		t.Fatalf("empty log: %v %v", cp, err)
	}
	appendLeaves(t, db, 0, 1000)
	cp, err := c.Step(ctx)
	if err != nil || cp == nil || cp.Size != 1000 {
		t.Fatalf("first step: %+v %v", cp, err)
	}

	logSrv := httptest.NewServer(http.StripPrefix("/log", &tlog.Handler{Src: c.Source()}))
	defer logSrv.Close()
	opts := verify.Options{Log: &tlog.Client{URL: logSrv.URL + "/log/", HTTP: logSrv.Client()}, LogKey: logV,
		Witnesses: []note.Verifier{sm2V, wv}, Full: true, StatePath: filepath.Join(t.TempDir(), "seen")}
	r, err := verify.Run(ctx, opts)
	if err != nil || !r.OK() || r.Rehashed != 1000 || len(r.Cosigners) != 1 {
		t.Fatalf("verifier: %+v %v", r, err)
	}

	// Running: new leaves are checkpointed within the interval, and the
	// witness's co-signature joins the served checkpoint.
	run, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); c.Run(run) }()
	appendLeaves(t, db, 1000, 300)
	opts.Quorum = 2 // SM2 and the witness
	for {
		r, err = verify.Run(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if r.OK() && r.Checkpoint.Size == 1300 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("not checkpointed and co-signed: %+v", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	<-done
	if r.Previous == nil || r.Previous.Size < 1000 {
		t.Fatalf("consistency from the size seen before not checked: %+v", r.Previous)
	}
	if held, _ := w.Latest(origin); held.Size != 1300 {
		t.Fatalf("witness holds %d", held.Size)
	}

	// A fresh checkpointer resumes from the stored tiles.
	c2 := &audit.Checkpointer{Store: store, Origin: origin, Signers: []note.Signer{logSigner}}
	appendLeaves(t, db, 1300, 5)
	if cp, err := c2.Step(ctx); err != nil || cp.Size != 1305 {
		t.Fatalf("resumed: %+v %v", cp, err)
	}
	opts.Quorum = 0
	if r, err := verify.Run(ctx, opts); err != nil || !r.OK() {
		t.Fatalf("after resuming: %+v %v", r, err)
	}
}

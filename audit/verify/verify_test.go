package verify_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit/tlog"
	"github.com/iotpay/iotpay/audit/tlog/tlogtest"
	"github.com/iotpay/iotpay/audit/verify"
	"github.com/iotpay/iotpay/audit/witness"
)

const origin = "iotpay.test/log"

func entries(from, n int) [][]byte {
	var out [][]byte
	for i := from; i < from+n; i++ {
		out = append(out, fmt.Appendf(nil, "payment %d: 250 EUR", i))
	}
	return out
}

func serve(t *testing.T, l *tlogtest.Log) *tlog.Client {
	t.Helper()
	srv := httptest.NewServer(http.StripPrefix("/log", &tlog.Handler{Src: l}))
	t.Cleanup(srv.Close)
	return &tlog.Client{URL: srv.URL + "/log/", HTTP: srv.Client()}
}

func run(t *testing.T, o verify.Options) *verify.Report {
	t.Helper()
	r, err := verify.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestVerifier runs the verifier against an honest log, then against each
// tampering the issue names, each caught.
func TestVerifier(t *testing.T) {
	l := tlogtest.New(t, origin)
	l.Append(t, entries(0, 600)...)
	c := serve(t, l)
	state := filepath.Join(t.TempDir(), "checkpoint")
	var progress []uint64
	o := verify.Options{Log: c, LogKey: l.Verifier, StatePath: state, Full: true,
		Progress: func(done, total uint64) { progress = append(progress, done) },
		Leaves: []verify.Leaf{{Index: 300, Name: "receipt", Check: func(d []byte) error {
			if !bytes.Equal(d, []byte("payment 300: 250 EUR")) {
				return iotpay.Errorf(iotpay.EUNAUTHORIZED, "the leaf is not the receipt's payment")
			}
			return nil
		}}}}
	r := run(t, o)
	if !r.OK() || r.Rehashed != 600 || r.Leaves != 1 || r.Checkpoint.Size != 600 {
		t.Fatalf("honest log: %+v", r)
	}
	if len(progress) != 3 || progress[2] != 600 {
		t.Fatalf("progress: %v", progress)
	}
	// The log grows; the verifier proves consistency with what it saw.
	l.Append(t, entries(600, 100)...)
	if r := run(t, o); !r.OK() || r.Previous == nil || r.Previous.Size != 600 {
		t.Fatalf("grown log: %+v", r)
	}

	fails := func(name string, mutate func(*tlogtest.Log), want string) {
		t.Helper()
		l := tlogtest.New(t, origin)
		l.Append(t, entries(0, 600)...)
		o := o
		o.Log = serve(t, l)
		o.LogKey = l.Verifier
		o.StatePath = filepath.Join(t.TempDir(), "checkpoint")
		if r := run(t, o); !r.OK() {
			t.Fatalf("%s: before tampering: %v", name, r.Failures)
		}
		mutate(l)
		r := run(t, o)
		if r.OK() || !strings.Contains(strings.Join(r.Failures, "\n"), want) {
			t.Errorf("%s: failures %q, want one with %q", name, r.Failures, want)
		}
	}
	fails("amount changed", func(l *tlogtest.Log) { l.Tamper(5, []byte("payment 5: 1 EUR")) }, "do not hash to the tile")
	fails("receipt's leaf changed", func(l *tlogtest.Log) { l.Tamper(300, []byte("payment 300: 1 EUR")) }, "leaf receipt")
	fails("leaf deleted", func(l *tlogtest.Log) { l.Delete(10) }, "full:")
	fails("leaves reordered", func(l *tlogtest.Log) { l.Swap(1, 2) }, "do not hash to the tile")
	fails("split view", func(l *tlogtest.Log) {
		// Another tree of the same size, signed by the log's key.
		fork := tlogtest.WithKey(t, origin, l.SKey, l.VKey)
		fork.Append(t, entries(1, 600)...)
		l.SetCheckpoint(fork.Append(t))
	}, "split view")
	fails("rolled back", func(l *tlogtest.Log) {
		short := tlogtest.WithKey(t, origin, l.SKey, l.VKey)
		l.SetCheckpoint(short.Append(t, entries(0, 500)...))
	}, "shrank")
	fails("forked then grown", func(l *tlogtest.Log) {
		fork := tlogtest.WithKey(t, origin, l.SKey, l.VKey)
		fork.Append(t, entries(1, 700)...)
		l.SetCheckpoint(fork.Append(t))
	}, "consistency")
	fails("signed by another key", func(l *tlogtest.Log) {
		other := tlogtest.New(t, origin)
		l.SetCheckpoint(other.Append(t, entries(0, 600)...))
	}, "checkpoint:")
}

// TestVerifierWitnesses checks the quorum of co-signatures, with a real
// witness co-signing the log's checkpoints.
func TestVerifierWitnesses(t *testing.T) {
	l := tlogtest.New(t, origin)
	signed := l.Append(t, entries(0, 10)...)
	wskey, _, _ := note.GenerateKey(rand.Reader, "witness.test/w")
	wvkey, err := witness.VerifierKey(wskey)
	if err != nil {
		t.Fatal(err)
	}
	w, err := witness.New(t.TempDir(), wskey, []string{l.VKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wv, err := fnote.NewVerifierForCosignatureV1(wvkey)
	if err != nil {
		t.Fatal(err)
	}
	o := verify.Options{Log: serve(t, l), LogKey: l.Verifier, Witnesses: []note.Verifier{wv}, Quorum: 1}
	if r := run(t, o); r.OK() || !strings.Contains(r.Failures[0], "co-signed by 0") {
		t.Fatalf("without co-signature: %+v", r.Failures)
	}
	sigs, err := w.Add(0, nil, signed)
	if err != nil {
		t.Fatal(err)
	}
	l.SetCheckpoint(witness.CoSign(signed, sigs))
	if r := run(t, o); !r.OK() || len(r.Cosigners) != 1 || r.Cosigners[0] != "witness.test/w" {
		t.Fatalf("co-signed: %+v", r)
	}
}

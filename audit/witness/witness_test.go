package witness_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit/tlog"
	"github.com/iotpay/iotpay/audit/tlog/tlogtest"
	"github.com/iotpay/iotpay/audit/witness"
)

const origin = "iotpay.test/log"

// leaves returns n entries named prefix+i, numbered from start.
func leaves(prefix string, start uint64, n int) [][]byte {
	var out [][]byte
	for i := range n {
		out = append(out, fmt.Appendf(nil, "%s%d", prefix, start+uint64(i)))
	}
	return out
}

// grow appends n leaves named prefix+i and returns the signed checkpoint.
func grow(t *testing.T, l *tlogtest.Log, prefix string, n int) []byte {
	t.Helper()
	return l.Append(t, leaves(prefix, l.Size(), n)...)
}

func TestWitness(t *testing.T) {
	ctx := context.Background()
	logSKey, logVKey, err := tlog.GenerateLogKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	wSKey, _, err := note.GenerateKey(rand.Reader, "witness.test/w1")
	if err != nil {
		t.Fatal(err)
	}
	wVKey, err := witness.VerifierKey(wSKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	w, err := witness.New(dir, wSKey, []string{logVKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w)
	defer srv.Close()
	client := srv.Client()
	logV, _ := tlog.NewVerifier(logVKey)
	wV, err := fnote.NewVerifierForCosignatureV1(wVKey)
	if err != nil {
		t.Fatal(err)
	}

	real := tlogtest.WithKey(t, origin, logSKey, logVKey)
	cp5 := grow(t, real, "leaf", 5)
	sigs, err := witness.AddCheckpoint(ctx, client, srv.URL, 0, nil, cp5)
	if err != nil {
		t.Fatal(err)
	}
	if _, n, err := tlog.OpenCheckpoint(witness.CoSign(cp5, sigs), logV, wV); err != nil || len(n.Sigs) != 2 {
		t.Fatalf("co-signed checkpoint: %v", err)
	}
	if ts, err := fnote.CoSigV1Timestamp(noteSig(t, witness.CoSign(cp5, sigs), logV, wV)); err != nil || ts.IsZero() {
		t.Fatalf("co-signature timestamp: %v %v", ts, err)
	}

	cp300 := grow(t, real, "leaf", 295)
	if _, err := witness.AddCheckpoint(ctx, client, srv.URL, 5, real.ConsistencyProof(t, 5), cp300); err != nil {
		t.Fatal(err)
	}
	// The same checkpoint again: co-signed again, nothing changes.
	if _, err := witness.AddCheckpoint(ctx, client, srv.URL, 300, nil, cp300); err != nil {
		t.Fatalf("same checkpoint again: %v", err)
	}

	// A stale old size: 409 with the size held.
	cp310 := grow(t, real, "leaf", 10)
	_, err = witness.AddCheckpoint(ctx, client, srv.URL, 5, real.ConsistencyProof(t, 5), cp310)
	var ce *witness.ConflictError
	if !errors.As(err, &ce) || ce.Size != 300 || iotpay.ErrorCode(err) != iotpay.ECONFLICT {
		t.Fatalf("stale old size: %v", err)
	}

	// A fork: the same first 299 leaves, then others. Its checkpoint of
	// size 300 (a split view) and a later one are refused.
	fork := tlogtest.WithKey(t, origin, logSKey, logVKey)
	grow(t, fork, "leaf", 299)
	forked300 := grow(t, fork, "other", 1)
	_, err = witness.AddCheckpoint(ctx, client, srv.URL, 300, nil, forked300)
	if !errors.As(err, &ce) || !ce.SplitView && ce.Size != 300 {
		// The client sees a 409 with the size; the witness logs the split view.
		t.Fatalf("split view: %v", err)
	}
	if _, err := w.Add(300, nil, forked300); !errors.As(err, &ce) || !ce.SplitView {
		t.Fatalf("split view, in process: %v", err)
	}
	forked320 := grow(t, fork, "other", 20)
	_, err = witness.AddCheckpoint(ctx, client, srv.URL, 300, fork.ConsistencyProof(t, 300), forked320)
	if !errors.Is(err, witness.ErrInconsistent) {
		t.Fatalf("inconsistent checkpoint: %v", err)
	}

	// The log rewritten behind its checkpoints (the tampering a verifier
	// catches in the entries: an amount changed, a leaf deleted, two
	// leaves swapped), re-integrated and re-signed with the log's key: the
	// rewritten tree's next checkpoint has no consistency proof from the
	// one the witness holds.
	for name, rewrite := range map[string]func([][]byte) [][]byte{
		"amount changed":   func(es [][]byte) [][]byte { es[5] = []byte("leaf5 amount 1"); return es },
		"leaf deleted":     func(es [][]byte) [][]byte { return append(es[:10], es[11:]...) },
		"leaves reordered": func(es [][]byte) [][]byte { es[1], es[2] = es[2], es[1]; return es },
	} {
		l := tlogtest.WithKey(t, origin, logSKey, logVKey)
		l.Append(t, rewrite(leaves("leaf", 0, 300))...)
		rewritten := grow(t, l, "later", 320-int(l.Size()))
		if _, err := w.Add(300, l.ConsistencyProof(t, 300), rewritten); !errors.Is(err, witness.ErrInconsistent) {
			t.Errorf("%s: %v, want it refused as inconsistent", name, err)
		}
	}

	// Refusals of the request itself.
	otherSKey, otherVKey, _ := tlog.GenerateLogKey("other.test/log")
	other := tlogtest.WithKey(t, "other.test/log", otherSKey, otherVKey)
	forged := tlogtest.New(t, origin) // same origin, another key
	for name, tc := range map[string]struct {
		body string
		code int
	}{
		"unknown log":    {string(witness.FormatAddCheckpoint(0, nil, grow(t, other, "x", 1))), http.StatusNotFound},
		"another key":    {string(witness.FormatAddCheckpoint(310, nil, grow(t, forged, "x", 400))), http.StatusForbidden},
		"garbage":        {"hello", http.StatusBadRequest},
		"bad old line":   {"old 05\n\n" + string(cp310), http.StatusBadRequest},
		"bad proof line": {"old 300\nnot base64!\n\n" + string(cp310), http.StatusBadRequest},
		"short proof":    {"old 300\nAAAA\n\n" + string(cp310), http.StatusBadRequest},
		"size below old": {string(witness.FormatAddCheckpoint(400, nil, cp310)), http.StatusBadRequest},
		"oversized":      {strings.Repeat("A", witness.BodyBytesMax+1), http.StatusRequestEntityTooLarge},
	} {
		resp, err := client.Post(srv.URL+witness.AddCheckpointPath, "text/plain", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s: status %d, want %d", name, resp.StatusCode, tc.code)
		}
	}
	if resp, _ := client.Get(srv.URL + witness.AddCheckpointPath); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}

	// None of it moved the witness, and a restarted witness remembers.
	if cp, _ := w.Latest(origin); cp.Size != 300 {
		t.Fatalf("witness holds size %d, want 300", cp.Size)
	}
	w2, err := witness.New(dir, wSKey, []string{logVKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cp, ok := w2.Latest(origin); !ok || cp.Size != 300 {
		t.Fatalf("restarted witness holds %d", cp.Size)
	}
	if _, err := w2.Add(0, nil, cp310); !errors.As(err, &ce) || ce.Size != 300 {
		t.Fatalf("restarted witness accepted old size 0: %v", err)
	}
	if _, err := w2.Add(300, real.ConsistencyProof(t, 300), cp310); err != nil {
		t.Fatalf("restarted witness: %v", err)
	}
}

// noteSig returns the witness's signature of a co-signed checkpoint.
func noteSig(t *testing.T, b []byte, logV, wV note.Verifier) note.Signature {
	t.Helper()
	_, n, err := tlog.OpenCheckpoint(b, logV, wV)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range n.Sigs {
		if s.Name == wV.Name() {
			return s
		}
	}
	t.Fatal("no witness signature")
	return note.Signature{}
}

func FuzzParseAddCheckpoint(f *testing.F) {
	f.Add([]byte("old 5\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n\no\n10\nAAAA\n\n— k AAAA\n"))
	f.Add([]byte("old 0\n\nx"))
	f.Fuzz(func(t *testing.T, b []byte) {
		old, proof, cp, err := witness.ParseAddCheckpoint(b)
		if err != nil {
			return
		}
		if again := witness.FormatAddCheckpoint(old, proof, cp); string(again) != string(b) {
			t.Fatalf("%q re-formats as %q", b, again)
		}
	})
}

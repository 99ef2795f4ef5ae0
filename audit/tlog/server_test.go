package tlog_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit/tlog"
)

// memSource is a log held in memory.
type memSource struct {
	memTiles
	entries [][]byte
	signed  []byte
	size    uint64
}

func (m *memSource) ReadEntries(_ context.Context, start uint64, n int) ([][]byte, error) {
	if start+uint64(n) > uint64(len(m.entries)) {
		return nil, iotpay.Errorf(iotpay.ENOTFOUND, "beyond")
	}
	return m.entries[start : start+uint64(n)], nil
}

func (m *memSource) Checkpoint(context.Context) ([]byte, uint64, error) { return m.signed, m.size, nil }

func newMemSource(t *testing.T, n int, signer note.Signer) *memSource {
	t.Helper()
	src := &memSource{memTiles: memTiles{}}
	in := tlog.NewIntegrator()
	var hs [][]byte
	for i := range uint64(n) {
		d := leafData(i)
		src.entries = append(src.entries, d)
		hs = append(hs, tlogLeafHash(d))
	}
	ch, err := in.Append(hs)
	if err != nil {
		t.Fatal(err)
	}
	src.store(ch)
	src.size = in.Size()
	if src.signed, err = tlog.SignCheckpoint(tlog.Checkpoint{Origin: origin, Size: src.size, Hash: in.Root()}, signer); err != nil {
		t.Fatal(err)
	}
	return src
}

func TestHandlerAndClient(t *testing.T) {
	ctx := context.Background()
	signer, verifier := logKeys(t)
	src := newMemSource(t, 700, signer)
	srv := httptest.NewServer(http.StripPrefix("/log", &tlog.Handler{Src: src}))
	defer srv.Close()
	c := &tlog.Client{URL: srv.URL + "/log/", HTTP: srv.Client()}

	b, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp, _, err := tlog.OpenCheckpoint(b, verifier)
	if err != nil || cp.Size != 700 {
		t.Fatalf("checkpoint: %+v %v", cp, err)
	}
	// The proofs and the root computed from tiles read over HTTP.
	root, err := tlog.RootHash(ctx, c, 700)
	if err != nil || !bytes.Equal(root, cp.Hash) {
		t.Fatalf("root over HTTP: %v", err)
	}
	p, err := c.InclusionProof(ctx, 513, 700)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.VerifyInclusion(513, 700, tlogLeafHash(leafData(513)), p, cp.Hash); err != nil {
		t.Fatal(err)
	}
	es, err := c.ReadEntries(ctx, 2, 700-512)
	if err != nil || len(es) != 188 || !bytes.Equal(es[0], leafData(512)) {
		t.Fatalf("entries: %d, %v", len(es), err)
	}
	if _, err := c.ConsistencyProof(ctx, 10, 700); err != nil {
		t.Fatal(err)
	}

	for path, want := range map[string]int{
		"/log/tile/0/000":                         200,
		"/log/tile/0/002.p/188":                   200,
		"/log/tile/0/002.p/189":                   404, // beyond the checkpoint
		"/log/tile/0/002":                         404, // not full yet
		"/log/tile/1/000.p/2":                     200,
		"/log/tile/entries/001":                   200,
		"/log/tile/entries/003":                   404,
		"/log/tile/0/0":                           404,
		"/log/proof/inclusion?index=700&size=700": 400,
		"/log/proof/inclusion?index=1&size=701":   404,
		"/log/proof/inclusion?index=x&size=7":     400,
		"/log/proof/consistency?old=9&size=8":     400,
		"/log/nothing":                            404,
	} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
		if path == "/log/tile/0/000" && resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("full tile served as %q", resp.Header.Get("Cache-Control"))
		}
	}
}

func FuzzParseProof(f *testing.F) {
	f.Add([]byte(`{"index":3,"size":10,"hashes":["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]}`))
	f.Add([]byte(`{"old":5,"size":10,"hashes":[]}`))
	f.Add([]byte(`{"size":1,"hashes":["AA=="]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		hs, err := tlog.ParseProof(b)
		if err != nil {
			if iotpay.ErrorCode(err) != iotpay.EINVALID {
				t.Fatalf("error without its code: %v", err)
			}
			return
		}
		for _, h := range hs {
			if len(h) != tlog.HashSize {
				t.Fatalf("a %d-byte hash", len(h))
			}
		}
	})
}

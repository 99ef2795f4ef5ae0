// Package tlogtest is a transparency log held in memory, for tests of the
// code that serves, witnesses and verifies logs: it appends entries,
// integrates them into tiles and signs checkpoints with a fresh log key,
// and can be tampered with.
package tlogtest

import (
	"context"
	"slices"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit"
	"github.com/iotpay/iotpay/audit/tlog"
)

// Log is an in-memory log. It implements tlog.Source.
type Log struct {
	Origin   string
	SKey     string // the log's signer key
	VKey     string // its verifier key
	Signer   note.Signer
	Verifier note.Verifier

	mu      sync.Mutex
	in      *tlog.Integrator
	tiles   map[[2]uint64][]byte
	entries [][]byte
	signed  []byte
}

// New returns an empty log of that origin with a new key.
func New(t testing.TB, origin string) *Log {
	t.Helper()
	skey, vkey, err := tlog.GenerateLogKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	return WithKey(t, origin, skey, vkey)
}

// WithKey returns an empty log signing with skey.
func WithKey(t testing.TB, origin, skey, vkey string) *Log {
	t.Helper()
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := tlog.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	l := &Log{Origin: origin, SKey: skey, VKey: vkey, Signer: s, Verifier: v, in: tlog.NewIntegrator(), tiles: map[[2]uint64][]byte{}}
	l.sign(t)
	return l
}

// Append adds entries, integrates them and signs a checkpoint of the new
// size; it returns that checkpoint.
func (l *Log) Append(t testing.TB, entries ...[]byte) []byte {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	hs := make([][]byte, len(entries))
	for i, e := range entries {
		hs[i] = audit.LeafHash(e)
		l.entries = append(l.entries, slices.Clone(e))
	}
	ch, err := l.in.Append(hs)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range ch {
		l.tiles[[2]uint64{uint64(tl.Level), tl.Index}] = tl.Hashes
	}
	return l.sign(t)
}

func (l *Log) sign(t testing.TB) []byte {
	signed, err := tlog.SignCheckpoint(tlog.Checkpoint{Origin: l.Origin, Size: l.in.Size(), Hash: l.in.Root()}, l.Signer)
	if err != nil {
		t.Fatal(err)
	}
	l.signed = signed
	return signed
}

// Size is the number of entries.
func (l *Log) Size() uint64 { l.mu.Lock(); defer l.mu.Unlock(); return l.in.Size() }

// Root is the current root hash.
func (l *Log) Root() []byte { l.mu.Lock(); defer l.mu.Unlock(); return l.in.Root() }

// SetCheckpoint replaces the checkpoint served (to co-sign it, or to serve
// a forged one).
func (l *Log) SetCheckpoint(signed []byte) { l.mu.Lock(); defer l.mu.Unlock(); l.signed = signed }

// Tamper replaces the entry at i as served, leaving the hashes alone: what
// an attacker editing the database's leaf data would achieve.
func (l *Log) Tamper(i uint64, data []byte) { l.mu.Lock(); defer l.mu.Unlock(); l.entries[i] = data }

// Swap exchanges two entries as served (a reordering).
func (l *Log) Swap(i, j uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries[i], l.entries[j] = l.entries[j], l.entries[i]
}

// Delete removes entry i as served; later entries move down one.
func (l *Log) Delete(i uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = slices.Delete(l.entries, int(i), int(i)+1)
}

// ReadTile implements tlog.TileReader.
func (l *Log) ReadTile(_ context.Context, level uint8, index uint64, width int) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.tiles[[2]uint64{uint64(level), index}]
	if len(t) < width*tlog.HashSize {
		return nil, iotpay.Errorf(iotpay.ENOTFOUND, "tile %d/%d.p/%d not stored", level, index, width)
	}
	return t[:width*tlog.HashSize], nil
}

// ReadEntries implements tlog.Source.
func (l *Log) ReadEntries(_ context.Context, start uint64, n int) ([][]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if start+uint64(n) > uint64(len(l.entries)) {
		return nil, iotpay.Errorf(iotpay.ENOTFOUND, "entries %d+%d beyond %d", start, n, len(l.entries))
	}
	return slices.Clone(l.entries[start : start+uint64(n)]), nil
}

// Checkpoint implements tlog.Source: the checkpoint served and the size it
// claims (read from its text without verifying).
func (l *Log) Checkpoint(context.Context) ([]byte, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := note.Open(l.signed, note.VerifierList(l.Verifier))
	if err != nil {
		return l.signed, l.in.Size(), nil
	}
	cp, err := tlog.ParseCheckpoint(n.Text)
	if err != nil {
		return l.signed, l.in.Size(), nil
	}
	return l.signed, cp.Size, nil
}

// ConsistencyProof proves the current tree extends the one of size old.
func (l *Log) ConsistencyProof(t testing.TB, old uint64) [][]byte {
	t.Helper()
	p, err := tlog.ConsistencyProof(context.Background(), l, old, l.Size())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

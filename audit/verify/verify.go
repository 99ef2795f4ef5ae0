// Package verify is the independent verifier of the audit log: given only
// the log's URL and public key (and, to check more, witnesses' keys and the
// chain anchor), it checks the latest checkpoint's signature, its
// consistency with the last checkpoint it verified (kept in a local file),
// the co-signatures and the anchor, the inclusion of given leaves, and with
// Full re-hashes every leaf from the entry bundles. It trusts nothing the
// log serves that it has not checked; `iotpay audit verify` is its CLI.
package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/note"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit"
	"github.com/iotpay/iotpay/audit/tlog"
	"github.com/iotpay/iotpay/internal/atomicfile"
)

// AnchorChecker checks that a checkpoint is anchored outside the log
// (audit/anchor/eth.Anchor is one).
type AnchorChecker interface {
	Verify(ctx context.Context, cp tlog.Checkpoint) error
}

// Leaf is a leaf the caller holds evidence of (a receipt's log index), and
// how to check the logged bytes match that evidence.
type Leaf struct {
	Index uint64
	// Check inspects the leaf's data as the log serves it; nil accepts any.
	Check func(data []byte) error
	Name  string // for the report
}

// Options says what to verify.
type Options struct {
	Log    *tlog.Client
	LogKey note.Verifier
	// Witnesses' keys; at least Quorum of them must have co-signed.
	Witnesses []note.Verifier
	Quorum    int
	Anchor    AnchorChecker // nil: not checked
	// StatePath keeps the last checkpoint verified; "" keeps none.
	StatePath string
	Leaves    []Leaf
	Full      bool
	// Progress, if set, is told how many leaves were re-hashed of how many.
	Progress func(done, total uint64)
}

// Report is what a run found. A run that could not reach the log returns an
// error; a log that fails a check gives a report with Failures.
type Report struct {
	Checkpoint tlog.Checkpoint
	Previous   *tlog.Checkpoint
	Cosigners  []string
	Anchored   bool
	Leaves     int    // leaves proven included
	Rehashed   uint64 // leaves re-hashed (Full)
	Failures   []string
}

// OK reports whether every check passed.
func (r *Report) OK() bool { return len(r.Failures) == 0 }

func (r *Report) fail(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

// Run verifies the log as o says.
func Run(ctx context.Context, o Options) (*Report, error) {
	r := &Report{}
	signed, err := o.Log.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	cp, n, err := tlog.OpenCheckpoint(signed, o.LogKey, o.Witnesses...)
	if err != nil {
		if c := iotpay.ErrorCode(err); c == iotpay.EINVALID || c == iotpay.EUNAUTHORIZED {
			r.fail("checkpoint: %s", iotpay.ErrorMessage(err))
			return r, nil
		}
		return nil, err
	}
	r.Checkpoint = cp
	for _, s := range n.Sigs {
		if s.Name != o.LogKey.Name() || s.Hash != o.LogKey.KeyHash() {
			r.Cosigners = append(r.Cosigners, s.Name)
		}
	}
	if len(r.Cosigners) < o.Quorum {
		r.fail("checkpoint: co-signed by %d of the witnesses given, %d required", len(r.Cosigners), o.Quorum)
	}

	// Consistency with what was verified before.
	prev, err := loadState(o.StatePath, o.LogKey)
	if err != nil {
		return nil, err
	}
	r.Previous = prev
	if prev != nil {
		if err := Consistent(ctx, o.Log, *prev, cp); err != nil {
			r.fail("consistency: %s", iotpay.ErrorMessage(err))
		}
	}

	if o.Anchor != nil {
		if err := o.Anchor.Verify(ctx, cp); err != nil {
			r.fail("anchor: %s", iotpay.ErrorMessage(err))
		} else {
			r.Anchored = true
		}
	}

	for _, l := range o.Leaves {
		if err := Included(ctx, o.Log, cp, l); err != nil {
			r.fail("leaf %s (index %d): %s", l.Name, l.Index, iotpay.ErrorMessage(err))
		} else {
			r.Leaves++
		}
	}

	if o.Full {
		if err := rehash(ctx, o, cp, r); err != nil {
			if c := iotpay.ErrorCode(err); c != iotpay.EINVALID && c != iotpay.EUNAUTHORIZED && c != iotpay.ENOTFOUND {
				return nil, err
			}
			r.fail("full: %s", iotpay.ErrorMessage(err))
		}
	}

	if r.OK() && o.StatePath != "" && (prev == nil || cp.Size >= prev.Size) {
		if err := atomicfile.Write(o.StatePath, signed, 0o600); err != nil {
			return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "verify: cannot save the checkpoint verified", err)
		}
	}
	return r, nil
}

// Proofs is what checking a leaf and the consistency of two checkpoints
// needs from a log: a *tlog.Client over HTTP, or the proofs a device got on
// its payment channel.
type Proofs interface {
	ConsistencyProof(ctx context.Context, old, size uint64) ([][]byte, error)
	InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error)
	// Leaf is leaf index of the tree of size leaves, as logged.
	Leaf(ctx context.Context, index, size uint64) ([]byte, error)
}

// Consistent checks that cp extends prev, a checkpoint verified before: no
// smaller, the same root at the same size, else a consistency proof from
// the log that verifies.
func Consistent(ctx context.Context, log Proofs, prev, cp tlog.Checkpoint) error {
	switch {
	case cp.Size < prev.Size:
		return iotpay.Errorf(iotpay.EUNAUTHORIZED, "the log shrank from %d to %d leaves", prev.Size, cp.Size)
	case cp.Size == prev.Size && !bytes.Equal(cp.Hash, prev.Hash):
		return iotpay.Errorf(iotpay.EUNAUTHORIZED, "two different checkpoints of size %d (split view)", cp.Size)
	case cp.Size == prev.Size:
		return nil
	}
	p, err := log.ConsistencyProof(ctx, prev.Size, cp.Size)
	if err == nil {
		err = tlog.VerifyConsistency(prev.Size, cp.Size, p, prev.Hash, cp.Hash)
	}
	if err != nil {
		return iotpay.Wrap(iotpay.EUNAUTHORIZED, fmt.Sprintf("from the checkpoint of size %d verified before: %s", prev.Size, iotpay.ErrorMessage(err)), err)
	}
	return nil
}

// Included reads leaf l from its bundle, checks it against the caller's
// evidence, and proves it is in cp's tree.
func Included(ctx context.Context, log Proofs, cp tlog.Checkpoint, l Leaf) error {
	if l.Index >= cp.Size {
		return iotpay.Errorf(iotpay.ENOTFOUND, "not covered by the checkpoint of size %d yet", cp.Size)
	}
	data, err := log.Leaf(ctx, l.Index, cp.Size)
	if err != nil {
		return err
	}
	if l.Check != nil {
		if err := l.Check(data); err != nil {
			return err
		}
	}
	p, err := log.InclusionProof(ctx, l.Index, cp.Size)
	if err != nil {
		return err
	}
	return tlog.VerifyInclusion(l.Index, cp.Size, audit.LeafHash(data), p, cp.Hash)
}

// rehash recomputes the tree from every entry and compares its root, and
// each hash tile of level 0, with what the log serves.
func rehash(ctx context.Context, o Options, cp tlog.Checkpoint, r *Report) error {
	in := tlog.NewIntegrator()
	for start := uint64(0); start < cp.Size; start += tlog.TileWidth {
		idx := start / tlog.TileWidth
		w := tlog.TileWidthAt(cp.Size, 0, idx)
		es, err := o.Log.ReadEntries(ctx, idx, w)
		if err != nil {
			return err
		}
		hs := make([][]byte, len(es))
		var tile []byte
		for i, e := range es {
			hs[i] = audit.LeafHash(e)
			tile = append(tile, hs[i]...)
		}
		served, err := o.Log.ReadTile(ctx, 0, idx, w)
		if err != nil {
			return err
		}
		if !bytes.Equal(served, tile) {
			return iotpay.Errorf(iotpay.EUNAUTHORIZED, "leaves %d to %d do not hash to the tile served", start, start+uint64(w)-1)
		}
		if _, err := in.Append(hs); err != nil {
			return err
		}
		r.Rehashed = in.Size()
		if o.Progress != nil {
			o.Progress(in.Size(), cp.Size)
		}
	}
	if !bytes.Equal(in.Root(), cp.Hash) {
		return iotpay.Errorf(iotpay.EUNAUTHORIZED, "the %d leaves do not hash to the checkpoint's root", cp.Size)
	}
	return nil
}

func loadState(path string, logKey note.Verifier) (*tlog.Checkpoint, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "verify: reading the checkpoint verified before", err)
	}
	cp, _, err := tlog.OpenCheckpoint(b, logKey)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "verify: the checkpoint kept in "+path+" does not verify under this log key", err)
	}
	return &cp, nil
}

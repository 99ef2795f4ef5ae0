package tlog_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"

	sumdb "golang.org/x/mod/sumdb/tlog"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit/tlog"
)

// memTiles is a TileReader over a map holding each tile's latest content.
type memTiles map[[2]uint64][]byte

func (m memTiles) ReadTile(_ context.Context, level uint8, index uint64, width int) ([]byte, error) {
	t, ok := m[[2]uint64{uint64(level), index}]
	if !ok || len(t) < width*tlog.HashSize {
		return nil, iotpay.Errorf(iotpay.ENOTFOUND, "tile %d/%d.p/%d not stored", level, index, width)
	}
	return t[:width*tlog.HashSize], nil
}

func (m memTiles) store(ts []tlog.Tile) {
	for _, t := range ts {
		if len(t.Hashes) != t.Width*tlog.HashSize {
			panic(fmt.Sprintf("tile %v: %d bytes", t.TileID, len(t.Hashes)))
		}
		m[[2]uint64{uint64(t.Level), t.Index}] = t.Hashes
	}
}

func leafData(i uint64) []byte { return binary.BigEndian.AppendUint64([]byte("leaf "), i) }

// reference is golang.org/x/mod/sumdb/tlog's storage of the same tree: an
// independent implementation of RFC 6962 hashing, proofs and tiles.
type reference struct {
	hashes []sumdb.Hash
	n      int64
}

func (r *reference) add(t *testing.T, data []byte) {
	hs, err := sumdb.StoredHashes(r.n, data, r)
	if err != nil {
		t.Fatal(err)
	}
	r.hashes = append(r.hashes, hs...)
	r.n++
}

func (r *reference) ReadHashes(indexes []int64) ([]sumdb.Hash, error) {
	out := make([]sumdb.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = r.hashes[x]
	}
	return out, nil
}

func toHashes(p [][]byte) []sumdb.Hash {
	out := make([]sumdb.Hash, len(p))
	for i := range p {
		copy(out[i][:], p[i])
	}
	return out
}

// TestAgainstSumDB grows a tree leaf by leaf and checks, at many sizes,
// that the root, the tiles and the proofs computed from our tiles are the
// ones golang.org/x/mod/sumdb/tlog computes from its own storage.
func TestAgainstSumDB(t *testing.T) {
	ctx := context.Background()
	const n = 70_000 // past a full level-1 tile (65,536 leaves)
	in := tlog.NewIntegrator()
	tiles := memTiles{}
	ref := &reference{}
	checkAt := map[uint64]bool{1: true, 2: true, 3: true, 255: true, 256: true, 257: true, 511: true, 512: true,
		1000: true, 65535: true, 65536: true, 65537: true, n: true}
	batch := [][]byte{}
	for i := uint64(0); i < n; i++ {
		d := leafData(i)
		ref.add(t, d)
		h := sumdb.RecordHash(d)
		if !bytes.Equal(h[:], tlogLeafHash(d)) {
			t.Fatal("leaf hash differs from RFC 6962's")
		}
		batch = append(batch, h[:])
		size := i + 1
		if !checkAt[size] && size%977 != 0 {
			continue
		}
		changed, err := in.Append(batch)
		if err != nil {
			t.Fatal(err)
		}
		batch = batch[:0]
		tiles.store(changed)
		if in.Size() != size {
			t.Fatalf("size %d, want %d", in.Size(), size)
		}
		want, err := sumdb.TreeHash(int64(size), ref)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(in.Root(), want[:]) {
			t.Fatalf("size %d: root differs from sumdb's", size)
		}
		if root, err := tlog.RootHash(ctx, tiles, size); err != nil || !bytes.Equal(root, want[:]) {
			t.Fatalf("size %d: root from tiles: %x, %v", size, root, err)
		}
		if !checkAt[size] {
			continue
		}
		// Every tile of this size equals sumdb's tile of height 8.
		for _, st := range sumdb.NewTiles(tlog.TileHeight, 0, int64(size)) {
			data, err := sumdb.ReadTileData(st, ref)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tiles.ReadTile(ctx, uint8(st.L), uint64(st.N), st.W)
			if err != nil {
				t.Fatalf("size %d: %v", size, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("size %d: tile %s differs from sumdb's", size, st.Path())
			}
			if ours := (tlog.TileID{Level: uint8(st.L), Index: uint64(st.N), Width: st.W}).Path(); "tile/8/"+ours[len("tile/"):] != st.Path() {
				t.Fatalf("path %s, sumdb's %s", ours, st.Path())
			}
		}
		for _, idx := range []uint64{0, size / 2, size - 1} {
			p, err := tlog.InclusionProof(ctx, tiles, idx, size)
			if err != nil {
				t.Fatal(err)
			}
			rp, err := sumdb.ProveRecord(int64(size), int64(idx), ref)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(toHashes(p)) != fmt.Sprint([]sumdb.Hash(rp)) {
				t.Fatalf("size %d leaf %d: inclusion proof differs from sumdb's", size, idx)
			}
			lh := sumdb.RecordHash(leafData(idx))
			if err := tlog.VerifyInclusion(idx, size, lh[:], p, want[:]); err != nil {
				t.Fatal(err)
			}
			if err := sumdb.CheckRecord(rp, int64(size), want, int64(idx), lh); err != nil {
				t.Fatal(err)
			}
		}
		for _, old := range []uint64{1, size / 3, size - 1} {
			if old == 0 || old > size {
				continue
			}
			p, err := tlog.ConsistencyProof(ctx, tiles, old, size)
			if err != nil {
				t.Fatal(err)
			}
			tp, err := sumdb.ProveTree(int64(size), int64(old), ref)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(toHashes(p)) != fmt.Sprint([]sumdb.Hash(tp)) {
				t.Fatalf("%d→%d: consistency proof differs from sumdb's", old, size)
			}
			oldRoot, _ := sumdb.TreeHash(int64(old), ref)
			if err := tlog.VerifyConsistency(old, size, p, oldRoot[:], want[:]); err != nil {
				t.Fatal(err)
			}
		}
		// An integrator resumed from the tiles is the one that built them.
		re, err := tlog.ResumeIntegrator(ctx, tiles, size)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(re.Root(), want[:]) || re.Size() != size {
			t.Fatalf("size %d: resumed integrator differs", size)
		}
	}
}

func tlogLeafHash(d []byte) []byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(d)
	return h.Sum(nil)
}

// TestResumeThenAppend checks that an integrator resumed from stored tiles
// goes on exactly as the original would have.
func TestResumeThenAppend(t *testing.T) {
	ctx := context.Background()
	a := tlog.NewIntegrator()
	tiles := memTiles{}
	var hs [][]byte
	for i := range uint64(1000) {
		hs = append(hs, tlogLeafHash(leafData(i)))
	}
	ch, _ := a.Append(hs[:300])
	tiles.store(ch)
	b, err := tlog.ResumeIntegrator(ctx, tiles, 300)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := a.Append(hs[300:])
	cb, _ := b.Append(hs[300:])
	if !bytes.Equal(a.Root(), b.Root()) {
		t.Fatal("roots differ after resuming")
	}
	if fmt.Sprint(sorted(ca)) != fmt.Sprint(sorted(cb)) {
		t.Fatal("changed tiles differ after resuming")
	}
}

func sorted(ts []tlog.Tile) map[string][]byte {
	m := map[string][]byte{}
	for _, t := range ts {
		m[t.Path()] = t.Hashes
	}
	return m
}

func TestProofErrors(t *testing.T) {
	ctx := context.Background()
	in := tlog.NewIntegrator()
	tiles := memTiles{}
	ch, _ := in.Append([][]byte{tlogLeafHash([]byte("a")), tlogLeafHash([]byte("b"))})
	tiles.store(ch)
	for name, err := range map[string]error{
		"index beyond size": func() error { _, err := tlog.InclusionProof(ctx, tiles, 2, 2); return err }(),
		"size1 > size2":     func() error { _, err := tlog.ConsistencyProof(ctx, tiles, 3, 2); return err }(),
		"size beyond 2^48":  func() error { _, err := tlog.RootHash(ctx, tiles, 1<<49); return err }(),
	} {
		if iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
	if _, err := tlog.InclusionProof(ctx, tiles, 0, 300); iotpay.ErrorCode(err) != iotpay.ENOTFOUND {
		t.Errorf("tiles missing: %v, want the reader's not found", err)
	}
	if _, err := in.Append([][]byte{{1, 2, 3}}); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("short leaf hash: %v", err)
	}
	if err := tlog.VerifyInclusion(0, 2, tlogLeafHash([]byte("x")), [][]byte{tlogLeafHash([]byte("b"))}, in.Root()); iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
		t.Errorf("wrong leaf: %v", err)
	}
	if !bytes.Equal(tlog.NewIntegrator().Root(), sha256.New().Sum(nil)) {
		t.Error("empty root is not SHA-256 of nothing")
	}
}

func TestPaths(t *testing.T) {
	for _, tc := range []struct {
		id      tlog.TileID
		entries bool
		path    string
	}{
		{tlog.TileID{Level: 0, Index: 0, Width: 256}, false, "tile/0/000"},
		{tlog.TileID{Level: 1, Index: 1234067, Width: 256}, false, "tile/1/x001/x234/067"},
		{tlog.TileID{Level: 5, Index: 1000, Width: 3}, false, "tile/5/x001/000.p/3"},
		{tlog.TileID{Level: 0, Index: 999, Width: 255}, true, "tile/entries/999.p/255"},
		{tlog.TileID{Level: 0, Index: 1<<64 - 1, Width: 256}, true, "tile/entries/x018/x446/x744/x073/x709/x551/615"},
	} {
		got := tc.id.Path()
		if tc.entries {
			got = tlog.EntriesPath(tc.id.Index, tc.id.Width)
		}
		if got != tc.path {
			t.Errorf("%+v: path %q, want %q", tc.id, got, tc.path)
		}
		id, entries, err := tlog.ParsePath(tc.path)
		if err != nil || id != tc.id || entries != tc.entries {
			t.Errorf("ParsePath(%q) = %+v %v %v", tc.path, id, entries, err)
		}
	}
	for _, bad := range []string{"", "tile/", "tile/6/000", "tile/0/0", "tile/0/1000", "tile/0/x000/001", "tile/0/001/002",
		"tile/0/000.p/0", "tile/0/000.p/256", "tile/0/000.p/07", "tile/00/000", "tile/entries", "tiles/0/000",
		"tile/0/x018/x446/x744/x073/x709/x551/616", "tile/0/xx01/000", "tile/0/-01", "tile/0/000/"} {
		if _, _, err := tlog.ParsePath(bad); iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("ParsePath(%q): %v, want invalid", bad, err)
		}
	}
}

func TestTileWidthAt(t *testing.T) {
	for _, tc := range []struct {
		size  uint64
		level uint8
		index uint64
		want  int
	}{
		{0, 0, 0, 0}, {1, 0, 0, 1}, {256, 0, 0, 256}, {256, 0, 1, 0}, {257, 0, 1, 1}, {257, 1, 0, 1},
		{255, 1, 0, 0}, {65536, 1, 0, 256}, {65536, 2, 0, 1},
	} {
		if got := tlog.TileWidthAt(tc.size, tc.level, tc.index); got != tc.want {
			t.Errorf("TileWidthAt(%d, %d, %d) = %d, want %d", tc.size, tc.level, tc.index, got, tc.want)
		}
	}
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"tile/0/000", "tile/1/x001/x234/067", "tile/entries/999.p/255", "tile/5/x001/000.p/3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		id, entries, err := tlog.ParsePath(p)
		if err != nil {
			return
		}
		again := id.Path()
		if entries {
			again = tlog.EntriesPath(id.Index, id.Width)
		}
		if again != p {
			t.Fatalf("%q parsed to %+v, which writes as %q", p, id, again)
		}
	})
}

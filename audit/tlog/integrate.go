package tlog

import (
	"context"
	"math/bits"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/iotpay/iotpay"
)

var rangeFactory = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// hashChildren is RFC 6962's interior node hash, SHA-256(0x01 || l || r).
func hashChildren(l, r []byte) []byte { return rfc6962.DefaultHasher.HashChildren(l, r) }

// EmptyRoot is the root hash of the empty tree, SHA-256 of nothing.
func EmptyRoot() []byte { return rfc6962.DefaultHasher.EmptyRoot() }

// Tile is a hash tile and its content: Width×32 bytes.
type Tile struct {
	TileID
	Hashes []byte
}

// Integrator keeps the right edge of the tree in memory: the compact range
// of its perfect subtrees and the partial tile of each level. Appending
// leaf hashes gives the new root and the tiles that changed, which the
// caller stores before it signs a checkpoint of the new size. It is not
// safe for concurrent use.
type Integrator struct {
	rng     *compact.Range
	partial [LevelsMax][]byte // hashes of each level's rightmost, not yet full tile
}

// NewIntegrator returns the integrator of an empty tree.
func NewIntegrator() *Integrator { return &Integrator{rng: rangeFactory.NewEmptyRange(0)} }

// ResumeIntegrator rebuilds the integrator of a tree of size leaves from its
// stored tiles.
func ResumeIntegrator(ctx context.Context, r TileReader, size uint64) (*Integrator, error) {
	in := NewIntegrator()
	if size == 0 {
		return in, nil
	}
	tc := newTileCache(r, size)
	// The compact range of [0, size) is the perfect subtrees of size's
	// binary decomposition, largest first.
	var hashes [][]byte
	var begin uint64
	for level := 63; level >= 0; level-- {
		if size&(1<<uint(level)) == 0 {
			continue
		}
		h, err := tc.node(ctx, compact.NewNodeID(uint(level), begin>>uint(level)))
		if err != nil {
			return nil, err
		}
		hashes = append(hashes, h)
		begin += 1 << uint(level)
	}
	rng, err := rangeFactory.NewRange(0, size, hashes)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "tlog: cannot rebuild the compact range", err)
	}
	in.rng = rng
	for l := range uint8(LevelsMax) {
		nodes := size >> (TileHeight * uint(l))
		if w := int(nodes % TileWidth); w > 0 {
			t, err := tc.tile(ctx, l, nodes/TileWidth)
			if err != nil {
				return nil, err
			}
			in.partial[l] = append([]byte(nil), t...)
		}
	}
	return in, nil
}

// Size is the number of leaves integrated.
func (in *Integrator) Size() uint64 { return in.rng.End() }

// Root is the tree's root hash (EmptyRoot for an empty tree).
func (in *Integrator) Root() []byte {
	if in.rng.End() == 0 {
		return EmptyRoot()
	}
	root, err := in.rng.GetRootHash(nil)
	if err != nil { // a range built from 0 always has a root
		panic(err)
	}
	return root
}

// Append integrates leaf hashes (each 32 bytes) and returns every tile they
// changed, at its new width: full tiles once, when they fill up, and each
// level's partial tile as it now is.
func (in *Integrator) Append(leafHashes [][]byte) ([]Tile, error) {
	if len(leafHashes) == 0 {
		return nil, nil
	}
	changed := map[TileID]bool{}
	var full []Tile
	visit := func(id compact.NodeID, hash []byte) {
		if id.Level%TileHeight != 0 || id.Level/TileHeight >= LevelsMax {
			return
		}
		l := uint8(id.Level / TileHeight)
		in.partial[l] = append(in.partial[l], hash...)
		if len(in.partial[l]) == TileWidth*HashSize {
			t := Tile{TileID{Level: l, Index: id.Index / TileWidth, Width: TileWidth}, in.partial[l]}
			full = append(full, t)
			delete(changed, TileID{Level: l, Index: t.Index})
			in.partial[l] = nil
		} else {
			changed[TileID{Level: l, Index: id.Index / TileWidth}] = true
		}
	}
	for _, h := range leafHashes {
		if len(h) != HashSize {
			return nil, iotpay.Errorf(iotpay.EINVALID, "tlog: a leaf hash has %d bytes", len(h))
		}
		if err := in.rng.Append(h, visit); err != nil {
			return nil, iotpay.Wrap(iotpay.EINTERNAL, "tlog: append", err)
		}
	}
	out := full
	for id := range changed {
		p := in.partial[id.Level]
		id.Width = len(p) / HashSize
		out = append(out, Tile{id, append([]byte(nil), p...)})
	}
	return out, nil
}

// TileReader reads stored tiles. ReadTile returns the hashes of tile (level,
// index) as they are at width (the tile may have grown since): width×32
// bytes, or an error.
type TileReader interface {
	ReadTile(ctx context.Context, level uint8, index uint64, width int) ([]byte, error)
}

// tileCache reads each tile of one tree size once.
type tileCache struct {
	r     TileReader
	size  uint64
	tiles map[[2]uint64][]byte
}

func newTileCache(r TileReader, size uint64) *tileCache {
	return &tileCache{r: r, size: size, tiles: map[[2]uint64][]byte{}}
}

func (c *tileCache) tile(ctx context.Context, level uint8, index uint64) ([]byte, error) {
	key := [2]uint64{uint64(level), index}
	if t, ok := c.tiles[key]; ok {
		return t, nil
	}
	w := TileWidthAt(c.size, level, index)
	if w == 0 {
		return nil, iotpay.Errorf(iotpay.EINVALID, "tlog: tile %d/%d is beyond a tree of %d leaves", level, index, c.size)
	}
	t, err := c.r.ReadTile(ctx, level, index, w)
	if err != nil {
		return nil, err
	}
	if len(t) < w*HashSize {
		return nil, iotpay.Errorf(iotpay.EINTERNAL, "tlog: tile %d/%d has %d bytes, want %d", level, index, len(t), w*HashSize)
	}
	t = t[:w*HashSize]
	c.tiles[key] = t
	return t, nil
}

// node returns the hash of a perfect subtree of the tree: read from the tile
// at its level if it is a multiple of 8, else hashed up from the tile below.
func (c *tileCache) node(ctx context.Context, id compact.NodeID) ([]byte, error) {
	if begin, end := id.Coverage(); end > c.size || end <= begin {
		return nil, iotpay.Errorf(iotpay.EINVALID, "tlog: node %d/%d is not in a tree of %d leaves", id.Level, id.Index, c.size)
	}
	tl := id.Level / TileHeight
	if tl >= LevelsMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "tlog: node level %d beyond the tiles", id.Level)
	}
	h := id.Level % TileHeight // the node's height inside its tile
	first := id.Index << h     // its first descendant at level 8×tl
	t, err := c.tile(ctx, uint8(tl), first/TileWidth)
	if err != nil {
		return nil, err
	}
	off := int(first % TileWidth)
	n := 1 << h
	if (off+n)*HashSize > len(t) {
		return nil, iotpay.Errorf(iotpay.EINTERNAL, "tlog: tile %d/%d too short for node %d/%d", tl, first/TileWidth, id.Level, id.Index)
	}
	return subtreeRoot(t[off*HashSize : (off+n)*HashSize]), nil
}

// subtreeRoot hashes a power-of-two run of sibling hashes up to their root.
func subtreeRoot(hashes []byte) []byte {
	n := len(hashes) / HashSize
	if n == 1 {
		return append([]byte(nil), hashes...)
	}
	level := make([][]byte, n)
	for i := range level {
		level[i] = hashes[i*HashSize : (i+1)*HashSize]
	}
	for len(level) > 1 {
		next := level[:len(level)/2]
		for i := range next {
			next[i] = hashChildren(level[2*i], level[2*i+1])
		}
		level = next
	}
	return level[0]
}

// checkSize refuses sizes the tiles cannot hold.
func checkSize(size uint64) error {
	if bits.Len64(size) > TileHeight*LevelsMax {
		return iotpay.Errorf(iotpay.EINVALID, "tlog: tree size %d beyond 2^48", size)
	}
	return nil
}

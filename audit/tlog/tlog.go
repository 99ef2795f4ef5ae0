// Package tlog is the Merkle tree of the audit log in the shape the
// transparency-log standards give it, so that standard tools and independent
// witnesses can check it: RFC 6962 / RFC 9162 hashing
// (github.com/transparency-dev/merkle), hashes stored and served as C2SP
// tlog-tiles (https://c2sp.org/tlog-tiles), entry bundles, inclusion and
// consistency proofs computed from the tiles, and checkpoints
// (https://c2sp.org/tlog-checkpoint) signed as C2SP signed notes.
//
// The package knows nothing of a database: an Integrator turns new leaf
// hashes into the tiles that changed, and proofs read tiles through a
// TileReader, which a store, an HTTP client or a map can be.
package tlog

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/iotpay/iotpay"
)

// Tile geometry (C2SP tlog-tiles): tiles of height 8, so a full tile holds
// 256 hashes of 32 bytes.
const (
	TileHeight = 8
	TileWidth  = 1 << TileHeight
	HashSize   = 32
	// LevelsMax is the number of tile levels: six levels of height 8 cover
	// 2^48 leaves, the spec's bound.
	LevelsMax = 6
	// EntryBytesMax bounds an entry in a bundle (a uint16 length prefix).
	EntryBytesMax = 1<<16 - 1
)

// TileID names a hash tile: the Width hashes at tree level Level×8 starting
// at node Index×256. A tile with Width < 256 is partial.
type TileID struct {
	Level uint8
	Index uint64
	Width int // 1..256
}

// Path is the tile's path under the log's prefix: tile/<L>/<N>[.p/<W>].
func (t TileID) Path() string {
	return "tile/" + strconv.Itoa(int(t.Level)) + "/" + indexPath(t.Index) + partialSuffix(t.Width)
}

// EntriesPath is the path of an entry bundle: the Width entries starting at
// Index×256, tile/entries/<N>[.p/<W>].
func EntriesPath(index uint64, width int) string {
	return "tile/entries/" + indexPath(index) + partialSuffix(width)
}

func partialSuffix(width int) string {
	if width >= TileWidth {
		return ""
	}
	return ".p/" + strconv.Itoa(width)
}

// indexPath writes n in 3-digit groups, every group but the last prefixed
// with x: 1234067 is x001/x234/067.
func indexPath(n uint64) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n /= 1000; n > 0; n /= 1000 {
		s = fmt.Sprintf("x%03d/", n%1000) + s
	}
	return s
}

// ParsePath reads a tile or entry-bundle path as TileID.Path and EntriesPath
// write it; entries says which. Anything else is an invalid error: paths
// come from the network.
func ParsePath(p string) (id TileID, entries bool, err error) {
	bad := func(why string) (TileID, bool, error) {
		return TileID{}, false, iotpay.Errorf(iotpay.EINVALID, "tile path %q: %s", p, why)
	}
	if len(p) > 64 {
		return bad("too long")
	}
	rest, ok := strings.CutPrefix(p, "tile/")
	if !ok {
		return bad("not under tile/")
	}
	level, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return bad("no index")
	}
	if level == "entries" {
		entries = true
	} else {
		if len(level) != 1 || level[0] < '0' || level[0] >= '0'+LevelsMax {
			return bad("level must be 0 to 5")
		}
		id.Level = level[0] - '0'
	}
	id.Width = TileWidth
	if i := strings.Index(rest, ".p/"); i >= 0 {
		w := rest[i+3:]
		rest = rest[:i]
		n, err := strconv.Atoi(w)
		if err != nil || n < 1 || n >= TileWidth || strconv.Itoa(n) != w {
			return bad("partial width must be 1 to 255, without leading zeros")
		}
		id.Width = n
	}
	groups := strings.Split(rest, "/")
	if len(groups) > 7 { // 2^64 has 20 digits
		return bad("index too long")
	}
	for i, g := range groups {
		last := i == len(groups)-1
		if !last {
			var ok bool
			if g, ok = strings.CutPrefix(g, "x"); !ok {
				return bad("every index group but the last starts with x")
			}
		}
		if len(g) != 3 || g[0] < '0' || g[0] > '9' || g[1] < '0' || g[1] > '9' || g[2] < '0' || g[2] > '9' {
			return bad("index groups are 3 digits")
		}
		d := uint64(g[0]-'0')*100 + uint64(g[1]-'0')*10 + uint64(g[2]-'0')
		if id.Index > (1<<64-1-d)/1000 {
			return bad("index overflows")
		}
		id.Index = id.Index*1000 + d
	}
	if len(groups) > 1 && strings.TrimLeft(groups[0], "x0") == "" {
		return bad("index has a leading zero group")
	}
	return id, entries, nil
}

// TileWidthAt is the width of tile (level, index) in a tree of size leaves:
// 256 for a full tile, less for the partial one at the right edge, 0 if the
// tree has no node of that tile yet.
func TileWidthAt(size uint64, level uint8, index uint64) int {
	nodes := size >> (TileHeight * uint(level)) // complete nodes at tree level 8×level
	start := index * TileWidth
	if nodes <= start {
		return 0
	}
	return int(min(nodes-start, TileWidth))
}

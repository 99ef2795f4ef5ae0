package audit

import (
	"context"
	"time"

	"github.com/iotpay/iotpay/audit/tlog"
)

// Checkpoint is a signed checkpoint as stored: its size and root, and the
// signed note (the log's signature, then co-signatures as they come).
type Checkpoint struct {
	Size    uint64
	Root    []byte
	Signed  []byte
	Created time.Time
}

// LogTx is what the log's checkpointer and its HTTP serving need from a
// store: the leaves appended by payments, and the tiles and checkpoints
// the checkpointer derives from them.
type LogTx interface {
	tlog.TileReader
	// LogSize is the number of leaves appended.
	LogSize(ctx context.Context) (uint64, error)
	// LeafHashes and Leaves return at most n leaves' hashes or data from
	// index from, in order.
	LeafHashes(ctx context.Context, from uint64, n int) ([][]byte, error)
	Leaves(ctx context.Context, from uint64, n int) ([][]byte, error)
	// PutTiles stores tiles, replacing the stored ones of the same
	// level and index.
	PutTiles(ctx context.Context, tiles []tlog.Tile) error
	// PutCheckpoint stores a checkpoint, or the new note of a stored one
	// of the same size and root (co-signatures added).
	PutCheckpoint(ctx context.Context, c Checkpoint) error
	// LatestCheckpoint is the stored checkpoint of the largest size, nil
	// before the first.
	LatestCheckpoint(ctx context.Context) (*Checkpoint, error)
}

// LogStore runs log transactions: Update through the platform's writer,
// View in a read snapshot.
type LogStore interface {
	Update(ctx context.Context, fn func(LogTx) error) error
	View(ctx context.Context, fn func(LogTx) error) error
}

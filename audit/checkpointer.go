package audit

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit/tlog"
)

// Checkpointer defaults.
const (
	CheckpointInterval = time.Second // at most this long between a leaf and the checkpoint covering it
	IntegrateBatchMax  = 1 << 16     // leaves integrated in one step
)

// Anchor receives the log's checkpoints, in order of size, and records them
// outside the platform: a witness co-signs (its signature lines are added
// to the checkpoint's note), a chain records the root.
type Anchor interface {
	Name() string
	// Push records signed, a checkpoint of cp. proof gives the consistency
	// proof from an earlier size to cp's. It returns note signature lines
	// to add to the checkpoint, or nil.
	Push(ctx context.Context, signed []byte, cp tlog.Checkpoint, proof func(old uint64) ([][]byte, error)) ([]byte, error)
}

// Checkpointer integrates the leaves payments append into the log's tiles
// and signs a checkpoint of the new size, at most CheckpointInterval after
// a leaf was appended; then it pushes each checkpoint to the anchors,
// without holding up the next one.
type Checkpointer struct {
	Store   LogStore
	Origin  string        // the log's name: its key's name
	Signers []note.Signer // the log key first, then co-signers (SM2)
	Anchors []Anchor
	// Interval between steps; CheckpointInterval when zero.
	Interval time.Duration
	Logger   *slog.Logger
	Now      func() time.Time

	mu  sync.Mutex
	in  *tlog.Integrator // nil: to be resumed from the store
	src *logSource
}

func (c *Checkpointer) log() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (c *Checkpointer) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// integrator returns the integrator, resumed from the latest stored
// checkpoint when there is none in memory.
func (c *Checkpointer) integrator(ctx context.Context) (*tlog.Integrator, error) {
	if c.in != nil {
		return c.in, nil
	}
	err := c.Store.View(ctx, func(tx LogTx) error {
		latest, err := tx.LatestCheckpoint(ctx)
		if err != nil {
			return err
		}
		if latest == nil {
			c.in = tlog.NewIntegrator()
			return nil
		}
		if c.in, err = tlog.ResumeIntegrator(ctx, tx, latest.Size); err != nil {
			return err
		}
		if string(c.in.Root()) != string(latest.Root) {
			c.in = nil
			return iotpay.Errorf(iotpay.EINTERNAL, "audit log: the stored tiles do not hash to the stored checkpoint of size %d", latest.Size)
		}
		return nil
	})
	return c.in, err
}

// Step integrates the leaves appended since the last checkpoint (at most
// IntegrateBatchMax) and stores their tiles with a new signed checkpoint,
// in one transaction. It returns the checkpoint, nil if there was nothing
// new.
func (c *Checkpointer) Step(ctx context.Context) (*Checkpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	in, err := c.integrator(ctx)
	if err != nil {
		return nil, err
	}
	var hashes [][]byte
	if err := c.Store.View(ctx, func(tx LogTx) error {
		var err error
		hashes, err = tx.LeafHashes(ctx, in.Size(), IntegrateBatchMax)
		return err
	}); err != nil || len(hashes) == 0 {
		return nil, err
	}
	tiles, err := in.Append(hashes)
	if err != nil {
		c.in = nil
		return nil, err
	}
	tc := tlog.Checkpoint{Origin: c.Origin, Size: in.Size(), Hash: in.Root()}
	signed, err := tlog.SignCheckpoint(tc, c.Signers...)
	if err != nil {
		c.in = nil
		return nil, err
	}
	cp := &Checkpoint{Size: tc.Size, Root: tc.Hash, Signed: signed, Created: c.now()}
	if err := c.Store.Update(ctx, func(tx LogTx) error {
		if err := tx.PutTiles(ctx, tiles); err != nil {
			return err
		}
		return tx.PutCheckpoint(ctx, *cp)
	}); err != nil {
		c.in = nil // the memory is ahead of the store: resume from it
		return nil, err
	}
	return cp, nil
}

// Run steps every Interval until ctx ends, and pushes each new checkpoint
// to the anchors from a goroutine of its own: a slow anchor delays only
// itself, and sees the latest checkpoint when it is ready again.
func (c *Checkpointer) Run(ctx context.Context) {
	interval := c.Interval
	if interval <= 0 {
		interval = CheckpointInterval
	}
	latest := make(chan *Checkpoint, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.anchorLoop(ctx, latest)
	}()
	tick := time.NewTicker(interval)
	defer func() {
		tick.Stop()
		wg.Wait()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cp, err := c.Step(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.log().Warn("audit log: checkpoint failed", "err", err)
			}
			continue
		}
		if cp == nil || len(c.Anchors) == 0 {
			continue
		}
		select { // keep only the newest for the anchors
		case <-latest:
		default:
		}
		latest <- cp
	}
}

func (c *Checkpointer) anchorLoop(ctx context.Context, latest <-chan *Checkpoint) {
	for {
		select {
		case <-ctx.Done():
			return
		case cp := <-latest:
			c.anchor(ctx, cp)
		}
	}
}

// anchor pushes cp to every anchor and adds the co-signatures they return
// to its stored note.
func (c *Checkpointer) anchor(ctx context.Context, cp *Checkpoint) {
	tc := tlog.Checkpoint{Origin: c.Origin, Size: cp.Size, Hash: cp.Root}
	proof := func(old uint64) (p [][]byte, err error) {
		err = c.Store.View(ctx, func(tx LogTx) error {
			p, err = tlog.ConsistencyProof(ctx, tx, old, cp.Size)
			return err
		})
		return p, err
	}
	signed := cp.Signed
	added := false
	for _, a := range c.Anchors {
		lines, err := a.Push(ctx, cp.Signed, tc, proof)
		if err != nil {
			if ctx.Err() == nil {
				c.log().Warn("audit log: anchor refused or failed", "anchor", a.Name(), "size", cp.Size, "err", err)
			}
			continue
		}
		if len(lines) > 0 {
			signed, added = append(signed, lines...), true
		}
	}
	if !added {
		return
	}
	next := *cp
	next.Signed = signed
	if err := c.Store.Update(ctx, func(tx LogTx) error { return tx.PutCheckpoint(ctx, next) }); err != nil && ctx.Err() == nil {
		c.log().Warn("audit log: cannot store co-signatures", "size", cp.Size, "err", err)
	}
}

// Source returns the log as its HTTP handler serves it: the tiles, the
// leaves and the latest checkpoint, from the store. Full tiles never
// change, so up to TileCacheMax of them are kept in memory.
func (c *Checkpointer) Source() tlog.Source {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.src == nil {
		c.src = &logSource{s: c.Store, full: map[[2]uint64][]byte{}}
	}
	return c.src
}

// TileCacheMax bounds the full tiles a Source keeps in memory (8 KiB each).
const TileCacheMax = 4096

type logSource struct {
	s    LogStore
	mu   sync.Mutex
	full map[[2]uint64][]byte
}

func (s *logSource) ReadTile(ctx context.Context, level uint8, index uint64, width int) (t []byte, err error) {
	key := [2]uint64{uint64(level), index}
	if width == tlog.TileWidth {
		s.mu.Lock()
		t = s.full[key]
		s.mu.Unlock()
		if t != nil {
			return t, nil
		}
	}
	err = s.s.View(ctx, func(tx LogTx) error {
		t, err = tx.ReadTile(ctx, level, index, width)
		return err
	})
	if err == nil && width == tlog.TileWidth {
		s.mu.Lock()
		if len(s.full) >= TileCacheMax {
			for k := range s.full { // evict one, any
				delete(s.full, k)
				break
			}
		}
		s.full[key] = t
		s.mu.Unlock()
	}
	return t, err
}

func (s *logSource) ReadEntries(ctx context.Context, start uint64, n int) (es [][]byte, err error) {
	err = s.s.View(ctx, func(tx LogTx) error {
		es, err = tx.Leaves(ctx, start, n)
		return err
	})
	if err == nil && len(es) != n {
		err = iotpay.Errorf(iotpay.ENOTFOUND, "audit log: %d leaves from %d, want %d", len(es), start, n)
	}
	return es, err
}

func (s *logSource) Checkpoint(ctx context.Context) (signed []byte, size uint64, err error) {
	err = s.s.View(ctx, func(tx LogTx) error {
		cp, err := tx.LatestCheckpoint(ctx)
		if err != nil {
			return err
		}
		if cp == nil {
			return iotpay.Errorf(iotpay.ENOTFOUND, "audit log: no checkpoint yet")
		}
		signed, size = cp.Signed, cp.Size
		return nil
	})
	return signed, size, err
}

// ProveLeaf gathers, for a device asking on its payment channel, the
// latest signed checkpoint, leaf index, its inclusion proof, and the
// consistency proof from the tree of size trusted (none when 0 or not
// smaller). A leaf no checkpoint covers yet is not_found.
func (c *Checkpointer) ProveLeaf(ctx context.Context, index, trusted uint64) (checkpoint, leaf []byte, inclusion, consistency [][]byte, err error) {
	src := c.Source()
	signed, size, err := src.Checkpoint(ctx)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if index >= size {
		return nil, nil, nil, nil, iotpay.Errorf(iotpay.ENOTFOUND, "leaf %d not covered by the checkpoint of %d leaves yet", index, size)
	}
	if trusted > size {
		return nil, nil, nil, nil, iotpay.Errorf(iotpay.EINVALID, "the trusted size %d is beyond the latest checkpoint's %d", trusted, size)
	}
	es, err := src.ReadEntries(ctx, index, 1)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if inclusion, err = tlog.InclusionProof(ctx, src, index, size); err != nil {
		return nil, nil, nil, nil, err
	}
	if trusted > 0 && trusted < size {
		if consistency, err = tlog.ConsistencyProof(ctx, src, trusted, size); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	return signed, es[0], inclusion, consistency, nil
}

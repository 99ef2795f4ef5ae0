package ledger

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iotpay/iotpay"
)

// BatchOpsMax bounds the operations one batch (one database transaction)
// takes by default.
const BatchOpsMax = 4096

// CommitGatherOpsDefault is the batch a Config.CommitDelay waits for.
const CommitGatherOpsDefault = 16

// ErrClosed is returned by a Writer that is closed.
var ErrClosed = iotpay.Errorf(iotpay.EUNAVAILABLE, "ledger writer closed")

// Store runs fn in one write transaction, committed when fn returns nil and
// rolled back otherwise.
type Store[T Tx] interface {
	Update(ctx context.Context, fn func(T) error) error
}

// Config tunes a Writer.
type Config[T Tx] struct {
	// BatchOpsMax bounds the operations in one transaction (BatchOpsMax
	// when zero).
	BatchOpsMax int
	Now         func() time.Time
	Rand        io.Reader
	Logger      *slog.Logger
	// OnExpire runs in the transaction of the batch in which holds
	// expired, with the Expired transfers the ledger wrote, so the layer
	// above can record what the expiry means (a payment's authorization
	// lapsed).
	OnExpire func(ctx context.Context, tx T, expired []*Transfer) error
	// CommitDelay, when positive, is how long the writer waits for more
	// operations when fewer than CommitGatherOps are waiting as it starts
	// a batch: group commit for a light load. Each commit writes the pages
	// its operations share (the tails of the tables, the merchants'
	// balances) once, so batches of one or two cost a payment up to half
	// as much again as large ones, and that CPU is taken from everything
	// else on the machine. Under a heavy load the operations are waiting
	// already and nothing waits.
	CommitDelay time.Duration
	// CommitGatherOps is the batch CommitDelay waits for
	// (CommitGatherOpsDefault when zero, BatchOpsMax at most).
	CommitGatherOps int
	// Nice, when not zero, is the nice value of the operating-system
	// thread the writer runs on, which it then keeps to itself: a
	// negative one lets it run before the rest of the process and of the
	// machine (Linux; it needs CAP_SYS_NICE, and is left at the
	// process's when refused, with a warning). Every payment waits for
	// this one goroutine, so its waits for a core are every payment's.
	Nice int
}

// Writer is the ledger's single writer. Operations submitted with Do run
// one after another on its goroutine; it takes as many as are waiting (up
// to BatchOpsMax), runs them all in one store transaction, writes the
// ledger changes they made in bulk and commits once: group commit.
//
// An operation that returns an error with a refusal code (invalid, not
// found, conflict, declined, replay, unauthorized) has its ledger changes
// taken back and does not disturb the batch; it must not have written to
// the store before refusing. Any other error, or a failed commit, rolls the
// whole batch back, after which each of its operations is retried alone,
// so one failing operation cannot fail the others.
type Writer[T Tx] struct {
	store Store[T]
	cfg   Config[T]
	st    *state
	ops   chan *op[T]
	quit  chan struct{}
	done  chan struct{}
	close sync.Once

	batches, opsRun, transfers atomic.Int64
}

type op[T Tx] struct {
	ctx  context.Context
	fn   func(*Batch[T]) error
	ids  []iotpay.TransferID // transfer ids to look up with the batch's others
	err  error
	done chan struct{}
}

// Open loads the ledger's state from store and starts the writer.
func Open[T Tx](ctx context.Context, store Store[T], cfg Config[T]) (*Writer[T], error) {
	if cfg.BatchOpsMax <= 0 {
		cfg.BatchOpsMax = BatchOpsMax
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CommitGatherOps <= 0 {
		cfg.CommitGatherOps = CommitGatherOpsDefault
	}
	cfg.CommitGatherOps = min(cfg.CommitGatherOps, cfg.BatchOpsMax)
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &Writer[T]{store: store, cfg: cfg, st: newState(cfg.Rand), ops: make(chan *op[T]),
		quit: make(chan struct{}), done: make(chan struct{})}
	err := store.Update(ctx, func(tx T) error { return w.st.load(ctx, tx) })
	if err != nil {
		return nil, fmt.Errorf("ledger: load: %w", err)
	}
	go w.run()
	return w, nil
}

// Close stops the writer after the batch in progress; operations not yet
// taken get ErrClosed.
func (w *Writer[T]) Close() error {
	w.close.Do(func() { close(w.quit) })
	<-w.done
	return nil
}

// Stats counts what the writer did.
type Stats struct {
	Batches   int64 `json:"batches"`
	Ops       int64 `json:"ops"`
	Transfers int64 `json:"transfers"`
}

// Stats returns the writer's counters.
func (w *Writer[T]) Stats() Stats {
	return Stats{Batches: w.batches.Load(), Ops: w.opsRun.Load(), Transfers: w.transfers.Load()}
}

// Do runs fn in the next batch and returns its error once the batch is
// committed (or the batch's failure). ids, when given, are transfer ids fn
// will apply: they are looked up together with the batch's others.
func (w *Writer[T]) Do(ctx context.Context, fn func(*Batch[T]) error, ids ...iotpay.TransferID) error {
	if ctx.Value(inOp{}) == any(w) {
		// From inside an operation, waiting for the next batch would wait
		// for itself forever.
		return iotpay.Errorf(iotpay.EINTERNAL, "ledger: Do called from inside an operation; use its Batch")
	}
	o := &op[T]{ctx: ctx, fn: fn, ids: ids, done: make(chan struct{})}
	select {
	case w.ops <- o:
	case <-w.quit:
		return ErrClosed
	case <-ctx.Done():
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "canceled", ctx.Err())
	}
	<-o.done // once taken, an operation's outcome is always reported
	return o.err
}

// Transfer applies ts in one operation and returns one error per transfer
// (nil for an applied or repeated one); err is the operation's failure.
func (w *Writer[T]) Transfer(ctx context.Context, ts []*Transfer) (errs []error, err error) {
	ids := make([]iotpay.TransferID, len(ts))
	for i, t := range ts {
		ids[i] = t.ID
	}
	err = w.Do(ctx, func(b *Batch[T]) error {
		errs, err = b.Apply(ts...)
		return err
	}, ids...)
	return errs, err
}

// CreateAccounts creates accounts in one operation. Creating an account
// again with the same fields is a no-op; with other fields it is
// ErrAccountExists. The first refused account refuses them all.
func (w *Writer[T]) CreateAccounts(ctx context.Context, as ...*Account) error {
	return w.Do(ctx, func(b *Batch[T]) error {
		for _, a := range as {
			if err := b.CreateAccount(a); err != nil {
				return err
			}
		}
		return nil
	})
}

// Expire runs a batch now, which expires the holds that are due.
func (w *Writer[T]) Expire(ctx context.Context) error {
	return w.Do(ctx, func(*Batch[T]) error { return nil })
}

// Batch is an operation's view of the batch it runs in: the store
// transaction and the ledger.
type Batch[T Tx] struct {
	Tx T
	// Now is the batch's time: every transfer it applies has this Time.
	Now time.Time
	ctx context.Context
	st  *state
}

// Context returns the operation's context.
func (b *Batch[T]) Context() context.Context { return b.ctx }

// Apply applies ts (see Writer.Transfer). A store failure is returned as
// err, which the operation should return.
func (b *Batch[T]) Apply(ts ...*Transfer) (errs []error, err error) {
	return b.st.apply(b.ctx, b.Tx, ts, b.Now)
}

// CreateAccount creates an account (see Writer.CreateAccounts).
func (b *Batch[T]) CreateAccount(a *Account) error { return b.st.createAccount(a, b.Now) }

// Account returns an account's current state.
func (b *Batch[T]) Account(id iotpay.AccountID) (Account, bool) {
	a, ok := b.st.accounts[id]
	if !ok {
		return Account{}, false
	}
	return *a, true
}

// Hold returns an open hold.
func (b *Batch[T]) Hold(id iotpay.TransferID) (Transfer, bool) {
	t, ok := b.st.open[id]
	if !ok {
		return Transfer{}, false
	}
	return *t, true
}

// NewTransferID returns a fresh transfer id: 80 random bits after the
// time, so the ledger takes it as unused without reading the store.
func (b *Batch[T]) NewTransferID() iotpay.TransferID {
	id := iotpay.TransferID(iotpay.NewID(iotpay.PrefixTransfer, b.Now, b.st.rand))
	b.st.absent[id] = struct{}{}
	return id
}

func (w *Writer[T]) run() {
	defer close(w.done)
	if w.cfg.Nice != 0 {
		// The thread is the writer's alone from here on; it ends with
		// the goroutine, so its priority never passes to other work.
		runtime.LockOSThread()
		if err := setThreadNice(w.cfg.Nice); err != nil {
			w.cfg.Logger.Warn("ledger writer: thread priority not raised", "nice", w.cfg.Nice, "err", err)
		}
	}
	var timer *time.Timer
	var backoff time.Duration
	for {
		var tick <-chan time.Time
		if next := w.st.nextExpiry(); !next.IsZero() {
			d := max(next.Sub(w.cfg.Now()), time.Millisecond, backoff)
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			tick = timer.C
		}
		select {
		case <-w.quit:
			return
		case o := <-w.ops:
			batch := w.gather([]*op[T]{o})
			w.commit(batch)
			for _, o := range batch {
				close(o.done)
			}
			backoff = 0
		case <-tick:
			// An expiry batch that failed (the store is down) is tried
			// again a second later, not in a tight loop.
			backoff = 0
			before := w.batches.Load()
			w.commit(nil)
			if w.batches.Load() == before {
				backoff = time.Second
			}
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// gather adds to batch the operations waiting, and when they are fewer
// than Config.CommitGatherOps, those that come in the next CommitDelay,
// until there are that many.
func (w *Writer[T]) gather(batch []*op[T]) []*op[T] {
	batch = w.drain(batch)
	if w.cfg.CommitDelay <= 0 || len(batch) >= w.cfg.CommitGatherOps {
		return batch
	}
	t := time.NewTimer(w.cfg.CommitDelay)
	defer t.Stop()
wait:
	for len(batch) < w.cfg.CommitGatherOps {
		select {
		case o := <-w.ops:
			batch = append(batch, o)
		case <-t.C:
			break wait
		}
	}
	return w.drain(batch)
}

// drain adds to batch the operations waiting, up to BatchOpsMax.
func (w *Writer[T]) drain(batch []*op[T]) []*op[T] {
	for len(batch) < w.cfg.BatchOpsMax {
		select {
		case o := <-w.ops:
			batch = append(batch, o)
		default:
			return batch
		}
	}
	return batch
}

// fatal reports whether an operation's error must roll its batch back.
func fatal(err error) bool {
	switch iotpay.ErrorCode(err) {
	case iotpay.EINVALID, iotpay.ENOTFOUND, iotpay.ECONFLICT, iotpay.EDECLINED, iotpay.EREPLAY, iotpay.EUNAUTHORIZED:
		return false
	}
	return true
}

// batchFailed carries the operation whose error failed a batch.
type batchFailed struct{ err error }

func (e *batchFailed) Error() string { return e.err.Error() }

// commit runs batch in one transaction; on failure it takes every change
// back and, for a batch of several, retries each operation alone.
func (w *Writer[T]) commit(batch []*op[T]) {
	st := w.st
	now := time.UnixMilli(w.cfg.Now().UnixMilli()).UTC()
	bm := st.mark()
	ctx := context.Background()
	var ran int64
	err := w.store.Update(ctx, func(tx T) error {
		ran = 0
		expired := st.expire(now)
		if len(expired) > 0 && w.cfg.OnExpire != nil {
			if err := w.cfg.OnExpire(ctx, tx, expired); err != nil {
				return err
			}
		}
		var ids []iotpay.TransferID
		for _, o := range batch {
			ids = append(ids, o.ids...)
		}
		if err := st.lookup(ctx, tx, ids); err != nil {
			return err
		}
		for _, o := range batch {
			if err := o.ctx.Err(); err != nil {
				o.err = iotpay.Wrap(iotpay.EUNAVAILABLE, "canceled", err)
				continue
			}
			om := st.mark()
			err := w.runOp(o, tx, now)
			if err != nil && fatal(err) {
				o.err = err
				return &batchFailed{err}
			}
			if err != nil {
				st.undoTo(om)
			}
			o.err = err
			ran++
		}
		return st.flush(ctx, tx)
	})
	if err == nil {
		w.batches.Add(1)
		w.opsRun.Add(ran)
		w.transfers.Add(int64(len(st.newTransfers)))
		st.settle()
		return
	}
	st.undoTo(bm)
	st.settle()
	if len(batch) > 1 {
		w.cfg.Logger.Warn("ledger batch failed; retrying its operations one by one", "ops", len(batch), "err", err)
		for _, o := range batch {
			w.commit([]*op[T]{o})
		}
		return
	}
	var bf *batchFailed
	if errors.As(err, &bf) {
		return // the operation has its own error
	}
	w.cfg.Logger.Error("ledger commit failed", "ops", len(batch), "err", err)
	for _, o := range batch {
		o.err = iotpay.Wrap(iotpay.EUNAVAILABLE, "try again later", err)
	}
}

// runOp runs one operation, turning a panic into an internal error.
func (w *Writer[T]) runOp(o *op[T], tx T, now time.Time) (err error) {
	defer func() {
		if r := recover(); r != nil {
			w.cfg.Logger.Error("ledger operation panicked", "panic", r)
			err = iotpay.Errorf(iotpay.EINTERNAL, "operation panicked: %v", r)
		}
	}()
	return o.fn(&Batch[T]{Tx: tx, Now: now, ctx: context.WithValue(o.ctx, inOp{}, any(w)), st: w.st})
}

// inOp marks the context of an operation with its writer.
type inOp struct{}

package payment

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/payment/ledger"
)

// OpRelease releases what an operation whose answer was lost may have
// left authorized at a payment system (connector.Releaser), by its
// idempotency key.
const OpRelease = "release"

// FollowUpStatus is where a follow-up is.
type FollowUpStatus string

// Follow-up statuses. One done is deleted.
const (
	FollowUpPending FollowUpStatus = "pending" // to do, at Next
	FollowUpFailed  FollowUpStatus = "failed"  // the payment system refused it: someone must act
)

// FollowUp is an operation a payment system owes what the ledger booked:
// the capture of a device's sale or session booked as captured, the
// release of an authorization the ledger declined, the release of what a
// lost answer left behind. It is written in the same transaction as the
// booking (a transactional outbox), done right after the commit, and
// retried with back-off until the payment system answers: the ledger and
// the payment system cannot stay apart silently, even across a restart.
type FollowUp struct {
	ID        string           `json:"id"`
	Tenant    iotpay.TenantID  `json:"tenant"`
	Payment   iotpay.PaymentID `json:"payment,omitempty"`
	Connector string           `json:"connector"`
	// Ref is the payment's reference at the connector (none for a
	// release, which finds it by Key).
	Ref    string `json:"ref,omitempty"`
	Op     string `json:"op"`
	Amount int64  `json:"amount,omitempty"`
	Final  bool   `json:"final,omitempty"`
	// Key is the operation's idempotency key at the connector: every try
	// sends the same one.
	Key       string         `json:"key"`
	Status    FollowUpStatus `json:"status"`
	Attempts  int            `json:"attempts"`
	LastError string         `json:"last_error,omitempty"`
	Next      time.Time      `json:"next"`
	Created   time.Time      `json:"created"`
}

// Follow-up back-off: the first retry after FollowUpRetryMin, doubling up
// to FollowUpRetryMax, for as long as the payment system is unreachable.
// A release that found nothing is looked for ReleaseTries times (search at
// a payment system may lag behind its writes).
const (
	FollowUpRetryMin = 2 * time.Second
	FollowUpRetryMax = time.Hour
	ReleaseTries     = 5
	// ReleaseDelay is how long an abandoned authorization (every payment
	// system failed: the device may try again with the same key, which
	// the payment system answers with the authorization it made) is left
	// before it is released.
	ReleaseDelay = 15 * time.Minute
)

// followKey is the context key of the follow-ups an operation of Do
// enqueued.
type followKey struct{}

type followed struct {
	mu  sync.Mutex
	ups map[string]*FollowUp
}

// EnqueueFollowUp records f in the writer's batch b, to be done once the
// batch commits (Do does it then; f.Next set: not before then) and
// retried until done. Its id derives
// from its connector, operation and key, so enqueuing the same one twice
// keeps one.
func EnqueueFollowUp[T Tx](b *ledger.Batch[T], f *FollowUp) error {
	if f.Connector == "" || f.Key == "" || f.Op == "" {
		return iotpay.Errorf(iotpay.EINTERNAL, "follow-up without connector, op or key")
	}
	now := f.Next.IsZero()
	f.init(b.Now)
	if now {
		// Done after the commit; the watcher takes it only if that try
		// never finished (the process stopped).
		f.Next = b.Now.Add(ConnectorTimeout)
	}
	if err := b.Tx.PutFollowUp(b.Context(), f); err != nil {
		return err
	}
	if fs, ok := b.Context().Value(followKey{}).(*followed); ok && now {
		fs.mu.Lock()
		if fs.ups == nil {
			fs.ups = make(map[string]*FollowUp)
		}
		fs.ups[f.ID] = f
		fs.mu.Unlock()
	}
	return nil
}

// init makes f a new pending follow-up, created at now; its id derives
// from its connector, operation and key.
func (f *FollowUp) init(now time.Time) *FollowUp {
	f.ID = iotpay.DeriveID(iotpay.PrefixFollowUp, f.Connector, f.Op, f.Key)
	f.Status, f.Created = FollowUpPending, now
	return f
}

// Do runs fn as one writer operation; the follow-ups it enqueued are done
// once it has committed, before Do returns.
func (e *Engine[T]) Do(ctx context.Context, fn func(b *ledger.Batch[T]) error) error {
	fs := &followed{}
	ctx = context.WithValue(ctx, followKey{}, fs)
	err := e.W.Do(ctx, func(b *ledger.Batch[T]) error {
		// The writer may run fn again (alone, after its batch failed):
		// only the last run's follow-ups were committed.
		fs.mu.Lock()
		fs.ups = nil
		fs.mu.Unlock()
		return fn(b)
	})
	if err != nil || len(fs.ups) == 0 {
		return err
	}
	for _, f := range fs.ups {
		e.FollowUp(context.WithoutCancel(ctx), f)
	}
	return nil
}

// ReleaseUnbooked releases, through a follow-up done at once and retried
// until done, an authorization payment system x made for payment id that
// the ledger did not book (or booked as declined).
func (e *Engine[T]) ReleaseUnbooked(ctx context.Context, tenant iotpay.TenantID, id iotpay.PaymentID, x *External) error {
	return e.Do(context.WithoutCancel(ctx), func(b *ledger.Batch[T]) error {
		return EnqueueFollowUp(b, &FollowUp{Tenant: tenant, Payment: id, Connector: x.Connector, Ref: x.Result.Ref, Op: OpVoid,
			Key: string(id) + ":" + OpVoid + ":unbooked"})
	})
}

// FollowUp does f at its payment system now and records the outcome: done
// (forgotten), to retry later (a retryable failure, or a release that
// found nothing yet), or failed (the payment system refused it). It
// reports whether f is done.
func (e *Engine[T]) FollowUp(ctx context.Context, f *FollowUp) bool {
	ctx, cancel := context.WithTimeout(ctx, ConnectorTimeout)
	defer cancel()
	done, err := e.doFollowUp(ctx, f)
	now := time.Now()
	g := *f
	g.Attempts++
	switch {
	case err == nil && (done || g.Attempts >= ReleaseTries): // done, or a release that found nothing, looked for enough
		err = e.W.Do(ctx, func(b *ledger.Batch[T]) error { return b.Tx.DeleteFollowUp(b.Context(), f.ID) })
		return err == nil
	case err == nil: // a release found nothing yet
		g.LastError, g.Next = "nothing found to release yet", now.Add(backoff(g.Attempts)*30)
	case connector.Retryable(err):
		g.LastError, g.Next = iotpay.ErrorMessage(err), now.Add(backoff(g.Attempts))
	default:
		g.Status, g.LastError = FollowUpFailed, iotpay.ErrorMessage(err)
	}
	if werr := e.W.Do(ctx, func(b *ledger.Batch[T]) error { return b.Tx.PutFollowUp(b.Context(), &g) }); werr == nil {
		*f = g
	}
	lvl := slog.LevelWarn
	if g.Status == FollowUpFailed {
		lvl = slog.LevelError
	}
	e.log().Log(ctx, lvl, "a payment system's follow-up is not done", "follow_up", g.ID, "payment", g.Payment,
		"connector", g.Connector, "op", g.Op, "status", g.Status, "attempts", g.Attempts, "next", g.Next, "err", g.LastError)
	return false
}

// doFollowUp sends f to its connector: done reports whether nothing is
// left to do.
func (e *Engine[T]) doFollowUp(ctx context.Context, f *FollowUp) (done bool, err error) {
	if e.Router == nil {
		return false, iotpay.Errorf(iotpay.EUNAVAILABLE, "no payment systems configured")
	}
	c, ok := e.Router.Connectors[f.Connector]
	if !ok {
		return false, iotpay.Errorf(iotpay.EUNAVAILABLE, "payment system %q is not configured", f.Connector)
	}
	if f.Op == OpRelease {
		r, ok := c.(connector.Releaser)
		if !ok {
			return true, nil // it releases on its own (an acquirer reverses)
		}
		n, err := r.Release(ctx, f.Key)
		return n > 0, err
	}
	if err := operate(ctx, c, f.Op, f.Ref, f.Amount, f.Final, f.Key); err != nil {
		return false, err
	}
	return true, nil
}

// backoff is the wait before retry n (1, 2, …).
func backoff(n int) time.Duration {
	d := FollowUpRetryMin
	for i := 1; i < n && d < FollowUpRetryMax; i++ {
		d *= 2
	}
	return min(d, FollowUpRetryMax)
}

// FollowUpsDue does the follow-ups due now, at most limit, and says how
// many it did and how many are still to do.
func (e *Engine[T]) FollowUpsDue(ctx context.Context, limit int) (done, left int, err error) {
	var due []*FollowUp
	if err := e.Store.View(ctx, func(tx T) (err error) {
		due, err = tx.DueFollowUps(ctx, time.Now(), limit)
		return err
	}); err != nil {
		return 0, 0, err
	}
	for _, f := range due {
		if e.FollowUp(ctx, f) {
			done++
		} else {
			left++
		}
	}
	return done, left, nil
}

// FollowUps lists a tenant's follow-ups of a status, newest first.
func (e *Engine[T]) FollowUps(ctx context.Context, tenant iotpay.TenantID, status FollowUpStatus, limit int) ([]*FollowUp, error) {
	if status != FollowUpPending && status != FollowUpFailed {
		return nil, iotpay.Errorf(iotpay.EINVALID, "status must be pending or failed")
	}
	return view(ctx, e.Store, func(tx T) ([]*FollowUp, error) { return tx.FollowUps(ctx, tenant, status, bound(limit)) })
}

// RetryFollowUp makes a tenant's failed follow-up pending again and does
// it now: an operator who fixed the cause (a merchant setting at the
// payment system) asks for it again. It answers the follow-up as that try
// left it, and whether it is done.
func (e *Engine[T]) RetryFollowUp(ctx context.Context, tenant iotpay.TenantID, id string) (f *FollowUp, done bool, err error) {
	err = e.W.Do(ctx, func(b *ledger.Batch[T]) error {
		var err error
		if f, err = b.Tx.FollowUp(b.Context(), tenant, id); err != nil {
			return err
		}
		if f.Status != FollowUpFailed {
			return iotpay.Errorf(iotpay.ECONFLICT, "follow-up %s is %s, not failed", id, f.Status)
		}
		f.Status, f.Next = FollowUpPending, b.Now
		return b.Tx.PutFollowUp(b.Context(), f)
	})
	if err != nil {
		return nil, false, err
	}
	done = e.FollowUp(ctx, f)
	return f, done, nil
}

// StateStore is the store a connector keeps what it remembers of its
// payments in (connector.Stateful): read in a view, written through the
// writer, like every other write.
func (e *Engine[T]) StateStore() connector.StateStore { return stateStore[T]{e} }

type stateStore[T Tx] struct{ e *Engine[T] }

func (s stateStore[T]) SaveState(ctx context.Context, name, ref string, state []byte) error {
	return s.e.W.Do(ctx, func(b *ledger.Batch[T]) error {
		return b.Tx.PutConnectorState(b.Context(), name, ref, state, b.Now)
	})
}

func (s stateStore[T]) LoadState(ctx context.Context, name, ref string) ([]byte, error) {
	return view(ctx, s.e.Store, func(tx T) ([]byte, error) { return tx.ConnectorState(ctx, name, ref) })
}

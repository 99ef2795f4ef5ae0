package platform

import (
	"context"

	"github.com/iotpay/iotpay/payment/ledger"
)

type batchKey struct{}

// WithBatch returns ctx carrying b, so that writes made with it join the
// operation b belongs to instead of queueing behind it.
func WithBatch(ctx context.Context, b *ledger.Batch[Tx]) context.Context {
	return context.WithValue(ctx, batchKey{}, b)
}

// WriterStore is a store whose writes all go through the ledger's single
// writer, as transactions of type C (registry.Tx, payment.Tx…): the one
// path by which anything in the database changes. A write whose context
// carries a batch (WithBatch) runs in that batch's operation.
type WriterStore[C any] struct {
	W    *ledger.Writer[Tx]
	Read Store
}

// Update runs fn in a writer operation.
func (s WriterStore[C]) Update(ctx context.Context, fn func(C) error) error {
	if b, ok := ctx.Value(batchKey{}).(*ledger.Batch[Tx]); ok {
		return fn(any(b.Tx).(C))
	}
	return s.W.Do(ctx, func(b *ledger.Batch[Tx]) error { return fn(any(b.Tx).(C)) })
}

// View runs fn in a read-only transaction.
func (s WriterStore[C]) View(ctx context.Context, fn func(C) error) error {
	return s.Read.View(ctx, func(tx Tx) error { return fn(any(tx).(C)) })
}

// BatchOf returns the batch ctx carries (WithBatch), nil when none.
func BatchOf(ctx context.Context) *ledger.Batch[Tx] {
	b, _ := ctx.Value(batchKey{}).(*ledger.Batch[Tx])
	return b
}

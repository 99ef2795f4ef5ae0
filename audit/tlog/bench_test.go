package tlog_test

import (
	"context"
	"sync"
	"testing"

	"github.com/iotpay/iotpay/audit/tlog"
)

// BenchmarkIntegrate measures integrating leaf hashes into tiles, in
// batches of 4096 (what a second of traffic brings in a few steps).
func BenchmarkIntegrate(b *testing.B) {
	in := tlog.NewIntegrator()
	batch := make([][]byte, 4096)
	for i := range batch {
		batch[i] = tlogLeafHash(leafData(uint64(i)))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += len(batch) {
		if _, err := in.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
}

var (
	bigOnce  sync.Once
	bigTiles memTiles
)

// bigTree is a tree of 10 million leaves' tiles, built once.
func bigTree(b *testing.B) (memTiles, uint64) {
	const size = 10_000_000
	bigOnce.Do(func() {
		in := tlog.NewIntegrator()
		bigTiles = memTiles{}
		batch := make([][]byte, 0, 65536)
		for i := uint64(0); i < size; i++ {
			batch = append(batch, tlogLeafHash(leafData(i)))
			if len(batch) == cap(batch) || i == size-1 {
				ch, err := in.Append(batch)
				if err != nil {
					b.Fatal(err)
				}
				bigTiles.store(ch)
				batch = batch[:0]
			}
		}
	})
	return bigTiles, size
}

// BenchmarkInclusionProof10M measures an inclusion proof at 10 million
// leaves, tiles in memory: the hashing part of serving a proof.
func BenchmarkInclusionProof10M(b *testing.B) {
	tiles, size := bigTree(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := tlog.InclusionProof(ctx, tiles, uint64(i*7919)%size, size); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConsistencyProof10M measures a consistency proof between two
// sizes near 10 million leaves.
func BenchmarkConsistencyProof10M(b *testing.B) {
	tiles, size := bigTree(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := tlog.ConsistencyProof(ctx, tiles, size-1-uint64(i%100000), size); err != nil {
			b.Fatal(err)
		}
	}
}

package mqttload

import (
	"math/bits"
	"time"
)

// histogram counts durations in log-linear buckets: exact below 64 ns,
// then 32 buckets per power of two, so a bucket is at most 1/32 (3%) of
// its values wide. Its size is fixed whatever it counts.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    time.Duration
}

const (
	histSubBits = 5
	histSub     = 1 << histSubBits
	// histBuckets covers every non-negative int64.
	histBuckets = (64 - histSubBits) * histSub
)

func histIndex(v int64) int {
	if v < 2*histSub {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - (histSubBits + 1)
	return (shift+1)*histSub + int(v>>shift) - histSub
}

// histUpper is the largest value in bucket i.
func histUpper(i int) int64 {
	if i < 2*histSub {
		return int64(i)
	}
	shift := i/histSub - 1
	m := int64(i%histSub + histSub)
	return (m+1)<<shift - 1
}

func (h *histogram) add(d time.Duration) {
	h.counts[histIndex(int64(d))]++
	h.n++
	h.max = max(h.max, d)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the upper bound of the bucket holding the q-quantile
// (0 < q ≤ 1), never above the largest value counted; 0 if empty.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q * float64(h.n))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(histUpper(i)), h.max)
		}
	}
	return h.max
}

// Latency is the distribution of the time from writing a PUBLISH to
// reading its PUBACK.
type Latency struct {
	P50, P90, P99, P999, Max time.Duration
}

func (h *histogram) latency() Latency {
	return Latency{P50: h.quantile(0.50), P90: h.quantile(0.90), P99: h.quantile(0.99), P999: h.quantile(0.999), Max: h.max}
}

package sim

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records durations in log buckets, HDR-style: exact below
// 256 µs, then 128 buckets per power of two, so a bucket is at most 1/128
// (0.8%) of its lower bound wide and a percentile read at its middle is
// within 0.4% of the sample's value. Buckets are allocated a power of two
// at a time, so a second's histogram of the series costs a few KiB. The
// zero value is empty and ready; it is not safe for concurrent use.
type Histogram struct {
	groups [histGroups][]uint64
	n      uint64
	sum    uint64 // µs
	max    uint64 // µs, exact
	min    uint64 // µs, exact
}

const (
	// histSub is the number of exact values in group 0; every later
	// group g covers [histSub/2 << g, histSub << g) in histSub/2 buckets.
	histSub    = 256
	histShift  = 8 // log2(histSub)
	histGroups = 64 - histShift + 1
)

func histIndex(us uint64) (group, i int) {
	if us < histSub {
		return 0, int(us)
	}
	g := bits.Len64(us) - histShift
	return g, int(us>>uint(g)) - histSub/2
}

// bucket returns the lowest value of bucket i of group g and its width.
func histBucket(g, i int) (low, width uint64) {
	if g == 0 {
		return uint64(i), 1
	}
	return uint64(i+histSub/2) << uint(g), 1 << uint(g)
}

// Record adds one duration (negative ones count as zero).
func (h *Histogram) Record(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	g, i := histIndex(us)
	if h.groups[g] == nil {
		n := histSub / 2
		if g == 0 {
			n = histSub
		}
		h.groups[g] = make([]uint64, n)
	}
	h.groups[g][i]++
	if h.n == 0 || us < h.min {
		h.min = us
	}
	h.n++
	h.sum += us
	h.max = max(h.max, us)
}

// Merge adds o's samples to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for g, b := range o.groups {
		if b == nil {
			continue
		}
		if h.groups[g] == nil {
			h.groups[g] = make([]uint64, len(b))
		}
		for i, c := range b {
			h.groups[g][i] += c
		}
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest sample, exactly (to the microsecond).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) * time.Microsecond }

// Mean is the samples' mean.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum/h.n) * time.Microsecond
}

// Quantile returns the q-quantile (0 < q ≤ 1) as the sorted samples'
// element ceil(q·n) would be, to within 0.4%: the middle of its bucket,
// kept within the exact minimum and maximum. Zero when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for g, b := range h.groups {
		for i, c := range b {
			if c == 0 {
				continue
			}
			if seen += c; seen >= rank {
				low, width := histBucket(g, i)
				v := low + (width-1)/2
				v = min(max(v, h.min), h.max)
				return time.Duration(v) * time.Microsecond
			}
		}
	}
	return h.Max()
}

// ms is d in milliseconds, rounded to the microsecond.
func ms(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}

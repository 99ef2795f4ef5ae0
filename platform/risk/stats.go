package risk

import "math"

// MinLogStdDev is the least standard deviation of log(amount) Stats.Z
// divides by. A device that always charges about the same would otherwise
// see any other amount as infinitely unusual; with this floor ten times the
// usual amount scores z = 8 (DefaultDeclineZ) and about 3.2 times scores
// z = 4 (DefaultReviewZ), however regular the history. It replaces a
// separate rule for a history of equal amounts (variance 0) and keeps z
// continuous in the history.
const MinLogStdDev = math.Ln10 / DefaultDeclineZ

// Stats summarizes a device's past approved amounts: the count, mean and
// sum of squared deviations (M2) of log(amount), kept by Welford's online
// algorithm. Amounts are compared on a log scale because payment amounts
// are skewed: 2× the usual is as far above as ½× is below. The caller
// stores one per device and adds each approved amount. Its zero value is an
// empty history; it never holds NaN or an infinity, so it always encodes as
// JSON.
type Stats struct {
	N    int64   `json:"n"`
	Mean float64 `json:"mean"`
	M2   float64 `json:"m2"`
}

// Add returns s with amount added. A non-positive amount has no logarithm
// and is not a payment: s is returned unchanged, as it is once N is at its
// maximum.
func (s Stats) Add(amount int64) Stats {
	if amount <= 0 || s.N < 0 || s.N == math.MaxInt64 {
		return s
	}
	x := math.Log(float64(amount))
	n := s.N + 1
	// Explicit conversions stop a fused multiply-add on some
	// architectures, so that every platform stores the same bits.
	delta := x - s.Mean
	mean := s.Mean + float64(delta/float64(n))
	m2 := s.M2 + float64(delta*(x-mean))
	return Stats{N: n, Mean: mean, M2: m2}
}

// Variance is the sample variance of log(amount), 0 when N < 2.
func (s Stats) Variance() float64 {
	if s.N < 2 || !(s.M2 > 0) {
		return 0
	}
	return s.M2 / float64(s.N-1)
}

// Z is how many standard deviations log(amount) lies above the history's
// mean (negative below), the standard deviation taken at least
// MinLogStdDev. It is 0 when there is no basis to compare: N < 2, a
// non-positive amount or a corrupt history.
func (s Stats) Z(amount int64) float64 {
	if s.N < 2 || amount <= 0 || math.IsNaN(s.Mean) || math.IsInf(s.Mean, 0) || math.IsNaN(s.M2) || math.IsInf(s.M2, 0) {
		return 0
	}
	sd := max(math.Sqrt(s.Variance()), MinLogStdDev)
	return (math.Log(float64(amount)) - s.Mean) / sd
}

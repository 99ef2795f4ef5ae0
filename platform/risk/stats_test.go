package risk

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

func TestStatsWelfordMatchesTwoPass(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{2, 3, 10, 1000, 100_000} {
		amounts := make([]int64, n)
		var s Stats
		for i := range amounts {
			amounts[i] = 1 + r.Int64N(1_000_000)
			s = s.Add(amounts[i])
		}
		var sum float64
		for _, a := range amounts {
			sum += math.Log(float64(a))
		}
		mean := sum / float64(n)
		var m2 float64
		for _, a := range amounts {
			d := math.Log(float64(a)) - mean
			m2 += d * d
		}
		if s.N != int64(n) || !near(s.Mean, mean, 1e-9) || !near(s.M2, m2, 1e-9) || !near(s.Variance(), m2/float64(n-1), 1e-9) {
			t.Errorf("n %d: Welford %+v, two-pass mean %v m2 %v", n, s, mean, m2)
		}
	}
}

func near(a, b, rel float64) bool {
	return math.Abs(a-b) <= rel*max(math.Abs(a), math.Abs(b), 1)
}

func TestStatsZ(t *testing.T) {
	var s Stats
	if z := s.Z(1000); z != 0 {
		t.Errorf("empty: z %v", z)
	}
	s = s.Add(100)
	if z := s.Z(1_000_000); z != 0 {
		t.Errorf("one amount: z %v", z)
	}
	// Amounts spread enough that the floor does not apply.
	r := rand.New(rand.NewPCG(5, 6))
	s = Stats{}
	for range 200 {
		s = s.Add(50 + r.Int64N(950)) // 0.50 to 10.00
	}
	if sd := math.Sqrt(s.Variance()); sd <= MinLogStdDev {
		t.Fatalf("sd %v under the floor", sd)
	}
	if z := s.Z(500); math.Abs(z) > 2 {
		t.Errorf("usual amount: z %v", z)
	}
	if z := s.Z(10_000_000); z < 8 {
		t.Errorf("outlier: z %v", z)
	}
	if z := s.Z(1); z > -4 {
		t.Errorf("tiny amount: z %v", z)
	}
	want := (math.Log(2000) - s.Mean) / math.Sqrt(s.Variance())
	if z := s.Z(2000); !near(z, want, 1e-12) {
		t.Errorf("z %v, want %v", z, want)
	}
	// A flat history: the floor makes 10× the usual z = 8.
	s = Stats{}
	for range 50 {
		s = s.Add(250)
	}
	if s.Variance() > 1e-20 {
		t.Errorf("flat variance %v", s.Variance())
	}
	if z := s.Z(2500); !near(z, 8, 1e-9) {
		t.Errorf("10×: z %v", z)
	}
	if z := s.Z(250); math.Abs(z) > 1e-9 {
		t.Errorf("same: z %v", z)
	}
	// No basis: non-positive amounts, corrupt histories.
	for _, c := range []struct {
		s Stats
		a int64
	}{
		{s, 0}, {s, -5},
		{Stats{N: 10, Mean: math.NaN(), M2: 1}, 100},
		{Stats{N: 10, Mean: 1, M2: math.Inf(1)}, 100},
		{Stats{N: -3, Mean: 1, M2: 1}, 100},
	} {
		if z := c.s.Z(c.a); z != 0 {
			t.Errorf("%+v Z(%d) = %v", c.s, c.a, z)
		}
	}
}

func TestStatsAdd(t *testing.T) {
	s := Stats{}.Add(100).Add(200)
	for _, a := range []int64{0, -1, math.MinInt64} {
		if got := s.Add(a); got != s {
			t.Errorf("Add(%d) changed %+v to %+v", a, s, got)
		}
	}
	full := Stats{N: math.MaxInt64, Mean: 1, M2: 1}
	if got := full.Add(5); got != full {
		t.Errorf("full: %+v", got)
	}
	big := Stats{}.Add(math.MaxInt64).Add(1).Add(math.MaxInt64)
	if math.IsNaN(big.Mean) || math.IsInf(big.M2, 0) || big.N != 3 {
		t.Errorf("extremes: %+v", big)
	}
	// The caller stores it as JSON: bits survive.
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Stats
	if err := json.Unmarshal(b, &back); err != nil || back != s {
		t.Errorf("round trip %s: %+v %v", b, back, err)
	}
	if string(b[:5]) != `{"n":` {
		t.Errorf("JSON %s", b)
	}
}

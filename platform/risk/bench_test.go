package risk

import "testing"

// BenchmarkDecide decides with the full policy (two velocity rules,
// geofence, hours in a zone, firmware, tamper, offline, clock skew,
// cool-off, anomaly): an ordinary payment that is approved, one that
// breaks every check and is declined with eleven reasons, and one declined
// for one reason (tamper).
func BenchmarkDecide(b *testing.B) {
	p := fullPolicy(b)
	for _, bc := range []struct {
		name string
		in   *Input
		want Outcome
	}{
		{"approve", input(), Approve},
		{"decline", everything(), Decline},
		{"decline_tamper", tampered(), Decline},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if d := Decide(p, bc.in); d.Outcome != bc.want {
				b.Fatalf("%+v", d)
			}
			b.ReportAllocs()
			for b.Loop() {
				Decide(p, bc.in)
			}
		})
	}
}

// BenchmarkDecideUnvalidated is the slow path of a policy never validated:
// the zone is loaded on every call.
func BenchmarkDecideUnvalidated(b *testing.B) {
	p := *fullPolicy(b)
	p.valid, p.loc = false, nil
	in := input()
	b.ReportAllocs()
	for b.Loop() {
		Decide(&p, in)
	}
}

func BenchmarkParsePolicy(b *testing.B) {
	data := []byte(fullJSON)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePolicy(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStats(b *testing.B) {
	s := history(30, 200, 300)
	b.Run("Add", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = s.Add(250)
		}
	})
	b.Run("Z", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = s.Z(250)
		}
	})
}

func tampered() *Input {
	in := input()
	in.Tamper = true
	return in
}

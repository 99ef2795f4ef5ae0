package wire_test

import (
	"crypto/rand"
	"testing"

	"github.com/iotpay/iotpay/wire"
)

// BenchmarkSuites measures what a payment costs in signatures per suite:
// the device signs a request, the platform verifies it, and each hashes
// it for the receipt. Run with
//
//	go test -run XXX -bench BenchmarkSuites -benchtime 2s ./wire
func BenchmarkSuites(b *testing.B) {
	for _, s := range []wire.Suite{wire.Intl, wire.GM} {
		key := suiteKey(b, s, "bench")
		frame, err := wire.SignRequest(s, key, rand.Reader, amountRequest())
		if err != nil {
			b.Fatal(err)
		}
		b.Run(s.Name()+"/sign request", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := wire.SignRequest(s, key, rand.Reader, amountRequest()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(s.Name()+"/verify request", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				env, _, err := wire.ParseRequest(frame)
				if err == nil {
					err = env.Verify(s, key.Public())
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(s.Name()+"/hash request", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				s.Hash(frame)
			}
		})
	}
}

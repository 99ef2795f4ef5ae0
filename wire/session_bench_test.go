package wire_test

import (
	"crypto/rand"
	"testing"

	"github.com/iotpay/iotpay/wire"
)

// BenchmarkSession measures a session per suite: a whole handshake (both
// ends: two ephemeral keys, the hello signed and verified, the welcome
// signed and verified, two ECDH and the key schedule), and one encrypted
// payment round (the signed request sealed and opened, the signed receipt
// sealed and opened; the signatures inside are BenchmarkSuites'). Run with
//
//	go test -run XXX -bench BenchmarkSession -benchtime 2s ./wire
func BenchmarkSession(b *testing.B) {
	for _, s := range []wire.Suite{wire.Intl, wire.GM} {
		devKey, platKey := suiteKey(b, s, "bench device"), suiteKey(b, s, "bench platform")
		b.Run(s.Name()+"/handshake", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				x, err := wire.NewEphemeral(s, rand.Reader)
				if err != nil {
					b.Fatal(err)
				}
				hello, err := wire.SignHello(s, devKey, rand.Reader, &wire.Hello{V: wire.Version, Device: testDevice, Suite: s.Name(), Key: x.Public(), TimeMs: 1})
				if err != nil {
					b.Fatal(err)
				}
				env, h, err := wire.ParseHello(hello)
				if err == nil {
					err = env.Verify(s, devKey.Public())
				}
				if err != nil {
					b.Fatal(err)
				}
				y, err := wire.NewEphemeral(s, rand.Reader)
				if err != nil {
					b.Fatal(err)
				}
				welcome, _, err := wire.Accept(s, platKey, rand.Reader, platformKid, y, hello, h, &wire.Welcome{Session: seq(8, 1), TimeMs: 2})
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := wire.Finish(s, platKey.Public(), x, hello, welcome); err != nil {
					b.Fatal(err)
				}
			}
		})
		hs := doHandshake(b, s)
		req, _ := wire.SignRequest(s, devKey, rand.Reader, amountRequest())
		rc, _ := wire.SignReceipt(s, platKey, rand.Reader, platformKid, testReceipt())
		b.Run(s.Name()+"/seal+open round", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(req) + len(rc)))
			var n uint64
			for b.Loop() {
				n++
				sealed, err := hs.dev.SealRequest(n, req)
				if err != nil {
					b.Fatal(err)
				}
				m, err := wire.ParseEncrypt0(sealed)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := hs.plat.OpenRequest(m); err != nil {
					b.Fatal(err)
				}
				resp, err := hs.plat.SealResponse(n, rc)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := hs.dev.OpenResponse(n, resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

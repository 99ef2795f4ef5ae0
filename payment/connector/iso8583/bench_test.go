package iso8583_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotpay/iotpay/payment/connector/iso8583"
	"github.com/iotpay/iotpay/payment/connector/iso8583/acquirersim"
)

func BenchmarkPack(b *testing.B) {
	for _, tc := range []struct {
		name string
		spec *iso8583.Spec
		file string
	}{{"0100/ascii", iso8583.Spec87ASCII, "0100_auth.ascii.hex"}, {"0100/bcd", iso8583.Spec87BCD, "0100_auth.bcd.hex"}} {
		m, err := iso8583.Unpack(tc.spec, readHex(b, tc.file))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := iso8583.Pack(tc.spec, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUnpack(b *testing.B) {
	for _, tc := range []struct {
		name string
		spec *iso8583.Spec
		file string
	}{{"0100/ascii", iso8583.Spec87ASCII, "0100_auth.ascii.hex"}, {"0100/bcd", iso8583.Spec87BCD, "0100_auth.bcd.hex"}} {
		data := readHex(b, tc.file)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := iso8583.Unpack(tc.spec, data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAuthorizeRoundTrip is a full 0100/0110 between the client and
// the simulator over loopback TCP: build, pack, frame, write, the
// simulator's unpack, decision and answer, read, match by STAN.
func BenchmarkAuthorizeRoundTrip(b *testing.B) {
	e := newEnv(b, nil, func(c *iso8583.Config, _ *acquirersim.Config) { c.Timeout = 5 * time.Second; c.Now = time.Now })
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if _, err := e.c.Authorize(ctx, auth("bench/serial/"+strconv.Itoa(i), cardOK, 100)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := e.c.Authorize(ctx, auth("bench/parallel/"+strconv.FormatInt(n.Add(1), 10), cardOK, 100)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

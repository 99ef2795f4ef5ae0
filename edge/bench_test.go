package edge_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotpay/iotpay/device"
	devedge "github.com/iotpay/iotpay/device/edge"
	"github.com/iotpay/iotpay/wire"
)

// BenchmarkPaymentsThroughTheGateway: signed payments from 32 devices over
// plain UDP through one gateway to iotpayd and back, receipts verified:
// what one gateway carries on this machine, the platform beside it.
//
//	go test ./edge -run XXX -bench PaymentsThroughTheGateway -benchtime 2000x
func BenchmarkPaymentsThroughTheGateway(b *testing.B) {
	w := newWorld(b)
	g := startGateway(b, b.TempDir(), w.gatewayIdentity(w.d.MQTTAddr()), pskSecret(b))
	b.Cleanup(func() { g.Close() })
	const devices = 32
	type dev struct {
		p  *payer
		tr *devedge.Transport
	}
	devs := make([]dev, devices)
	for i := range devs {
		p := w.payer()
		devs[i] = dev{p, p.dial(b, g.Addr(), nil, 10*time.Second)}
	}
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for _, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				rc, err := d.p.dev.Pay(ctx, d.tr, device.Payment{Amount: eur(1)})
				cancel()
				if err != nil || rc.Outcome != wire.Approved {
					b.Errorf("payment: %+v %v", rc, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "payments/s")
}

package gateway

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	deviceedge "github.com/iotpay/iotpay/device/edge"
	"github.com/iotpay/iotpay/edge/lossy"
)

// TestLossyLink: through a link losing 10% and 30% of the datagrams each
// way, every message that fits one block is answered, within bounded
// attempts. Frames of many blocks across a lossy link are device/edge's
// TestLossyBlocks (the device sends each block as a confirmable request
// of its own, since go-coap's client does not retransmit a lost block).
func TestLossyLink(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a lossy link")
	}
	p := newPlatform(t)
	for _, loss := range []float64{0.1, 0.3} {
		for _, secure := range []bool{false, true} {
			t.Run(fmt.Sprintf("loss=%v/dtls=%v", loss, secure), func(t *testing.T) {
				t.Parallel()
				gw := newID()
				g := startGateway(t, Config{Logger: testLogger(t), Budget: BudgetMax, AnswerWait: 300 * time.Millisecond, Uplink: UplinkConfig{GatewayID: gw}})
				target := g.Addr()
				if secure {
					target = g.DTLSAddr()
				}
				link, err := lossy.Listen("", target, lossy.Config{
					Up: lossy.Impairment{Loss: loss}, Down: lossy.Impairment{Loss: loss}, Seed: int64(loss * 100)})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { link.Close() })
				dev := newID()
				cfg := deviceedge.Config{DeviceID: dev, Addr: link.Addr().String(), Attempts: 10, Timeout: 10 * time.Second,
					AckTimeout: 200 * time.Millisecond, BlockSize: BlockSize(BudgetMax),
					FCnt: deviceedge.FileCounter{Path: filepath.Join(t.TempDir(), "fcnt")}}
				if secure {
					cfg.PSK, _ = DerivePSK(testSecret, dev)
				}
				var tr *deviceedge.Transport
				for range 5 { // a handshake may lose a whole flight's retransmissions
					ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
					tr, err = deviceedge.Dial(ctx, cfg)
					cancel()
					if err == nil {
						break
					}
					t.Logf("dial: %v", err)
				}
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { tr.Close() })
				var sent [][]byte
				for i := range 5 {
					req := envelope(i, 60+5*i) // one 128-byte block with the frame's 24 bytes
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
					ans, err := tr.Exchange(ctx, req, matchReversed(req))
					cancel()
					if err != nil {
						t.Fatalf("message %d: %v", i, err)
					}
					if !bytes.Equal(ans, reverse(req)) {
						t.Fatalf("message %d: wrong answer", i)
					}
					sent = append(sent, req)
				}
				checkOrder(t, p.Relays(gw), sent)
				s := link.Stats()
				t.Logf("loss %v: up %d received %d dropped, down %d received %d dropped; gateway %+v",
					loss, s.Up.Received, s.Up.Dropped, s.Down.Received, s.Down.Dropped, g.Stats())
			})
		}
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("IOTPAY_EDGE_DEBUG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

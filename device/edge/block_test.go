package edge_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotpay/iotpay/device/edge"
	"github.com/iotpay/iotpay/edge/gateway"
)

// TestBlockSizes: a device whose blocks are larger or smaller than the
// gateway's still gets its frames through: the gateway's 2.31 asks for
// its smaller blocks, and the device goes on in that size (RFC 7959
// §2.5); its answer comes in the smaller of the two.
func TestBlockSizes(t *testing.T) {
	p := newPlatform(t)
	for _, c := range []struct {
		name        string
		budget      int
		deviceBlock int
	}{
		{"device larger", gateway.BudgetMin, 128}, // the gateway's blocks are 16 bytes
		{"device smaller", gateway.BudgetMax, 32}, // the gateway's are 128
	} {
		t.Run(c.name, func(t *testing.T) {
			gw := newID()
			g := startGateway(t, c.budget, gw)
			dev := newID()
			tr, err := edge.Dial(context.Background(), edge.Config{DeviceID: dev, Addr: g.Addr(), BlockSize: c.deviceBlock,
				AckTimeout: 200 * time.Millisecond, FCnt: edge.FileCounter{Path: filepath.Join(t.TempDir(), "fcnt")}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tr.Close() })
			var sent [][]byte
			for i, n := range []int{100, 300, 1000} {
				req := envelope(i, n)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				ans, err := tr.Exchange(ctx, req, func(a []byte) bool { return bytes.Equal(a, reverse(req)) })
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
			if s := g.Stats(); s.Queued != 3 || s.Refused != 0 {
				t.Errorf("gateway %+v: frames sent again or refused", s)
			}
		})
	}
}

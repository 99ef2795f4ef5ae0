package edge_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device/edge"
	"github.com/iotpay/iotpay/edge/edgetest"
	"github.com/iotpay/iotpay/edge/gateway"
	"github.com/iotpay/iotpay/edge/lossy"
)

// What the edge's tests share (edge/edgetest), by the names these tests use.
const brokerAddr = edgetest.BrokerAddr

var (
	newID       = edgetest.NewID
	reverse     = edgetest.Reverse
	envelope    = edgetest.Envelope
	newPlatform = edgetest.NewPlatform
	checkOrder  = edgetest.CheckOrder
)

// TestLossyBlocks: through a link losing 10% and 30% of the datagrams each
// way, frames of many blocks both ways (Block1 and Block2) get through, on
// both ports at both ends of the budget range: every message is answered,
// and the platform gets them in order. A lost block is sent again, not its
// frame; a frame is sent again only when one of its blocks got no answer
// in all its rounds of retransmissions (rare: the log shows it as the
// gateway's Queued above the messages sent). One more link repeats and
// reorders datagrams too, so that late answers to earlier blocks, with
// the same token, come while the next block waits (on the plain port:
// DTLS drops replayed records).
func TestLossyBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a lossy link")
	}
	type scenario struct {
		budget int
		link   lossy.Impairment
		secure bool
	}
	var scenarios []scenario
	for _, budget := range []int{gateway.BudgetMin, gateway.BudgetMax} {
		for _, loss := range []float64{0.1, 0.3} {
			for _, secure := range []bool{false, true} {
				scenarios = append(scenarios, scenario{budget, lossy.Impairment{Loss: loss}, secure})
			}
		}
	}
	scenarios = append(scenarios, scenario{gateway.BudgetMin,
		lossy.Impairment{Loss: 0.1, Duplicate: 0.3, Reorder: 0.3, ReorderDelay: 30 * time.Millisecond}, false})
	p := newPlatform(t)
	// The scenarios wait on timers mostly: they run all at once, not
	// -parallel (GOMAXPROCS) at a time.
	var wg sync.WaitGroup
	for _, sc := range scenarios {
		name := fmt.Sprintf("budget=%d/loss=%v/dtls=%v", sc.budget, sc.link.Loss, sc.secure)
		if sc.link.Duplicate > 0 {
			name = fmt.Sprintf("budget=%d/loss=%v/dup=%v/dtls=%v", sc.budget, sc.link.Loss, sc.link.Duplicate, sc.secure)
		}
		wg.Go(func() { t.Run(name, func(t *testing.T) { runLossy(t, p, sc.budget, sc.link, sc.secure) }) })
	}
	wg.Wait()
}

func runLossy(t *testing.T, p *edgetest.Platform, budget int, link lossy.Impairment, secure bool) {
	gw := newID()
	g := startGateway(t, budget, gw)
	target := g.Addr()
	if secure {
		target = g.DTLSAddr()
	}
	proxy, err := lossy.Listen("", target, lossy.Config{Up: link, Down: link, Seed: int64(link.Loss*100) + int64(budget)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })

	// At 30% loss each way half the round trips fail, and RFC 7252's
	// back-off, doubling at each retransmission, makes the time of a block
	// grow with ACK_TIMEOUT: on the 51-byte link, 42 blocks a message, a
	// 200 ms ACK_TIMEOUT takes 3 minutes for the five messages.
	ack := 200 * time.Millisecond
	if budget == gateway.BudgetMin && link.Loss > 0.2 {
		ack = 50 * time.Millisecond
	}
	start := time.Now()
	dev := newID()
	cfg := edge.Config{DeviceID: dev, Addr: proxy.Addr().String(), Attempts: 10, Timeout: 10 * time.Second,
		AckTimeout: ack, BlockSize: gateway.BlockSize(budget),
		FCnt: edge.FileCounter{Path: filepath.Join(t.TempDir(), "fcnt")}}
	if secure {
		cfg.PSK, _ = gateway.DerivePSK(testSecret, dev)
	}
	var tr *edge.Transport
	for range 5 { // a handshake may lose a whole flight's retransmissions
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		tr, err = edge.Dial(ctx, cfg)
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

	const messages, size = 5, 300
	var sent [][]byte
	for i := range messages {
		req := envelope(i, size)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
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
	s := proxy.Stats()
	lost, stale := edge.Counters(tr)
	t.Logf("%v for %d messages of %d bytes in blocks of %d, ACK_TIMEOUT %v; up %d received %d dropped %d duplicated, "+
		"down %d received %d dropped %d duplicated; rounds lost %d, stale answers %d; gateway %+v",
		time.Since(start).Round(10*time.Millisecond), messages, size, cfg.BlockSize, ack,
		s.Up.Received, s.Up.Dropped, s.Up.Duplicated, s.Down.Received, s.Down.Dropped, s.Down.Duplicated,
		lost, stale, g.Stats())
}

// startGateway starts a gateway on loopback for a link budget; its
// answer wait is short.
func startGateway(t testing.TB, budget int, gw iotpay.DeviceID) *gateway.Gateway {
	t.Helper()
	g, err := gateway.New(gateway.Config{DataDir: t.TempDir(), CoAPAddr: "127.0.0.1:0", DTLSAddr: "127.0.0.1:0",
		PSKSecret: testSecret, Budget: budget, AnswerWait: 300 * time.Millisecond,
		Uplink: gateway.UplinkConfig{Addr: brokerAddr, GatewayID: gw}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// testSecret is a fixed PSK secret.
var testSecret = bytes.Repeat([]byte{7}, gateway.PSKSecretBytes)

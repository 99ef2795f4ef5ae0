package edge_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device/edge"
	"github.com/iotpay/iotpay/edge/gateway"
	"github.com/iotpay/iotpay/edge/lossy"
	"github.com/iotpay/iotpay/wire"
)

// brokerAddr is the machine's Mosquitto (plain MQTT).
const brokerAddr = "127.0.0.1:1883"

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

func runLossy(t *testing.T, p *platform, budget int, link lossy.Impairment, secure bool) {
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
	checkOrder(t, p.relays(gw), sent)
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

func newID() iotpay.DeviceID {
	id := iotpay.DeviceID(iotpay.NewID(iotpay.PrefixDevice, time.Now(), nil))
	ours.Store(string(id), true)
	return id
}

// ours holds the ids this test process made: its test platforms answer only
// their gateways, not those of tests running at the same time in other
// processes on the same broker.
var ours sync.Map

func reverse(b []byte) []byte {
	r := slices.Clone(b)
	slices.Reverse(r)
	return r
}

// envelope is a fake signed envelope (COSE_Sign1's first byte, which the
// plain port wants) of n bytes numbered i.
func envelope(i, n int) []byte {
	b := make([]byte, max(n, 16))
	b[0] = 0xd2
	copy(b[1:], fmt.Sprintf("msg-%06d-", i))
	for j := 12; j < len(b); j++ {
		b[j] = byte(i + j)
	}
	return b
}

// platform is a test platform on the machine's broker: it answers every
// relay with the body reversed and records the relays, in order, by
// gateway.
type platform struct {
	mu       sync.Mutex
	received map[string][]wire.Relay
}

func newPlatform(t testing.TB) *platform {
	t.Helper()
	c, err := net.DialTimeout("tcp", brokerAddr, time.Second)
	if err != nil {
		t.Skipf("no MQTT broker on %s: %v", brokerAddr, err)
	}
	c.Close()
	p := &platform{received: make(map[string][]wire.Relay)}
	opts := paho.NewClientOptions().AddBroker("tcp://" + brokerAddr).SetClientID("test-platform-" + string(newID())).
		SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(true)
	client := paho.NewClient(opts)
	if tok := client.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("platform connect: %v", tok.Error())
	}
	t.Cleanup(func() { client.Disconnect(100) })
	tok := client.Subscribe(wire.TopicPrefix+"+/relay", 1, p.handle)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("platform subscribe: %v", tok.Error())
	}
	return p
}

func (p *platform) handle(c paho.Client, m paho.Message) {
	gw := m.Topic()[len(wire.TopicPrefix) : len(m.Topic())-len("/relay")]
	if _, ok := ours.Load(gw); !ok {
		return // another process's gateway
	}
	r, err := wire.ParseRelay(m.Payload())
	if err != nil {
		return
	}
	p.mu.Lock()
	p.received[gw] = append(p.received[gw], *r)
	p.mu.Unlock()
	b, _ := wire.EncodeRelayAnswer(&wire.RelayAnswer{Device: r.Device, Body: reverse(r.Body), Seq: r.Seq})
	c.Publish(wire.RelayAnswerTopic(gw), 1, false, b)
}

func (p *platform) relays(gw iotpay.DeviceID) []wire.Relay {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.received[string(gw)])
}

// checkOrder checks that the bodies received, duplicates dropped, are
// want in order.
func checkOrder(t testing.TB, got []wire.Relay, want [][]byte) {
	t.Helper()
	var bodies [][]byte
	seen := map[string]bool{}
	for _, r := range got {
		if !seen[string(r.Body)] {
			seen[string(r.Body)] = true
			bodies = append(bodies, r.Body)
		}
	}
	if len(bodies) != len(want) {
		t.Fatalf("platform got %d distinct messages, want %d", len(bodies), len(want))
	}
	for i := range want {
		if !bytes.Equal(bodies[i], want[i]) {
			t.Fatalf("message %d out of order: got %q, want %q", i, bodies[i][:12], want[i][:12])
		}
	}
}

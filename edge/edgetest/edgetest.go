// Package edgetest is what the edge's tests share: a stand-in for the
// platform on the machine's MQTT broker that answers gateways' relays, ids
// of this test process, and fake envelopes. The real platform is in the
// end-to-end tests (package edge); this one lets the gateway's and the
// device transport's tests run without it.
package edgetest

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

// BrokerAddr is the machine's Mosquitto (plain MQTT), which the test
// setup starts.
const BrokerAddr = "127.0.0.1:1883"

// NeedBroker skips t when no broker listens on BrokerAddr.
func NeedBroker(t testing.TB) {
	t.Helper()
	c, err := net.DialTimeout("tcp", BrokerAddr, time.Second)
	if err != nil {
		t.Skipf("no MQTT broker on %s: %v", BrokerAddr, err)
	}
	c.Close()
}

// NewID returns a fresh device id, known as this process's (Platform
// answers only gateways with such ids).
func NewID() iotpay.DeviceID {
	id := iotpay.DeviceID(iotpay.NewID(iotpay.PrefixDevice, time.Now(), nil))
	ours.Store(string(id), true)
	return id
}

// ours holds the ids this test process made: its platforms answer only
// their gateways, not those of tests running at the same time in other
// processes on the same broker.
var ours sync.Map

// Reverse returns b reversed: the stand-in platform's answer to b.
func Reverse(b []byte) []byte {
	r := slices.Clone(b)
	slices.Reverse(r)
	return r
}

// Envelope is a fake signed envelope (COSE_Sign1's first byte, which the
// gateway's plain port wants) of n bytes (16 at least) numbered i.
func Envelope(i, n int) []byte {
	b := make([]byte, max(n, 16))
	b[0] = 0xd2
	copy(b[1:], fmt.Sprintf("msg-%06d-", i))
	for j := 12; j < len(b); j++ {
		b[j] = byte(i + j)
	}
	return b
}

// Platform stands in for the platform on the broker: it answers every
// relay of this process's gateways with the body reversed, unless told to
// keep silent for a gateway, and records the relays, in order, by gateway.
type Platform struct {
	mu       sync.Mutex
	received map[string][]wire.Relay
	silent   map[string]bool
}

// NewPlatform connects a stand-in platform to BrokerAddr (t is skipped
// without a broker).
func NewPlatform(t testing.TB) *Platform {
	t.Helper()
	NeedBroker(t)
	p := &Platform{received: make(map[string][]wire.Relay), silent: make(map[string]bool)}
	opts := paho.NewClientOptions().AddBroker("tcp://" + BrokerAddr).SetClientID("test-platform-" + string(NewID())).
		SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(true)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("platform connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	tok := c.Subscribe(wire.TopicPrefix+"+/relay", 1, p.handle)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("platform subscribe: %v", tok.Error())
	}
	return p
}

func (p *Platform) handle(c paho.Client, m paho.Message) {
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
	silent := p.silent[gw]
	p.mu.Unlock()
	if silent {
		return
	}
	b, _ := wire.EncodeRelayAnswer(&wire.RelayAnswer{Device: r.Device, Body: Reverse(r.Body), Seq: r.Seq})
	c.Publish(wire.RelayAnswerTopic(gw), 1, false, b)
}

// Silence makes the platform take gw's relays without answering them (on),
// or answer them again (off).
func (p *Platform) Silence(gw iotpay.DeviceID, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.silent[string(gw)] = on
}

// Relays returns what gw relayed so far, in order.
func (p *Platform) Relays(gw iotpay.DeviceID) []wire.Relay {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.received[string(gw)])
}

// WaitRelays waits (30 s at most) until gw relayed at least n messages.
func (p *Platform) WaitRelays(t testing.TB, gw iotpay.DeviceID, n int) []wire.Relay {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if r := p.Relays(gw); len(r) >= n {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("platform got %d relays of %s, want %d", len(p.Relays(gw)), gw, n)
	return nil
}

// CheckOrder checks that the bodies relayed, duplicates dropped, are want
// in order.
func CheckOrder(t testing.TB, got []wire.Relay, want [][]byte) {
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

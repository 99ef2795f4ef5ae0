package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

// brokerAddr is the machine's Mosquitto (plain MQTT).
const brokerAddr = "127.0.0.1:1883"

func needBroker(t testing.TB) {
	t.Helper()
	c, err := net.DialTimeout("tcp", brokerAddr, time.Second)
	if err != nil {
		t.Skipf("no MQTT broker on %s: %v", brokerAddr, err)
	}
	c.Close()
}

func newID() iotpay.DeviceID {
	id := iotpay.DeviceID(iotpay.NewID(iotpay.PrefixDevice, time.Now(), nil))
	ours.Store(string(id), true)
	return id
}

// ours holds the ids this test process made: its test platforms answer only
// their gateways, not those of tests running at the same time in other
// processes on the same broker.
var ours sync.Map

// testSecret is a fixed PSK secret.
var testSecret = bytes.Repeat([]byte{7}, PSKSecretBytes)

// startGateway starts a gateway on loopback ports; cfg's zero fields get
// test defaults.
func startGateway(t testing.TB, cfg Config) *Gateway {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.CoAPAddr == "" {
		cfg.CoAPAddr = "127.0.0.1:0"
	}
	if cfg.DTLSAddr == "" {
		cfg.DTLSAddr = "127.0.0.1:0"
	}
	if cfg.PSKSecret == nil && cfg.ClientCAs == nil { // with ClientCAs, PSK if asked
		cfg.PSKSecret = testSecret
	}
	if cfg.Uplink.Addr == "" {
		cfg.Uplink.Addr = brokerAddr
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func reverse(b []byte) []byte {
	r := slices.Clone(b)
	slices.Reverse(r)
	return r
}

// envelope is a fake signed envelope (COSE_Sign1's first byte) of n bytes
// numbered i.
func envelope(i, n int) []byte {
	b := make([]byte, max(n, 16))
	b[0] = 0xd2
	copy(b[1:], fmt.Sprintf("msg-%06d-", i))
	for j := 12; j < len(b); j++ {
		b[j] = byte(i + j)
	}
	return b
}

// platform is a test platform: it answers every relay of the gateways it
// serves with the body reversed, and records what it received, in order.
type platform struct {
	c paho.Client

	mu       sync.Mutex
	received map[string][]wire.Relay // by gateway
	silent   map[string]bool         // gateways not answered
}

func newPlatform(t testing.TB) *platform {
	t.Helper()
	needBroker(t)
	p := &platform{received: make(map[string][]wire.Relay), silent: make(map[string]bool)}
	opts := paho.NewClientOptions().AddBroker("tcp://" + brokerAddr).SetClientID("test-platform-" + string(newID())).
		SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(true)
	p.c = paho.NewClient(opts)
	if tok := p.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("platform connect: %v", tok.Error())
	}
	tok := p.c.Subscribe(wire.TopicPrefix+"+/relay", 1, p.handle)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("platform subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { p.c.Disconnect(100) })
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
	silent := p.silent[gw]
	p.mu.Unlock()
	if silent {
		return
	}
	b, _ := wire.EncodeRelayAnswer(&wire.RelayAnswer{Device: r.Device, Body: reverse(r.Body), Seq: r.Seq})
	c.Publish(wire.RelayAnswerTopic(gw), 1, false, b)
}

func (p *platform) relays(gw iotpay.DeviceID) []wire.Relay {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.received[string(gw)])
}

// waitRelays waits until the platform got at least n relays of gw.
func (p *platform) waitRelays(t testing.TB, gw iotpay.DeviceID, n int) []wire.Relay {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if r := p.relays(gw); len(r) >= n {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("platform got %d relays of %s, want %d", len(p.relays(gw)), gw, n)
	return nil
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

// countingConn is a PacketConn that records the size of every datagram
// either way.
type countingConn struct {
	net.PacketConn
	mu    sync.Mutex
	sizes []int
	max   atomic.Int64
	data  [][]byte
}

func newCountingConn(t testing.TB) *countingConn {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &countingConn{PacketConn: pc}
}

func (c *countingConn) record(b []byte) {
	c.mu.Lock()
	c.data = append(c.data, slices.Clone(b))
	c.mu.Unlock()
}

func (c *countingConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := c.PacketConn.ReadFrom(b)
	if err == nil {
		c.record(b[:n])
	}
	return n, a, err
}

func (c *countingConn) WriteTo(b []byte, a net.Addr) (int, error) {
	c.record(b)
	return c.PacketConn.WriteTo(b, a)
}

func (c *countingConn) datagrams() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.data)
}

// coapSize is the size of the CoAP message a datagram carries: the
// datagram itself on the plain port; on DTLS, for application data
// records, the plaintext (the fragment less an 8-byte explicit nonce, the
// smallest tag, 8 bytes with CCM-8, and with a connection id the inner
// content type), so the estimate is never below the real size. Handshake
// records give -1.
func coapSize(b []byte, secure bool) []int {
	if !secure {
		return []int{len(b)}
	}
	var sizes []int
	for len(b) >= 13 {
		typ := b[0]
		hdr := 13
		if typ == 25 { // tls12_cid, with our 4-byte connection id
			hdr += cidBytes
		}
		if len(b) < hdr {
			break
		}
		n := int(binary.BigEndian.Uint16(b[hdr-2 : hdr]))
		switch typ {
		case 23:
			sizes = append(sizes, n-16)
		case 25:
			sizes = append(sizes, n-17)
		default:
			sizes = append(sizes, -1)
		}
		if len(b) < hdr+n {
			break
		}
		b = b[hdr+n:]
	}
	return sizes
}

// tcpProxy forwards TCP connections to a target while up; down closes the
// listener and every connection, as a cut uplink.
type tcpProxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]struct{}
	wg           sync.WaitGroup
}

// newTCPProxy reserves a loopback port for a proxy to target, down.
func newTCPProxy(t testing.TB, target string) *tcpProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{addr: ln.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	ln.Close()
	t.Cleanup(p.down)
	return p
}

func (p *tcpProxy) up(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[u] = struct{}{}, struct{}{}
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); io.Copy(u, c); u.Close() }()
			go func() { defer p.wg.Done(); io.Copy(c, u); c.Close() }()
		}
	}()
}

func (p *tcpProxy) down() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	p.mu.Unlock()
	p.wg.Wait()
}

// waitFor polls cond until it holds or 30 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var _ = context.Background

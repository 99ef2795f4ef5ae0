package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotpay/iotpay/edge/edgetest"
)

// What the edge's tests share (edge/edgetest), by the names these tests use.
const brokerAddr = edgetest.BrokerAddr

var (
	needBroker  = edgetest.NeedBroker
	newID       = edgetest.NewID
	reverse     = edgetest.Reverse
	envelope    = edgetest.Envelope
	newPlatform = edgetest.NewPlatform
	checkOrder  = edgetest.CheckOrder
)

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

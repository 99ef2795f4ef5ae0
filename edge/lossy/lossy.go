// Package lossy is a lossy-link harness for tests: an in-process UDP proxy
// on loopback that puts loss, duplication, reordering and delay on the path
// between devices and the gateway, as NB-IoT and LoRa links do.
//
// The proxy opens one upstream socket per client address, so the target
// sees one peer per client, as DTLS needs. Whether a datagram is dropped,
// duplicated or held back is drawn from one random stream per direction
// seeded from Config.Seed: the same datagrams in the same order meet the
// same fate. (With several clients, the order in which their datagrams
// reach the proxy, and so the draws, depends on scheduling.)
package lossy

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// DatagramBytesLimit is the largest datagram the proxy reads; no UDP
	// payload is larger.
	DatagramBytesLimit = 65535
	// ClientsMax bounds the client mappings; datagrams from further
	// clients are dropped.
	ClientsMax = 256
	// PendingMax bounds the delayed datagrams in flight, both directions
	// together; beyond it datagrams are dropped, like a full modem queue.
	PendingMax = 4096
	// IdleTimeoutDefault is used when Config.IdleTimeout is zero.
	IdleTimeoutDefault = 30 * time.Second
	// ReorderDelayDefault is used when Impairment.ReorderDelay is zero.
	ReorderDelayDefault = 20 * time.Millisecond

	socketBufferBytes = 1 << 20 // asked for, the kernel may grant less
)

// Impairment is what one direction of the link does to each datagram.
// Probabilities are per datagram, in [0, 1].
type Impairment struct {
	Loss      float64 // the datagram is dropped
	Duplicate float64 // the datagram is delivered twice
	Reorder   float64 // a copy is held ReorderDelay longer, so later ones overtake it

	Delay        time.Duration // added to every copy
	Jitter       time.Duration // a further uniform [0, Jitter) per copy
	ReorderDelay time.Duration // zero means ReorderDelayDefault
}

// Config is the whole link: Up is client→target, Down is target→client.
type Config struct {
	Up, Down Impairment
	Seed     int64 // seeds the drop, duplicate, reorder and jitter draws
	// DatagramBytesMax drops longer datagrams, like a link MTU; zero means
	// no limit below DatagramBytesLimit.
	DatagramBytesMax int
	// IdleTimeout ends a client mapping without traffic either way; the
	// client's next datagram gets a new upstream port. Zero means
	// IdleTimeoutDefault.
	IdleTimeout time.Duration
}

// ConfigError reports an invalid Config field, such as "Up.Loss".
type ConfigError struct {
	Field, Reason string
}

func (e *ConfigError) Error() string { return "lossy: " + e.Field + " " + e.Reason }

// Validate returns a *ConfigError for a probability outside [0, 1], a
// negative duration or a DatagramBytesMax outside [0, DatagramBytesLimit].
func (c Config) Validate() error {
	if err := c.Up.validate("Up"); err != nil {
		return err
	}
	if err := c.Down.validate("Down"); err != nil {
		return err
	}
	if c.DatagramBytesMax < 0 || c.DatagramBytesMax > DatagramBytesLimit {
		return &ConfigError{"DatagramBytesMax", fmt.Sprintf("is outside [0, %d]", DatagramBytesLimit)}
	}
	if c.IdleTimeout < 0 {
		return &ConfigError{"IdleTimeout", "is negative"}
	}
	return nil
}

func (m Impairment) validate(dir string) error {
	names := [...]string{"Loss", "Duplicate", "Reorder", "Delay", "Jitter", "ReorderDelay"}
	for i, p := range []float64{m.Loss, m.Duplicate, m.Reorder} {
		if !(p >= 0 && p <= 1) { // also catches NaN
			return &ConfigError{dir + "." + names[i], "is not a probability in [0, 1]"}
		}
	}
	for i, d := range []time.Duration{m.Delay, m.Jitter, m.ReorderDelay} {
		if d < 0 {
			return &ConfigError{dir + "." + names[3+i], "is negative"}
		}
	}
	return nil
}

// Counters count one direction's datagrams. Every received datagram plus
// every duplicate ends up forwarded or dropped, so once nothing is in
// flight (or after Close) Forwarded+Dropped == Received+Duplicated.
type Counters struct {
	Received   uint64
	Forwarded  uint64 // copies written out, duplicates included
	Dropped    uint64 // by Loss, Cut, DatagramBytesMax, bounds, Close or a failed write
	Duplicated uint64
	Reordered  uint64 // copies held back by Reorder
}

// Stats are the counters of both directions.
type Stats struct {
	Up, Down Counters
}

type direction int

const (
	up direction = iota
	down
)

type counters struct {
	received, forwarded, dropped, duplicated, reordered atomic.Uint64
}

// Proxy is a UDP proxy on loopback that impairs the traffic it forwards.
type Proxy struct {
	conn   *net.UDPConn
	target *net.UDPAddr
	cut    atomic.Bool
	stats  [2]counters

	cfgMu sync.Mutex
	cfg   Config
	rng   [2]*rand.Rand

	mu      sync.Mutex
	closed  bool
	clients map[netip.AddrPort]*client
	pending map[*time.Timer]direction
	wg      sync.WaitGroup // read loops and delayed sends
}

type client struct {
	addr       netip.AddrPort
	conn       *net.UDPConn // connected to the target
	activeNano atomic.Int64
}

func (c *client) touch()                { c.activeNano.Store(time.Now().UnixNano()) }
func (c *client) lastActive() time.Time { return time.Unix(0, c.activeNano.Load()) }

// Listen starts a proxy on listenAddr ("" means 127.0.0.1:0) forwarding to
// targetAddr. Both must be loopback addresses: the harness never sends
// traffic off the host.
func Listen(listenAddr, targetAddr string, cfg Config) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if listenAddr == "" {
		listenAddr = "127.0.0.1:0"
	}
	laddr, err := loopback(listenAddr)
	if err != nil {
		return nil, err
	}
	target, err := loopback(targetAddr)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("lossy: %w", err)
	}
	conn.SetReadBuffer(socketBufferBytes)
	p := &Proxy{conn: conn, target: target,
		clients: map[netip.AddrPort]*client{}, pending: map[*time.Timer]direction{}}
	p.SetConfig(cfg)
	p.wg.Add(1)
	go p.readClients()
	return p, nil
}

func loopback(addr string) (*net.UDPAddr, error) {
	a, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("lossy: %w", err)
	}
	if !a.IP.IsLoopback() {
		return nil, fmt.Errorf("lossy: %s is not a loopback address", addr)
	}
	return a, nil
}

// Addr is the address clients send to.
func (p *Proxy) Addr() net.Addr { return p.conn.LocalAddr() }

// SetConfig replaces the impairments at run time and restarts the random
// streams from cfg.Seed. Datagrams already in flight keep their delays.
func (p *Proxy) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	for _, m := range []*Impairment{&cfg.Up, &cfg.Down} {
		if m.ReorderDelay == 0 {
			m.ReorderDelay = ReorderDelayDefault
		}
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = IdleTimeoutDefault
	}
	p.cfgMu.Lock()
	defer p.cfgMu.Unlock()
	p.cfg = cfg
	for d := range p.rng {
		p.rng[d] = rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(d)))
	}
	return nil
}

// Cut starts (true) or ends (false) an outage: while it lasts, every
// datagram either way is dropped, including delayed ones falling due.
func (p *Proxy) Cut(cut bool) { p.cut.Store(cut) }

// Stats returns the counters; each is read atomically, not all together.
func (p *Proxy) Stats() Stats {
	var s [2]Counters
	for d := range s {
		c := &p.stats[d]
		s[d] = Counters{c.received.Load(), c.forwarded.Load(), c.dropped.Load(),
			c.duplicated.Load(), c.reordered.Load()}
	}
	return Stats{Up: s[up], Down: s[down]}
}

// Close stops the read loops and the delayed sends, closes every socket
// and returns when all goroutines have ended. Pending datagrams count as
// dropped.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for t, d := range p.pending {
		if t.Stop() {
			p.wg.Done()
		}
		p.stats[d].dropped.Add(1)
	}
	clear(p.pending)
	clients := p.clients
	p.clients = nil
	p.mu.Unlock()
	err := p.conn.Close()
	for _, c := range clients {
		c.conn.Close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) readClients() {
	defer p.wg.Done()
	buf := make([]byte, DatagramBytesLimit)
	for {
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		} else if err != nil {
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if c := p.client(from); c != nil {
			c.touch()
			p.impair(up, c, buf[:n])
		} else {
			p.stats[up].received.Add(1)
			p.stats[up].dropped.Add(1)
		}
	}
}

// client returns the mapping for addr, making one with its own upstream
// socket if there is none; nil when closed or at ClientsMax.
func (p *Proxy) client(addr netip.AddrPort) *client {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	if c := p.clients[addr]; c != nil {
		return c
	}
	if len(p.clients) >= ClientsMax {
		return nil
	}
	conn, err := net.DialUDP("udp", nil, p.target)
	if err != nil {
		return nil
	}
	conn.SetReadBuffer(socketBufferBytes)
	c := &client{addr: addr, conn: conn}
	c.touch()
	p.clients[addr] = c
	p.wg.Add(1)
	go p.readTarget(c)
	return c
}

// readTarget forwards the target's datagrams to one client until the
// mapping has been idle for the IdleTimeout or the proxy closes.
func (p *Proxy) readTarget(c *client) {
	defer p.wg.Done()
	buf := make([]byte, DatagramBytesLimit)
	for {
		p.cfgMu.Lock()
		idle := p.cfg.IdleTimeout
		p.cfgMu.Unlock()
		if time.Since(c.lastActive()) >= idle {
			p.expire(c)
			return
		}
		c.conn.SetReadDeadline(c.lastActive().Add(idle))
		n, err := c.conn.Read(buf)
		switch {
		case err == nil:
			c.touch()
			p.impair(down, c, buf[:n])
		case errors.Is(err, net.ErrClosed):
			return
		}
		// A deadline or a refused send (no target yet) loops to the idle check.
	}
}

func (p *Proxy) expire(c *client) {
	p.mu.Lock()
	if p.clients[c.addr] == c {
		delete(p.clients, c.addr)
	}
	p.mu.Unlock()
	c.conn.Close()
}

// impair applies direction d's impairment to one datagram; b is only
// valid during the call.
func (p *Proxy) impair(d direction, c *client, b []byte) {
	s := &p.stats[d]
	s.received.Add(1)
	if p.cut.Load() {
		s.dropped.Add(1)
		return
	}
	delays, copies := p.decide(d, len(b))
	if copies == 0 {
		s.dropped.Add(1)
		return
	}
	if copies == 2 {
		s.duplicated.Add(1)
	}
	for _, delay := range delays[:copies] {
		if delay == 0 {
			p.send(d, c, b)
		} else {
			p.schedule(d, c, bytes.Clone(b), delay)
		}
	}
}

// decide draws the fate of one datagram: copies (0, 1 or 2) and each
// copy's delay.
func (p *Proxy) decide(d direction, size int) (delays [2]time.Duration, copies int) {
	p.cfgMu.Lock()
	defer p.cfgMu.Unlock()
	m, r := p.cfg.Up, p.rng[d]
	if d == down {
		m = p.cfg.Down
	}
	if limit := p.cfg.DatagramBytesMax; (limit > 0 && size > limit) || r.Float64() < m.Loss {
		return delays, 0
	}
	copies = 1
	if r.Float64() < m.Duplicate {
		copies = 2
	}
	for i := range copies {
		delays[i] = m.Delay
		if m.Jitter > 0 {
			delays[i] += time.Duration(r.Int64N(int64(m.Jitter)))
		}
		if r.Float64() < m.Reorder {
			delays[i] += m.ReorderDelay
			p.stats[d].reordered.Add(1)
		}
	}
	return delays, copies
}

func (p *Proxy) schedule(d direction, c *client, b []byte, delay time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.pending) >= PendingMax {
		p.stats[d].dropped.Add(1)
		return
	}
	p.wg.Add(1)
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		defer p.wg.Done()
		p.mu.Lock()
		_, ok := p.pending[t] // Close may have taken it (and counted it) already
		delete(p.pending, t)
		p.mu.Unlock()
		if ok {
			p.send(d, c, b)
		}
	})
	p.pending[t] = d // under p.mu, so before the callback can look
}

func (p *Proxy) send(d direction, c *client, b []byte) {
	var err error
	switch {
	case p.cut.Load():
		err = errors.New("cut")
	case d == up:
		_, err = c.conn.Write(b)
	default:
		_, err = p.conn.WriteToUDPAddrPort(b, c.addr)
	}
	if err != nil {
		p.stats[d].dropped.Add(1)
		return
	}
	p.stats[d].forwarded.Add(1)
}

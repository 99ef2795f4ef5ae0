// Package mqttload is a QoS 1 publish load generator for MQTT brokers, and
// a runner comparing the platform's embedded broker (platform/mqtt) with
// Mosquitto under the same load.
//
// Each of Config.Clients connections publishes messages of Config.Size
// bytes at QoS 1, keeping up to Config.Window of them unacknowledged, and
// the generator counts the PUBACKs it reads during Config.Duration. Its
// client is hand-written MQTT 3.1.1 over a net.Conn, lean enough not to be
// what limits the rate: a publish is a copy of a packet encoded once, and
// the publishes a window allows are written together.
package mqttload

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds and defaults.
const (
	ClientsMax = 10000
	// WindowMax bounds unacknowledged publishes per client; packet ids
	// cycle through a multiple of the window below 65536.
	WindowMax = 4096
	// SizeMax bounds a message's payload.
	SizeMax = 1 << 20
	// DurationMax bounds one run's measured time.
	DurationMax = time.Hour

	// DefaultConnectTimeout bounds a client's dial, TLS handshake and
	// CONNECT.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultDrainTimeout bounds the wait for outstanding PUBACKs once the
	// run is over.
	DefaultDrainTimeout = 10 * time.Second

	// keepalive, in seconds, is what CONNECT asks: a loaded client is
	// never silent that long, so it sends no PINGREQ.
	keepalive = 300
	// connectsInFlightMax bounds clients connecting at once.
	connectsInFlightMax = 64
	// writeBytesMax bounds one write of publishes; the window allows at
	// most that many.
	writeBytesMax = 64 << 10
	// readBufferBytes sizes a client's read buffer: PUBACKs are 4 bytes.
	readBufferBytes = 4 << 10
	// errorsMax bounds the client errors Run reports.
	errorsMax = 8
)

// Config configures a run.
type Config struct {
	Addr string // host:port of the broker
	// TLS, if set, makes every client connect over TLS with it; nil means
	// plain TCP unless ClientTLS is set.
	TLS *tls.Config
	// ClientTLS, if set, gives client i's TLS configuration instead of
	// TLS (a client certificate of its own, say).
	ClientTLS func(client int) *tls.Config

	Clients  int           // concurrent connections
	Window   int           // unacknowledged publishes per client
	Size     int           // payload bytes per message
	Duration time.Duration // measured time
	// Warmup is load before the measured time, not counted.
	Warmup time.Duration

	// Topic is client i's topic; default "mqttload/<i>".
	Topic func(client int) string
	// ClientID is client i's client id; default "mqttload-<i>".
	ClientID func(client int) string
	// Payload, if set, is the message every client publishes (its length
	// is Size); by default Size bytes of 'x', which is text.
	Payload []byte

	Username, Password string // optional, the same for every client

	ConnectTimeout time.Duration // default DefaultConnectTimeout
	DrainTimeout   time.Duration // default DefaultDrainTimeout
}

// Result is what a run measured.
type Result struct {
	Clients, Window, Size int
	// Transport is "tcp", or "tls" with its version and cipher suite, as
	// client 0 negotiated it.
	Transport string
	Duration  time.Duration // measured time
	Acked     int64         // PUBACKs read during Duration
	Rate      float64       // Acked per second
	Latency   Latency       // of the PUBACKs counted
	// Sent is every publish written, Unacked those without a PUBACK when
	// the clients disconnected.
	Sent, Unacked int64
}

func (c *Config) check() error {
	if c.Addr == "" {
		return errors.New("mqttload: no broker address")
	}
	return c.checkLoad()
}

// checkLoad checks the load, whatever the broker.
func (c *Config) checkLoad() error {
	switch {
	case c.Clients < 1 || c.Clients > ClientsMax:
		return fmt.Errorf("mqttload: clients %d not in [1, %d]", c.Clients, ClientsMax)
	case c.Window < 1 || c.Window > WindowMax:
		return fmt.Errorf("mqttload: window %d not in [1, %d]", c.Window, WindowMax)
	case c.Size < 0 || c.Size > SizeMax:
		return fmt.Errorf("mqttload: size %d not in [0, %d]", c.Size, SizeMax)
	case c.Payload != nil && len(c.Payload) != c.Size:
		return fmt.Errorf("mqttload: payload of %d bytes, size %d", len(c.Payload), c.Size)
	case c.Duration <= 0 || c.Duration > DurationMax || c.Warmup < 0 || c.Warmup > DurationMax:
		return fmt.Errorf("mqttload: duration %v or warmup %v not in (0, %v]", c.Duration, c.Warmup, DurationMax)
	}
	return nil
}

func (c *Config) withDefaults() Config {
	d := *c
	if d.Topic == nil {
		d.Topic = func(i int) string { return "mqttload/" + strconv.Itoa(i) }
	}
	if d.ClientID == nil {
		d.ClientID = func(i int) string { return "mqttload-" + strconv.Itoa(i) }
	}
	if d.ClientTLS == nil && d.TLS != nil {
		d.ClientTLS = func(int) *tls.Config { return d.TLS }
	}
	if d.Payload == nil {
		d.Payload = make([]byte, d.Size)
		for i := range d.Payload {
			d.Payload[i] = 'x'
		}
	}
	if d.ConnectTimeout <= 0 {
		d.ConnectTimeout = DefaultConnectTimeout
	}
	if d.DrainTimeout <= 0 {
		d.DrainTimeout = DefaultDrainTimeout
	}
	return d
}

// Run connects the clients, loads the broker for the warmup and the
// measured time, then waits for outstanding PUBACKs and disconnects. An
// error of any client fails the run; the Result still says what was
// measured.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.check(); err != nil {
		return Result{}, err
	}
	c := cfg.withDefaults()
	res := Result{Clients: c.Clients, Window: c.Window, Size: c.Size, Transport: "tcp"}

	clients, err := connectAll(ctx, &c)
	if err != nil {
		return res, err
	}
	if st, ok := clients[0].conn.(*tls.Conn); ok {
		cs := st.ConnectionState()
		res.Transport = "tls " + tls.VersionName(cs.Version) + " " + tls.CipherSuiteName(cs.CipherSuite)
	}

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	from, until := start.Add(c.Warmup), start.Add(c.Warmup+c.Duration)
	var wg sync.WaitGroup
	errs := make([]error, len(clients))
	for i, cl := range clients {
		cl.from, cl.until = from, until
		wg.Go(func() {
			if errs[i] = cl.run(ctx, c.DrainTimeout); errs[i] != nil {
				cancel() // one failure ends the run
			}
		})
	}
	wg.Wait()

	var h histogram
	for _, cl := range clients {
		res.Acked += cl.acked
		res.Sent += cl.sent.Load()
		res.Unacked += cl.sent.Load() - cl.acks.Load()
		h.merge(&cl.hist)
	}
	res.Duration = c.Duration
	res.Rate = float64(res.Acked) / c.Duration.Seconds()
	res.Latency = h.latency()
	if err := parent.Err(); err != nil {
		errs = append(errs, err)
	}
	return res, joinFirst(errs)
}

// joinFirst joins the first errorsMax errors, saying how many were left out.
func joinFirst(errs []error) error {
	var out []error
	n := 0
	for _, err := range errs {
		if err == nil {
			continue
		}
		if n++; n <= errorsMax {
			out = append(out, err)
		}
	}
	if n > errorsMax {
		out = append(out, fmt.Errorf("mqttload: %d more client errors", n-errorsMax))
	}
	return errors.Join(out...)
}

// connectAll connects every client, a bounded number at a time; on an
// error it closes those connected.
func connectAll(ctx context.Context, c *Config) ([]*client, error) {
	clients := make([]*client, c.Clients)
	errs := make([]error, c.Clients)
	sem := make(chan struct{}, connectsInFlightMax)
	var wg sync.WaitGroup
	for i := range clients {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			clients[i], errs[i] = dial(ctx, c, i)
		})
	}
	wg.Wait()
	if err := joinFirst(errs); err != nil {
		for _, cl := range clients {
			if cl != nil {
				cl.conn.Close()
			}
		}
		return nil, err
	}
	return clients, nil
}

// packetIDsMax is the largest packet id; a variable so that a test can
// make ids wrap quickly.
var packetIDsMax = 1<<16 - 1

// client is one connection under load. Its writer and reader goroutines
// share the window: a token per publish that may be sent.
type client struct {
	id     int
	conn   net.Conn
	r      *bufio.Reader
	pub    publishTemplate
	window int
	// idCycle is the largest multiple of the window below 65536: packet
	// ids run 1…idCycle, so the window's slot of id is (id-1) % window.
	idCycle int
	sentAt  []atomic.Int64 // per window slot, ns since base
	base    time.Time
	tokens  chan struct{}

	from, until time.Time // the measured time

	sent atomic.Int64 // publishes written, by the writer
	acks atomic.Int64 // every PUBACK read, by the reader
	// Owned by the reader.
	acked int64 // PUBACKs read in the measured time
	hist  histogram
}

// dial connects client i: TCP, TLS if configured, CONNECT and CONNACK.
func dial(ctx context.Context, c *Config, i int) (*client, error) {
	ctx, cancel := context.WithTimeout(ctx, c.ConnectTimeout)
	defer cancel()
	pub, err := newPublishTemplate(c.Topic(i), c.Payload)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.Addr)
	if err != nil {
		return nil, fmt.Errorf("mqttload: client %d: %w", i, err)
	}
	if c.ClientTLS != nil {
		tc := tls.Client(conn, withServerName(c.ClientTLS(i), c.Addr))
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("mqttload: client %d: TLS handshake: %w", i, err)
		}
		conn = tc
	}
	cl := &client{
		id: i, conn: conn, r: bufio.NewReaderSize(conn, readBufferBytes), pub: pub, window: c.Window,
		idCycle: packetIDsMax / c.Window * c.Window,
		sentAt:  make([]atomic.Int64, c.Window),
		tokens:  make(chan struct{}, c.Window),
	}
	if err := cl.connect(ctx, c); err != nil {
		conn.Close()
		return nil, fmt.Errorf("mqttload: client %d: %w", i, err)
	}
	return cl, nil
}

// withServerName returns tc, or a copy naming addr's host as the server
// if tc names none.
func withServerName(tc *tls.Config, addr string) *tls.Config {
	if tc.ServerName != "" || tc.InsecureSkipVerify {
		return tc
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return tc
	}
	tc = tc.Clone()
	tc.ServerName = host
	return tc
}

func (cl *client) connect(ctx context.Context, c *Config) error {
	pk, err := appendConnect(nil, connectOptions{clientID: c.ClientID(cl.id), username: c.Username, password: c.Password,
		keepalive: keepalive})
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		cl.conn.SetDeadline(dl)
		defer cl.conn.SetDeadline(time.Time{})
	}
	if _, err := cl.conn.Write(pk); err != nil {
		return err
	}
	p, _, err := readPacket(cl.r, nil, answerBytesMax)
	if err != nil {
		return fmt.Errorf("reading CONNACK: %w", err)
	}
	return parseConnack(p)
}

// run loads the connection until the measured time is over or ctx is
// done, waits for the PUBACKs outstanding, and disconnects. Ended by ctx,
// it returns no error: Run reports why.
func (cl *client) run(ctx context.Context, drain time.Duration) error {
	for range cl.window {
		cl.tokens <- struct{}{}
	}
	cl.base = time.Now()
	// A broker that stops reading cannot hold the writer past the drain.
	cl.conn.SetWriteDeadline(cl.until.Add(drain))
	stop, cancel := context.WithDeadline(ctx, cl.until)
	defer cancel()
	closing, readDone := make(chan struct{}), make(chan struct{})
	var rerr error
	go func() {
		defer close(readDone)
		if rerr = cl.read(closing); rerr != nil {
			cancel() // the writer waits for tokens the reader gives
		}
	}()

	err := cl.write(stop)
	failed := func() bool { return err != nil || ctx.Err() != nil || isDone(readDone) }
	if !failed() {
		err = cl.drain(drain, readDone)
	}
	close(closing)
	if !failed() {
		_, err = cl.conn.Write(disconnect)
	}
	cl.conn.Close()
	<-readDone
	switch {
	case rerr != nil:
		return fmt.Errorf("mqttload: client %d: %w", cl.id, rerr)
	case err != nil:
		return fmt.Errorf("mqttload: client %d: %w", cl.id, err)
	}
	return nil
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// write publishes while the window allows, until stop is done: it waits
// for one token, takes whatever others are free, and writes that many
// publishes at once.
func (cl *client) write(stop context.Context) error {
	batchMax := max(1, min(cl.window, writeBytesMax/len(cl.pub.b)))
	buf := make([]byte, 0, batchMax*len(cl.pub.b))
	id := 0
	for {
		select {
		case <-cl.tokens:
		case <-stop.Done():
			return nil
		}
		n := 1
	more:
		for n < batchMax {
			select {
			case <-cl.tokens:
				n++
			default:
				break more
			}
		}
		buf = buf[:0]
		at := int64(time.Since(cl.base))
		for range n {
			id = id%cl.idCycle + 1
			cl.sentAt[(id-1)%cl.window].Store(at)
			buf = cl.pub.append(buf, uint16(id))
		}
		// Counted before the write, which its PUBACKs may overtake.
		cl.sent.Add(int64(n))
		if _, err := cl.conn.Write(buf); err != nil {
			return err
		}
	}
}

// drain waits until every token is back, which means every publish
// acknowledged, or the reader stops, or the drain time is over.
func (cl *client) drain(timeout time.Duration, readDone <-chan struct{}) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for range cl.window {
		select {
		case <-cl.tokens:
		case <-readDone:
			return nil // run reports the reader's error
		case <-t.C:
			return fmt.Errorf("%d PUBACKs missing after %v", cl.sent.Load()-cl.acks.Load(), timeout)
		}
	}
	return nil
}

// read reads PUBACKs, which a broker sends in the order of the publishes
// [MQTT-4.6.0-2], until the connection fails or closing is closed.
func (cl *client) read(closing <-chan struct{}) error {
	var buf []byte
	want := 0 // the last packet id acknowledged
	for {
		p, b, err := readPacket(cl.r, buf, answerBytesMax)
		buf = b
		if err != nil {
			select {
			case <-closing:
				return nil
			default:
			}
			if errors.Is(err, io.EOF) {
				return errors.New("connection closed by broker")
			}
			return err
		}
		id, err := parsePuback(p)
		if err != nil {
			return err
		}
		want = want%cl.idCycle + 1
		if cl.acks.Load() >= cl.sent.Load() {
			return fmt.Errorf("%w: PUBACK for packet %d, not sent", errUnexpected, id)
		}
		if int(id) != want {
			return fmt.Errorf("%w: PUBACK for packet %d, want %d", errUnexpected, id, want)
		}
		now := time.Now()
		cl.acks.Add(1)
		if !now.Before(cl.from) && now.Before(cl.until) {
			cl.acked++
			cl.hist.add(time.Duration(int64(now.Sub(cl.base)) - cl.sentAt[(int(id)-1)%cl.window].Load()))
		}
		cl.tokens <- struct{}{}
	}
}

package mqtt

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// acceptRetryDelay spaces out Accept calls after an error such as running
// out of file descriptors.
const acceptRetryDelay = 100 * time.Millisecond

// listener is the broker's mochi listener: TLS over TCP, like mochi's own,
// but it
//   - bounds the number of open connections;
//   - completes the TLS handshake before mochi sees the connection, under
//     a deadline that also covers CONNECT (mochi sets none before CONNECT,
//     so a silent peer would hold a goroutine forever);
//   - remembers its connections and the goroutines serving them, so Close
//     can cut connections mochi's own shutdown would wait on, and know
//     when all have ended.
type listener struct {
	id      string
	raw     net.Listener
	tls     *tls.Config
	log     *slog.Logger
	limit   int
	timeout time.Duration

	mu     sync.Mutex
	conns  map[net.Conn]bool // true once admitted as a device
	closed bool

	// serving counts goroutines serving a connection. Only Serve adds to
	// it, so waiting after served is closed cannot race with an Add.
	serving sync.WaitGroup
	served  chan struct{} // closed when Serve returns
}

var _ listeners.Listener = (*listener)(nil)

func newListener(id string, raw net.Listener, tc *tls.Config, log *slog.Logger, limit int, timeout time.Duration) *listener {
	return &listener{
		id: id, raw: raw, tls: tc, log: log, limit: limit, timeout: timeout,
		conns:  make(map[net.Conn]bool),
		served: make(chan struct{}),
	}
}

func (l *listener) ID() string       { return l.id }
func (l *listener) Address() string  { return l.raw.Addr().String() }
func (l *listener) Protocol() string { return "tcp+tls" }

// Init does nothing: the socket is bound before, so Addr works at once.
func (l *listener) Init(*slog.Logger) error { return nil }

// Serve accepts connections until the listener is closed.
func (l *listener) Serve(establish listeners.EstablishFn) {
	defer close(l.served)
	for {
		c, err := l.raw.Accept()
		if err != nil {
			if l.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			l.log.Warn("accept failed", "err", err)
			time.Sleep(acceptRetryDelay)
			continue
		}
		if !l.track(c) {
			c.Close()
			continue
		}
		l.serving.Add(1)
		go l.serve(c, establish)
	}
}

func (l *listener) serve(c net.Conn, establish listeners.EstablishFn) {
	defer l.serving.Done()
	defer l.forget(c)
	// mochi replaces this deadline with one derived from the keepalive
	// once the client has connected.
	if err := c.SetDeadline(time.Now().Add(l.timeout)); err != nil {
		c.Close()
		return
	}
	tc := tls.Server(c, l.tls)
	if err := tc.Handshake(); err != nil {
		l.log.Info("TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		tc.Close()
		return
	}
	// mochi closes the connection before returning; its errors (refusals,
	// network errors, disconnects) are logged where they are understood.
	if err := establish(l.id, &deviceConn{Conn: tc}); err != nil {
		l.log.Debug("connection ended", "remote", c.RemoteAddr().String(), "err", err)
	}
}

// track registers c unless the listener is closed or full.
func (l *listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	if len(l.conns) >= l.limit {
		l.log.Warn("connection refused: too many connections", "remote", c.RemoteAddr().String(), "max", l.limit)
		return false
	}
	l.conns[c] = false
	return true
}

// admit marks the connection under tc as a device's, unless the listener
// is closed: Close cuts connections not admitted at once, and lets mochi
// disconnect the others politely.
func (l *listener) admit(tc *deviceConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := tc.NetConn()
	if _, ok := l.conns[c]; !ok || l.closed {
		return false
	}
	l.conns[c] = true
	return true
}

func (l *listener) forget(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

func (l *listener) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// stop stops accepting and cuts connections that have not been admitted:
// nothing is lost, as none has published yet. It may be called more than
// once.
func (l *listener) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.raw.Close() // fails only if already closed
	for c, admitted := range l.conns {
		if !admitted {
			c.Close()
		}
	}
}

// Close is called by mochi's Close. It stops accepting but does not call
// closeClients: mochi's implementation takes its client map's read lock
// twice (Clients.GetByListener calls Clients.Len), which deadlocks when a
// client leaving at that moment waits for the write lock in between
// (mochi-mqtt/server issue 488, open in v2.7.9). The Broker disconnects
// clients itself before.
func (l *listener) Close(listeners.CloseFn) {
	l.stop()
}

// closeConns closes every open connection.
func (l *listener) closeConns() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.Close()
	}
}

// disconnectKeepalive is an MQTT 5 DISCONNECT with reason code 0x8D,
// keep alive timeout, and no properties.
var disconnectKeepalive = []byte{0xe0, 0x02, 0x8d, 0x00}

// keepaliveWriteTimeout bounds the write of that DISCONNECT.
const keepaliveWriteTimeout = time.Second

// deviceConn is a device's TLS connection as mochi sees it. mochi uses the
// connection's deadline as the keepalive and closes the connection when a
// read times out, without a word; deviceConn tells an MQTT 5 client why
// first (DISCONNECT 0x8D), as the protocol allows. A read timeout does not
// break a TLS connection, so the write can follow it.
type deviceConn struct {
	*tls.Conn
	v5   atomic.Bool // an MQTT 5 session is established on it
	told atomic.Bool // the DISCONNECT was sent
}

func (c *deviceConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && c.v5.Load() && isTimeout(err) && c.told.CompareAndSwap(false, true) {
		if c.Conn.SetWriteDeadline(time.Now().Add(keepaliveWriteTimeout)) == nil {
			_, _ = c.Conn.Write(disconnectKeepalive) // the connection ends either way
		}
	}
	return n, err
}

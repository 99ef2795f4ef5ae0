package edge

import (
	"fmt"
	"net"
	"time"

	"github.com/plgd-dev/go-coap/v3/dtls/server"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/net/monitor/inactivity"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// peerConn is a net.Conn over a PacketConn that talks to one peer: what it
// reads from others is dropped. It lets the plain-UDP transport run on a
// PacketConn the caller gives (a modem's, or a test's counting one).
type peerConn struct {
	net.PacketConn
	peer net.Addr
}

func (c *peerConn) Read(b []byte) (int, error) {
	for {
		n, from, err := c.ReadFrom(b)
		if err != nil {
			return n, err
		}
		if from.String() == c.peer.String() {
			return n, nil
		}
	}
}

func (c *peerConn) Write(b []byte) (int, error) { return c.WriteTo(b, c.peer) }
func (c *peerConn) RemoteAddr() net.Addr        { return c.peer }

// plainClient is go-coap's CoAP-over-UDP client on any net.Conn: the body
// of go-coap's dtls.Client, which takes a *dtls.Conn only, as udp.Client
// takes a *net.UDPConn only.
func plainClient(nc net.Conn, opts ...udp.Option) *udpclient.Conn {
	cfg := udpclient.DefaultConfig
	for _, o := range opts {
		o.UDPClientApply(&cfg)
	}
	if cfg.Errors == nil {
		cfg.Errors = func(error) {}
	}
	errorsFunc := cfg.Errors
	cfg.Errors = func(err error) {
		if !coapnet.IsCancelOrCloseError(err) {
			errorsFunc(fmt.Errorf("udp: %v: %w", nc.RemoteAddr(), err))
		}
	}
	if cfg.MessagePool == nil {
		cfg.MessagePool = pool.New(0, 0)
	}
	createBlockWise := func(*udpclient.Conn) *blockwise.BlockWise[*udpclient.Conn] { return nil }
	if cfg.BlockwiseEnable {
		createBlockWise = func(cc *udpclient.Conn) *blockwise.BlockWise[*udpclient.Conn] {
			bw := blockwise.New(cc, cfg.BlockwiseTransferTimeout, cfg.Errors,
				func(token message.Token) (*pool.Message, bool) { return cc.GetObservationRequest(token) })
			bw.SetReceivingMessagesCacheMaxEntries(cfg.BlockwiseReceivingMessagesCacheMaxEntries)
			return bw
		}
	}
	session := server.NewSession(cfg.Ctx, coapnet.NewConn(nc), cfg.MaxMessageSize, cfg.MTU, cfg.CloseSocket)
	cc := udpclient.NewConnWithOpts(session, &cfg,
		udpclient.WithBlockWise(createBlockWise),
		udpclient.WithInactivityMonitor(inactivity.NewNilMonitor[*udpclient.Conn]()),
		udpclient.WithRequestMonitor(cfg.RequestMonitor),
	)
	cfg.PeriodicRunner(func(now time.Time) bool {
		cc.CheckExpirations(now)
		return cc.Context().Err() == nil
	})
	go func() {
		if err := cc.Run(); err != nil {
			cfg.Errors(err)
		}
	}()
	return cc
}

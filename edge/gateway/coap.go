package gateway

import (
	"bytes"
	"context"
	"crypto/x509"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

// FramePath is the one resource devices post frames to; one character,
// since every request carries it.
const FramePath = "/f"

// CoAPOverheadBytes is the most a CoAP message of the gateway's exchanges
// adds to its block of payload: the 4-byte header, an 8-byte token (what
// go-coap clients use; libcoap's are shorter), the payload marker, and the
// options. The largest set is on a response that ends a Block1 transfer
// and opens a Block2 one: Content-Format (2 B), Block2 (≤ 4 B), Block1
// (≤ 4 B), Size2 (≤ 4 B), and Max-Age (≤ 5 B, only on a FrameBusy, which
// is never split); a request block carries Uri-Path "f" (2 B),
// Content-Format (2 B), Block1 (≤ 5 B) and Size1 (≤ 4 B). 4 + 8 + 1 + 19 =
// 32; the tests measure every datagram against the budget.
const CoAPOverheadBytes = 32

// BlockSize returns the block size for a payload budget: the largest of
// 16, 32, …, 1024 bytes whose block plus CoAPOverheadBytes fits the
// budget (16 for LoRaWAN DR0's 51 bytes, 128 for DR5's 242), or 0 if
// even 16 does not fit. On the DTLS port the budget bounds the CoAP
// message, DTLS adds its record to it (13-byte header, a 4-byte
// connection id and 1 byte of inner content type, 8-byte explicit nonce,
// 8-byte tag with AES-128-CCM-8: 34 bytes) and its handshake flights are
// not bounded by the budget: a link of 51-byte frames carries the plain
// port, whose envelopes are protected end to end.
func BlockSize(budget int) int {
	for size := 1024; size >= 16; size /= 2 {
		if size+CoAPOverheadBytes <= budget {
			return size
		}
	}
	return 0
}

// szxOf is the SZX of a block size.
func szxOf(size int) int {
	szx := 0
	for 16<<szx < size {
		szx++
	}
	return szx
}

// Bounds of the CoAP ports.
const (
	// messageBytesMax bounds one CoAP message: a frame and its options.
	messageBytesMax = wire.FrameBytesMax + 1024
	// blockwiseTimeout bounds one block-wise transfer, each way, from its
	// first block (go-coap's server does not extend it as blocks come). A
	// 4 KiB envelope in 16-byte blocks is 257 requests; with 30% loss each
	// way and device/edge's defaults (2 s ACK_TIMEOUT, a lost block sent
	// again alone) a block takes some 3.4 s on average: 15 minutes, where
	// 2 minutes covered some 35 blocks. A transfer the device gave up
	// lingers until then, or until idleTimeout closes its session.
	blockwiseTimeout = 30 * time.Minute
	// handshakeTimeout bounds one DTLS handshake.
	handshakeTimeout = 30 * time.Second
	// idleTimeout forgets a device's CoAP (and DTLS) session after this
	// long without traffic.
	idleTimeout = 5 * time.Minute
	// parallelRequestsMax bounds one peer's requests in progress.
	parallelRequestsMax = 4
	// cidBytes is the length of the DTLS connection ids (RFC 9146) the
	// gateway grants, so a session survives a NAT rebinding.
	cidBytes = 4
)

// server is either go-coap server, the UDP or the DTLS one.
type server interface{ Stop() }

// servers are the gateway's CoAP ports.
type servers struct {
	mu      sync.Mutex
	closing bool
	calls   sync.WaitGroup

	plain, secure     server
	served            sync.WaitGroup
	plainAt, secureAt string
}

// listen binds the configured ports and serves them.
func (g *Gateway) listen() (*servers, error) {
	s := &servers{}
	router := func(secure bool) *mux.Router {
		m := mux.NewRouter()
		_ = m.Handle(FramePath, mux.HandlerFunc(g.serveFrame(s, secure))) // a fixed, valid path
		m.DefaultHandle(mux.HandlerFunc(func(w mux.ResponseWriter, _ *mux.Message) {
			_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
		}))
		return m
	}
	szx := blockwise.SZX(g.blockSZX)
	errs := func(err error) { g.log.Debug("coap", "err", err) }
	if g.cfg.CoAPAddr != "" {
		ln, err := coapnet.NewListenUDP("udp", g.cfg.CoAPAddr)
		if err != nil {
			return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "gateway: cannot listen on the CoAP port", err)
		}
		srv := udp.NewServer(
			options.WithMux(router(false)),
			options.WithMaxMessageSize(messageBytesMax),
			options.WithBlockwise(true, szx, blockwiseTimeout),
			options.WithLimitClientParallelRequest(parallelRequestsMax),
			options.WithInactivityMonitor(idleTimeout, func(cc *udpclient.Conn) { _ = cc.Close() }),
			options.WithErrors(errs),
		)
		s.plain, s.plainAt = srv, ln.LocalAddr().String()
		s.served.Add(1)
		go func() {
			defer s.served.Done()
			if err := srv.Serve(ln); err != nil {
				g.log.Error("coap port stopped", "err", err)
			}
		}()
	}
	if g.cfg.DTLSAddr != "" {
		ln, err := coapnet.NewDTLSListener("udp", g.cfg.DTLSAddr, coapnet.NewDTLSServerOptions(g.dtlsOptions()...))
		if err != nil {
			s.close()
			return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "gateway: cannot listen on the DTLS port", err)
		}
		srv := coapdtls.NewServer(
			options.WithMux(router(true)),
			options.WithMaxMessageSize(messageBytesMax),
			options.WithBlockwise(true, szx, blockwiseTimeout),
			options.WithDTLSHandshakeTimeout(handshakeTimeout),
			options.WithLimitClientParallelRequest(parallelRequestsMax),
			options.WithInactivityMonitor(idleTimeout, func(cc *udpclient.Conn) { _ = cc.Close() }),
			options.WithErrors(errs),
		)
		s.secure, s.secureAt = srv, ln.Addr().String()
		s.served.Add(1)
		go func() {
			defer s.served.Done()
			if err := srv.Serve(ln); err != nil {
				g.log.Error("dtls port stopped", "err", err)
			}
		}()
	}
	return s, nil
}

// Cipher suites of the DTLS port. CCM-8 first: RFC 7252 §9.1.3's
// mandatory suites, and 8 bytes less per record than GCM on a link
// counted in bytes. The client's order chooses (pion), so a device that
// offers GCM only gets it.
var (
	pskSuites = []piondtls.CipherSuiteID{piondtls.TLS_PSK_WITH_AES_128_CCM_8,
		piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256, piondtls.TLS_PSK_WITH_AES_128_CCM}
	certSuites = []piondtls.CipherSuiteID{piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
		piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
)

// dtlsOptions are the DTLS port's options: PSK with a PSKSecret,
// certificates verified against ClientCAs with them (as platform/coap's
// server), or both on the one port.
func (g *Gateway) dtlsOptions() []piondtls.ServerOption {
	opts := []piondtls.ServerOption{
		piondtls.WithExtendedMasterSecret(piondtls.RequireExtendedMasterSecret),
		piondtls.WithConnectionIDGenerator(piondtls.RandomCIDGenerator(cidBytes)),
	}
	var suites []piondtls.CipherSuiteID
	if secret := g.cfg.PSKSecret; secret != nil {
		opts = append(opts,
			piondtls.WithPSK(func(identity []byte) ([]byte, error) {
				return DerivePSK(secret, iotpay.DeviceID(identity))
			}),
			piondtls.WithPSKIdentityHint([]byte(PSKIdentityHint)))
		suites = append(suites, pskSuites...)
	}
	if g.cfg.ClientCAs != nil {
		// RequireAndVerifyClientCert holds for the certificate suites: a
		// PSK handshake has no certificates to require.
		opts = append(opts,
			piondtls.WithCertificates(*g.cert),
			piondtls.WithClientCAs(g.cfg.ClientCAs),
			piondtls.WithClientAuth(piondtls.RequireAndVerifyClientCert))
		suites = append(suites, certSuites...)
	}
	return append(opts, piondtls.WithCipherSuites(suites...))
}

func (s *servers) addr(secure bool) string {
	if secure {
		return s.secureAt
	}
	return s.plainAt
}

// close stops the ports and waits for the requests in progress.
func (s *servers) close() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	for _, srv := range []server{s.plain, s.secure} {
		if srv != nil {
			srv.Stop()
		}
	}
	s.served.Wait()
	s.calls.Wait()
}

// begin registers a request in progress, unless the ports are closing.
func (s *servers) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.calls.Add(1)
	return true
}

// serveFrame answers POST /f on one port.
func (g *Gateway) serveFrame(s *servers, secure bool) func(mux.ResponseWriter, *mux.Message) {
	return func(w mux.ResponseWriter, r *mux.Message) {
		if !s.begin() {
			g.respond(w, reply{code: codes.ServiceUnavailable})
			return
		}
		defer s.calls.Done()
		if r.Code() != codes.POST {
			g.respond(w, reply{code: codes.MethodNotAllowed})
			return
		}
		var session iotpay.DeviceID
		if secure {
			id, ok := sessionDevice(w.Conn().NetConn())
			if !ok {
				g.respond(w, reply{code: codes.Unauthorized})
				return
			}
			session = id
		}
		body, code := readFrame(r.Body())
		if code != codes.Empty {
			g.refused.Add(1)
			g.respond(w, reply{code: code})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), g.cfg.AnswerWait+time.Second)
		defer cancel()
		g.respond(w, g.handleFrame(ctx, body, secure, session))
	}
}

// readFrame reads a request body of at most wire.FrameBytesMax bytes.
func readFrame(body io.Reader) ([]byte, codes.Code) {
	if body == nil {
		return nil, codes.BadRequest
	}
	b, err := io.ReadAll(io.LimitReader(body, wire.FrameBytesMax+1))
	switch {
	case err != nil || len(b) == 0:
		return nil, codes.BadRequest
	case len(b) > wire.FrameBytesMax:
		return nil, codes.RequestEntityTooLarge
	}
	return b, codes.Empty
}

// respond writes r: a frame as application/cbor, a refusal without body.
func (g *Gateway) respond(w mux.ResponseWriter, r reply) {
	var err error
	if r.frame == nil {
		err = w.SetResponse(r.code, message.TextPlain, nil)
	} else {
		err = w.SetResponse(r.code, message.AppCBOR, bytes.NewReader(r.frame))
		if err == nil && r.maxAge > 0 {
			w.Message().SetOptionUint32(message.MaxAge, r.maxAge)
		}
	}
	if err != nil {
		g.log.Error("cannot answer", "code", r.code, "err", err)
	}
}

// sessionDevice returns the device a DTLS session authenticated, by the
// kind of its cipher suite: the URI SAN of the client certificate pion
// verified against ClientCAs, or the PSK identity whose derived key the
// handshake proved.
func sessionDevice(c net.Conn) (iotpay.DeviceID, bool) {
	dc, ok := c.(*piondtls.Conn)
	if !ok {
		return "", false
	}
	st, ok := dc.ConnectionState()
	if !ok {
		return "", false
	}
	switch {
	case slices.Contains(certSuites, st.CipherSuiteID):
		if len(st.PeerCertificates) == 0 {
			return "", false
		}
		cert, err := x509.ParseCertificate(st.PeerCertificates[0])
		if err != nil {
			return "", false
		}
		return certDevice(cert)
	case slices.Contains(pskSuites, st.CipherSuiteID):
		id := string(st.IdentityHint)
		return iotpay.DeviceID(id), iotpay.ValidID(iotpay.PrefixDevice, id)
	}
	return "", false
}

// Package coap is the platform's CoAP access point: devices send signed
// payment requests as POST /pay over DTLS 1.2 and get the signed receipt in
// the answer.
//
// It is the only platform package that imports the CoAP and DTLS libraries
// (go-coap, pion/dtls); the rest of the platform sees a DeviceChecker, a
// Handler and a Server.
//
// A device authenticates the DTLS handshake with a client certificate from
// the platform CA (its id is the certificate's URI SAN) or, for the most
// constrained devices, with a pre-shared key: the PSK identity is the
// device id and the key is DerivePSK(secret, id). Either way the device id
// comes from the channel alone, and the registry is asked at every request,
// so a revoked device is refused on its next message.
package coap

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	dtlsserver "github.com/plgd-dev/go-coap/v3/dtls/server"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/wire"
)

// Bounds.
const (
	// PayloadBytesMax bounds a request body, reassembled from blocks.
	PayloadBytesMax = 4096
	// messageBytesMax bounds one CoAP message: a payload and its options.
	messageBytesMax = PayloadBytesMax + 1024
	// blockSZX is the block size offered for block-wise transfer (1024 B).
	blockSZX = blockwise.SZX1024
	// blockwiseTimeout bounds a block-wise transfer from first to last block.
	blockwiseTimeout = 10 * time.Second
	// CIDBytes is the length of the connection ids (RFC 9146) the server
	// asks devices to put on their records, so a session survives a NAT
	// rebinding the device's source address.
	CIDBytes = 8
	// handshakeTimeout bounds one DTLS handshake.
	handshakeTimeout = 10 * time.Second
	// idleTimeout closes a session silent this long; the device
	// handshakes again.
	idleTimeout = 5 * time.Minute
	// checkTimeout bounds one DeviceChecker call.
	checkTimeout = 5 * time.Second
	// handleTimeout bounds one Handler call.
	handleTimeout = 30 * time.Second
	// SessionsMax bounds the live (handshaken) sessions; one over it is
	// closed at once.
	SessionsMax = 10000
	// parallelRequestsMax bounds a session's requests in progress.
	parallelRequestsMax = 4
)

// PayPath is the resource a device posts signed requests to.
const PayPath = "/pay"

// DeviceChecker says whether a device may pay now (registered and active);
// called at every request.
type DeviceChecker interface {
	CheckDevice(ctx context.Context, id iotpay.DeviceID) error
}

// Handler processes one signed request of a device and returns the signed
// receipt to answer with.
type Handler interface {
	HandlePay(ctx context.Context, device iotpay.DeviceID, payload []byte) []byte
}

// Config configures a Server.
type Config struct {
	Addr string // e.g. ":5684" or "127.0.0.1:0"
	// Certificate is the server's certificate chain and key; ClientCAs
	// verifies device certificates.
	Certificate tls.Certificate
	ClientCAs   *x509.CertPool
	// PSKSecret derives the devices' pre-shared keys (DerivePSK); nil
	// turns PSK off.
	PSKSecret []byte
	Logger    *slog.Logger
}

// Server is the CoAP/DTLS access point.
type Server struct {
	addr    string
	dtlsOpt []piondtls.ServerOption
	log     *slog.Logger
	checker DeviceChecker
	handler Handler
	server  *dtlsserver.Server

	mu       sync.Mutex
	sessions map[iotpay.DeviceID]map[*udpclient.Conn]struct{} // live sessions, for Disconnect
	live     int                                              // sessions in the map
	ln       *coapnet.DTLSListener
	closing  bool
	served   chan struct{}
	calls    sync.WaitGroup

	closeOnce sync.Once
}

// New returns a server that is not yet listening.
func New(cfg Config, checker DeviceChecker, h Handler) (*Server, error) {
	switch {
	case cfg.Addr == "":
		return nil, iotpay.Errorf(iotpay.EINVALID, "coap: no listen address")
	case len(cfg.Certificate.Certificate) == 0 || cfg.Certificate.PrivateKey == nil:
		return nil, iotpay.Errorf(iotpay.EINVALID, "coap: no server certificate")
	case cfg.ClientCAs == nil:
		return nil, iotpay.Errorf(iotpay.EINVALID, "coap: no client CA pool")
	case cfg.PSKSecret != nil && len(cfg.PSKSecret) < PSKSecretBytes:
		return nil, iotpay.Errorf(iotpay.EINVALID, "coap: PSK secret shorter than %d bytes", PSKSecretBytes)
	case checker == nil || h == nil:
		return nil, iotpay.Errorf(iotpay.EINVALID, "coap: device checker and handler are required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{addr: cfg.Addr, log: log.With("component", "coap"), checker: checker, handler: h,
		sessions: make(map[iotpay.DeviceID]map[*udpclient.Conn]struct{})}
	suites := []piondtls.CipherSuiteID{
		piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
	}
	s.dtlsOpt = []piondtls.ServerOption{
		piondtls.WithCertificates(cfg.Certificate),
		piondtls.WithClientCAs(cfg.ClientCAs),
		piondtls.WithClientAuth(piondtls.RequireAndVerifyClientCert),
		piondtls.WithExtendedMasterSecret(piondtls.RequireExtendedMasterSecret),
		piondtls.WithConnectionIDGenerator(piondtls.RandomCIDGenerator(CIDBytes)),
	}
	if cfg.PSKSecret != nil {
		secret := bytes.Clone(cfg.PSKSecret)
		s.dtlsOpt = append(s.dtlsOpt, piondtls.WithPSK(func(identity []byte) ([]byte, error) {
			return DerivePSK(secret, iotpay.DeviceID(identity))
		}), piondtls.WithPSKIdentityHint([]byte(PSKIdentityHint)))
		// PSK suites last: a device with a certificate uses it.
		suites = append(suites, piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256, piondtls.TLS_PSK_WITH_AES_128_CCM_8,
			piondtls.TLS_PSK_WITH_AES_128_CCM)
	}
	s.dtlsOpt = append(s.dtlsOpt, piondtls.WithCipherSuites(suites...))

	m := mux.NewRouter()
	if err := m.Handle(PayPath, mux.HandlerFunc(s.servePay)); err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "coap: cannot route", err)
	}
	m.DefaultHandle(mux.HandlerFunc(func(w mux.ResponseWriter, _ *mux.Message) { s.refuse(w, codes.NotFound) }))
	s.server = coapdtls.NewServer(
		options.WithMux(m),
		options.WithMaxMessageSize(messageBytesMax),
		options.WithBlockwise(true, blockSZX, blockwiseTimeout),
		options.WithDTLSHandshakeTimeout(handshakeTimeout),
		options.WithLimitClientParallelRequest(parallelRequestsMax),
		options.WithInactivityMonitor(idleTimeout, func(cc *udpclient.Conn) { _ = cc.Close() }),
		options.WithOnNewConn(s.track),
		options.WithErrors(func(err error) { s.log.Debug("coap", "err", err) }),
	)
	return s, nil
}

// Start binds the UDP address and serves in the background.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		return iotpay.Errorf(iotpay.EUNAVAILABLE, "coap: server closed")
	case s.ln != nil:
		return iotpay.Errorf(iotpay.ECONFLICT, "coap: server already started")
	}
	ln, err := coapnet.NewDTLSListener("udp", s.addr, coapnet.NewDTLSServerOptions(s.dtlsOpt...))
	if err != nil {
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "coap: cannot listen", err)
	}
	s.ln, s.served = ln, make(chan struct{})
	go func() {
		defer close(s.served)
		if err := s.server.Serve(ln); err != nil {
			s.log.Error("coap server stopped", "err", err)
		}
	}()
	s.log.Info("coap server listening", "addr", ln.Addr().String())
	return nil
}

// Addr returns the bound address once started, the configured one before.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return s.ln.Addr().String()
	}
	return s.addr
}

// Close stops the server and waits for the sessions and the handler calls
// in progress to end. Safe to call more than once, but not from a Handler.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		served := s.served
		s.mu.Unlock()
		s.server.Stop()
		if served != nil {
			<-served
		}
		s.calls.Wait()
		s.log.Info("coap server closed")
	})
	return nil
}

// track registers a session once its handshake completed, so Disconnect
// can end it, and forgets it when it closes.
func (s *Server) track(cc *udpclient.Conn) {
	id, err := deviceOf(cc.NetConn())
	if err != nil {
		return // refused at its first request
	}
	s.mu.Lock()
	if s.live >= SessionsMax {
		s.mu.Unlock()
		s.log.Warn("too many sessions, closing a new one", "device", id, "remote", cc.RemoteAddr())
		_ = cc.Close()
		return
	}
	if s.sessions[id] == nil {
		s.sessions[id] = make(map[*udpclient.Conn]struct{})
	}
	s.sessions[id][cc] = struct{}{}
	s.live++
	s.mu.Unlock()
	cc.AddOnClose(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.sessions[id][cc]; ok {
			delete(s.sessions[id], cc)
			s.live--
		}
		if len(s.sessions[id]) == 0 {
			delete(s.sessions, id)
		}
	})
}

// Disconnect ends the live sessions of device, if any (a revoked device).
// It does not stop the device from handshaking again: the DeviceChecker
// refuses its requests.
func (s *Server) Disconnect(id iotpay.DeviceID) {
	s.mu.Lock()
	var live []*udpclient.Conn
	for cc := range s.sessions[id] {
		live = append(live, cc)
	}
	s.mu.Unlock()
	for _, cc := range live {
		s.log.Info("disconnecting device", "device", id, "remote", cc.RemoteAddr())
		_ = cc.Close()
	}
}

// sessionCount is the number of live sessions of device.
func (s *Server) sessionCount(id iotpay.DeviceID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions[id])
}

// begin registers a handler call, unless the server is closing.
func (s *Server) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.calls.Add(1)
	return true
}

// servePay answers POST /pay, in this order: method, content format, size,
// channel identity, device status; then the handler's signed receipt.
func (s *Server) servePay(w mux.ResponseWriter, r *mux.Message) {
	if !s.begin() {
		s.refuse(w, codes.ServiceUnavailable)
		return
	}
	defer s.calls.Done()
	body, refusal := payBody(r.Message)
	if refusal != codes.Empty {
		s.refuse(w, refusal)
		return
	}
	id, err := deviceOf(w.Conn().NetConn())
	if err != nil {
		s.log.Warn("request without a device identity", "remote", w.Conn().RemoteAddr(), "err", err)
		s.refuse(w, Code(err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
	err = s.checker.CheckDevice(ctx, id)
	cancel()
	if err != nil {
		s.log.Info("device refused", "device", id, "err", err)
		s.refuse(w, Code(err))
		return
	}
	ctx, cancel = context.WithTimeout(context.WithoutCancel(r.Context()), handleTimeout)
	defer cancel()
	answer := s.handler.HandlePay(ctx, id, body)
	if answer == nil {
		s.refuse(w, codes.InternalServerError)
		return
	}
	cf := message.AppCoseSign1
	if wire.IsEncrypt0(answer) { // a session's sealed receipt
		cf = message.AppCoseEncrypt0
	}
	if err := w.SetResponse(codes.Changed, cf, bytes.NewReader(answer)); err != nil {
		s.log.Error("cannot answer", "device", id, "err", err)
	}
}

// payBody checks a /pay request's method, Content-Format and size, in
// that order, and returns its body, or the CoAP code that refuses it.
func payBody(r *pool.Message) ([]byte, codes.Code) {
	if r.Code() != codes.POST {
		return nil, codes.MethodNotAllowed
	}
	if cf, err := r.ContentFormat(); err != nil || (cf != message.AppCoseSign1 && cf != message.AppCoseEncrypt0 && cf != message.AppOctets) {
		return nil, codes.UnsupportedMediaType
	}
	body, err := readBody(r.Body())
	if err != nil {
		return nil, Code(err)
	}
	return body, codes.Empty
}

// refuse answers with code and no payload.
func (s *Server) refuse(w mux.ResponseWriter, code codes.Code) {
	if err := w.SetResponse(code, message.TextPlain, nil); err != nil {
		s.log.Error("cannot answer", "code", code, "err", err)
	}
}

// errTooLarge is a body over PayloadBytesMax.
var errTooLarge = iotpay.Errorf(iotpay.EINVALID, "coap: request body over %d bytes", PayloadBytesMax)

// readBody reads a request body of at most PayloadBytesMax bytes.
func readBody(body io.Reader) ([]byte, error) {
	if body == nil {
		return nil, iotpay.Errorf(iotpay.EINVALID, "coap: empty request")
	}
	b, err := io.ReadAll(io.LimitReader(body, PayloadBytesMax+1))
	switch {
	case err != nil:
		return nil, iotpay.Wrap(iotpay.EINVALID, "coap: cannot read request", err)
	case len(b) > PayloadBytesMax:
		return nil, errTooLarge
	case len(b) == 0:
		return nil, iotpay.Errorf(iotpay.EINVALID, "coap: empty request")
	}
	return b, nil
}

// deviceOf returns the device id the DTLS session authenticated: from the
// client certificate pion verified against the platform CA, or the PSK
// identity whose derived key the handshake proved.
func deviceOf(c net.Conn) (iotpay.DeviceID, error) {
	dc, ok := c.(*piondtls.Conn)
	if !ok {
		return "", iotpay.Errorf(iotpay.EUNAUTHORIZED, "coap: not a DTLS session")
	}
	st, ok := dc.ConnectionState()
	if !ok {
		return "", iotpay.Errorf(iotpay.EUNAUTHORIZED, "coap: handshake not complete")
	}
	if len(st.PeerCertificates) > 0 {
		cert, err := x509.ParseCertificate(st.PeerCertificates[0])
		if err != nil {
			return "", iotpay.Wrap(iotpay.EUNAUTHORIZED, "coap: bad client certificate", err)
		}
		return pki.DeviceID(cert)
	}
	if id := string(st.IdentityHint); iotpay.ValidID(iotpay.PrefixDevice, id) {
		return iotpay.DeviceID(id), nil
	}
	return "", iotpay.Errorf(iotpay.EUNAUTHORIZED, "coap: session authenticated no device")
}

// codeOf is the one table from iotpay error codes to CoAP response codes
// for refusals at the transport; a payment's own outcome, approved or not,
// is a signed receipt in a 2.04.
var codeOf = map[iotpay.Code]codes.Code{
	iotpay.EINVALID:      codes.BadRequest,
	iotpay.EUNAUTHORIZED: codes.Unauthorized,
	iotpay.ENOTFOUND:     codes.Forbidden, // an unknown device: no more said
	iotpay.ECONFLICT:     codes.Forbidden,
	iotpay.EREPLAY:       codes.Forbidden,
	iotpay.EDECLINED:     codes.Forbidden,
	iotpay.EUNAVAILABLE:  codes.ServiceUnavailable,
	iotpay.EINTERNAL:     codes.InternalServerError,
}

// Code returns the CoAP response code refusing a request for err.
func Code(err error) codes.Code {
	if errors.Is(err, errTooLarge) {
		return codes.RequestEntityTooLarge
	}
	if c, ok := codeOf[iotpay.ErrorCode(err)]; ok {
		return c
	}
	return codes.InternalServerError
}

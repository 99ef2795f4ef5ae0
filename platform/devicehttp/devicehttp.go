// Package devicehttp is the platform's HTTPS endpoint for devices that
// speak only HTTP: payments over mutual TLS, and certificate enrollment and
// re-enrollment in the manner of EST (RFC 7030).
//
// Routes:
//
//	POST /device/v1/pay                    client certificate; body: a signed request; answer: the signed receipt
//	GET  /.well-known/est/cacerts          the platform CA, PKCS#7 certs-only, base64
//	POST /.well-known/est/simpleenroll     HTTP Basic (device id, one-time enrollment token); body: base64 PKCS#10
//	POST /.well-known/est/simplereenroll   client certificate; body: base64 PKCS#10 for the same device
//
// A device is identified by its client certificate alone, as on MQTT: the
// URI SAN urn:iotpay:device:<id>, verified against the platform CA, and the
// registry asked at every request whether the device is still active, so a
// revocation takes effect on the next request.
package devicehttp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/netutil"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/internal/pkcs7"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/wire"
)

// Paths.
const (
	PayPath            = "/device/v1/pay"
	ESTPrefix          = "/.well-known/est"
	CACertsPath        = ESTPrefix + "/cacerts"
	SimpleEnrollPath   = ESTPrefix + "/simpleenroll"
	SimpleReenrollPath = ESTPrefix + "/simplereenroll"
)

// Bounds and timeouts.
const (
	// PayloadBytesMax bounds a payment request, as on MQTT.
	PayloadBytesMax = wire.EnvelopeBytesMax
	// csrBodyBytesMax bounds an EST request body: a base64 CSR with line
	// breaks.
	csrBodyBytesMax = pki.CSRBytesMax*4/3 + pki.CSRBytesMax/32 + 64
	headerBytesMax  = 8 << 10
	// handleTimeout bounds one request's work on the platform.
	handleTimeout     = 30 * time.Second
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	// ConnectionsMax bounds open connections, as on MQTT.
	ConnectionsMax = 10000
)

// Content types.
const (
	typeCOSE   = "application/cose"
	typeOctets = "application/octet-stream"
	typePKCS10 = "application/pkcs10"
	typeCerts  = "application/pkcs7-mime; smime-type=certs-only"
)

// Registry is what the endpoint asks of the device registry.
type Registry interface {
	CheckDevice(ctx context.Context, id iotpay.DeviceID) error
	Enroll(ctx context.Context, id iotpay.DeviceID, token string, csr, transportCSR []byte) (*registry.Enrollment, error)
	Reenroll(ctx context.Context, id iotpay.DeviceID, csr []byte) (*x509.Certificate, error)
}

// Handler processes one signed payment request of an authenticated device
// and returns the signed receipt.
type Handler interface {
	HandlePay(ctx context.Context, device iotpay.DeviceID, payload []byte) []byte
}

// Config configures a Server.
type Config struct {
	Addr string // e.g. ":8443" or "127.0.0.1:0"
	// TLS holds the server certificate and ClientCAs, the platform CA. The
	// server forces TLS 1.3 and asks for a client certificate, verifying
	// it when given; routes that need one refuse a request without.
	TLS    *tls.Config
	CA     *x509.Certificate // served at cacerts
	Logger *slog.Logger
}

// Server is the HTTPS device endpoint.
type Server struct {
	reg     Registry
	handler Handler
	log     *slog.Logger
	addr    string
	cacerts []byte // base64 PKCS#7, served as is

	srv  *http.Server
	mu   sync.Mutex
	ln   net.Listener
	done chan error
}

// New returns a server that is not yet listening.
func New(cfg Config, reg Registry, h Handler) (*Server, error) {
	switch {
	case cfg.Addr == "":
		return nil, iotpay.Errorf(iotpay.EINVALID, "devicehttp: no listen address")
	case cfg.TLS == nil || (len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil):
		return nil, iotpay.Errorf(iotpay.EINVALID, "devicehttp: no server certificate")
	case cfg.TLS.ClientCAs == nil || cfg.CA == nil:
		return nil, iotpay.Errorf(iotpay.EINVALID, "devicehttp: no client CA")
	case reg == nil || h == nil:
		return nil, iotpay.Errorf(iotpay.EINVALID, "devicehttp: registry and handler are required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p7, err := pkcs7.EncodeCertsOnly(cfg.CA.Raw)
	if err != nil {
		return nil, err
	}
	s := &Server{reg: reg, handler: h, log: log.With("component", "devicehttp"), addr: cfg.Addr,
		cacerts: []byte(base64.StdEncoding.EncodeToString(p7))}

	tc := cfg.TLS.Clone()
	tc.MinVersion = tls.VersionTLS13
	// Enrollment comes before a device has a certificate; payment and
	// re-enrollment check for one themselves.
	tc.ClientAuth = tls.VerifyClientCertIfGiven
	s.srv = &http.Server{Handler: s.Handler(), TLSConfig: tc, ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout: readTimeout, WriteTimeout: writeTimeout, IdleTimeout: idleTimeout, MaxHeaderBytes: headerBytesMax,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelInfo)}
	return s, nil
}

// Handler returns the routes, for tests that bring their own TLS.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PayPath, s.deviceRoute(s.pay))
	mux.HandleFunc("GET "+CACertsPath, s.caCerts)
	mux.HandleFunc("POST "+SimpleEnrollPath, s.simpleEnroll)
	mux.HandleFunc("POST "+SimpleReenrollPath, s.deviceRoute(s.simpleReenroll))
	return mux
}

// Start binds the address and serves in the background.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return iotpay.Errorf(iotpay.ECONFLICT, "devicehttp: already started")
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "devicehttp: cannot listen", err)
	}
	ln = netutil.LimitListener(ln, ConnectionsMax)
	s.ln, s.done = ln, make(chan error, 1)
	go func() { s.done <- s.srv.ServeTLS(ln, "", "") }()
	s.log.Info("device HTTPS endpoint listening", "addr", ln.Addr().String())
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

// Close stops accepting and waits, up to ctx, for requests in progress:
// each either is answered after its transaction committed or never started.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	err := s.srv.Shutdown(ctx)
	if done != nil {
		if serr := <-done; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
	}
	return err
}

// statuses maps error codes to HTTP statuses: the one table of this
// transport. A payment's own refusals are signed receipts (200); these are
// refusals of the transport or of enrollment.
var statuses = map[iotpay.Code]int{
	iotpay.EINVALID:      http.StatusBadRequest,
	iotpay.ENOTFOUND:     http.StatusForbidden, // an unknown device is not told apart from a refused one
	iotpay.ECONFLICT:     http.StatusConflict,
	iotpay.EUNAUTHORIZED: http.StatusForbidden,
	iotpay.EUNAVAILABLE:  http.StatusServiceUnavailable,
	iotpay.EINTERNAL:     http.StatusInternalServerError,
}

// fail answers err as a status and a short text; internal detail is only
// logged.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := iotpay.ErrorCode(err)
	st, ok := statuses[code]
	if !ok {
		st = http.StatusInternalServerError
	}
	msg := iotpay.ErrorMessage(err)
	switch {
	case st == http.StatusForbidden:
		msg = "device not authorized"
	case st >= 500:
		msg = http.StatusText(st)
	}
	s.log.Info("device request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "status", st, "err", err)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(st)
	io.WriteString(w, msg+"\n")
}

// deviceRoute wraps a route for devices only: h runs, within
// handleTimeout, for the active device whose client certificate
// authenticated the connection.
func (s *Server) deviceRoute(h func(ctx context.Context, w http.ResponseWriter, r *http.Request, dev iotpay.DeviceID)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), handleTimeout)
		defer cancel()
		dev, err := s.device(ctx, r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		h(ctx, w, r, dev)
	}
}

// device returns the active device whose verified client certificate
// authenticated the connection.
func (s *Server) device(ctx context.Context, r *http.Request) (iotpay.DeviceID, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return "", errNoCert
	}
	id, err := pki.DeviceID(r.TLS.VerifiedChains[0][0])
	if err != nil {
		return "", err
	}
	return id, s.reg.CheckDevice(ctx, id)
}

var errNoCert = iotpay.Errorf(iotpay.EUNAUTHORIZED, "a client certificate from the platform CA is required")

// readBody reads the whole body, refusing more than limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, int, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, http.StatusRequestEntityTooLarge, iotpay.Errorf(iotpay.EINVALID, "body larger than %d bytes", limit)
	case err != nil:
		return nil, http.StatusBadRequest, iotpay.Wrap(iotpay.EINVALID, "cannot read body", err)
	case len(b) == 0:
		return nil, http.StatusBadRequest, iotpay.Errorf(iotpay.EINVALID, "empty body")
	}
	return b, 0, nil
}

// plain answers a transport refusal with its own status.
func (s *Server) plain(w http.ResponseWriter, r *http.Request, st int, err error) {
	s.log.Info("device request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "status", st, "err", err)
	http.Error(w, iotpay.ErrorMessage(err), st)
}

func hasType(r *http.Request, types ...string) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return false
	}
	for _, t := range types {
		if mt == t {
			return true
		}
	}
	return false
}

// pay hands a signed request to the processor and answers its receipt.
// Every refusal of the request itself is a signed receipt; only a channel
// that is not a device's is refused with a status.
func (s *Server) pay(ctx context.Context, w http.ResponseWriter, r *http.Request, dev iotpay.DeviceID) {
	if !hasType(r, typeCOSE, typeOctets) {
		s.plain(w, r, http.StatusUnsupportedMediaType, iotpay.Errorf(iotpay.EINVALID, "content type must be %s or %s", typeCOSE, typeOctets))
		return
	}
	body, st, err := readBody(w, r, PayloadBytesMax)
	if err != nil {
		s.plain(w, r, st, err)
		return
	}
	answer := s.handler.HandlePay(ctx, dev, body)
	if answer == nil {
		s.fail(w, r, iotpay.Errorf(iotpay.EINTERNAL, "processor gave no answer"))
		return
	}
	w.Header().Set("Content-Type", typeCOSE)
	w.Write(answer)
}

func (s *Server) caCerts(w http.ResponseWriter, _ *http.Request) {
	writeCerts(w, s.cacerts)
}

func writeCerts(w http.ResponseWriter, b64 []byte) {
	w.Header().Set("Content-Type", typeCerts)
	w.Header().Set("Content-Transfer-Encoding", "base64")
	w.Write(b64)
}

// readCSR reads an EST request body: a base64 (line breaks allowed) DER
// PKCS#10.
func (s *Server) readCSR(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if !hasType(r, typePKCS10) {
		s.plain(w, r, http.StatusUnsupportedMediaType, iotpay.Errorf(iotpay.EINVALID, "content type must be %s", typePKCS10))
		return nil, false
	}
	body, st, err := readBody(w, r, csrBodyBytesMax)
	if err != nil {
		s.plain(w, r, st, err)
		return nil, false
	}
	csr, err := pkcs7.DecodeBase64(body)
	if err != nil {
		s.fail(w, r, err)
		return nil, false
	}
	return csr, true
}

// simpleEnroll certifies a pending device's key with its one-time token,
// given as HTTP Basic credentials: user the device id, password the token.
// Only intl devices enroll here: a gm device needs two certificates (SM2
// and transport) that one PKCS#10 cannot ask for, and enrolls with
// POST /v1/enroll.
func (s *Server) simpleEnroll(w http.ResponseWriter, r *http.Request) {
	user, token, ok := r.BasicAuth()
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="iotpay enrollment"`)
		s.plain(w, r, http.StatusUnauthorized, iotpay.Errorf(iotpay.EUNAUTHORIZED, "enrollment needs the device id and its token (HTTP Basic)"))
		return
	}
	csr, ok := s.readCSR(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), handleTimeout)
	defer cancel()
	en, err := s.reg.Enroll(ctx, iotpay.DeviceID(user), token, csr, nil)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	cert, err := pki.ParseCertPEM([]byte(en.Certificate))
	if err != nil {
		s.fail(w, r, iotpay.Wrap(iotpay.EINTERNAL, "issued certificate", err))
		return
	}
	s.log.Info("device enrolled over EST", "device", en.Device)
	s.answerCert(w, r, cert)
}

// simpleReenroll certifies a key, new or the same, for the device whose
// current certificate authenticated the connection.
func (s *Server) simpleReenroll(ctx context.Context, w http.ResponseWriter, r *http.Request, dev iotpay.DeviceID) {
	csr, ok := s.readCSR(w, r)
	if !ok {
		return
	}
	cert, err := s.reg.Reenroll(ctx, dev, csr)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("device re-enrolled over EST", "device", dev, "not_after", cert.NotAfter)
	s.answerCert(w, r, cert)
}

func (s *Server) answerCert(w http.ResponseWriter, r *http.Request, cert *x509.Certificate) {
	p7, err := pkcs7.EncodeCertsOnly(cert.Raw)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeCerts(w, []byte(base64.StdEncoding.EncodeToString(p7)))
}

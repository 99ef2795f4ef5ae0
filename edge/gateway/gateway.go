// Package gateway is iotpay-edge: the gateway that serves constrained
// devices over CoAP on lossy low-power links and relays their envelopes to
// the platform over MQTT/TLS, storing them while the uplink is down.
//
// Devices post wire.Frames to the one resource POST /f, on two ports:
// DTLS 1.2, where a device authenticates with a certificate of the
// platform CA (its id in the URI SAN, as on the platform) or with a
// pre-shared key (identity = the device id, key = DerivePSK(secret, id)),
// and plain UDP, which only carries envelopes that are protected end to
// end (a COSE_Sign1 signed by the device, or a sealed COSE_Encrypt0). The
// DTLS port's own certificate is self-signed (cert.go says why that is
// enough). A FrameMessage is checked (the session's device, the
// envelope's form, the frame counter above the last kept), appended to a
// durable queue (edge/queue, fsynced) and only then answered; the
// forwarder publishes the queue in order, QoS 1, on wire.RelayTopic and
// lets a record go once the platform answered it (on wire.RelayAnswerTopic),
// not at the broker's PUBACK, so that a message the platform had not yet
// handled when it stopped is sent again. The answers are handed to the
// device's waiting POST, or kept for its next FramePoll.
//
// The gateway never reads or changes an envelope: the device signed or
// sealed it and the platform verifies it.
package gateway

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/edge/queue"
)

// Defaults and bounds.
const (
	// BudgetMin and BudgetMax bound Config.Budget: LoRaWAN's smallest
	// (DR0, 51 B) and largest (242 B) application payload.
	BudgetMin = 51
	BudgetMax = 242
	// DefaultBudget is the payload budget when Config.Budget is zero.
	DefaultBudget = BudgetMax
	// DefaultDownlinkMax is Config.DownlinkMax when zero.
	DefaultDownlinkMax = 16
	// DownlinkTotalMax bounds the answers waiting in memory, all devices.
	DownlinkTotalMax = 65536
	// DefaultAnswerWait is Config.AnswerWait when zero.
	DefaultAnswerWait = 2 * time.Second
	// AnswerWaitMax bounds Config.AnswerWait: a device's CoAP exchange
	// must end before its client gives up.
	AnswerWaitMax = 30 * time.Second
	// DevicesMax bounds the devices whose frame counters the gateway
	// keeps, per port; a new device beyond it is refused.
	DevicesMax = 100_000
	// BusyWaitSeconds is the wait a FrameBusy asks for.
	BusyWaitSeconds = 10
)

// UplinkConfig is the gateway's own connection to the platform.
type UplinkConfig struct {
	// Addr is the platform's MQTT host:port.
	Addr string
	// TLS holds the gateway's client certificate and the CA of the
	// platform; nil connects without TLS (tests against a local broker).
	TLS *tls.Config
	// GatewayID is the gateway's device id in the platform's registry:
	// its MQTT client id and the CN/URI of its certificate.
	GatewayID iotpay.DeviceID
}

// Config configures a Gateway.
type Config struct {
	// DataDir keeps the queue ("queue") and the frame counters ("fcnt").
	DataDir string
	// CoAPAddr is the plain UDP address, for end-to-end protected
	// envelopes only; "" serves no plain port.
	CoAPAddr string
	// DTLSAddr is the DTLS address; "" serves no DTLS port. It needs
	// PSKSecret, ClientCAs, or both.
	DTLSAddr string
	// PSKSecret derives the devices' pre-shared keys (DerivePSK); nil
	// serves no PSK.
	PSKSecret []byte
	// ClientCAs verifies device certificates on the DTLS port: the
	// platform CA they chain to (iotpay-edge uses its uplink's CA). The
	// device is the one its certificate's URI SAN names. nil serves no
	// certificates. The gateway checks no revocation: the platform does,
	// at every message relayed.
	ClientCAs *x509.CertPool
	// Certificate is the DTLS port's server certificate when ClientCAs is
	// set; nil loads or makes a self-signed one in
	// DataDir/ServerCertFile (LoadOrCreateServerCert).
	Certificate *tls.Certificate
	// Budget bounds the CoAP message in one datagram (see BlockSize);
	// BudgetMin..BudgetMax, default DefaultBudget.
	Budget int
	Uplink UplinkConfig
	Queue  queue.Options
	Logger *slog.Logger
	// DownlinkMax bounds the answers kept per device; the oldest is
	// dropped first. Default DefaultDownlinkMax.
	DownlinkMax int
	// AnswerWait is how long a device's POST waits for the platform's
	// answer before it is told FrameQueued. Default DefaultAnswerWait.
	AnswerWait time.Duration
	// Now is the clock stamped on relays (RxMs); default time.Now.
	Now func() time.Time
}

// Stats counts what the gateway did since it started.
type Stats struct {
	Queued    uint64 // messages stored in the queue
	Forwarded uint64 // records the platform answered
	Answered  uint64 // answers handed to a device
	Refused   uint64 // frames refused (FrameRefused) or malformed (4.00)
	Busy      uint64 // messages refused with FrameBusy
}

// Gateway is a running iotpay-edge.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	blockSZX int

	q    *queue.Queue
	fcnt *counters
	down *downlink
	done *answeredSet // relays the platform answered (forward.go)
	srv  *servers
	// cert is the DTLS port's certificate, set by Start with ClientCAs.
	cert *tls.Certificate

	queued, forwarded, answered, refused, busy atomic.Uint64

	cancel  context.CancelFunc
	fwdDone chan struct{}

	mu      sync.Mutex
	started bool
	closed  bool
}

// New checks cfg and returns a gateway that is not yet started.
func New(cfg Config) (*Gateway, error) {
	cfg.Budget = cmp.Or(cfg.Budget, DefaultBudget)
	cfg.DownlinkMax = cmp.Or(cfg.DownlinkMax, DefaultDownlinkMax)
	cfg.AnswerWait = cmp.Or(cfg.AnswerWait, DefaultAnswerWait)
	bad := func(format string, args ...any) (*Gateway, error) {
		return nil, iotpay.Errorf(iotpay.EINVALID, "gateway: "+format, args...)
	}
	switch {
	case cfg.DataDir == "":
		return bad("no data directory")
	case cfg.CoAPAddr == "" && cfg.DTLSAddr == "":
		return bad("neither a CoAP nor a DTLS address")
	case cfg.DTLSAddr != "" && cfg.PSKSecret == nil && cfg.ClientCAs == nil:
		return bad("DTLS needs a PSK secret or client CAs")
	case cfg.PSKSecret != nil && len(cfg.PSKSecret) < PSKSecretBytes:
		return bad("PSK secret shorter than %d bytes", PSKSecretBytes)
	case cfg.Certificate != nil && (len(cfg.Certificate.Certificate) == 0 || cfg.Certificate.PrivateKey == nil):
		return bad("DTLS certificate without a certificate or a key")
	case cfg.Budget < BudgetMin || cfg.Budget > BudgetMax:
		return bad("budget %d outside %d..%d", cfg.Budget, BudgetMin, BudgetMax)
	case cfg.Uplink.Addr == "":
		return bad("no uplink address")
	case !iotpay.ValidID(iotpay.PrefixDevice, string(cfg.Uplink.GatewayID)):
		return bad("gateway id %q is not a device id", cfg.Uplink.GatewayID)
	case cfg.DownlinkMax < 0 || cfg.AnswerWait < 0 || cfg.AnswerWait > AnswerWaitMax:
		return bad("negative downlink bound or answer wait outside 0..%v", AnswerWaitMax)
	}
	if _, _, err := net.SplitHostPort(cfg.Uplink.Addr); err != nil {
		return bad("uplink address %q: %v", cfg.Uplink.Addr, err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.PSKSecret = bytes.Clone(cfg.PSKSecret)
	g := &Gateway{cfg: cfg, log: cfg.Logger.With("component", "edge", "gateway", cfg.Uplink.GatewayID)}
	g.blockSZX = szxOf(BlockSize(cfg.Budget))
	g.down = newDownlink(cfg.DownlinkMax)
	g.done = newAnsweredSet()
	return g, nil
}

// Start opens the data directory, binds the ports and starts forwarding.
func (g *Gateway) Start() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.closed:
		return iotpay.Errorf(iotpay.EUNAVAILABLE, "gateway: closed")
	case g.started:
		return iotpay.Errorf(iotpay.ECONFLICT, "gateway: already started")
	}
	if err := os.MkdirAll(g.cfg.DataDir, 0o700); err != nil {
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "gateway: cannot create the data directory", err)
	}
	fc, err := openCounters(filepath.Join(g.cfg.DataDir, "fcnt"))
	if err != nil {
		return err
	}
	qopts := g.cfg.Queue
	if qopts.Logger == nil {
		qopts.Logger = g.log
	}
	q, err := queue.Open(filepath.Join(g.cfg.DataDir, "queue"), qopts)
	if err != nil {
		fc.close()
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "gateway: cannot open the queue", err)
	}
	g.q, g.fcnt = q, fc
	if g.cfg.DTLSAddr != "" && g.cfg.ClientCAs != nil {
		g.cert = g.cfg.Certificate
		if g.cert == nil {
			c, err := LoadOrCreateServerCert(filepath.Join(g.cfg.DataDir, ServerCertFile), g.cfg.Now(), nil)
			if err != nil {
				q.Close()
				fc.close()
				return err
			}
			g.cert = &c
		}
	}
	srv, err := g.listen()
	if err != nil {
		q.Close()
		fc.close()
		return err
	}
	g.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel, g.fwdDone = cancel, make(chan struct{})
	go func() {
		defer close(g.fwdDone)
		g.forward(ctx)
	}()
	g.started = true
	g.log.Info("edge gateway started", "coap", g.Addr(), "dtls", g.DTLSAddr(), "uplink", g.cfg.Uplink.Addr,
		"budget", g.cfg.Budget, "block", BlockSize(g.cfg.Budget), "dtls_psk", g.cfg.PSKSecret != nil,
		"dtls_cert_sha256", hex.EncodeToString(g.CertSHA256()))
	return nil
}

// Addr returns the bound plain CoAP address ("" if none or not started).
func (g *Gateway) Addr() string {
	if g.srv == nil {
		return ""
	}
	return g.srv.addr(false)
}

// DTLSAddr returns the bound DTLS address ("" if none or not started).
func (g *Gateway) DTLSAddr() string {
	if g.srv == nil {
		return ""
	}
	return g.srv.addr(true)
}

// CertSHA256 returns the SHA-256 of the DTLS port's certificate, which a
// device may pin; nil if the port serves no certificates or the gateway
// is not started.
func (g *Gateway) CertSHA256() []byte {
	if g.cert == nil {
		return nil
	}
	return CertSHA256(*g.cert)
}

// Stats returns the gateway's counters.
func (g *Gateway) Stats() Stats {
	return Stats{Queued: g.queued.Load(), Forwarded: g.forwarded.Load(), Answered: g.answered.Load(),
		Refused: g.refused.Load(), Busy: g.busy.Load()}
}

// Close stops the ports (waiting for the requests in progress), the
// forwarder and the uplink, and closes the queue: what was not yet
// acknowledged by the broker is forwarded after the next Start. Safe to
// call more than once.
func (g *Gateway) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	started := g.started
	g.mu.Unlock()
	if !started {
		return nil
	}
	g.srv.close()
	g.down.close()
	g.cancel()
	<-g.fwdDone
	err := g.q.Close()
	ferr := g.fcnt.close()
	g.log.Info("edge gateway closed")
	if err != nil {
		return iotpay.Wrap(iotpay.EINTERNAL, "gateway: closing the queue", err)
	}
	if ferr != nil {
		return iotpay.Wrap(iotpay.EINTERNAL, "gateway: syncing the frame counters", ferr)
	}
	return nil
}

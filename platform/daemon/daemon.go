// Package daemon assembles the whole platform in one process — store, CA,
// receipt key, payment processor, embedded MQTT broker and HTTP API — from
// a Config. cmd/iotpayd runs it; `iotpay demo` and end-to-end tests start
// it in-process on port 0.
package daemon

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit"

	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/payment/ledger"
	"github.com/iotpay/iotpay/payment/route"
	"github.com/iotpay/iotpay/platform"
	"github.com/iotpay/iotpay/platform/coap"
	"github.com/iotpay/iotpay/platform/devicehttp"
	"github.com/iotpay/iotpay/platform/httpapi"
	"github.com/iotpay/iotpay/platform/mqtt"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/store/postgres"
	"github.com/iotpay/iotpay/store/sqlite"
	"github.com/iotpay/iotpay/store/sqlstore"
	"github.com/iotpay/iotpay/wire"
)

// Defaults.
const (
	DefaultDataDir  = "./iotpay-data"
	DefaultHTTPAddr = "127.0.0.1:8080"
	DefaultMQTTAddr = ":8883"
	// DefaultDeviceHTTPAddr is the HTTPS device endpoint (mutual TLS, EST).
	DefaultDeviceHTTPAddr = ":8443"
	ShutdownTimeout       = 10 * time.Second
)

// PresenceRestartReason is the offline reason of devices a previous run
// left online.
const PresenceRestartReason = "platform restarted"

// Files in the data directory.
const (
	DBFile           = "iotpay.db"
	ReceiptKeyFile   = "receipt-key.pem"
	GMReceiptKeyFile = "gm-receipt-key.pem" // SM2, signs receipts to gm devices
)

// Config says where the platform keeps its data and listens.
type Config struct {
	DataDir string
	// Store is where the platform's state lives: empty for the SQLite file
	// DBFile in DataDir, or a postgres:// (postgresql://) URL. The CA and
	// keys stay in DataDir either way.
	Store    string
	HTTPAddr string
	MQTTAddr string
	// CoAPAddr is where devices pay over CoAP/DTLS (UDP; DefaultCoAPAddr when empty).
	CoAPAddr string
	// DeviceHTTPAddr is where devices pay and enroll over HTTPS.
	DeviceHTTPAddr string
	// ServerNames are the names and addresses the MQTT server certificate
	// is valid for, besides localhost and the loopback addresses.
	ServerNames []string
	// Fees are what each capture pays the operator and the platform.
	Fees payment.FeePlan
	// BatchOpsMax bounds the operations of one write transaction
	// (ledger.BatchOpsMax when zero).
	BatchOpsMax int
	// LogOrigin names the audit log at its first start (default
	// iotpay-<random>/log); a log's origin never changes.
	LogOrigin string
	// Witnesses are the URLs of C2SP tlog-witnesses every checkpoint is
	// pushed to.
	Witnesses []string
	// Anchors are other places every checkpoint is pushed to, such as a
	// chain (audit/anchor/eth).
	Anchors []audit.Anchor
	// CheckpointInterval is the time between checkpoints while there is
	// traffic (audit.CheckpointInterval when zero).
	CheckpointInterval time.Duration
	// WatchInterval is how often due supply orders are sent and inactive
	// devices looked for (WatchInterval when zero).
	WatchInterval time.Duration
	// AllowPrivateWebhooks lets operators' webhook endpoints and
	// suppliers be on loopback or private addresses (tests, a demo, a
	// platform inside the operator's own network); off, the platform
	// calls only public addresses.
	AllowPrivateWebhooks bool
	// MQTTConnectionsMax bounds the MQTT broker's open connections
	// (mqtt.ConnectionsMax when 0); the process's open-file limit must be
	// above it.
	MQTTConnectionsMax int
	// Connectors are the external payment systems payments may be routed
	// to (the wallet is always there), by their names.
	Connectors []connector.Connector
	Logger     *slog.Logger
}

// Daemon is a running platform.
type Daemon struct {
	cfg       Config
	log       *slog.Logger
	DB        *sqlstore.DB
	CA        *pki.CA // P-256: TLS, intl devices, gm devices' transport keys
	GMCA      *pki.CA // SM2: gm devices' signing keys
	Registry  *registry.Service
	Writer    *ledger.Writer[platform.Tx]
	Payments  *payment.Engine[platform.Tx]
	Processor *platform.Processor
	Broker    *mqtt.Broker
	// CoAP is the CoAP/DTLS access point.
	CoAP      *coap.Server
	pskSecret []byte
	// DeviceHTTP is the HTTPS device endpoint.
	DeviceHTTP *devicehttp.Server
	// Log is the audit log's checkpointer; LogKey its verifier key and
	// GMLogKey the SM2 co-signer's (also in LogPubFile).
	Log              *audit.Checkpointer
	LogKey, GMLogKey string
	logStop          func()
	// APIKey is the operator API key, set only on the first start: it is
	// never stored in clear.
	APIKey string

	http     *http.Server
	httpLn   net.Listener
	httpDone chan error

	janitorStop, janitorDone chan struct{}

	supplySecret               []byte
	watchStop, watchDone, wake chan struct{}
}

// JanitorInterval is how often expired idempotency records are deleted.
const JanitorInterval = 10 * time.Minute

// WriterNice is the nice value of the ledger writer's thread: every
// payment waits for that one goroutine, so it runs before the rest of the
// process (and of the machine) when it wants a core. Measured in
// BENCHMARKS.md ("The writer's thread").
const WriterNice = -10

// WriterCommitDelay is how long the ledger writer waits to gather a batch
// when few operations are waiting (ledger.Config.CommitDelay): under a
// light load a payment waits up to that much longer, and its commit costs
// the machine less. Measured in BENCHMARKS.md ("Group commit under a
// light load").
const WriterCommitDelay = 2 * time.Millisecond

// janitor deletes idempotency records past their time, every
// JanitorInterval, through the writer.
func (d *Daemon) janitor() {
	defer close(d.janitorDone)
	t := time.NewTicker(JanitorInterval)
	defer t.Stop()
	for {
		select {
		case <-d.janitorStop:
			return
		case <-t.C:
		}
		err := d.Payments.Do(context.Background(), func(b *ledger.Batch[platform.Tx]) error {
			n, err := b.Tx.PurgeIdempotency(b.Context(), b.Now.Add(-httpapi.IdempotencyTTL))
			if n > 0 {
				d.log.Info("purged expired idempotency keys", "keys", n)
			}
			return err
		})
		if err != nil {
			d.log.Error("purging idempotency keys failed", "err", err)
		}
	}
}

// Open prepares the data directory (creating the database, CA, receipt key
// and first tenant on first use) without listening yet.
func Open(ctx context.Context, cfg Config) (*Daemon, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = DefaultHTTPAddr
	}
	if cfg.MQTTAddr == "" {
		cfg.MQTTAddr = DefaultMQTTAddr
	}
	if cfg.DeviceHTTPAddr == "" {
		cfg.DeviceHTTPAddr = DefaultDeviceHTTPAddr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	kind, err := storeKind(cfg.Store) // before anything is created
	if err != nil {
		return nil, err
	}
	if !cfg.Fees.Valid() {
		return nil, iotpay.Errorf(iotpay.EINVALID, "fees must be between 0 and 10000 basis points together")
	}
	var router *route.Router
	if len(cfg.Connectors) > 0 {
		router = &route.Router{Connectors: map[string]connector.Connector{}}
		for _, c := range cfg.Connectors {
			if c.Name() == payment.WalletConnector || router.Known(c.Name()) {
				return nil, iotpay.Errorf(iotpay.EINVALID, "connector name %q used twice (wallet is the internal one)", c.Name())
			}
			router.Connectors[c.Name()] = c
		}
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	if d.CA, _, err = pki.LoadOrCreateCA(cfg.DataDir, time.Now()); err != nil {
		return nil, err
	}
	receiptKey, kid, err := loadReceiptKey(filepath.Join(cfg.DataDir, ReceiptKeyFile), pki.SuiteIntl)
	if err != nil {
		return nil, err
	}
	// The gm suite: an SM2 CA for gm devices' signing keys and an SM2
	// receipt key. TLS stays with the (P-256) platform CA.
	if d.GMCA, _, err = pki.LoadOrCreateSuiteCA(cfg.DataDir, pki.SuiteGM, time.Now()); err != nil {
		return nil, err
	}
	gmReceiptKey, gmKid, err := loadReceiptKey(filepath.Join(cfg.DataDir, GMReceiptKeyFile), pki.SuiteGM)
	if err != nil {
		return nil, err
	}
	if d.pskSecret, err = coap.LoadOrCreatePSKSecret(filepath.Join(cfg.DataDir, CoAPPSKSecretFile), nil); err != nil {
		return nil, err
	}
	if d.supplySecret, err = loadSupplySecret(filepath.Join(cfg.DataDir, SupplySecretFile)); err != nil {
		return nil, err
	}
	if d.DB, err = openStore(ctx, kind, cfg); err != nil {
		return nil, err
	}
	// Every write, whatever it is for, is an operation of the ledger's
	// single writer, batched with the others into one transaction.
	read := sqlstore.For[platform.Tx](d.DB)
	d.Payments = &payment.Engine[platform.Tx]{Store: read, Fees: cfg.Fees, OnEvent: onPaymentEvent, Router: router}
	d.Writer, err = ledger.Open(ctx, read, ledger.Config[platform.Tx]{
		OnExpire: d.Payments.OnExpire, Logger: d.log.With("component", "ledger"), BatchOpsMax: cfg.BatchOpsMax,
		Nice: WriterNice, CommitDelay: WriterCommitDelay})
	if err != nil {
		d.DB.Close()
		return nil, err
	}
	d.Payments.W = d.Writer
	d.Payments.Logger = d.log.With("component", "payments")
	for _, c := range cfg.Connectors {
		if sc, ok := c.(connector.Stateful); ok {
			// What a connector must remember of its payments (an
			// acquirer's original data elements) survives a restart.
			sc.KeepState(d.Payments.StateStore())
		}
	}
	d.Registry = &registry.Service{Store: platform.WriterStore[registry.Tx]{W: d.Writer, Read: read}, CA: d.CA,
		PlatformKey: receiptKey.Public(), GMCA: d.GMCA, GMPlatformKey: gmReceiptKey.Public()}
	d.Processor = &platform.Processor{
		Store: read, Engine: d.Payments, ReceiptSigner: receiptKey, ReceiptSuite: wire.Intl, ReceiptKid: kid,
		GMReceiptSigner: gmReceiptKey, GMReceiptKid: gmKid,
		Logger: d.log.With("component", "processor"), Profiles: &platform.Profiles{}, OnOrder: d.wakeWatcher,
	}
	d.Registry.OnDeviceChange = d.Processor.ForgetDevice
	d.wake = make(chan struct{}, 1)
	if err := d.auditLog(read); err != nil {
		d.Writer.Close()
		d.DB.Close()
		return nil, err
	}
	if err := d.bootstrap(ctx); err != nil {
		d.Writer.Close()
		d.DB.Close()
		return nil, err
	}
	return d, nil
}

// loadReceiptKey loads (creating on first use) a receipt key of suite and
// returns it with its key id.
func loadReceiptKey(path, suite string) (crypto.Signer, []byte, error) {
	key, _, err := pki.LoadOrCreateKey(path, suite)
	if err != nil {
		return nil, nil, err
	}
	kid, err := pki.KeyID(key.Public())
	return key, kid, err
}

// storeKind names the kind of store Config.Store selects, "sqlite" or
// "postgres". Its error never repeats the URL, which may hold a password.
func storeKind(store string) (string, error) {
	switch {
	case store == "":
		return "sqlite", nil
	case strings.HasPrefix(store, "postgres://"), strings.HasPrefix(store, "postgresql://"):
		return "postgres", nil
	}
	return "", iotpay.Errorf(iotpay.EINVALID, "store must be empty (SQLite in the data directory) or a postgres:// URL")
}

func openStore(ctx context.Context, kind string, cfg Config) (*sqlstore.DB, error) {
	if kind == "postgres" {
		return postgres.Open(ctx, cfg.Store)
	}
	return sqlite.Open(ctx, filepath.Join(cfg.DataDir, DBFile))
}

func (d *Daemon) bootstrap(ctx context.Context) error {
	n, err := d.DB.TenantCount(ctx)
	if err != nil || n > 0 {
		return err
	}
	t, key, err := d.Registry.Bootstrap(ctx, "default")
	if err != nil {
		return err
	}
	d.APIKey = key
	d.log.Info("created tenant and operator API key", "tenant", t.ID)
	return nil
}

// ReceiptKey returns the public key receipts verify with.
func (d *Daemon) ReceiptKey() crypto.PublicKey { return d.Registry.PlatformKey }

// Start opens the listeners and serves in the background.
func (d *Daemon) Start() error {
	hosts := append([]string{"localhost", "127.0.0.1", "::1"}, d.cfg.ServerNames...)
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	cert, key, err := d.CA.IssueServerCert(hosts)
	if err != nil {
		return err
	}
	tlsCfg := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw, d.CA.Cert.Raw}, PrivateKey: key, Leaf: cert}},
		ClientCAs:    d.CA.Pool(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
	// No connection outlives a restart: what a previous run left online is
	// offline now.
	if n, err := d.Registry.ResetPresence(context.Background(), mqtt.Transport, PresenceRestartReason); err != nil {
		return err
	} else if n > 0 {
		d.log.Info("devices left online by the previous run marked offline", "devices", n)
	}
	d.Broker, err = mqtt.New(mqtt.Config{Addr: d.cfg.MQTTAddr, TLS: tlsCfg, Logger: d.log.With("component", "mqtt"),
		Presence: d.Registry, Enroller: d.Registry, ConnectionsMax: d.cfg.MQTTConnectionsMax, Relay: d.Processor}, d.Registry, d.Processor)
	if err != nil {
		return err
	}
	if err := d.Broker.Start(); err != nil {
		return fmt.Errorf("mqtt listener on %s: %w", d.cfg.MQTTAddr, err)
	}
	if err := d.startCoAP(tlsCfg.Certificates[0]); err != nil {
		d.Broker.Close()
		return err
	}
	if err := d.startDeviceHTTP(tlsCfg); err != nil {
		d.Broker.Close()
		return err
	}
	api := &httpapi.Server{Registry: d.Registry, Payments: d.Payments, OnRevoke: d.disconnect,
		PSK: d.DevicePSK, PSKHint: coap.PSKIdentityHint, Processor: d.Processor, OnDesired: d.pushDesired,
		SupplySecret: d.SupplySecret, OnWebhook: d.wakeWatcher, Logger: d.log.With("component", "http")}
	d.httpLn, err = net.Listen("tcp", d.cfg.HTTPAddr)
	if err != nil {
		d.DeviceHTTP.Close(context.Background())
		d.closeCoAP()
		d.Broker.Close()
		return fmt.Errorf("http listener on %s: %w", d.cfg.HTTPAddr, err)
	}
	d.http = &http.Server{Handler: d.logHandler(api.Handler()), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
	d.httpDone = make(chan error, 1)
	go func() { d.httpDone <- d.http.Serve(d.httpLn) }()
	d.janitorStop, d.janitorDone = make(chan struct{}), make(chan struct{})
	go d.janitor()
	interval := d.cfg.WatchInterval
	if interval <= 0 {
		interval = WatchInterval
	}
	d.watchStop, d.watchDone = make(chan struct{}), make(chan struct{})
	go d.watch(interval)
	d.startAuditLog()
	kind, _ := storeKind(d.cfg.Store)
	d.log.Info("iotpayd listening", "http", d.HTTPAddr(), "mqtt", d.MQTTAddr(), "device_https", d.DeviceHTTPAddr(), "data", d.cfg.DataDir, "store", kind)
	return nil
}

// HTTPAddr is the bound HTTP address.
func (d *Daemon) HTTPAddr() string { return d.httpLn.Addr().String() }

// MQTTAddr is the bound MQTT/TLS address.
func (d *Daemon) MQTTAddr() string { return d.Broker.Addr() }

// DeviceHTTPAddr is the bound address of the HTTPS device endpoint.
func (d *Daemon) DeviceHTTPAddr() string { return d.DeviceHTTP.Addr() }

// startDeviceHTTP starts the HTTPS device endpoint with the broker's
// server certificate and client CA.
func (d *Daemon) startDeviceHTTP(tlsCfg *tls.Config) error {
	var err error
	d.DeviceHTTP, err = devicehttp.New(devicehttp.Config{Addr: d.cfg.DeviceHTTPAddr, TLS: tlsCfg, CA: d.CA.Cert,
		Logger: d.log}, estRegistry{Service: d.Registry, payments: d.Payments}, d.Processor)
	if err != nil {
		return err
	}
	if err := d.DeviceHTTP.Start(); err != nil {
		return fmt.Errorf("device https listener on %s: %w", d.cfg.DeviceHTTPAddr, err)
	}
	return nil
}

// Close stops intake, lets every request in progress finish and commit,
// then closes the store. An acknowledged payment is never lost: a receipt
// is only sent after its transaction committed.
func (d *Daemon) Close() error {
	var errs []error
	if d.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		errs = append(errs, d.http.Shutdown(ctx))
		cancel()
		if err := <-d.httpDone; !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	if d.DeviceHTTP != nil {
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		errs = append(errs, d.DeviceHTTP.Close(ctx))
		cancel()
	}
	errs = append(errs, d.closeCoAP())
	if d.Broker != nil {
		errs = append(errs, d.Broker.Close())
	}
	if d.janitorStop != nil {
		close(d.janitorStop)
		<-d.janitorDone
	}
	if d.watchStop != nil {
		close(d.watchStop)
		<-d.watchDone
	}
	if d.logStop != nil {
		d.logStop()
	}
	errs = append(errs, d.Writer.Close(), d.DB.Close())
	return errors.Join(errs...)
}

// DataDir is the data directory in use.
func (d *Daemon) DataDir() string { return d.cfg.DataDir }

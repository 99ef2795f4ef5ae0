package mqttload

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/mqtt"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/wire"
)

// Defaults for the brokers compared.
const (
	// DefaultMosquitto is Debian's Mosquitto binary (package mosquitto).
	DefaultMosquitto = "/usr/sbin/mosquitto"
	// DefaultPlainAddr is the machine's Mosquitto on plain TCP.
	DefaultPlainAddr = "127.0.0.1:1883"
	// processStartTimeout bounds the wait for a broker process to accept
	// connections.
	processStartTimeout = 10 * time.Second
	// processStopTimeout bounds the wait for it to exit once told to.
	processStopTimeout = 5 * time.Second
	// tls13Suite is the TLS 1.3 cipher suite Go negotiates on a machine
	// with AES instructions; Mosquitto is held to it, so both brokers do
	// the same cryptography.
	tls13Suite = "TLS_AES_128_GCM_SHA256"
)

// Fixture is what the brokers compared share: a throwaway CA, a server
// certificate for 127.0.0.1 and, per client, a synthetic device with its
// client certificate. Clients publish on their device's status topic,
// which the embedded broker's ACL allows and which is not the pay topic:
// a status is only checked (text, at most registry.PresenceStatusBytesMax
// bytes) and, without a PresenceRecorder, goes no further.
type Fixture struct {
	CA         *pki.CA
	Server     tls.Certificate
	Devices    []iotpay.DeviceID
	clientTLS  []*tls.Config
	serverCert *x509.Certificate
}

// NewFixture creates the CA, the server certificate and n devices.
func NewFixture(n int) (*Fixture, error) {
	if n < 1 || n > ClientsMax {
		return nil, fmt.Errorf("mqttload: %d devices not in [1, %d]", n, ClientsMax)
	}
	now := time.Now()
	ca, err := pki.NewCA("mqttload CA", now, nil)
	if err != nil {
		return nil, err
	}
	cert, key, err := ca.IssueServerCert([]string{"127.0.0.1", "localhost"})
	if err != nil {
		return nil, err
	}
	f := &Fixture{CA: ca, serverCert: cert,
		Server: tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}}
	for range n {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		csr, err := pki.NewCSR(key, "mqttload")
		if err != nil {
			return nil, err
		}
		id := iotpay.DeviceID(iotpay.NewID(iotpay.PrefixDevice, now, nil))
		dc, err := ca.SignDeviceCSR(csr, id, "ten_mqttload")
		if err != nil {
			return nil, err
		}
		f.Devices = append(f.Devices, id)
		f.clientTLS = append(f.clientTLS, &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{dc.Raw}, PrivateKey: key, Leaf: dc}},
			RootCAs:      ca.Pool(),
			MinVersion:   tls.VersionTLS13,
		})
	}
	return f, nil
}

// ClientTLS is client i's TLS configuration: its device's certificate.
func (f *Fixture) ClientTLS(i int) *tls.Config { return f.clientTLS[i] }

// ClientID is client i's client id: its device id, as the embedded broker
// requires.
func (f *Fixture) ClientID(i int) string { return string(f.Devices[i]) }

// Topic is client i's device's status topic.
func (f *Fixture) Topic(i int) string { return wire.StatusTopic(string(f.Devices[i])) }

// Apply sets cfg's TLS, client ids and topics to the fixture's.
func (f *Fixture) Apply(cfg *Config) {
	cfg.ClientTLS, cfg.ClientID, cfg.Topic = f.ClientTLS, f.ClientID, f.Topic
}

// Files of the broker side of a fixture, as WriteServerFiles writes them.
const (
	CAFile         = "ca.pem"
	ServerCertFile = "server.pem"
	ServerKeyFile  = "server.key"
)

// WriteServerFiles writes what a broker needs of the fixture to dir, as
// PEM: the CA certificate (to verify clients), the server certificate and
// its key.
func (f *Fixture) WriteServerFiles(dir string) error {
	key, err := pki.EncodeKeyPEM(f.Server.PrivateKey.(crypto.Signer))
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		CAFile:         pki.EncodeCertPEM(f.CA.Cert),
		ServerCertFile: pki.EncodeCertPEM(f.serverCert),
		ServerKeyFile:  key,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// StartEmbedded starts the platform's broker in this process on a free
// loopback port with the fixture's certificates: every device of the
// fixture is admitted, and a message on a pay topic is answered with
// nothing.
func (f *Fixture) StartEmbedded(log *slog.Logger) (*mqtt.Broker, error) {
	return startEmbedded(f.Server, f.CA.Pool(), log)
}

func startEmbedded(server tls.Certificate, clientCAs *x509.CertPool, log *slog.Logger) (*mqtt.Broker, error) {
	b, err := mqtt.New(mqtt.Config{
		Addr:   "127.0.0.1:0",
		TLS:    &tls.Config{Certificates: []tls.Certificate{server}, ClientCAs: clientCAs},
		Logger: log,
	}, admitAll{}, nopHandler{})
	if err != nil {
		return nil, err
	}
	if err := b.Start(); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// ServeEmbedded runs the embedded broker as StartEmbedded does, with the
// files WriteServerFiles wrote to dir, until ctx is done. It calls ready
// with the broker's address once it listens. A process that serves so
// lets a comparison load the embedded broker in a process of its own, as
// Mosquitto is (CompareConfig.EmbeddedCommand).
func ServeEmbedded(ctx context.Context, dir string, log *slog.Logger, ready func(addr string)) error {
	server, err := tls.LoadX509KeyPair(filepath.Join(dir, ServerCertFile), filepath.Join(dir, ServerKeyFile))
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("mqttload: no CA certificate in %s", CAFile)
	}
	b, err := startEmbedded(server, pool, log)
	if err != nil {
		return err
	}
	ready(b.Addr())
	<-ctx.Done()
	return b.Close()
}

// admitAll admits every device: only the fixture's have certificates.
type admitAll struct{}

func (admitAll) CheckDevice(context.Context, iotpay.DeviceID) error { return nil }

type nopHandler struct{}

func (nopHandler) HandlePay(context.Context, iotpay.DeviceID, []byte) []byte { return nil }

// Mosquitto is a Mosquitto broker started for a comparison, listening on
// 127.0.0.1 with TLS 1.3 and required client certificates from the
// fixture's CA, its server certificate the embedded broker's.
type Mosquitto struct {
	Addr    string
	Version string // e.g. "mosquitto version 2.0.11"
	dir     string
	proc    *proc
}

// MosquittoOptions are settings of a started Mosquitto beyond the
// fixture's.
type MosquittoOptions struct {
	// NoDelay sets TCP_NODELAY on its sockets, as Go does by default;
	// Mosquitto's default leaves Nagle's algorithm on.
	NoDelay bool
}

// StartMosquitto runs bin (DefaultMosquitto if empty) with a generated
// configuration in a temporary directory and waits until it accepts
// connections.
func (f *Fixture) StartMosquitto(ctx context.Context, bin string, o MosquittoOptions) (*Mosquitto, error) {
	if bin == "" {
		bin = DefaultMosquitto
	}
	if _, err := exec.LookPath(bin); err != nil {
		return nil, fmt.Errorf("%w: %s (scripts/setup.sh installs it)", ErrNoMosquitto, bin)
	}
	dir, err := os.MkdirTemp("", "mqttload-mosquitto-")
	if err != nil {
		return nil, err
	}
	m := &Mosquitto{dir: dir}
	if err := m.start(ctx, bin, f, o); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return m, nil
}

func (m *Mosquitto) start(ctx context.Context, bin string, f *Fixture, o MosquittoOptions) error {
	if err := f.WriteServerFiles(m.dir); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	m.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conf := fmt.Sprintf(`# mqttload: the embedded broker's transport, on Mosquitto
listener %d 127.0.0.1
cafile %s
certfile %s
keyfile %s
require_certificate true
tls_version tlsv1.3
ciphers_tls1.3 %s
allow_anonymous true
persistence false
log_dest stderr
log_type error
log_type warning
set_tcp_nodelay %t
`, port, filepath.Join(m.dir, CAFile), filepath.Join(m.dir, ServerCertFile), filepath.Join(m.dir, ServerKeyFile),
		tls13Suite, o.NoDelay)
	// Run as root, Mosquitto would become user mosquitto, which cannot
	// read the files; any other user stays itself.
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		conf += "user root\n"
	}
	confFile := filepath.Join(m.dir, "mosquitto.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, bin, "-h").CombinedOutput(); len(out) > 0 {
		m.Version, _, _ = strings.Cut(string(out), "\n")
	} else if err != nil {
		return fmt.Errorf("mqttload: %s -h: %w", bin, err)
	}

	if m.proc, err = startProc(exec.Command(bin, "-c", confFile)); err != nil {
		return fmt.Errorf("mqttload: starting mosquitto: %w", err)
	}
	if err := m.waitReady(ctx); err != nil {
		m.proc.stop()
		return err
	}
	return nil
}

// waitReady waits until Mosquitto accepts a TCP connection.
func (m *Mosquitto) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, processStartTimeout)
	defer cancel()
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", m.Addr)
		if err == nil {
			return c.Close()
		}
		select {
		case <-m.proc.exited:
			return fmt.Errorf("mqttload: mosquitto exited: %v: %s", m.proc.waitErr, m.proc.out.String())
		case <-ctx.Done():
			return fmt.Errorf("mqttload: mosquitto not listening on %s: %w: %s", m.Addr, err, m.proc.out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Pid is Mosquitto's process id.
func (m *Mosquitto) Pid() int { return m.proc.cmd.Process.Pid }

// Log is what Mosquitto wrote (errors and warnings).
func (m *Mosquitto) Log() string { return m.proc.out.String() }

// Close stops Mosquitto and removes its files.
func (m *Mosquitto) Close() error {
	m.proc.stop()
	return os.RemoveAll(m.dir)
}

// reachable says whether addr accepts a TCP connection.
func reachable(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, DefaultConnectTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// freePort returns a loopback TCP port free at the time of the call.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Command iotpay-edge is the gateway for constrained devices (package
// edge/gateway): it serves them over CoAP/UDP and DTLS (a device
// certificate of the platform CA, or a PSK) and relays their envelopes to
// the platform over MQTT/TLS, storing them while the uplink is down.
//
//	iotpay-edge run --data DIR --coap 127.0.0.1:5683 --dtls 127.0.0.1:5684 \
//	    --uplink HOST:PORT --cert gw.pem --key gw.key --ca ca.pem [--client-ca ca.pem] [--budget 242]
//	iotpay-edge psk --secret-file F --device dev_…
//	iotpay-edge cert --data DIR [--pem]
//	iotpay-edge enroll --api URL --device dev_… --token T --dir DIR
//
// The DTLS port's certificate is self-signed, made on first start in the
// data directory; run and cert print its SHA-256, which devices may pin.
package main

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	"github.com/iotpay/iotpay/edge/gateway"
	"github.com/iotpay/iotpay/internal/atomicfile"
	"github.com/iotpay/iotpay/internal/devcert"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "iotpay-edge:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  iotpay-edge run --data DIR --uplink HOST:PORT --cert gw.pem --key gw.key --ca ca.pem [flags]
  iotpay-edge psk --secret-file F --device dev_…
  iotpay-edge cert --data DIR [--pem]
  iotpay-edge enroll --api URL --device dev_… --token T --dir DIR
`

// run dispatches a subcommand; it returns when ctx ends (run) or at once.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "run":
		return runGateway(ctx, args[1:], stderr, nil)
	case "psk":
		return printPSK(args[1:], stdout, stderr)
	case "cert":
		return printCert(args[1:], stdout, stderr)
	case "enroll":
		return enroll(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// runGateway is "iotpay-edge run". started, if set, gets the gateway once
// it serves (tests read its bound addresses).
func runGateway(ctx context.Context, args []string, stderr io.Writer, started func(*gateway.Gateway)) error {
	fs := flag.NewFlagSet("iotpay-edge run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "./iotpay-edge-data", "data `directory`: the queue, the frame counters, the PSK secret, the DTLS certificate")
	coapAddr := fs.String("coap", "127.0.0.1:5683", "plain CoAP/UDP `address` (end-to-end protected envelopes only); empty for none")
	dtlsAddr := fs.String("dtls", "127.0.0.1:5684", "CoAP over DTLS `address` (device certificates and PSKs); empty for none")
	uplink := fs.String("uplink", "", "the platform's MQTT/TLS `host:port` (required)")
	cert := fs.String("cert", "", "the gateway's client certificate, PEM `file` (required)")
	key := fs.String("key", "", "the gateway's private key, PEM `file` (required)")
	ca := fs.String("ca", "", "the platform CA, PEM `file` (required)")
	clientCA := fs.String("client-ca", "", "CA `file` (PEM) of the device certificates the DTLS port accepts (default: the --ca file); \"none\" for PSK only")
	id := fs.String("id", "", "the gateway's device `id` (default: from the certificate's URI SAN or CN)")
	budget := fs.Int("budget", gateway.DefaultBudget, fmt.Sprintf("payload budget of one datagram in `bytes`, %d..%d: sets the CoAP block size", gateway.BudgetMin, gateway.BudgetMax))
	secretFile := fs.String("psk-secret-file", "", "PSK secret `file`, made on first use (default DIR/coap-psk-secret)")
	answerWait := fs.Duration("answer-wait", gateway.DefaultAnswerWait, "how long a device's POST waits for the platform's answer")
	verbose := fs.Bool("v", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *uplink == "" || *cert == "" || *key == "" || *ca == "" {
		fs.Usage()
		return errors.New("--uplink, --cert, --key and --ca are required")
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	tlsCfg, gwID, err := uplinkTLS(*cert, *key, *ca, *uplink)
	if err != nil {
		return err
	}
	if *id != "" {
		gwID = iotpay.DeviceID(*id)
	}
	var clientCAs *x509.CertPool
	if *dtlsAddr != "" && *clientCA != "none" {
		if clientCAs, err = loadPool(cmp.Or(*clientCA, *ca)); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return err
	}
	if *secretFile == "" {
		*secretFile = filepath.Join(*data, "coap-psk-secret")
	}
	var secret []byte
	if *dtlsAddr != "" {
		if secret, err = gateway.LoadOrCreatePSKSecret(*secretFile, nil); err != nil {
			return err
		}
	}
	g, err := gateway.New(gateway.Config{DataDir: *data, CoAPAddr: *coapAddr, DTLSAddr: *dtlsAddr, PSKSecret: secret,
		ClientCAs: clientCAs, Budget: *budget, AnswerWait: *answerWait, Logger: log,
		Uplink: gateway.UplinkConfig{Addr: *uplink, TLS: tlsCfg, GatewayID: gwID}})
	if err != nil {
		return err
	}
	if err := g.Start(); err != nil {
		return err
	}
	if sum := g.CertSHA256(); sum != nil {
		log.Info("DTLS certificate: devices may pin its SHA-256", "sha256", hex.EncodeToString(sum))
	}
	if started != nil {
		started(g)
	}
	<-ctx.Done()
	log.Info("shutting down")
	return g.Close()
}

// uplinkTLS loads the gateway's certificate, key and CA, and finds its
// device id in the certificate (a URI SAN ending in the id, or the CN).
func uplinkTLS(certFile, keyFile, caFile, uplink string) (*tls.Config, iotpay.DeviceID, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, "", fmt.Errorf("gateway certificate: %w", err)
	}
	pool, err := loadPool(caFile)
	if err != nil {
		return nil, "", err
	}
	host := uplink
	if i := strings.LastIndexByte(uplink, ':'); i >= 0 {
		host = strings.Trim(uplink[:i], "[]")
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}
	return cfg, deviceIDOf(pair.Leaf), nil
}

// loadPool reads a pool of CA certificates from a PEM file.
func loadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("no certificate in %s", file)
	}
	return pool, nil
}

// deviceIDOf finds the device id a certificate names: in its URI SAN, as
// the platform's CA writes it (internal/devcert), or else its CN.
func deviceIDOf(cert *x509.Certificate) iotpay.DeviceID {
	if id, ok := devcert.DeviceID(cert); ok {
		return id
	}
	return iotpay.DeviceID(cert.Subject.CommonName)
}

// printPSK is "iotpay-edge psk": a device's pre-shared key with this
// gateway, as the text devices and coap-client -k take.
func printPSK(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("iotpay-edge psk", flag.ContinueOnError)
	fs.SetOutput(stderr)
	secretFile := fs.String("secret-file", "", "the gateway's PSK secret `file` (required; made on first use)")
	device := fs.String("device", "", "the device `id` (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *secretFile == "" || *device == "" {
		fs.Usage()
		return errors.New("--secret-file and --device are required")
	}
	secret, err := gateway.LoadOrCreatePSKSecret(*secretFile, nil)
	if err != nil {
		return err
	}
	psk, err := gateway.DerivePSK(secret, iotpay.DeviceID(*device))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", psk)
	return err
}

// printCert is "iotpay-edge cert": the SHA-256 of the DTLS port's
// certificate, in hex, which devices pin (device/edge
// Config.GatewayCertSHA256); with --pem the certificate too. It makes the
// certificate if the gateway has not yet, so devices can be set up before
// the gateway's first start.
func printCert(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("iotpay-edge cert", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "./iotpay-edge-data", "the gateway's data `directory`")
	withPEM := fs.Bool("pem", false, "print the certificate (PEM) after its SHA-256")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return err
	}
	cert, err := gateway.LoadOrCreateServerCert(filepath.Join(*data, gateway.ServerCertFile), time.Now(), nil)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", hex.EncodeToString(gateway.CertSHA256(cert))); err != nil || !*withPEM {
		return err
	}
	_, err = stdout.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}))
	return err
}

// enroll is "iotpay-edge enroll": the gateway's identity. It makes a P-256
// key, enrolls it with the platform's API under the gateway device's
// one-time token (a device of a product of kind gateway: 'iotpay device
// create'), and writes gw.key (mode 0600), gw.pem and ca.pem in dir, which
// 'run' takes as --key, --cert and --ca.
func enroll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("iotpay-edge enroll", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := fs.String("api", "", "the platform's operator API `URL`, e.g. http://127.0.0.1:8080 (required)")
	id := fs.String("device", "", "the gateway's device `id` (required)")
	token := fs.String("token", "", "its one-time enrollment `token` (required)")
	dir := fs.String("dir", "", "`directory` to write gw.key, gw.pem and ca.pem in (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *api == "" || *id == "" || *token == "" || *dir == "" {
		fs.Usage()
		return errors.New("--api, --device, --token and --dir are required")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	en, err := device.Enroll(ctx, nil, *api, iotpay.DeviceID(*id), *token, key)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"gw.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600},
		{"gw.pem", []byte(en.Certificate), 0o644},
		{"ca.pem", []byte(en.CA), 0o644},
	} {
		if err := atomicfile.Write(filepath.Join(*dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(stdout, "gateway %s enrolled: %s\n", *id, filepath.Join(*dir, "gw.pem"))
	return err
}

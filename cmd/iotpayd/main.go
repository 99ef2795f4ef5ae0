// Command iotpayd is the iotpay platform in one process: the HTTP API, the
// embedded MQTT broker (mutual TLS), the payment processor and the store.
//
// With no flags it keeps its data in ./iotpay-data, creating on first start
// the database, the platform CA, the receipt-signing key and an operator
// API key, which it prints once. With -store postgres://… the database is
// on PostgreSQL instead; the CA and keys stay in the data directory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	_ "time/tzdata" // tariffs and risk hours name time zones; a host without zone data still prices right

	"github.com/ethereum/go-ethereum/common"
	gethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/iotpay/iotpay/audit/anchor/eth"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/payment/connector/iso8583"
	"github.com/iotpay/iotpay/payment/connector/stripe"
	"github.com/iotpay/iotpay/platform/daemon"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "iotpayd:", err)
			os.Exit(1)
		}
	}
}

// env returns the environment variable's value, or def.
// envInt is an integer environment variable, 0 when unset or malformed
// (the flag's own parsing then reports a bad value given on the command line).
func envInt(name string) int64 {
	n, _ := strconv.ParseInt(os.Getenv(name), 10, 64)
	return n
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("iotpayd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", env("IOTPAY_DATA", daemon.DefaultDataDir), "data directory: database, CA and keys (env IOTPAY_DATA)")
	// Not env's value as the default: --help would print a password in it.
	store := fs.String("store", "", "where the state lives: empty for SQLite in the data directory, or a PostgreSQL `URL`, postgres://user@host:5432/db (env IOTPAY_STORE)")
	httpAddr := fs.String("http", env("IOTPAY_HTTP_ADDR", daemon.DefaultHTTPAddr), "HTTP API listen address (env IOTPAY_HTTP_ADDR)")
	mqttAddr := fs.String("mqtt", env("IOTPAY_MQTT_ADDR", daemon.DefaultMQTTAddr), "MQTT over mutual TLS listen address (env IOTPAY_MQTT_ADDR)")
	coapAddr := fs.String("coap", env("IOTPAY_COAP_ADDR", daemon.DefaultCoAPAddr), "CoAP over DTLS 1.2 (UDP; certificates or PSK) listen address (env IOTPAY_COAP_ADDR)")
	deviceHTTPAddr := fs.String("device-http", env("IOTPAY_DEVICE_HTTP_ADDR", daemon.DefaultDeviceHTTPAddr), "HTTPS device endpoint (mutual TLS payments, EST enrollment) listen address (env IOTPAY_DEVICE_HTTP_ADDR)")
	names := fs.String("server-names", env("IOTPAY_SERVER_NAMES", ""), "extra comma-separated host names or IPs for the MQTT and device HTTPS server certificate (env IOTPAY_SERVER_NAMES)")
	feeOp := fs.Int64("fee-operator-bps", envInt("IOTPAY_FEE_OPERATOR_BPS"), "the operator's fee on each capture, in basis points (env IOTPAY_FEE_OPERATOR_BPS)")
	feePlat := fs.Int64("fee-platform-bps", envInt("IOTPAY_FEE_PLATFORM_BPS"), "the platform's fee on each capture, in basis points (env IOTPAY_FEE_PLATFORM_BPS)")
	logOrigin := fs.String("log-origin", env("IOTPAY_LOG_ORIGIN", ""), "the audit log's name, at its first start (default iotpay-<random>/log; env IOTPAY_LOG_ORIGIN)")
	witnesses := fs.String("witness", env("IOTPAY_WITNESSES", ""), "comma-separated URLs of C2SP tlog-witnesses every checkpoint is pushed to (env IOTPAY_WITNESSES)")
	ethRPC := fs.String("eth-rpc", env("IOTPAY_ETH_RPC", ""), "Ethereum JSON-RPC URL: anchor every checkpoint's root in a CheckpointAnchor contract (env IOTPAY_ETH_RPC)")
	ethContract := fs.String("eth-contract", env("IOTPAY_ETH_CONTRACT", ""), "the CheckpointAnchor contract's address ('iotpay audit anchor-deploy' deploys one; env IOTPAY_ETH_CONTRACT)")
	ethKey := fs.String("eth-key-file", env("IOTPAY_ETH_KEY_FILE", ""), "file holding the hex secp256k1 key that owns the contract and pays for its transactions (env IOTPAY_ETH_KEY_FILE)")
	logLevel := fs.String("log-level", env("IOTPAY_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env IOTPAY_LOG_LEVEL)")
	stripeKey := fs.String("stripe-key-file", env("IOTPAY_STRIPE_KEY_FILE", ""), "file holding a Stripe secret key: payments can be routed to the connector \"stripe\" (env IOTPAY_STRIPE_KEY_FILE)")
	stripeURL := fs.String("stripe-url", env("IOTPAY_STRIPE_URL", ""), "the Stripe API's base URL (default Stripe's; a stripe-mock's for tests; env IOTPAY_STRIPE_URL)")
	stripeHook := fs.String("stripe-webhook-secret-file", env("IOTPAY_STRIPE_WEBHOOK_SECRET_FILE", ""), "file holding the Stripe webhook signing secret (env IOTPAY_STRIPE_WEBHOOK_SECRET_FILE)")
	mqttConns := fs.Int("mqtt-connections-max", 0, "bound on open MQTT connections (default 10000); the open-file limit (ulimit -n) must be above it")
	allowPrivate := fs.Bool("webhooks-allow-private", env("IOTPAY_WEBHOOKS_ALLOW_PRIVATE", "") == "1", "let webhook endpoints and suppliers be on loopback or private addresses (off: only public ones are called; env IOTPAY_WEBHOOKS_ALLOW_PRIVATE=1)")
	acquirer := fs.String("acquirer", env("IOTPAY_ACQUIRER", ""), "host:port of a card acquirer host speaking ISO 8583 (2-byte length framing): payments can be routed to the connector \"acquirer\" (env IOTPAY_ACQUIRER)")
	acquirerMID := fs.String("acquirer-merchant", env("IOTPAY_ACQUIRER_MERCHANT", "IOTPAY/TERM0001"), "the card acceptor's merchant id and terminal id at the acquirer, MID/TID (env IOTPAY_ACQUIRER_MERCHANT)")
	acquirerID := fs.String("acquirer-institution", env("IOTPAY_ACQUIRER_INSTITUTION", "1"), "the acquiring institution id sent in field 32, 1 to 11 digits (env IOTPAY_ACQUIRER_INSTITUTION)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: iotpayd [flags]\n\nRuns the iotpay platform: HTTP API, embedded MQTT broker (TLS, client certificates),\npayment processor and store (SQLite in the data directory, or PostgreSQL with -store).\nEach flag can also be set by its environment variable.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if *store == "" {
		*store = env("IOTPAY_STORE", "")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("bad -log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg := daemon.Config{DataDir: *dataDir, Store: *store, HTTPAddr: *httpAddr, MQTTAddr: *mqttAddr, DeviceHTTPAddr: *deviceHTTPAddr, CoAPAddr: *coapAddr, Logger: logger,
		Fees: payment.FeePlan{OperatorBps: *feeOp, PlatformBps: *feePlat}}
	cfg.LogOrigin = *logOrigin
	for _, u := range strings.Split(*witnesses, ",") {
		if u = strings.TrimSpace(u); u != "" {
			cfg.Witnesses = append(cfg.Witnesses, u)
		}
	}
	for _, n := range strings.Split(*names, ",") {
		if n = strings.TrimSpace(n); n != "" {
			cfg.ServerNames = append(cfg.ServerNames, n)
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *ethRPC != "" {
		a, closeEth, err := ethAnchor(ctx, *ethRPC, *ethContract, *ethKey)
		if err != nil {
			return err
		}
		defer closeEth()
		cfg.Anchors = append(cfg.Anchors, a)
	}
	connectors, closeConnectors, err := openConnectors(*stripeKey, *stripeURL, *stripeHook, *acquirer, *acquirerMID, *acquirerID)
	if err != nil {
		return err
	}
	defer closeConnectors()
	cfg.Connectors = connectors
	cfg.AllowPrivateWebhooks = *allowPrivate
	cfg.MQTTConnectionsMax = *mqttConns
	d, err := daemon.Open(ctx, cfg)
	if err != nil {
		return err
	}
	if d.APIKey != "" {
		fmt.Fprintf(stdout, "Operator API key (shown once, stored hashed):\n\n    %s\n\nexport IOTPAY_API_KEY=%s\n\n", d.APIKey, d.APIKey)
	}
	if err := d.Start(); err != nil {
		d.Close()
		return err
	}
	fmt.Fprintf(stdout, "iotpayd: HTTP API on http://%s, MQTT/TLS on %s, data in %s, device HTTPS on %s, CoAP/DTLS on %s\n", d.HTTPAddr(), d.MQTTAddr(), *dataDir, d.DeviceHTTPAddr(), d.CoAPAddr())
	fmt.Fprintf(stdout, "iotpayd: audit log on http://%s%s, verify with:\n    iotpay audit verify --log http://%s%s --key %s\n",
		d.HTTPAddr(), daemon.LogPathPrefix, d.HTTPAddr(), daemon.LogPathPrefix, d.LogKey)
	<-ctx.Done()
	logger.Info("shutting down")
	return d.Close()
}

// ethAnchor connects to the chain at rpcURL and binds the anchor contract at
// contract, owned by the key in keyFile.
func ethAnchor(ctx context.Context, rpcURL, contract, keyFile string) (*eth.Anchor, func(), error) {
	if !common.IsHexAddress(contract) || keyFile == "" {
		return nil, nil, errors.New("--eth-rpc needs --eth-contract (an address) and --eth-key-file")
	}
	key, err := gethcrypto.LoadECDSA(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("--eth-key-file: %w", err)
	}
	client, err := ethclient.DialContext(ctx, rpcURL)
	if err != nil {
		return nil, nil, fmt.Errorf("ethereum RPC: %w", err)
	}
	chainID, err := client.ChainID(ctx)
	if err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("ethereum RPC: %w", err)
	}
	return eth.New(client, common.HexToAddress(contract), key, chainID), client.Close, nil
}

// openConnectors makes the external payment systems the flags name.
func openConnectors(stripeKeyFile, stripeURL, stripeHookFile, acquirerAddr, acquirerMerchant, acquirerID string) ([]connector.Connector, func(), error) {
	var cs []connector.Connector
	var closers []func() error
	closeAll := func() {
		for _, c := range closers {
			_ = c()
		}
	}
	readSecret := func(path string) (string, error) {
		if path == "" {
			return "", nil
		}
		b, err := os.ReadFile(path)
		return strings.TrimSpace(string(b)), err
	}
	if stripeKeyFile != "" {
		key, err := readSecret(stripeKeyFile)
		if err != nil {
			return nil, nil, err
		}
		hook, err := readSecret(stripeHookFile)
		if err != nil {
			return nil, nil, err
		}
		c, err := stripe.New(stripe.Config{Key: key, BaseURL: stripeURL, WebhookSecret: hook})
		if err != nil {
			return nil, nil, err
		}
		cs = append(cs, c)
	}
	if acquirerAddr != "" {
		mid, tid, _ := strings.Cut(acquirerMerchant, "/")
		c, err := iso8583.New(iso8583.Config{Name: "acquirer", Addr: acquirerAddr, MerchantID: mid, TerminalID: tid, AcquirerID: acquirerID})
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		cs = append(cs, c)
		closers = append(closers, c.Close)
	}
	return cs, closeAll, nil
}

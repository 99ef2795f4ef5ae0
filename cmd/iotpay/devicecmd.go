package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit/tlog"
	"github.com/iotpay/iotpay/device"
	"github.com/iotpay/iotpay/device/keystore"
	"github.com/iotpay/iotpay/device/keystore/pkcs11"
	"github.com/iotpay/iotpay/wire"
)

func passphrase() ([]byte, error) {
	p := os.Getenv("IOTPAY_KEYSTORE_PASSPHRASE")
	if p == "" {
		return nil, fmt.Errorf("set IOTPAY_KEYSTORE_PASSPHRASE: it encrypts the device key at rest")
	}
	return []byte(p), nil
}

// keystoreUsage is the help of --keystore.
const keystoreUsage = `where the device key lives: "soft" (a file in --dir, encrypted under IOTPAY_KEYSTORE_PASSPHRASE) ` +
	`or a PKCS#11 token, "pkcs11:token=LABEL;pin-env=VAR[;module=PATH][;slot=N][;label=KEY]" (the PIN in $VAR)`

// openKeystore creates (at enrollment) or opens the device key the
// --keystore spec names, and says where it is.
func openKeystore(spec, dir string, create bool) (keystore.Keystore, string, error) {
	if rest, ok := strings.CutPrefix(spec, "pkcs11:"); ok {
		cfg, err := pkcs11.ParseSpec(rest, os.Getenv)
		if err != nil {
			return nil, "", err
		}
		open := pkcs11.Open
		if create {
			open = pkcs11.Create
		}
		ks, err := open(cfg)
		if err != nil {
			return nil, "", err
		}
		return ks, cfg.String(), nil
	}
	if spec != "soft" {
		return nil, "", fmt.Errorf("--keystore %q: want soft or pkcs11:…", spec)
	}
	return softKeystore(filepath.Join(dir, device.KeyFile), create, keystore.OpenSoft, keystore.CreateSoft)
}

// softKeystore opens, or creates, the software keystore at path under the
// passphrase from the environment.
func softKeystore[K keystore.Keystore](path string, create bool, open, mk func(string, []byte) (K, error)) (keystore.Keystore, string, error) {
	pass, err := passphrase()
	if err != nil {
		return nil, "", err
	}
	if create {
		open = mk
	}
	ks, err := open(path, pass)
	if err != nil {
		return nil, "", err
	}
	return ks, path, nil
}

// deviceKeys opens (or creates) the keys of a device of suite: the P-256
// key the --keystore spec names and, for gm, the SM2 key in dir's
// software keystore (no PKCS#11 mechanism for SM2 is assumed).
func deviceKeys(spec, dir, suite string, create bool) (*device.Keys, string, error) {
	s, err := wire.SuiteByName(suite)
	if err != nil {
		return nil, "", err
	}
	ks, where, err := openKeystore(spec, dir, create)
	if err != nil || s != wire.GM {
		return &device.Keys{Suite: s, Signer: ks}, where, err
	}
	gm, path, err := softKeystore(filepath.Join(dir, device.SM2KeyFile), create, device.OpenSoftSM2, device.CreateSoftSM2)
	if err != nil {
		ks.Close()
		return nil, "", err
	}
	return &device.Keys{Suite: s, Signer: gm, Transport: ks}, path + " (SM2) and " + where + " (P-256, TLS)", nil
}

func deviceEnroll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := operatorFlags("device enroll", stderr)
	dir := fs.String("dir", "", "device directory to create: keystore, certificate, state (required)")
	id := fs.String("device", "", "device id (required)")
	token := fs.String("token", "", "one-time enrollment token from 'device create' (required)")
	ksSpec := fs.String("keystore", "soft", keystoreUsage)
	suite := fs.String("suite", wire.SuiteIntl, "the device's crypto suite, as created: intl, or gm (an SM2 key in a software "+
		"keystore in --dir signs; the --keystore P-256 key authenticates TLS)")
	mqttAddr := fs.String("mqtt", "", "enroll over MQTT/TLS 1.3 at this broker (host:port) with the token, instead of the HTTP API")
	caFile := fs.String("ca", "", "with --mqtt: the platform CA (PEM), known out of band, to trust the broker with")
	if err := fs.parse(args, "dir", "device", "token"); err != nil {
		return err
	}
	var exchange func(context.Context, []byte) ([]byte, error)
	if *mqttAddr != "" {
		var err error
		if exchange, err = mqttEnrollment(*mqttAddr, *caFile, iotpay.DeviceID(*id), *token); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	keys, where, err := deviceKeys(*ksSpec, *dir, *suite, true)
	if err != nil {
		return err
	}
	defer keys.Close()
	var en *device.Enrollment
	if exchange != nil {
		en, err = keys.EnrollOver(ctx, exchange, iotpay.DeviceID(*id), *token)
	} else {
		en, err = keys.Enroll(ctx, newAPIClient(*fs.api, "", *fs.idempotencyKey).http, *fs.api, iotpay.DeviceID(*id), *token)
	}
	if err != nil {
		return err
	}
	if _, err := keys.Identity(en); err != nil {
		return err
	}
	if err := device.SaveEnrollment(*dir, en); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "enrolled %s (suite %s): key generated in %s, certificate saved in %s\n", en.Device, en.Suite,
		where, filepath.Join(*dir, device.EnrollmentFile))
	return nil
}

func devicePay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("iotpay device pay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "enrolled device directory (required)")
	broker := fs.String("mqtt", "127.0.0.1:8883", "platform MQTT/TLS address")
	httpsURL := fs.String("https", "", "pay over the platform's HTTPS device endpoint instead of MQTT, e.g. https://127.0.0.1:8443")
	coapAddr := fs.String("coap", "", "pay over CoAP/DTLS with the device certificate instead of MQTT, e.g. 127.0.0.1:5684")
	pskKey := fs.String("psk", "", "with --coap: handshake with this pre-shared key ('device psk') instead of the certificate")
	pskFile := fs.String("psk-file", "", "with --coap: handshake with the pre-shared key in this file ('device psk --dir' writes "+
		"DIR/"+PSKFile+")")
	amount := fs.Int64("amount", 0, "amount in minor units, for products priced by amount")
	currency := fs.String("currency", "EUR", "currency of --amount")
	event := fs.String("event", "", "event type, e.g. dispense or session_end")
	fields := fs.String("fields", "", "event fields, comma-separated: wh=12400,sku=A3 (integers are quantities)")
	rid := fs.String("request-id", "", "idempotency key (generated when empty)")
	ksSpec := fs.String("keystore", "soft", keystoreUsage+"; as at enrollment")
	secure := fs.Bool("secure", false, "pay through an end-to-end session: a signed handshake, then the request and its receipt sealed (COSE_Encrypt0)")
	logURL := fs.String("log", "", "the audit log's URL (http://host:8080/log/) to prove the payment is logged with (default: ask on the payment channel)")
	logKey := fs.String("log-key", "", "the audit log's verifier key (first line of iotpayd's log-key.pub): prove the payment is logged")
	var rep reportFlags
	rep.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("device pay needs --dir")
	}
	var logV note.Verifier
	if *logURL != "" || *logKey != "" {
		var err error
		if logV, err = tlog.NewVerifier(*logKey); err != nil {
			return fmt.Errorf("--log-key must be the log's verifier key: %w", err)
		}
	}
	psk, err := pskOf(*pskKey, *pskFile)
	if err != nil {
		return err
	}
	if psk != nil && *coapAddr == "" {
		return fmt.Errorf("--psk and --psk-file need --coap")
	}
	p := device.Payment{RequestID: *rid}
	if *event != "" {
		p.Event = &wire.Event{Type: *event}
		for _, kv := range strings.Split(*fields, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if !ok {
				continue
			}
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				if p.Event.Num == nil {
					p.Event.Num = map[string]int64{}
				}
				p.Event.Num[k] = n
			} else {
				if p.Event.Str == nil {
					p.Event.Str = map[string]string{}
				}
				p.Event.Str[k] = v
			}
		}
	} else if *amount != 0 || !rep.any() {
		m, err := iotpay.NewMoney(*amount, iotpay.Currency(*currency))
		if err != nil {
			return err
		}
		p.Amount = &m
	}
	if p.Report, err = rep.report(); err != nil {
		return err
	}
	if p.Report != nil && p.Event == nil && *amount == 0 {
		p.Event, p.Amount = &wire.Event{Type: wire.EventState}, nil // a report alone
	}
	_, keys, id, err := loadDevice(*ksSpec, *dir)
	if err != nil {
		return err
	}
	defer keys.Close()
	dev, err := device.New(*id, device.FileState{Path: filepath.Join(*dir, device.StateFile)})
	if err != nil {
		return err
	}
	var t device.Transport
	var closer io.Closer
	if *coapAddr != "" {
		t, closer, err = coapTransport(ctx, id, *coapAddr, psk)
	} else {
		t, closer, err = payTransport(ctx, id, *broker, *httpsURL)
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	pay := dev.Pay
	if *secure {
		pay = dev.PaySecure
	}
	rc, err := pay(ctx, t, p)
	if err != nil {
		return err
	}
	if *secure {
		fmt.Fprint(stdout, "sealed ")
	}
	fmt.Fprintf(stdout, "receipt verified: %s", rc.Outcome)
	if rc.Action != "" {
		fmt.Fprintf(stdout, " %s", rc.Action)
	}
	if rc.Currency != "" {
		fmt.Fprintf(stdout, " %s", iotpay.Money{Amount: rc.AmountMinor, Currency: iotpay.Currency(rc.Currency)})
	}
	if rc.PaymentID != "" {
		fmt.Fprintf(stdout, " payment %s", rc.PaymentID)
	}
	if rc.LogIndex != nil {
		// What 'iotpay audit verify --leaf INDEX:REQUEST_HASH' takes.
		fmt.Fprintf(stdout, " log #%d request %x", *rc.LogIndex, rc.RequestHash)
	}
	if rc.Reason != "" {
		fmt.Fprintf(stdout, " (%s: %s)", rc.Code, rc.Reason)
	}
	fmt.Fprintln(stdout)
	if rc.Desired != nil {
		if ds, err := dev.OpenDesired(rc.Desired); err == nil {
			fmt.Fprintf(stdout, "desired state version %d (signed, checked): num %v str %v; apply it and report --applied %d\n",
				ds.Version, ds.Num, ds.Str, ds.Version)
		}
	}
	if rc.Outcome != wire.Approved {
		return fmt.Errorf("payment %s", rc.Outcome)
	}
	if logV != nil {
		verifyLogged := func(ctx context.Context) (*tlog.Checkpoint, error) { return dev.VerifyLoggedOver(ctx, t, logV, rc) }
		if *logURL != "" {
			log := &tlog.Client{URL: *logURL, HTTP: &http.Client{Timeout: 30 * time.Second}}
			verifyLogged = func(ctx context.Context) (*tlog.Checkpoint, error) { return dev.VerifyLogged(ctx, log, logV, rc) }
		}
		return proveLogged(ctx, stdout, verifyLogged, logV, rc)
	}
	return nil
}

// proveLogged waits (up to 10 s: a checkpoint comes every second) until a
// checkpoint covers the receipt's leaf, and proves it is there.
func proveLogged(ctx context.Context, stdout io.Writer, verifyLogged func(context.Context) (*tlog.Checkpoint, error), key note.Verifier, rc *wire.Receipt) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		cp, err := verifyLogged(ctx)
		if err == nil {
			fmt.Fprintf(stdout, "logged: leaf %d proven in the checkpoint of %d leaves signed by %s\n", *rc.LogIndex, cp.Size, key.Name())
			return nil
		}
		if iotpay.ErrorCode(err) != iotpay.ENOTFOUND {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no checkpoint covered the payment in time: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// reportFlags are the device's state it reports with a request, signed.
type reportFlags struct {
	firmware, measurement, reported string
	tamper                          bool
	battery, lat, lon, applied      int64
}

func (r *reportFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.firmware, "firmware", "", "report: the running firmware's version")
	fs.StringVar(&r.measurement, "measurement", "", "report: hex SHA-256 of the running firmware image (the attestation), or @FILE to hash a file")
	fs.BoolVar(&r.tamper, "tamper", false, "report: the device was tampered with")
	fs.Int64Var(&r.battery, "battery", -1, "report: battery, percent")
	fs.Int64Var(&r.lat, "lat-e7", 0, "report: latitude, degrees × 10^7 (with --lon-e7)")
	fs.Int64Var(&r.lon, "lon-e7", 0, "report: longitude, degrees × 10^7")
	fs.StringVar(&r.reported, "reported", "", "report: shadow fields, k=v,… (integers as numbers)")
	fs.Int64Var(&r.applied, "applied", 0, "report: the desired-state version the device applied")
}

func (r *reportFlags) any() bool {
	return r.firmware != "" || r.measurement != "" || r.tamper || r.battery >= 0 || r.lat != 0 || r.lon != 0 || r.reported != "" || r.applied > 0
}

// report is the flags' report, nil when none was given. Without an event
// or an amount, the request is a report alone (event "state").
func (r *reportFlags) report() (*wire.Report, error) {
	if !r.any() {
		return nil, nil
	}
	rep := &wire.Report{Firmware: r.firmware, Tamper: r.tamper, Applied: uint64(max(r.applied, 0))}
	switch {
	case strings.HasPrefix(r.measurement, "@"):
		b, err := os.ReadFile(r.measurement[1:])
		if err != nil {
			return nil, err
		}
		h := sha256.Sum256(b)
		rep.Measurement = h[:]
	case r.measurement != "":
		m, err := hex.DecodeString(r.measurement)
		if err != nil {
			return nil, fmt.Errorf("--measurement: %w", err)
		}
		rep.Measurement = m
	}
	if r.battery >= 0 {
		rep.Battery = &r.battery
	}
	if r.lat != 0 || r.lon != 0 {
		rep.LatE7, rep.LonE7 = &r.lat, &r.lon
	}
	for _, kv := range list(r.reported) {
		k, v, _ := strings.Cut(kv, "=")
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			if rep.Num == nil {
				rep.Num = map[string]int64{}
			}
			rep.Num[k] = n
		} else {
			if rep.Str == nil {
				rep.Str = map[string]string{}
			}
			rep.Str[k] = v
		}
	}
	return rep, nil
}

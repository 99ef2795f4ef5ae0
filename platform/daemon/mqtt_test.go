package daemon_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/tls"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	devmqtt "github.com/iotpay/iotpay/device/mqtt"
	"github.com/iotpay/iotpay/platform/daemon"
	"github.com/iotpay/iotpay/platform/mqtt"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/wire"
)

// mosquittoTimeout bounds one run of a mosquitto client.
const mosquittoTimeout = 20 * time.Second

// needMosquitto skips (or, under CI, fails) without the mosquitto clients.
func needMosquitto(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("mosquitto_pub"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("mosquitto_pub not installed: make test installs it (scripts/setup.sh)")
		}
		t.Skip("mosquitto clients not installed (apt-get install mosquitto-clients)")
	}
}

// mosquittoCmd is a mosquitto client (mosquitto_pub, mosquitto_sub) run
// against the platform's broker over TLS 1.3.
func (f *fixture) mosquittoCmd(ctx context.Context, bin string, args ...string) *exec.Cmd {
	_, port, _ := strings.Cut(f.d.MQTTAddr(), "]:")
	if port == "" {
		_, port, _ = strings.Cut(f.d.MQTTAddr(), ":")
	}
	args = append([]string{"-h", "127.0.0.1", "-p", port, "--tls-version", "tlsv1.3", "-d"}, args...)
	return exec.CommandContext(ctx, bin, args...)
}

// mosquitto runs a mosquitto client to its end and returns its output.
func (f *fixture) mosquitto(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), mosquittoTimeout)
	defer cancel()
	out, err := f.mosquittoCmd(ctx, bin, args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %v: timed out; output: %s", bin, args, out)
	}
	t.Logf("%s %s: err=%v output:\n%s", bin, strings.Join(args, " "), err, out)
	return string(out)
}

// certArgs writes a CA, a certificate and its P-256 key and returns the
// mosquitto arguments presenting them.
func certArgs(t *testing.T, ca, cert []byte, key crypto.Signer) []string {
	t.Helper()
	dir := t.TempDir()
	k, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("key is a %T", key)
	}
	keyPEM, err := pki.EncodeKeyPEM(k)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"ca.pem": ca, "cert.pem": cert, "key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"--cafile", filepath.Join(dir, "ca.pem"), "--cert", filepath.Join(dir, "cert.pem"), "--key", filepath.Join(dir, "key.pem")}
}

// deviceArgs are the mosquitto arguments of f's device: its certificate
// and key, the platform CA, its id as client id.
func (f *fixture) deviceArgs(t *testing.T) []string {
	id := f.dev.Identity()
	return append(certArgs(t, pki.EncodeCertPEM(id.CA), pki.EncodeCertPEM(id.Cert), id.Signer), "-i", string(id.ID))
}

// presence returns the presence GET /v1/devices/{id} shows.
func (f *fixture) presence(id iotpay.DeviceID) *registry.Presence {
	var d struct{ Presence *registry.Presence }
	f.must("GET", "/v1/devices/"+string(id), nil, &d)
	return d.Presence
}

// awaitPresence polls the operator API until the device's presence
// satisfies ok; presence is recorded asynchronously, through the writer.
func (f *fixture) awaitPresence(t *testing.T, id iotpay.DeviceID, what string, ok func(*registry.Presence) bool) *registry.Presence {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := f.presence(id)
		if p != nil && ok(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("presence of %s never %s; last %+v", id, what, p)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func offlineFor(reason string) func(*registry.Presence) bool {
	return func(p *registry.Presence) bool { return !p.Online && p.Reason == reason }
}

func online(p *registry.Presence) bool { return p.Online }

// signRequest has f's device sign a payment and returns the request file.
func (f *fixture) signRequest(t *testing.T, p device.Payment) (string, *device.Signed) {
	t.Helper()
	s, err := f.dev.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "request.cose")
	if err := os.WriteFile(file, s.Raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return file, s
}

// TestMosquittoClients pays with mosquitto_pub (MQTT 5 and 3.1.1, TLS 1.3,
// the device certificate) and checks, with mosquitto_pub and
// mosquitto_sub, each MQTT attack case: refused with its reason code on
// the wire, no money moved, the ledger balanced.
func TestMosquittoClients(t *testing.T) {
	needMosquitto(t)
	f := setup(t, "")
	f.tr.Close() // the Go SDK's connection; mosquitto is the device now
	dev := f.dev.Identity().ID
	args := f.deviceArgs(t)

	t.Run("pay", func(t *testing.T) {
		for i, version := range []string{"mqttv5", "mqttv311"} {
			file, s := f.signRequest(t, dispense())
			payer := f.balance(f.payer)
			out := f.mosquitto(t, "mosquitto_pub", append(args, "-V", version, "-q", "1", "-t", wire.PayTopic(string(dev)), "-f", file)...)
			if !strings.Contains(out, "received CONNACK (0)") || !strings.Contains(out, "received PUBACK") {
				t.Fatalf("%s: no CONNACK 0 and PUBACK", version)
			}
			// The payment was booked: the receipt went to the receipt topic
			// (mosquitto_pub does not read it; the SDK redelivers the same
			// bytes and gets the stored receipt, byte for byte).
			f.awaitBalance(t, f.payer, payer-250)
			tr, err := devmqtt.Dial(context.Background(), devmqtt.Config{Addr: f.d.MQTTAddr(), TLS: f.dev.Identity().TLSConfig("127.0.0.1"), DeviceID: dev})
			if err != nil {
				t.Fatal(err)
			}
			rc, err := f.dev.Send(context.Background(), tr, s)
			tr.Close()
			if err != nil || rc.Outcome != wire.Approved {
				t.Fatalf("payment %d: receipt %+v, %v", i, rc, err)
			}
			if got := f.balance(f.payer); got != payer-250 {
				t.Fatalf("redelivery moved money again: %d", got)
			}
		}
		f.assertBalanced()
	})

	payer, merchant := f.balance(f.payer), f.balance(f.merchant)
	file, _ := f.signRequest(t, dispense())

	t.Run("certificate from another CA", func(t *testing.T) {
		other, err := pki.NewCA("other", time.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		key := newP256(t)
		csr, _ := pki.NewCSR(key, string(dev))
		forged, err := other.SignDeviceCSR(csr, dev, "ten_x")
		if err != nil {
			t.Fatal(err)
		}
		a := append(certArgs(t, pki.EncodeCertPEM(f.d.CA.Cert), pki.EncodeCertPEM(forged), key), "-i", string(dev))
		out := f.mosquitto(t, "mosquitto_pub", append(a, "-V", "mqttv5", "-q", "1", "-t", wire.PayTopic(string(dev)), "-f", file)...)
		if strings.Contains(out, "received CONNACK") {
			t.Fatal("a certificate of another CA got past the TLS handshake")
		}
	})

	t.Run("expired certificate", func(t *testing.T) {
		past := *f.d.CA
		past.Now = func() time.Time { return time.Now().Add(-pki.DeviceLifetime - time.Hour) }
		key := newP256(t)
		csr, _ := pki.NewCSR(key, string(dev))
		expired, err := past.SignDeviceCSR(csr, dev, "ten_x")
		if err != nil {
			t.Fatal(err)
		}
		a := append(certArgs(t, pki.EncodeCertPEM(f.d.CA.Cert), pki.EncodeCertPEM(expired), key), "-i", string(dev))
		out := f.mosquitto(t, "mosquitto_pub", append(a, "-V", "mqttv5", "-q", "1", "-t", wire.PayTopic(string(dev)), "-f", file)...)
		if strings.Contains(out, "received CONNACK") {
			t.Fatal("an expired certificate got past the TLS handshake")
		}
	})

	t.Run("another tenant's device topics", func(t *testing.T) {
		other := f.otherTenantDevice(t)
		out := f.mosquitto(t, "mosquitto_pub", append(args, "-V", "mqttv5", "-q", "1", "-t", wire.PayTopic(string(other)), "-f", file)...)
		if !strings.Contains(out, "Publish 1 failed: Not authorized") { // PUBACK 0x87
			t.Fatal("publish on another tenant's device's pay topic not refused with 0x87")
		}
		out = f.mosquitto(t, "mosquitto_sub", append(args, "-V", "mqttv5", "-q", "1", "-t", wire.ReceiptTopic(string(other)), "-E")...)
		if !strings.Contains(out, "Subscribed (mid: 1): 135") { // SUBACK 0x87
			t.Fatal("subscription to another tenant's device's receipts not refused with 0x87")
		}
	})

	t.Run("client id of another device", func(t *testing.T) {
		a := append(args[:len(args)-2:len(args)-2], "-i", "dev_01JAAAAAAAAAAAAAAAAAAAAAAA")
		out := f.mosquitto(t, "mosquitto_pub", append(a, "-V", "mqttv5", "-q", "1", "-t", wire.PayTopic(string(dev)), "-f", file)...)
		if !strings.Contains(out, "received CONNACK (133)") { // 0x85
			t.Fatal("client id of another device not refused with CONNACK 0x85")
		}
		out = f.mosquitto(t, "mosquitto_pub", append(a, "-V", "mqttv311", "-q", "1", "-t", wire.PayTopic(string(dev)), "-f", file)...)
		if !strings.Contains(out, "received CONNACK (2)") { // 3.1.1: identifier rejected
			t.Fatal("client id of another device not refused with CONNACK 2 over 3.1.1")
		}
	})

	t.Run("oversized publish", func(t *testing.T) {
		big := filepath.Join(t.TempDir(), "big")
		if err := os.WriteFile(big, bytes.Repeat([]byte{0xa5}, mqtt.PayloadBytesMax+100), 0o600); err != nil {
			t.Fatal(err)
		}
		out := f.mosquitto(t, "mosquitto_pub", append(args, "-V", "mqttv5", "-q", "1", "-t", wire.PayTopic(string(dev)), "-f", big)...)
		if !strings.Contains(out, "eceived DISCONNECT (149)") && !strings.Contains(out, "packet too large") { // 0x95
			t.Fatal("oversized publish not refused with 0x95")
		}
	})

	t.Run("will on a foreign topic", func(t *testing.T) {
		for topic, code := range map[string]string{
			wire.PayTopic(string(dev)):                         "135",
			wire.StatusTopic("dev_01JAAAAAAAAAAAAAAAAAAAAAAA"): "135",
		} {
			out := f.mosquitto(t, "mosquitto_pub", append(args, "-V", "mqttv5", "-q", "1", "-t", wire.StatusTopic(string(dev)), "-m", "online",
				"--will-topic", topic, "--will-payload", "forged")...)
			if !strings.Contains(out, "received CONNACK ("+code+")") {
				t.Fatalf("will on %s: no CONNACK %s", topic, code)
			}
		}
	})

	t.Run("revoked device disconnected live", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), mosquittoTimeout)
		defer cancel()
		var out bytes.Buffer
		sub := f.mosquittoCmd(ctx, "mosquitto_sub", append(args, "-V", "mqttv5", "-q", "1", "-t", wire.ReceiptTopic(string(dev)))...)
		sub.Stdout, sub.Stderr = &out, &out
		if err := sub.Start(); err != nil {
			t.Fatal(err)
		}
		defer sub.Process.Kill()
		f.awaitPresence(t, dev, "online", online)
		f.must("POST", "/v1/devices/"+string(dev)+"/revoke", nil, nil)
		sub.Wait()
		t.Logf("mosquitto_sub output:\n%s", out.String())
		if !strings.Contains(out.String(), "eceived DISCONNECT (152)") && !strings.Contains(out.String(), "administrative action") { // 0x98
			t.Fatal("revoked device's live session not ended with DISCONNECT 0x98")
		}
		f.awaitPresence(t, dev, "offline", offlineFor(mqtt.ReasonAdministrative))
		o := f.mosquitto(t, "mosquitto_pub", append(args, "-V", "mqttv5", "-q", "1", "-t", wire.PayTopic(string(dev)), "-f", file)...)
		if !strings.Contains(o, "received CONNACK (135)") {
			t.Fatal("revoked device not refused with CONNACK 0x87")
		}
	})

	f.assertUnmoved(t, payer, merchant)
}

// awaitBalance waits for an account's balance: a payment over MQTT is
// acknowledged (PUBACK) before it is booked.
func (f *fixture) awaitBalance(t *testing.T, id iotpay.AccountID, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for f.balance(id) != want {
		if time.Now().After(deadline) {
			t.Fatalf("balance of %s is %d, want %d", id, f.balance(id), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// otherTenantDevice creates a second tenant with an active device and
// returns the device.
func (f *fixture) otherTenantDevice(t *testing.T) iotpay.DeviceID {
	t.Helper()
	ctx := context.Background()
	ten, _, err := f.d.Registry.Bootstrap(ctx, "rival")
	if err != nil {
		t.Fatal(err)
	}
	var dev struct{ Product iotpay.ProductID }
	f.must("GET", "/v1/devices/"+string(f.dev.Identity().ID), nil, &dev)
	p := &registry.Product{Tenant: ten.ID, Name: "rival", Merchant: iotpay.AccountID(iotpay.NewID(iotpay.PrefixAccount, time.Now(), nil)),
		Pricing: registry.Pricing{Mode: registry.PriceAmount, Currency: "EUR"}}
	if err := f.d.Registry.CreateProduct(ctx, p); err != nil {
		t.Fatal(err)
	}
	d, token, err := f.d.Registry.CreateDevice(ctx, ten.ID, p.ID, "rival", "")
	if err != nil {
		t.Fatal(err)
	}
	key := newP256(t)
	if _, err := device.Enroll(ctx, nil, f.url, d.ID, token, key); err != nil {
		t.Fatal(err)
	}
	return d.ID
}

// TestMQTTPresence: the device's presence through the operator API as its
// connection comes and goes: connect, clean disconnect, a reconnection
// that takes over the session, a killed client, a keepalive timeout that
// publishes its will.
func TestMQTTPresence(t *testing.T) {
	f := setup(t, "")
	dev := f.dev.Identity().ID
	p := f.awaitPresence(t, dev, "online", online)
	if p.Transport != mqtt.Transport || p.Remote == "" || p.Since.IsZero() || p.LastActivity.IsZero() {
		t.Fatalf("presence %+v", p)
	}

	f.tr.Close() // a clean DISCONNECT
	f.awaitPresence(t, dev, "offline", offlineFor(mqtt.ReasonDisconnected))

	// Two connections one after the other: the second takes the session
	// over, and the first one's end does not make the device offline.
	dial := func() *devmqtt.Transport {
		tr, err := devmqtt.Dial(context.Background(), devmqtt.Config{Addr: f.d.MQTTAddr(), TLS: f.dev.Identity().TLSConfig("127.0.0.1"), DeviceID: dev})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	dial()
	first := f.awaitPresence(t, dev, "online", online)
	second := dial()
	p = f.awaitPresence(t, dev, "online again", func(p *registry.Presence) bool {
		return p.Online && p.Since.After(first.Since) || p.Remote != first.Remote
	})
	if rc, err := f.dev.Pay(context.Background(), second, dispense()); err != nil || rc.Outcome != wire.Approved {
		t.Fatalf("payment after takeover: %+v, %v", rc, err)
	}
	if q := f.presence(dev); !q.Online {
		t.Fatalf("device offline after its old connection ended: %+v", q)
	}
	second.Close()
	f.awaitPresence(t, dev, "offline", offlineFor(mqtt.ReasonDisconnected))

	if _, err := exec.LookPath("mosquitto_sub"); err != nil {
		t.Skip("mosquitto clients not installed")
	}
	args := f.deviceArgs(t)
	sub := func(extra ...string) *exec.Cmd {
		ctx, cancel := context.WithTimeout(context.Background(), mosquittoTimeout)
		t.Cleanup(cancel)
		cmd := f.mosquittoCmd(ctx, "mosquitto_sub", append(append(args, "-V", "mqttv5", "-q", "1", "-t", wire.ReceiptTopic(string(dev))), extra...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			t.Logf("mosquitto_sub %v:\n%s", extra, out.String())
		})
		return cmd
	}

	// A client killed: its socket closes without a DISCONNECT.
	killed := sub()
	f.awaitPresence(t, dev, "online", online)
	killed.Process.Kill()
	f.awaitPresence(t, dev, "offline", offlineFor(mqtt.ReasonConnectionLost))

	// A client that stops (SIGSTOP: its socket stays open, silent) with a
	// keepalive of 5 s, mosquitto's least: the broker ends it after 1.5
	// keepalives and publishes its will, which becomes the device's status.
	silent := sub("-k", "5", "--will-topic", wire.StatusTopic(string(dev)), "--will-payload", `{"state":"gone"}`, "--will-qos", "1")
	f.awaitPresence(t, dev, "online", online)
	if err := silent.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	p = f.awaitPresence(t, dev, "offline", offlineFor(mqtt.ReasonKeepaliveTimeout))
	if p.Status != `{"state":"gone"}` {
		t.Fatalf("will not recorded as the status: %+v", p)
	}
	silent.Process.Signal(syscall.SIGCONT)
}

// TestMQTTEnrollment enrolls an intl and a gm device over MQTT with their
// one-time tokens (TLS 1.3, no client certificate yet), then each
// reconnects with its new certificate and pays. A wrong or used token is
// refused at CONNECT, a bad CSR answered "invalid" with nothing issued.
func TestMQTTEnrollment(t *testing.T) {
	f := setup(t, "")
	ctx := context.Background()
	var dev struct{ Product iotpay.ProductID }
	f.must("GET", "/v1/devices/"+string(f.dev.Identity().ID), nil, &dev)
	payer := f.balance(f.payer)
	paid := int64(0)

	for _, suite := range []string{wire.SuiteIntl, wire.SuiteGM} {
		t.Run(suite, func(t *testing.T) {
			var created struct {
				Device struct{ ID iotpay.DeviceID }
				Token  string `json:"enrollment_token"`
			}
			f.must("POST", "/v1/devices", map[string]any{"product": dev.Product, "name": "mqtt-" + suite, "suite": suite}, &created)
			id := created.Device.ID
			keys, err := device.CreateKeys(t.TempDir(), suite, []byte("passphrase"))
			if err != nil {
				t.Fatal(err)
			}
			defer keys.Close()
			over := func(token string) func(context.Context, []byte) ([]byte, error) {
				return func(ctx context.Context, req []byte) ([]byte, error) {
					return devmqtt.Enroll(ctx, devmqtt.EnrollConfig{Addr: f.d.MQTTAddr(),
						TLS: &tls.Config{RootCAs: f.d.CA.Pool(), ServerName: "127.0.0.1"}, DeviceID: id, Token: token}, req)
				}
			}

			_, err = keys.EnrollOver(ctx, over("not-the-token"), id, "not-the-token")
			if iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
				t.Fatalf("wrong token: %v, want unauthorized", err)
			}
			// A CSR for no key of the suite's: answered, nothing issued.
			bad := func(ctx context.Context, req []byte) ([]byte, error) {
				req = bytes.Replace(req, []byte(`"csr":"`), []byte(`"csr":"garbage`), 1)
				return over(created.Token)(ctx, req)
			}
			if _, err := keys.EnrollOver(ctx, bad, id, created.Token); iotpay.ErrorCode(err) != iotpay.EINVALID {
				t.Fatalf("bad CSR: %v, want invalid", err)
			}
			var d struct{ Status string }
			f.must("GET", "/v1/devices/"+string(id), nil, &d)
			if d.Status != "pending" {
				t.Fatalf("device %s after a refused enrollment", d.Status)
			}

			en, err := keys.EnrollOver(ctx, over(created.Token), id, created.Token)
			if err != nil {
				t.Fatal(err)
			}
			if en.Suite != suite || (suite == wire.SuiteGM) != (en.TransportCertificate != "") {
				t.Fatalf("enrollment %+v", en)
			}
			if _, err := keys.EnrollOver(ctx, over(created.Token), id, created.Token); iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
				t.Fatalf("used token: %v, want unauthorized", err)
			}

			ident, err := keys.Identity(en)
			if err != nil {
				t.Fatal(err)
			}
			d2, err := device.New(*ident, stateWith(en.Challenge))
			if err != nil {
				t.Fatal(err)
			}
			f.must("POST", "/v1/mandates", map[string]any{"device": id, "payer": f.payer, "per_payment_limit": 500,
				"daily_limit": 1000, "monthly_limit": 10000}, nil)
			tr, err := devmqtt.Dial(ctx, devmqtt.Config{Addr: f.d.MQTTAddr(), TLS: ident.TLSConfig("127.0.0.1"), DeviceID: id})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			rc, err := d2.Pay(ctx, tr, dispense())
			if err != nil || rc.Outcome != wire.Approved {
				t.Fatalf("payment after MQTT enrollment: %+v, %v", rc, err)
			}
			paid += 250
		})
	}
	if got := f.balance(f.payer); got != payer-paid {
		t.Fatalf("payer balance %d, want %d", got, payer-paid)
	}
	f.assertBalanced()
}

// TestPresenceResetAtStart: a device a previous run left online (a crash:
// no disconnect recorded) is offline once iotpayd starts again.
func TestPresenceResetAtStart(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	cfg := daemon.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", DeviceHTTPAddr: "127.0.0.1:0", CoAPAddr: "127.0.0.1:0"}
	d, err := daemon.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ten, _, err := d.Registry.Bootstrap(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	p := &registry.Product{Tenant: ten.ID, Name: "p", Merchant: iotpay.AccountID(iotpay.NewID(iotpay.PrefixAccount, time.Now(), nil)),
		Pricing: registry.Pricing{Mode: registry.PriceAmount, Currency: "EUR"}}
	if err := d.Registry.CreateProduct(ctx, p); err != nil {
		t.Fatal(err)
	}
	dev, _, err := d.Registry.CreateDevice(ctx, ten.ID, p.ID, "m", "")
	if err != nil {
		t.Fatal(err)
	}
	// What the broker of a run that crashed would have recorded last.
	err = d.Registry.RecordPresence(ctx, []registry.PresenceEvent{{Kind: registry.PresenceConnected, Device: dev.ID,
		Generation: time.Now().UnixNano(), At: time.Now(), Transport: mqtt.Transport, Remote: "192.0.2.1:4242"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	d, err = daemon.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	got, err := d.Registry.DevicePresence(ctx, ten.ID, dev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || got.Online || got.Reason != daemon.PresenceRestartReason || got.Remote != "192.0.2.1:4242" {
		t.Fatalf("presence after restart: %+v", got)
	}
}

package daemon_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	devcoap "github.com/iotpay/iotpay/device/coap"
	devhttps "github.com/iotpay/iotpay/device/https"
	devmqtt "github.com/iotpay/iotpay/device/mqtt"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/wire"
)

// attackTimeout bounds one attempt of a transport in the attack suite:
// every refusal is an answer or a closed channel, never a silence, so a
// short bound only shortens what a failing test waits.
const attackTimeout = 2 * time.Second

// suiteDevice is an enrolled device of one suite, its keys in memory and
// its state in a MemState.
type suiteDevice struct {
	id    *device.Identity
	dev   *device.Device
	state *device.MemState
}

// enrollAttacked registers a device of suite for product, enrolls it over the
// API with fresh keys (for gm an SM2 key and a P-256 transport key) and
// gives it a mandate on the fixture's payer.
func (f *fixture) enrollAttacked(t testing.TB, product iotpay.ProductID, suite string) *suiteDevice {
	t.Helper()
	var created struct {
		Device struct{ ID iotpay.DeviceID }
		Token  string `json:"enrollment_token"`
	}
	f.must("POST", "/v1/devices", map[string]any{"product": product, "name": "attacked", "suite": suite}, &created)
	signer, err := pki.GenerateKey(suite, nil)
	if err != nil {
		t.Fatal(err)
	}
	var transport crypto.Signer
	if suite == pki.SuiteGM {
		transport = newP256(t)
	}
	en, err := device.EnrollWith(context.Background(), nil, f.url, created.Device.ID, created.Token, signer, transport)
	if err != nil {
		t.Fatal(err)
	}
	id, err := en.IdentityWith(signer, transport)
	if err != nil {
		t.Fatal(err)
	}
	state := stateWith(en.Challenge)
	d, err := device.New(*id, state)
	if err != nil {
		t.Fatal(err)
	}
	f.must("POST", "/v1/mandates", map[string]any{"device": id.ID, "payer": f.payer, "per_payment_limit": 500,
		"daily_limit": 1 << 40, "monthly_limit": 1 << 40}, nil)
	return &suiteDevice{id: id, dev: d, state: state}
}

// access is one way a device reaches the platform.
type access struct {
	name string
	// dial opens a channel authenticated as id's device.
	dial func(t testing.TB, f *fixture, id *device.Identity) (device.Transport, io.Closer, error)
	// tooBig is what the transport's refusal of an envelope over
	// wire.EnvelopeBytesMax says; empty where the refusal is the channel
	// closed (MQTT drops the client, as MQTT 5 prescribes).
	tooBig string
	// revoked is what refusing a revoked device's next message says on a
	// channel opened after the revocation.
	revoked string
	// tlsConfig says the channel is (D)TLS with a client certificate, so
	// the certificate cases apply; nil for PSK.
	tlsConfig func(id *device.Identity) *tls.Config
}

var accesses = []access{
	{name: "mqtt", tooBig: "", revoked: "",
		dial: func(t testing.TB, f *fixture, id *device.Identity) (device.Transport, io.Closer, error) {
			return dialMQTT(f, id.ID, id.TLSConfig("127.0.0.1"))
		}, tlsConfig: func(id *device.Identity) *tls.Config { return id.TLSConfig("127.0.0.1") }},
	{name: "coap-cert", tooBig: "4.13", revoked: "4.01",
		dial: func(t testing.TB, f *fixture, id *device.Identity) (device.Transport, io.Closer, error) {
			return dialCoAPWith(f, devcoap.Config{TLS: id.TLSConfig("127.0.0.1")}, id.ID)
		}, tlsConfig: func(id *device.Identity) *tls.Config { return id.TLSConfig("127.0.0.1") }},
	{name: "coap-psk", tooBig: "4.13", revoked: "4.01",
		dial: func(t testing.TB, f *fixture, id *device.Identity) (device.Transport, io.Closer, error) {
			var psk struct{ Key string }
			if st := f.api("POST", "/v1/devices/"+string(id.ID)+"/psk", nil, &psk); st != 200 {
				return nil, nil, iotpay.Errorf(iotpay.EUNAUTHORIZED, "the API refused the PSK: status %d", st)
			}
			return dialCoAPWith(f, devcoap.Config{PSK: []byte(psk.Key)}, id.ID)
		}},
	{name: "https", tooBig: "413", revoked: "403",
		dial: func(t testing.TB, f *fixture, id *device.Identity) (device.Transport, io.Closer, error) {
			return dialHTTPS(f, id.TLSConfig("127.0.0.1"))
		}, tlsConfig: func(id *device.Identity) *tls.Config { return id.TLSConfig("127.0.0.1") }},
}

func (f *fixture) attemptsOr1() int { return max(f.attempts, 1) }

func dialMQTT(f *fixture, id iotpay.DeviceID, cfg *tls.Config) (device.Transport, io.Closer, error) {
	tr, err := devmqtt.Dial(context.Background(), devmqtt.Config{Addr: f.d.MQTTAddr(), TLS: cfg, DeviceID: id,
		Timeout: attackTimeout, Attempts: f.attemptsOr1()})
	return tr, tr, err
}

func dialCoAPWith(f *fixture, cfg devcoap.Config, id iotpay.DeviceID) (device.Transport, io.Closer, error) {
	cfg.Addr, cfg.DeviceID, cfg.Attempts = f.d.CoAPAddr(), id, f.attemptsOr1()
	if cfg.Timeout == 0 {
		cfg.Timeout = attackTimeout
	}
	tr, err := devcoap.Dial(context.Background(), cfg)
	return tr, tr, err
}

// dialHTTPS returns an HTTPS transport and, since it connects lazily,
// makes one exchange of nothing to have the TLS handshake done now: an
// empty body is refused 400 by a device endpoint that accepted the
// handshake.
func dialHTTPS(f *fixture, cfg *tls.Config) (device.Transport, io.Closer, error) {
	tr, err := devhttps.New(devhttps.Config{URL: f.deviceURL(), TLS: cfg, Timeout: attackTimeout, Attempts: f.attemptsOr1()})
	if err != nil {
		return nil, nil, err
	}
	_, err = tr.Exchange(context.Background(), nil, func([]byte) bool { return false })
	if err != nil && !strings.Contains(err.Error(), "400") {
		tr.Close()
		return nil, nil, err
	}
	return tr, tr, nil
}

// attack is one message sent to the platform and how it must be refused.
type attack struct {
	name string
	// run makes the attack over tr as (or against) device a, with b
	// another device of the same suite; it returns the bytes to send, or
	// does the whole exchange itself and returns nil.
	run func(t *testing.T, e *attackEnv) []byte
	// code is the rejection's code; "" when run checks the answer itself.
	code iotpay.Code
}

// attackEnv is what an attack works with.
type attackEnv struct {
	f       *fixture
	a, b    *suiteDevice
	acc     access
	tr      device.Transport
	otherSM wire.Suite // the suite a is not in
	other   crypto.Signer
	// payer and merchant are the balances the attack must leave.
	payer, merchant int64
}

// mark takes the balances as they are now as the ones to keep.
func (e *attackEnv) mark() { e.payer, e.merchant = e.f.balance(e.f.payer), e.f.balance(e.f.merchant) }

func (e *attackEnv) sign(t *testing.T) *device.Signed {
	t.Helper()
	s, err := e.a.dev.Sign(dispense())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// pay makes one approved payment of a over the channel.
func (e *attackEnv) pay(t *testing.T, s *device.Signed) *wire.Receipt {
	t.Helper()
	rc, err := e.a.dev.Send(context.Background(), e.tr, s)
	if err != nil || rc.Outcome != wire.Approved {
		t.Fatalf("a genuine payment: %+v, %v", rc, err)
	}
	return rc
}

// messageAttacks are the attacks on the payment message, run over every
// access in both suites.
var messageAttacks = []attack{
	{name: "exact redelivery is answered once", run: func(t *testing.T, e *attackEnv) []byte {
		s := e.sign(t)
		first := e.pay(t, s)
		e.mark() // the first delivery pays; the redelivery must not
		again, err := e.a.dev.Send(context.Background(), e.tr, s)
		if err != nil || again.Outcome != wire.Approved || again.PaymentID != first.PaymentID ||
			*again.LogIndex != *first.LogIndex || again.TimeMs != first.TimeMs {
			t.Fatalf("redelivery: %+v, %v; want the first receipt %+v", again, err, first)
		}
		return nil
	}},
	{name: "replay with a changed body", code: iotpay.EREPLAY, run: func(t *testing.T, e *attackEnv) []byte {
		s := e.sign(t)
		e.pay(t, s)
		e.mark()
		r := s.Request
		r.Nonce = bytes.Repeat([]byte{7}, wire.NonceBytes) // same request id and counter, another body
		return signAs(t, e.a.id.Suite, e.a.id.Signer, &r)
	}},
	{name: "counter rollback", code: iotpay.EREPLAY, run: func(t *testing.T, e *attackEnv) []byte {
		// The device restored from a backup: its counter one behind.
		st, _ := e.a.state.Load()
		if st.Counter == 0 {
			t.Fatal("no payment before the rollback")
		}
		rewound := &device.MemState{}
		rewound.Save(device.State{Counter: st.Counter - 1, Challenge: st.Challenge})
		old, err := device.New(*e.a.id, rewound)
		if err != nil {
			t.Fatal(err)
		}
		s, err := old.Sign(dispense())
		if err != nil || s.Request.Counter != st.Counter {
			t.Fatalf("rewound counter %v, want %d (%v)", s, st.Counter, err)
		}
		return s.Raw
	}},
	{name: "signed by another device's key", code: iotpay.EUNAUTHORIZED, run: func(t *testing.T, e *attackEnv) []byte {
		s := e.sign(t)
		return signAs(t, e.a.id.Suite, e.b.id.Signer, &s.Request)
	}},
	{name: "request of another device on this channel", code: iotpay.EUNAUTHORIZED, run: func(t *testing.T, e *attackEnv) []byte {
		s, err := e.b.dev.Sign(dispense())
		if err != nil {
			t.Fatal(err)
		}
		return s.Raw
	}},
	{name: "downgrade to the other suite", code: iotpay.EUNAUTHORIZED, run: func(t *testing.T, e *attackEnv) []byte {
		s := e.sign(t)
		key := e.other // an SM2 key for an intl device
		if e.a.id.Transport != nil {
			key = e.a.id.Transport // a gm device's own P-256 key, certified by the platform CA: ES256
		}
		return signAs(t, e.otherSM, key, &s.Request)
	}},
	{name: "a flipped bit in the signature", code: iotpay.EUNAUTHORIZED, run: func(t *testing.T, e *attackEnv) []byte {
		raw := bytes.Clone(e.sign(t).Raw)
		raw[len(raw)-3] ^= 0x40
		return raw
	}},
	{name: "truncated envelope", code: iotpay.EINVALID, run: func(t *testing.T, e *attackEnv) []byte {
		raw := e.sign(t).Raw
		return raw[:len(raw)/2]
	}},
	{name: "garbled envelope", code: iotpay.EINVALID, run: func(t *testing.T, e *attackEnv) []byte {
		return append([]byte{0xd2, 0x84, 0x43, 0xa1, 0x01}, bytes.Repeat([]byte{0xff}, 64)...)
	}},
	{name: "not CBOR at all", code: iotpay.EINVALID, run: func(t *testing.T, e *attackEnv) []byte {
		return []byte("pay me")
	}},
	{name: "oversized envelope", run: func(t *testing.T, e *attackEnv) []byte {
		raw := append(bytes.Clone(e.sign(t).Raw), make([]byte, wire.EnvelopeBytesMax)...)
		rc, err := exchange(context.Background(), e.tr, e.a.id, raw)
		switch {
		case err == nil && (rc.Outcome != wire.Rejected || rc.Code != string(iotpay.EINVALID)):
			t.Fatalf("oversized: %s %s (%s)", rc.Outcome, rc.Code, rc.Reason)
		case err == nil:
			t.Logf("refused: signed %s %s (%s)", rc.Outcome, rc.Code, rc.Reason)
		case e.acc.tooBig != "" && !strings.Contains(err.Error(), e.acc.tooBig):
			t.Fatalf("oversized: %v, want %s", err, e.acc.tooBig)
		default:
			t.Logf("refused: %v", err)
		}
		return nil
	}},
}

func signAs(t *testing.T, s wire.Suite, key crypto.Signer, r *wire.Request) []byte {
	t.Helper()
	raw, err := wire.SignRequest(s, key, rand.Reader, r)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestAttacks is the attack suite: every attack on a payment message, over
// every access (MQTT, CoAP/DTLS with a certificate and with a PSK, HTTPS),
// in both suites, through a running platform; then the attacks on the
// channel (a certificate expired or from another CA, a wrong PSK) and a
// revoked device. Each is refused with a clear reason — a signed receipt's
// status and code, or the transport's — and moves no money: the balances
// are unchanged and the ledger checks after each.
func TestAttacks(t *testing.T) {
	f := setup(t, "")
	f.must("POST", "/v1/accounts/"+string(f.payer)+"/fund", map[string]any{"amount": 100000}, nil)
	var dev struct{ Product iotpay.ProductID }
	f.must("GET", "/v1/devices/"+string(f.dev.ID()), nil, &dev)
	otherSM2, err := pki.GenerateKey(pki.SuiteGM, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, suite := range []string{pki.SuiteIntl, pki.SuiteGM} {
		t.Run(suite, func(t *testing.T) {
			a, b := f.enrollAttacked(t, dev.Product, suite), f.enrollAttacked(t, dev.Product, suite)
			otherSuite := wire.GM
			if suite == pki.SuiteGM {
				otherSuite = wire.Intl
			}
			for _, acc := range accesses {
				t.Run(acc.name, func(t *testing.T) {
					tr, closer, err := acc.dial(t, f, a.id)
					if err != nil {
						t.Fatal(err)
					}
					defer func() { closer.Close() }()
					for _, at := range messageAttacks {
						t.Run(at.name, func(t *testing.T) {
							e := &attackEnv{f: f, a: a, b: b, acc: acc, tr: tr, otherSM: otherSuite, other: otherSM2}
							e.mark()
							raw := at.run(t, e)
							if raw != nil {
								rc, err := exchange(ctx, tr, a.id, raw)
								if err != nil {
									t.Fatalf("no answer: %v", err)
								}
								if rc.Outcome != wire.Rejected || rc.Code != string(at.code) || rc.Reason == "" {
									t.Errorf("answered %s %s %q, want rejected %s with a reason", rc.Outcome, rc.Code, rc.Reason, at.code)
								}
							}
							f.assertUnmoved(t, e.payer, e.merchant)
						})
						if at.tooBigCloses(acc) { // the channel was dropped: a new one
							closer.Close()
							if tr, closer, err = acc.dial(t, f, a.id); err != nil {
								t.Fatal(err)
							}
						}
					}
				})
			}
			t.Run("channel", func(t *testing.T) { channelAttacks(t, f, a) })
			t.Run("revoked device", func(t *testing.T) { revokedAttack(t, f, a) })
		})
	}
}

// tooBigCloses says the attack is the oversized envelope on an access
// that answers it by dropping the channel.
func (at attack) tooBigCloses(acc access) bool {
	return at.name == "oversized envelope" && acc.tooBig == ""
}

// channelAttacks: a channel authenticated by a certificate expired or from
// another CA, or by a wrong PSK, is refused at the handshake.
func channelAttacks(t *testing.T, f *fixture, a *suiteDevice) {
	key := newP256(t)
	csr, err := pki.NewCSR(key, string(a.id.ID))
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := pki.NewCA("other", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := otherCA.SignDeviceCSR(csr, a.id.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	past := *f.d.CA
	past.Now = func() time.Time { return time.Now().Add(-pki.DeviceLifetime - time.Hour) }
	expired, err := past.SignDeviceCSR(csr, a.id.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	with := func(cfg *tls.Config, der []byte) *tls.Config {
		cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}
		// Present it whatever CAs the server names.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cfg.Certificates[0], nil }
		return cfg
	}
	e := &attackEnv{f: f}
	e.mark()
	for _, acc := range accesses {
		if acc.tlsConfig == nil {
			continue
		}
		for _, c := range []struct {
			name string
			der  []byte
		}{{"expired certificate", expired.Raw}, {"certificate from another CA", foreign.Raw}} {
			t.Run(acc.name+"/"+c.name, func(t *testing.T) {
				tr, closer, err := accessWith(f, acc, a.id.ID, with(acc.tlsConfig(a.id), c.der))
				if err == nil {
					_, err = exchange(context.Background(), tr, a.id, []byte("pay me"))
					closer.Close()
				}
				if err == nil {
					t.Fatal("the channel was accepted")
				}
				t.Logf("refused: %v", err)
			})
		}
	}
	for _, c := range []struct {
		name string
		psk  []byte
	}{{"wrong PSK", bytes.Repeat([]byte("0"), 32)}, {"another device's PSK", mustPSK(t, f, f.dev.ID())}} {
		t.Run("coap-psk/"+c.name, func(t *testing.T) {
			// A wrong PSK fails the Finished check; pion answers nothing,
			// so the device's handshake times out: a short bound.
			if _, closer, err := dialCoAPWith(f, devcoap.Config{PSK: c.psk, Timeout: time.Second}, a.id.ID); err == nil {
				closer.Close()
				t.Fatal("the handshake succeeded")
			} else {
				t.Logf("refused: %v", err)
			}
		})
	}
	f.assertUnmoved(t, e.payer, e.merchant)
}

// accessWith opens acc's kind of channel with cfg.
func accessWith(f *fixture, acc access, id iotpay.DeviceID, cfg *tls.Config) (device.Transport, io.Closer, error) {
	switch acc.name {
	case "mqtt":
		return dialMQTT(f, id, cfg)
	case "coap-cert":
		return dialCoAPWith(f, devcoap.Config{TLS: cfg}, id)
	}
	return dialHTTPS(f, cfg)
}

// revokedAttack: a device revoked while its channels are open is refused
// at its next message on each, and on any channel it opens after; the API
// no longer hands out its PSK.
func revokedAttack(t *testing.T, f *fixture, a *suiteDevice) {
	ctx := context.Background()
	open := make([]device.Transport, len(accesses))
	for i, acc := range accesses {
		tr, closer, err := acc.dial(t, f, a.id)
		if err != nil {
			t.Fatalf("%s: %v", acc.name, err)
		}
		defer closer.Close()
		open[i] = tr
	}
	e := &attackEnv{f: f}
	e.mark()
	f.must("POST", "/v1/devices/"+string(a.id.ID)+"/revoke", nil, nil)
	refused := func(t *testing.T, tr device.Transport, want string) {
		t.Helper()
		rc, err := a.dev.Pay(ctx, tr, dispense())
		switch {
		case err == nil && (rc.Outcome != wire.Rejected || rc.Code != string(iotpay.EUNAUTHORIZED)):
			t.Fatalf("a revoked device's payment: %s %s (%s)", rc.Outcome, rc.Code, rc.Reason)
		case err == nil:
			t.Logf("refused: signed %s %s (%s)", rc.Outcome, rc.Code, rc.Reason)
		case !strings.Contains(err.Error(), want):
			t.Fatalf("a revoked device's payment: %v, want %q", err, want)
		default:
			t.Logf("refused: %v", err)
		}
	}
	for i, acc := range accesses {
		t.Run(acc.name+"/open channel", func(t *testing.T) { refused(t, open[i], "") })
		t.Run(acc.name+"/new channel", func(t *testing.T) {
			dial := acc.dial
			if acc.name == "coap-psk" {
				if st := f.api("POST", "/v1/devices/"+string(a.id.ID)+"/psk", nil, nil); st != 409 {
					t.Errorf("the API's PSK of a revoked device: status %d, want 409", st)
				}
				dial = func(t testing.TB, f *fixture, id *device.Identity) (device.Transport, io.Closer, error) {
					return dialCoAPWith(f, devcoap.Config{PSK: mustPSK(t, f, id.ID)}, id.ID)
				}
			}
			tr, closer, err := dial(t, f, a.id)
			if err != nil {
				t.Logf("refused: %v", err)
				return
			}
			defer closer.Close()
			refused(t, tr, acc.revoked)
		})
	}
	f.assertUnmoved(t, e.payer, e.merchant)
}

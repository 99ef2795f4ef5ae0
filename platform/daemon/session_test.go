package daemon_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm2"
	"github.com/fxamacker/cbor/v2"
	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	devcoap "github.com/iotpay/iotpay/device/coap"
	devhttps "github.com/iotpay/iotpay/device/https"
	devmqtt "github.com/iotpay/iotpay/device/mqtt"
	"github.com/iotpay/iotpay/platform/daemon"
	"github.com/iotpay/iotpay/wire"
)

// secureDevice is a device of a suite enrolled on the fixture's platform,
// with a mandate of 50.00 a payment and a day on the fixture's payer.
type secureDevice struct {
	dev *device.Device
	id  *device.Identity
}

// enrollSuite enrolls a new device of the fixture's product in suite.
func (f *fixture) enrollSuite(t *testing.T, suite string) *secureDevice {
	t.Helper()
	var dev struct{ Product iotpay.ProductID }
	f.must("GET", "/v1/devices/"+string(f.dev.ID()), nil, &dev)
	return f.enrollProduct(t, suite, dev.Product)
}

// enrollProduct enrolls a new device of product in suite.
func (f *fixture) enrollProduct(t *testing.T, suite string, product iotpay.ProductID) *secureDevice {
	t.Helper()
	ctx := context.Background()
	var created struct {
		Device struct{ ID iotpay.DeviceID }
		Token  string `json:"enrollment_token"`
	}
	f.must("POST", "/v1/devices", map[string]any{"product": product, "name": "secure " + suite, "suite": suite}, &created)
	var (
		en  *device.Enrollment
		id  *device.Identity
		err error
	)
	if suite == wire.SuiteGM {
		keys, kerr := device.CreateKeys(t.TempDir(), wire.SuiteGM, []byte("passphrase"))
		if kerr != nil {
			t.Fatal(kerr)
		}
		t.Cleanup(func() { keys.Close() })
		if en, err = keys.Enroll(ctx, nil, f.url, created.Device.ID, created.Token); err == nil {
			id, err = keys.Identity(en)
		}
	} else {
		key, kerr := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if kerr != nil {
			t.Fatal(kerr)
		}
		if en, err = device.Enroll(ctx, nil, f.url, created.Device.ID, created.Token, key); err == nil {
			id, err = en.Identity(key)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	d, err := device.New(*id, stateWith(en.Challenge))
	if err != nil {
		t.Fatal(err)
	}
	f.must("POST", "/v1/mandates", map[string]any{"device": id.ID, "payer": f.payer, "per_payment_limit": 5000,
		"daily_limit": 100000, "monthly_limit": 100000}, nil)
	return &secureDevice{dev: d, id: id}
}

// transports dials each device transport for s: MQTT, CoAP/DTLS, HTTPS.
func (f *fixture) transports(t *testing.T, s *secureDevice) map[string]device.Transport {
	t.Helper()
	ctx := context.Background()
	mq, err := devmqtt.Dial(ctx, devmqtt.Config{Addr: f.d.MQTTAddr(), TLS: s.id.TLSConfig("127.0.0.1"), DeviceID: s.id.ID, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mq.Close() })
	co, err := devcoap.Dial(ctx, devcoap.Config{Addr: f.d.CoAPAddr(), DeviceID: s.id.ID, TLS: s.id.TLSConfig("127.0.0.1"), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { co.Close() })
	hs, err := devhttps.New(devhttps.Config{URL: f.deviceURL(), TLS: s.id.TLSConfig("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hs.Close() })
	return map[string]device.Transport{"mqtt": mq, "coap": co, "https": hs}
}

// recorder remembers what a transport sent and the answers it took.
type recorder struct {
	device.Transport
	mu       sync.Mutex
	sent     [][]byte
	answered [][]byte
}

func (r *recorder) Exchange(ctx context.Context, req []byte, match func([]byte) bool) ([]byte, error) {
	r.mu.Lock()
	r.sent = append(r.sent, bytes.Clone(req))
	r.mu.Unlock()
	answer, err := r.Transport.Exchange(ctx, req, match)
	r.mu.Lock()
	r.answered = append(r.answered, bytes.Clone(answer))
	r.mu.Unlock()
	return answer, err
}

func (r *recorder) last() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent[len(r.sent)-1]
}

// TestSecureSessions: in each suite, over MQTT, CoAP and HTTPS, a device
// handshakes and pays through its end-to-end session (sealed request,
// sealed receipt); a second payment reuses the session; a platform that
// forgot the session (as after a restart) refuses it and the SDK
// handshakes again by itself; every sealed receipt carries the next
// challenge, and the ledger balances.
func TestSecureSessions(t *testing.T) {
	f := setup(t, "")
	f.must("POST", "/v1/accounts/"+string(f.payer)+"/fund", map[string]any{"amount": 10000}, nil)
	ctx := context.Background()
	paid := int64(0)
	for _, suite := range []string{wire.SuiteIntl, wire.SuiteGM} {
		s := f.enrollSuite(t, suite)
		for name, tr := range f.transports(t, s) {
			t.Run(suite+"/"+name, func(t *testing.T) {
				rec := &recorder{Transport: tr}
				s.dev.EndSession()
				rc, err := s.dev.PaySecure(ctx, rec, dispense())
				if err != nil || rc.Outcome != wire.Approved || len(rc.Challenge) != wire.ChallengeBytes {
					t.Fatalf("secure payment: %+v, %v", rc, err)
				}
				if !wire.IsHello(rec.sent[0]) || !wire.IsEncrypt0(rec.last()) || len(rec.sent) != 2 {
					t.Fatalf("sent %d messages; want a hello and a sealed request", len(rec.sent))
				}
				// What crossed the transport is sealed both ways: neither the
				// request id nor the payment id shows.
				if !wire.IsEncrypt0(rec.answered[1]) || bytes.Contains(rec.sent[1], []byte("rq_")) || bytes.Contains(rec.answered[1], []byte(rc.PaymentID)) {
					t.Fatal("the request or its receipt crossed the transport in clear")
				}
				sid := s.dev.SessionID()
				if rc, err := s.dev.PaySecure(ctx, rec, dispense()); err != nil || rc.Outcome != wire.Approved {
					t.Fatalf("second secure payment: %+v, %v", rc, err)
				}
				if !bytes.Equal(s.dev.SessionID(), sid) || len(rec.sent) != 3 {
					t.Fatal("the second payment did not reuse the session")
				}
				// The platform forgets its sessions (a restart): the SDK is
				// refused, handshakes again and pays.
				f.d.Processor.EndSessions(s.id.ID)
				if rc, err := s.dev.PaySecure(ctx, rec, dispense()); err != nil || rc.Outcome != wire.Approved {
					t.Fatalf("payment after the session was lost: %+v, %v", rc, err)
				}
				if bytes.Equal(s.dev.SessionID(), sid) || len(rec.sent) != 6 || !wire.IsHello(rec.sent[4]) {
					t.Fatalf("no new handshake after the session was lost (%d messages)", len(rec.sent))
				}
				paid += 3 * 250
				if got := f.balance(f.payer); got != 12000-paid {
					t.Errorf("payer balance = %d, want %d", got, 12000-paid)
				}
				f.assertBalanced()
			})
		}
	}
}

// TestSecureSessionAttacks: each attack on the envelopes of a session is
// refused with a signed rejection and a clear reason, and no money moves:
// a replayed sealed request, a replayed hello, truncated, garbled and
// oversized envelopes, a downgrade to the other suite's cipher or
// signature, a sealed request on another device's channel, and a session
// the platform does not know.
func TestSecureSessionAttacks(t *testing.T) {
	f := setup(t, "")
	ctx := context.Background()
	other := f.enrollSuite(t, wire.SuiteIntl)
	for _, suite := range []string{wire.SuiteIntl, wire.SuiteGM} {
		t.Run(suite, func(t *testing.T) {
			s := f.enrollSuite(t, suite)
			ws, _ := wire.SuiteByName(suite)
			rec := &recorder{Transport: f.transports(t, s)["mqtt"]}
			if rc, err := s.dev.PaySecure(ctx, rec, dispense()); err != nil || rc.Outcome != wire.Approved {
				t.Fatalf("secure payment: %+v, %v", rc, err)
			}
			hello, sealed := rec.sent[0], rec.last()
			payer, merchant := f.balance(f.payer), f.balance(f.merchant)

			// refused sends raw on dev's channel and checks the signed
			// rejection it gets.
			refused := func(t *testing.T, dev iotpay.DeviceID, raw []byte, code iotpay.Code, reason string) {
				t.Helper()
				res := f.d.Processor.HandlePay(ctx, dev, raw)
				pub, rs := s.id.PlatformKey, ws
				if dev == other.id.ID {
					pub, rs = other.id.PlatformKey, wire.Intl
				}
				rc, err := wire.OpenReceipt(rs, pub, res)
				if err != nil {
					t.Fatalf("answer is no signed receipt: %v", err)
				}
				if rc.Outcome != wire.Rejected || rc.Code != string(code) || rc.Reason != reason || !rc.For(rs.Hash(raw), string(dev)) {
					t.Errorf("answer %s %s %q, want rejected %s %q", rc.Outcome, rc.Code, rc.Reason, code, reason)
				}
				f.assertUnmoved(t, payer, merchant)
			}
			t.Run("replayed request", func(t *testing.T) {
				// Over the real transport, as an attacker on the path would.
				answer, err := rec.Transport.Exchange(ctx, sealed, func([]byte) bool { return true })
				if err != nil {
					t.Fatal(err)
				}
				rc, err := wire.OpenReceipt(ws, s.id.PlatformKey, answer)
				if err != nil || rc.Code != string(iotpay.EREPLAY) || rc.Reason != "message 0 replayed" {
					t.Fatalf("replay answered %+v, %v", rc, err)
				}
				f.assertUnmoved(t, payer, merchant)
			})
			t.Run("replayed hello", func(t *testing.T) {
				refused(t, s.id.ID, hello, iotpay.EREPLAY, "hello replayed")
			})
			t.Run("truncated", func(t *testing.T) {
				refused(t, s.id.ID, sealed[:len(sealed)-3], iotpay.EINVALID, "malformed envelope")
			})
			t.Run("garbled", func(t *testing.T) {
				g := bytes.Clone(sealed)
				g[len(g)-5] ^= 0x40
				g = resealedSeq(t, g, 1) // a fresh number, so the window lets it through to the AEAD
				refused(t, s.id.ID, g, iotpay.EUNAUTHORIZED, "verification failed: message does not decrypt under the session's key")
			})
			t.Run("oversized", func(t *testing.T) {
				big := append(bytes.Clone(sealed), make([]byte, wire.EnvelopeBytesMax)...)
				refused(t, s.id.ID, big, iotpay.EINVALID, fmt.Sprintf("envelope of %d bytes exceeds %d", len(big), wire.EnvelopeBytesMax))
			})
			t.Run("downgrade cipher", func(t *testing.T) {
				alg := wire.AlgA128GCM
				if suite == wire.SuiteIntl {
					alg = wire.AlgSM4GCM
				}
				g := resealedSeq(t, withProtectedAlg(t, sealed, alg), 2)
				own := wire.AlgA128GCM + wire.AlgSM4GCM - alg
				refused(t, s.id.ID, g, iotpay.EUNAUTHORIZED, fmt.Sprintf("verification failed: alg %d is not suite %s's %d", alg, suite, own))
			})
			t.Run("downgrade signature", func(t *testing.T) {
				// A hello in the other suite: a gm device's, signed ES256 by
				// its P-256 transport key, which the platform CA certified;
				// an intl device's, signed SM2.
				os, key := wire.Intl, s.id.Transport
				if suite == wire.SuiteIntl {
					os, key = wire.GM, sm2Key(t)
				}
				x, _ := wire.NewEphemeral(os, rand.Reader)
				h, err := wire.SignHello(os, key, rand.Reader, &wire.Hello{V: wire.Version, Device: string(s.id.ID), Suite: os.Name(), Key: x.Public(), TimeMs: time.Now().UnixMilli()})
				if err != nil {
					t.Fatal(err)
				}
				refused(t, s.id.ID, h, iotpay.EUNAUTHORIZED, "verification failed")
			})
			t.Run("another device's session", func(t *testing.T) {
				refused(t, other.id.ID, resealedSeq(t, sealed, 3), iotpay.EUNAUTHORIZED, "session is not this device's")
			})
			t.Run("revoked device", func(t *testing.T) {
				r := f.enrollSuite(t, suite)
				rrec := &recorder{Transport: f.transports(t, r)["https"]}
				if rc, err := r.dev.PaySecure(ctx, rrec, dispense()); err != nil || rc.Outcome != wire.Approved {
					t.Fatalf("secure payment: %+v, %v", rc, err)
				}
				payer, merchant = f.balance(f.payer), f.balance(f.merchant)
				f.must("POST", "/v1/devices/"+string(r.id.ID)+"/revoke", nil, nil)
				// Its session ended with it: even on a channel a transport
				// still let through, a sealed request is refused.
				res := f.d.Processor.ProcessSealed(ctx, r.id.ID, resealedSeq(t, rrec.last(), 9))
				if res.Outcome != wire.Rejected || res.Reason != "unknown or expired session" {
					t.Errorf("revoked device's session: %s %q", res.Outcome, res.Reason)
				}
				f.assertUnmoved(t, payer, merchant)
			})
			t.Run("unknown session", func(t *testing.T) {
				f.d.Processor.EndSessions(s.id.ID)
				refused(t, s.id.ID, sealed, iotpay.EUNAUTHORIZED, "unknown or expired session")
			})
		})
	}
}

// encrypt0Parts splits a COSE_Encrypt0 with the cbor package alone.
func encrypt0Parts(t *testing.T, b []byte) []cbor.RawMessage {
	t.Helper()
	var tag cbor.RawTag
	if err := cbor.Unmarshal(b, &tag); err != nil || tag.Number != 16 {
		t.Fatalf("not a COSE_Encrypt0: %v", err)
	}
	var m []cbor.RawMessage
	if err := cbor.Unmarshal(tag.Content, &m); err != nil || len(m) != 3 {
		t.Fatalf("not a COSE_Encrypt0: %v", err)
	}
	return m
}

// detCBOR encodes as iotpay does: deterministic (RFC 8949 §4.2.1), which
// the platform requires of a COSE_Encrypt0.
var detCBOR, _ = cbor.CoreDetEncOptions().EncMode()

func encrypt0Of(t *testing.T, m []cbor.RawMessage) []byte {
	t.Helper()
	b, err := detCBOR.Marshal(cbor.Tag{Number: 16, Content: m})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// resealedSeq is b with its Partial IV set to seq, the session id kept.
func resealedSeq(t *testing.T, b []byte, seq byte) []byte {
	t.Helper()
	m := encrypt0Parts(t, b)
	var u map[int][]byte
	if err := cbor.Unmarshal(m[1], &u); err != nil {
		t.Fatal(err)
	}
	u[6] = []byte{seq}
	m[1], _ = detCBOR.Marshal(u)
	return encrypt0Of(t, m)
}

// withProtectedAlg is b with alg in its protected header.
func withProtectedAlg(t *testing.T, b []byte, alg int64) []byte {
	t.Helper()
	m := encrypt0Parts(t, b)
	prot, _ := detCBOR.Marshal(map[int]int64{1: alg})
	m[0], _ = detCBOR.Marshal(prot)
	return encrypt0Of(t, m)
}

func sm2Key(t *testing.T) *sm2.PrivateKey {
	t.Helper()
	k, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestSecureSessionAfterRestart: iotpayd restarts and forgets every
// session; a device that still holds its session is refused once,
// handshakes again by itself and pays, in each suite; the ledger balances.
func TestSecureSessionAfterRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	open := func() *daemon.Daemon {
		d, err := daemon.Open(context.Background(), daemon.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
			DeviceHTTPAddr: "127.0.0.1:0", CoAPAddr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(); err != nil {
			d.Close()
			t.Fatal(err)
		}
		return d
	}
	d := open()
	f := &fixture{platform: &platform{t: t, d: d, url: "http://" + d.HTTPAddr()}}
	var acc struct{ ID iotpay.AccountID }
	f.must("POST", "/v1/accounts", map[string]any{"name": "merchant", "kind": "merchant", "currency": "EUR"}, &acc)
	f.merchant = acc.ID
	var prod struct{ ID iotpay.ProductID }
	f.must("POST", "/v1/products", map[string]any{"name": "vending", "merchant_account": f.merchant,
		"pricing": map[string]any{"mode": "metered", "event": "dispense", "unit": "units", "per_units": 1, "price_minor": 250, "currency": "EUR"}}, &prod)
	f.must("POST", "/v1/accounts", map[string]any{"name": "payer", "kind": "payer", "currency": "EUR"}, &acc)
	f.payer = acc.ID
	f.must("POST", "/v1/accounts/"+string(f.payer)+"/fund", map[string]any{"amount": 2000}, nil)
	devs := []*secureDevice{f.enrollProduct(t, wire.SuiteIntl, prod.ID), f.enrollProduct(t, wire.SuiteGM, prod.ID)}

	ctx := context.Background()
	pay := func(s *secureDevice) *recorder {
		t.Helper()
		tr, err := devmqtt.Dial(ctx, devmqtt.Config{Addr: f.d.MQTTAddr(), TLS: s.id.TLSConfig("127.0.0.1"), DeviceID: s.id.ID, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		rec := &recorder{Transport: tr}
		if rc, err := s.dev.PaySecure(ctx, rec, dispense()); err != nil || rc.Outcome != wire.Approved {
			t.Fatalf("secure payment: %+v, %v", rc, err)
		}
		return rec
	}
	sids := map[*secureDevice][]byte{}
	for _, s := range devs {
		pay(s)
		sids[s] = s.dev.SessionID()
	}
	key := d.APIKey
	d.Close()
	d = open()
	defer d.Close()
	d.APIKey = key // printed at the first start only
	f.d, f.url = d, "http://"+d.HTTPAddr()
	for _, s := range devs {
		rec := pay(s)
		// sealed (refused: unknown session), hello, sealed.
		if len(rec.sent) != 3 || !wire.IsHello(rec.sent[1]) || bytes.Equal(s.dev.SessionID(), sids[s]) {
			t.Errorf("%s: %d messages after the restart, want a refused sealed request, a hello and the sealed request", s.id.Suite.Name(), len(rec.sent))
		}
	}
	if got := f.balance(f.payer); got != 2000-4*250 {
		t.Errorf("payer balance = %d, want %d", got, 2000-4*250)
	}
	f.assertBalanced()
}

package coap_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	devcoap "github.com/iotpay/iotpay/device/coap"
	"github.com/iotpay/iotpay/platform/coap"
	"github.com/iotpay/iotpay/platform/pki"
)

// allow lets every device in.
type allow struct{}

func (allow) CheckDevice(context.Context, iotpay.DeviceID) error { return nil }

// echo answers a request with its own bytes, so the benchmarks measure
// the access path alone: DTLS, CoAP, identity, the checker.
type echo struct{}

func (echo) HandlePay(_ context.Context, _ iotpay.DeviceID, raw []byte) []byte { return raw }

// rig is a started server and a device's credentials for it.
type rig struct {
	srv    *coap.Server
	id     iotpay.DeviceID
	tls    *tls.Config
	secret []byte
}

func newRig(tb testing.TB) *rig {
	tb.Helper()
	ca, _, err := pki.LoadOrCreateCA(tb.TempDir(), time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	scert, skey, err := ca.IssueServerCert([]string{"127.0.0.1"})
	if err != nil {
		tb.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := pki.NewCSR(key, "device")
	if err != nil {
		tb.Fatal(err)
	}
	id := iotpay.DeviceID(iotpay.NewID(iotpay.PrefixDevice, time.Now(), nil))
	cert, err := ca.SignDeviceCSR(csr, id, "ten_test")
	if err != nil {
		tb.Fatal(err)
	}
	secret := make([]byte, coap.PSKSecretBytes)
	rand.Read(secret)
	srv, err := coap.New(coap.Config{Addr: "127.0.0.1:0", ClientCAs: ca.Pool(), PSKSecret: secret,
		Certificate: tls.Certificate{Certificate: [][]byte{scert.Raw, ca.Cert.Raw}, PrivateKey: skey, Leaf: scert}}, allow{}, echo{})
	if err != nil {
		tb.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	return &rig{srv: srv, id: id, secret: secret, tls: &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1",
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}}}}
}

// config is the device's transport configuration in mode.
func (r *rig) config(tb testing.TB, mode string) devcoap.Config {
	cfg := devcoap.Config{Addr: r.srv.Addr(), DeviceID: r.id}
	if mode == "psk" {
		k, err := coap.DerivePSK(r.secret, r.id)
		if err != nil {
			tb.Fatal(err)
		}
		cfg.PSK = k
	} else {
		cfg.TLS = r.tls
	}
	return cfg
}

var modes = []string{"certificate", "psk"}

// BenchmarkHandshake is one DTLS 1.2 handshake (ECDHE-ECDSA P-256 with
// client certificates, or PSK) and the close of the session.
func BenchmarkHandshake(b *testing.B) {
	r := newRig(b)
	for _, mode := range modes {
		b.Run(mode, func(b *testing.B) {
			cfg := r.config(b, mode)
			b.ReportAllocs()
			for b.Loop() {
				tr, err := devcoap.Dial(context.Background(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				tr.Close()
			}
		})
	}
}

// BenchmarkMessage is one POST /pay of a 300-byte body answered 2.04 with
// 300 bytes, on an established session.
func BenchmarkMessage(b *testing.B) {
	r := newRig(b)
	body := make([]byte, 300)
	for _, mode := range modes {
		b.Run(mode, func(b *testing.B) {
			tr, err := devcoap.Dial(context.Background(), r.config(b, mode))
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Close()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tr.Exchange(context.Background(), body, func([]byte) bool { return true }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestAccessPath runs both benchmarks' paths once, so the suite covers
// them, checks a body over the bound is refused with 4.13, and that
// Disconnect ends a device's live session.
func TestAccessPath(t *testing.T) {
	r := newRig(t)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tr, err := devcoap.Dial(context.Background(), r.config(t, mode))
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			got, err := tr.Exchange(context.Background(), []byte("ping"), func([]byte) bool { return true })
			if err != nil || string(got) != "ping" {
				t.Fatalf("exchange: %q, %v", got, err)
			}
			big := bytes.Repeat([]byte("0123456789"), coap.PayloadBytesMax/10) // block-wise both ways
			got, err = tr.Exchange(context.Background(), big, func([]byte) bool { return true })
			if err != nil || !bytes.Equal(got, big) {
				t.Fatalf("exchange of %d bytes: %d bytes back, %v", len(big), len(got), err)
			}
			_, err = tr.Exchange(context.Background(), make([]byte, coap.PayloadBytesMax+1), func([]byte) bool { return true })
			if iotpay.ErrorCode(err) != iotpay.EINVALID {
				t.Fatalf("oversized body: %v, want invalid (4.13)", err)
			}
			t.Logf("oversized: %v", err)
			if n := r.srv.SessionCount(r.id); n != 1 {
				t.Fatalf("%d live sessions, want 1", n)
			}
			r.srv.Disconnect(r.id) // as on revocation
			if _, err := tr.Exchange(context.Background(), []byte("ping"), func([]byte) bool { return true }); err == nil {
				t.Fatal("exchange on a disconnected session succeeded")
			}
			if n := r.srv.SessionCount(r.id); n != 0 {
				t.Fatalf("%d live sessions after Disconnect, want 0", n)
			}
		})
	}
}

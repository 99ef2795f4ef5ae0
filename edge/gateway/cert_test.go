package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/iotpay/iotpay"
	deviceedge "github.com/iotpay/iotpay/device/edge"
	"github.com/iotpay/iotpay/edge/lossy"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/wire"
)

// newCA is a platform CA, as platform/pki makes it.
func newCA(t testing.TB) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA("test platform CA", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// deviceCert is a device certificate of ca for id, as the platform issues
// it at enrollment (URI SAN urn:iotpay:device:<id>), with its key.
func deviceCert(t testing.TB, ca *pki.CA, id iotpay.DeviceID) tls.Certificate {
	t.Helper()
	key, err := pki.GenerateKey(pki.SuiteIntl, nil)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, string(id))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.SignDeviceCSR(csr, id, "ten_test")
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

// dialCert dials the gateway's DTLS port as the device of cert.
func dialCert(t testing.TB, g *Gateway, id iotpay.DeviceID, cert tls.Certificate, cfg deviceedge.Config) (*deviceedge.Transport, error) {
	t.Helper()
	cfg.DeviceID, cfg.TLS = id, &tls.Config{Certificates: []tls.Certificate{cert}}
	cfg.FCnt = cmpOrCounter(t, cfg.FCnt)
	if cfg.Addr == "" {
		cfg.Addr = g.DTLSAddr()
	}
	if cfg.BlockSize == 0 {
		cfg.BlockSize = BlockSize(g.cfg.Budget)
	}
	cfg.Timeout = max(cfg.Timeout, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := deviceedge.Dial(ctx, cfg)
	if err == nil {
		t.Cleanup(func() { tr.Close() })
	}
	return tr, err
}

func cmpOrCounter(t testing.TB, fc deviceedge.FrameCounter) deviceedge.FrameCounter {
	if fc != nil {
		return fc
	}
	return deviceedge.FileCounter{Path: filepath.Join(t.TempDir(), "fcnt")}
}

// exchange sends one envelope and checks the platform's answer.
func exchange(t testing.TB, tr *deviceedge.Transport, i, n int) []byte {
	t.Helper()
	req := envelope(i, n)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ans, err := tr.Exchange(ctx, req, matchReversed(req))
	if err != nil {
		t.Fatalf("exchange %d: %v", i, err)
	}
	if !bytes.Equal(ans, reverse(req)) {
		t.Fatalf("exchange %d: wrong answer", i)
	}
	return req
}

// TestCertificateRoundTrip: on one DTLS port, a device with a certificate
// of the platform CA (unpinned, and pinning the gateway's certificate) and
// a device with a PSK post frames of several blocks and get the
// platform's answers; the relays name the certificates' devices.
func TestCertificateRoundTrip(t *testing.T) {
	p := newPlatform(t)
	ca := newCA(t)
	gw := newID()
	g := startGateway(t, Config{ClientCAs: ca.Pool(), PSKSecret: testSecret, Uplink: UplinkConfig{GatewayID: gw}})
	if len(g.CertSHA256()) != 32 {
		t.Fatalf("CertSHA256 %x", g.CertSHA256())
	}
	var sent [][]byte
	for i, pin := range [][]byte{nil, g.CertSHA256()} {
		dev := newID()
		tr, err := dialCert(t, g, dev, deviceCert(t, ca, dev), deviceedge.Config{GatewayCertSHA256: pin})
		if err != nil {
			t.Fatalf("pin %x: %v", pin, err)
		}
		sent = append(sent, exchange(t, tr, 2*i, 40), exchange(t, tr, 2*i+1, 400))
		tr.Close()
	}
	psk := dialDevice(t, g, newID(), true, deviceedge.Config{})
	sent = append(sent, exchange(t, psk, 9, 300))
	relays := p.Relays(gw)
	checkOrder(t, relays, sent)
	if s := g.Stats(); s.Queued != 5 || s.Answered != 5 || s.Refused != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestCertificateRefused: a certificate of another CA, a wrong pin, and a
// PSK on a port serving certificates only all fail at the handshake; the
// right pin passes.
func TestCertificateRefused(t *testing.T) {
	needBroker(t)
	ca := newCA(t)
	g := startGateway(t, Config{ClientCAs: ca.Pool(), Uplink: UplinkConfig{GatewayID: newID()}}) // no PSK
	dev := newID()
	if _, err := dialCert(t, g, dev, deviceCert(t, newCA(t), dev), deviceedge.Config{}); iotpay.ErrorCode(err) != iotpay.EUNAVAILABLE {
		t.Errorf("a certificate of another CA: %v, want a failed handshake", err)
	}
	wrong := bytes.Clone(g.CertSHA256())
	wrong[0] ^= 1
	cert := deviceCert(t, ca, dev)
	if _, err := dialCert(t, g, dev, cert, deviceedge.Config{GatewayCertSHA256: wrong}); iotpay.ErrorCode(err) != iotpay.EUNAVAILABLE {
		t.Errorf("a wrong pin: %v, want a failed handshake", err)
	}
	if _, err := dialCert(t, g, dev, cert, deviceedge.Config{GatewayCertSHA256: g.CertSHA256()}); err != nil {
		t.Errorf("the right pin: %v", err)
	}
	// The port serves certificates only: a PSK device fails.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	psk, _ := DerivePSK(testSecret, dev)
	if tr, err := deviceedge.Dial(ctx, deviceedge.Config{Addr: g.DTLSAddr(), PSK: psk, DeviceID: dev, Timeout: 3 * time.Second,
		FCnt: cmpOrCounter(t, nil)}); err == nil {
		tr.Close()
		t.Errorf("a PSK handshake on a port without PSK passed")
	}
}

// TestCertificateSessionDevice: a frame naming another device than the
// certificate's is refused on its session, and nothing is stored; a
// frame naming it passes.
func TestCertificateSessionDevice(t *testing.T) {
	needBroker(t)
	ca := newCA(t)
	g := startGateway(t, Config{ClientCAs: ca.Pool(), AnswerWait: 10 * time.Millisecond, Uplink: UplinkConfig{GatewayID: newID()}})
	dev := newID()
	cc, err := coapdtls.Dial(g.DTLSAddr(), &piondtls.Config{Certificates: []tls.Certificate{deviceCert(t, ca, dev)},
		InsecureSkipVerify: true, CipherSuites: certSuites, ExtendedMasterSecret: piondtls.RequireExtendedMasterSecret})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	post := func(id iotpay.DeviceID, fcnt uint32) *wire.Frame {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := cc.Post(ctx, FramePath, message.AppCBOR, bytes.NewReader(messageFrame(t, id, fcnt, envelope(int(fcnt), 30))))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Code() != codes.Changed {
			t.Fatalf("code %v", resp.Code())
		}
		b, _ := resp.ReadBody()
		f, err := wire.ParseFrame(b)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	if f := post(newID(), 1); f.Kind != wire.FrameRefused {
		t.Errorf("a frame of another device on a certificate session: kind %d", f.Kind)
	}
	if n, _ := g.q.Len(); n != 0 {
		t.Errorf("queue holds %d records after the refusal", n)
	}
	if f := post(dev, 2); f.Kind != wire.FrameQueued && f.Kind != wire.FrameAnswer {
		t.Errorf("a frame of the certificate's device: kind %d", f.Kind)
	}
}

// TestServerCertKept: the DTLS certificate is made once, kept with its key
// (mode 0600) in the data directory, and served again after a restart.
func TestServerCertKept(t *testing.T) {
	needBroker(t)
	ca := newCA(t)
	dir := t.TempDir()
	cfg := Config{DataDir: dir, ClientCAs: ca.Pool(), Uplink: UplinkConfig{GatewayID: newID()}}
	g := startGateway(t, cfg)
	first := g.CertSHA256()
	fi, err := os.Stat(filepath.Join(dir, ServerCertFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", ServerCertFile, fi.Mode().Perm())
	}
	leaf, err := x509.ParseCertificate(mustLoad(t, filepath.Join(dir, ServerCertFile)).Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) != nil || len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("not a self-signed server certificate: %+v", leaf.ExtKeyUsage)
	}
	g.Close()
	g = startGateway(t, cfg)
	if !bytes.Equal(g.CertSHA256(), first) {
		t.Fatalf("certificate after a restart %x, before %x", g.CertSHA256(), first)
	}
	dev := newID()
	if _, err := dialCert(t, g, dev, deviceCert(t, ca, dev), deviceedge.Config{GatewayCertSHA256: first}); err != nil {
		t.Fatalf("the pin after a restart: %v", err)
	}
	os.WriteFile(filepath.Join(dir, ServerCertFile), []byte("damaged"), 0o600)
	if _, err := LoadOrCreateServerCert(filepath.Join(dir, ServerCertFile), time.Now(), nil); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("a damaged certificate file: %v", err)
	}
}

func mustLoad(t testing.TB, path string) tls.Certificate {
	t.Helper()
	c, err := LoadOrCreateServerCert(path, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCertDeviceMatchesPlatform: the copy of the URI SAN parsing agrees
// with platform/pki's.
func TestCertDeviceMatchesPlatform(t *testing.T) {
	if deviceURIPrefix != pki.DeviceURIPrefix {
		t.Fatalf("prefix %q, platform's %q", deviceURIPrefix, pki.DeviceURIPrefix)
	}
	ca := newCA(t)
	id := newID()
	leaf := deviceCert(t, ca, id).Leaf
	got, ok := certDevice(leaf)
	want, err := pki.DeviceID(leaf)
	if !ok || err != nil || got != want || got != id {
		t.Fatalf("certDevice %q %v, platform's %q %v", got, ok, want, err)
	}
	leaf.URIs[0].Opaque = "iotpay:device:x"
	if _, ok := certDevice(leaf); ok {
		t.Errorf("an invalid id was taken")
	}
}

// TestLossyCertificate: a certificate session through a link losing 10% of
// the datagrams each way: the handshake (several datagrams a flight)
// and frames of one and several blocks get through.
func TestLossyCertificate(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a lossy link")
	}
	p := newPlatform(t)
	ca := newCA(t)
	gw := newID()
	g := startGateway(t, Config{Logger: testLogger(t), ClientCAs: ca.Pool(), AnswerWait: 300 * time.Millisecond,
		Uplink: UplinkConfig{GatewayID: gw}})
	link, err := lossy.Listen("", g.DTLSAddr(), lossy.Config{Up: lossy.Impairment{Loss: 0.1}, Down: lossy.Impairment{Loss: 0.1}, Seed: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { link.Close() })
	dev := newID()
	cert := deviceCert(t, ca, dev)
	cfg := deviceedge.Config{Addr: link.Addr().String(), Attempts: 10, Timeout: 10 * time.Second,
		AckTimeout: 200 * time.Millisecond, GatewayCertSHA256: g.CertSHA256(), FCnt: cmpOrCounter(t, nil)}
	var tr *deviceedge.Transport
	for range 5 { // a handshake may lose a whole flight's retransmissions
		if tr, err = dialCert(t, g, dev, cert, cfg); err == nil {
			break
		}
		t.Logf("dial: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	var sent [][]byte
	for i, n := range []int{60, 300, 80} {
		sent = append(sent, exchange(t, tr, i, n))
	}
	checkOrder(t, p.Relays(gw), sent)
	s := link.Stats()
	t.Logf("up %d received %d dropped, down %d received %d dropped; gateway %+v",
		s.Up.Received, s.Up.Dropped, s.Down.Received, s.Down.Dropped, g.Stats())
}

package daemon_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	devcoap "github.com/iotpay/iotpay/device/coap"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/wire"
)

// coapClientTimeout bounds one coap-client run.
const coapClientTimeout = 20 * time.Second

// dialCoAP opens a CoAP/DTLS session for f's device, with its certificate
// or, when psk is set, with its derived pre-shared key.
func (f *fixture) dialCoAP(t *testing.T, psk bool) *devcoap.Transport {
	t.Helper()
	id := f.dev.Identity()
	cfg := devcoap.Config{Addr: f.d.CoAPAddr(), DeviceID: id.ID, Timeout: 5 * time.Second}
	if psk {
		k, err := f.d.DevicePSK(id.ID)
		if err != nil {
			t.Fatal(err)
		}
		cfg.PSK = k
	} else {
		cfg.TLS = id.TLSConfig("127.0.0.1")
	}
	tr, err := devcoap.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func TestCoAPPayment(t *testing.T) {
	for _, mode := range []string{"certificate", "psk"} {
		t.Run(mode, func(t *testing.T) {
			f := setup(t, "")
			tr := f.dialCoAP(t, mode == "psk")
			for i := range 2 {
				rc, err := f.dev.Pay(context.Background(), tr, dispense())
				if err != nil {
					t.Fatal(err)
				}
				if rc.Outcome != wire.Approved || rc.AmountMinor != 250 {
					t.Fatalf("payment %d: receipt = %+v", i, rc)
				}
			}
			if got := f.balance(f.payer); got != 1500 {
				t.Errorf("payer balance = %d, want 1500", got)
			}
			f.assertBalanced()
		})
	}
}

func TestCoAPRevokedDeviceIsRefused(t *testing.T) {
	for _, mode := range []string{"certificate", "psk"} {
		t.Run(mode, func(t *testing.T) {
			f := setup(t, "")
			tr := f.dialCoAP(t, mode == "psk")
			if _, err := f.dev.Pay(context.Background(), tr, dispense()); err != nil {
				t.Fatal(err)
			}
			payer, merchant := f.balance(f.payer), f.balance(f.merchant)
			f.must("POST", "/v1/devices/"+string(f.dev.Identity().ID)+"/revoke", nil, nil)
			// The live session is closed, and a new one is refused at its
			// first message.
			if _, err := f.dev.Pay(context.Background(), tr, dispense()); err == nil {
				t.Fatal("payment on the revoked device's old session succeeded")
			}
			_, err := f.dev.Pay(context.Background(), f.dialCoAP(t, mode == "psk"), dispense())
			if iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED || !strings.Contains(err.Error(), "4.01") {
				t.Fatalf("payment of a revoked device: %v, want 4.01 unauthorized", err)
			}
			f.assertUnmoved(t, payer, merchant)
		})
	}
}

func TestCoAPRefusedHandshakes(t *testing.T) {
	f := setup(t, "")
	id := f.dev.Identity()
	otherCA, _, err := pki.LoadOrCreateCA(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := pki.NewCSR(key, string(id.ID))
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := otherCA.SignDeviceCSR(csr, id.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	noCert := id.TLSConfig("127.0.0.1")
	noCert.Certificates = nil
	foreignCert := id.TLSConfig("127.0.0.1")
	foreignCert.Certificates[0].Certificate = [][]byte{foreign.Raw}
	foreignCert.Certificates[0].PrivateKey, foreignCert.Certificates[0].Leaf = key, foreign
	payer, merchant := f.balance(f.payer), f.balance(f.merchant)
	for _, c := range []struct {
		name string
		cfg  devcoap.Config
	}{
		{"no certificate", devcoap.Config{TLS: noCert}},
		{"certificate from another CA", devcoap.Config{TLS: foreignCert}},
		{"wrong PSK", devcoap.Config{PSK: make([]byte, 32)}},
		{"PSK of another identity", devcoap.Config{PSK: mustPSK(t, f, iotpay.DeviceID(iotpay.NewID(iotpay.PrefixDevice, time.Now(), nil)))}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.Addr, cfg.DeviceID, cfg.Timeout = f.d.CoAPAddr(), id.ID, 2*time.Second
			tr, err := devcoap.Dial(context.Background(), cfg)
			if err == nil {
				tr.Close()
				t.Fatal("handshake succeeded")
			}
			t.Logf("refused: %v", err)
		})
	}
	f.assertUnmoved(t, payer, merchant)
}

func mustPSK(t testing.TB, f *fixture, id iotpay.DeviceID) []byte {
	t.Helper()
	k, err := f.d.DevicePSK(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// coapClient returns the path of libcoap's coap-client built with OpenSSL
// (Debian libcoap3-bin: coap-client-openssl), failing the test without it.
func coapClient(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"coap-client-openssl", "coap-client"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("coap-client not installed: make test installs it (scripts/setup.sh, Debian libcoap3-bin)")
	return ""
}

// runCoAPClient posts the file body to /pay with coap-client and returns
// its output and the answer's payload.
func runCoAPClient(t *testing.T, f *fixture, body []byte, args ...string) (string, []byte) {
	t.Helper()
	bin := coapClient(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "request.cose"), filepath.Join(dir, "answer")
	if err := os.WriteFile(in, body, 0o600); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(f.d.CoAPAddr(), "]:")
	if port == "" {
		_, port, _ = strings.Cut(f.d.CoAPAddr(), ":")
	}
	ctx, cancel := context.WithTimeout(context.Background(), coapClientTimeout)
	defer cancel()
	args = append([]string{"-m", "post", "-B", "5", "-f", in, "-o", out}, args...)
	args = append(args, "coaps://127.0.0.1:"+port+"/pay")
	cmd := exec.CommandContext(ctx, bin, args...)
	log, _ := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("coap-client %v: timed out; output: %s", args, log)
	}
	t.Logf("coap-client %s: %q", strings.Join(args, " "), log)
	answer, _ := os.ReadFile(out)
	return string(log), answer
}

// pkiArgs writes f's device certificate, key and the CA and returns the
// coap-client arguments using them.
func pkiArgs(t *testing.T, f *fixture) []string {
	t.Helper()
	id := f.dev.Identity()
	dir := t.TempDir()
	key, ok := id.Signer.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("device key is a %T", id.Signer)
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"cert.pem": pki.EncodeCertPEM(id.Cert), "key.pem": keyPEM, "ca.pem": pki.EncodeCertPEM(id.CA)}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"-c", filepath.Join(dir, "cert.pem"), "-j", filepath.Join(dir, "key.pem"), "-R", filepath.Join(dir, "ca.pem")}
}

// pskArgs returns the coap-client arguments for f's device's PSK, as the
// operator API hands it out. The identity and key are in a hint file
// (coap-client -h: "hint,identity,key"), the defaults -u/-k wrong, so the
// handshake succeeds only if the server sends the hint the API names.
func pskArgs(t *testing.T, f *fixture) []string {
	id := f.dev.Identity().ID
	var psk struct{ Identity, Key, Hint string }
	f.must("POST", "/v1/devices/"+string(id)+"/psk", nil, &psk)
	if psk.Key != string(mustPSK(t, f, id)) || psk.Identity != string(id) {
		t.Fatalf("the API's PSK %+v is not the derived key", psk)
	}
	hints := filepath.Join(t.TempDir(), "psk-hints")
	if err := os.WriteFile(hints, []byte(psk.Hint+","+psk.Identity+","+psk.Key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"-h", hints, "-u", "nobody", "-k", "wrong"}
}

// TestCoAPClient pays with libcoap's coap-client, a third-party DTLS and
// CoAP implementation, with PKI and with PSK, and checks its refusals.
func TestCoAPClient(t *testing.T) {
	coapClient(t)
	f := setup(t, "")
	// "blockwise": the request in 64-byte blocks (RFC 7959 Block1).
	for _, mode := range []string{"pki", "psk", "blockwise"} {
		t.Run(mode, func(t *testing.T) {
			auth := pkiArgs(t, f)
			switch mode {
			case "psk":
				auth = pskArgs(t, f)
			case "blockwise":
				auth = append(auth, "-b", "64")
			}
			s, err := f.dev.Sign(dispense())
			if err != nil {
				t.Fatal(err)
			}
			log, answer := runCoAPClient(t, f, s.Raw, append([]string{"-t", "18"}, auth...)...)
			rc, err := f.dev.Open(s, answer)
			if err != nil {
				t.Fatalf("answer is no receipt: %v; coap-client said %q", err, log)
			}
			if rc.Outcome != wire.Approved || rc.AmountMinor != 250 {
				t.Fatalf("receipt = %+v", rc)
			}
		})
	}
	payer, merchant := f.balance(f.payer), f.balance(f.merchant)
	good, err := f.dev.Sign(dispense())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		body []byte
		args []string
		want string // in coap-client's output
	}{
		{"wrong content format", good.Raw, []string{"-t", "text/plain"}, "4.15"},
		{"oversized", make([]byte, 8192), []string{"-t", "application/octet-stream"}, "4.13"},
	} {
		t.Run(c.name, func(t *testing.T) {
			log, _ := runCoAPClient(t, f, c.body, append(c.args, pkiArgs(t, f)...)...)
			if !strings.Contains(log, c.want) {
				t.Fatalf("coap-client said %q, want %s", log, c.want)
			}
		})
	}
	t.Run("garbage", func(t *testing.T) {
		// Not a request at all: answered with a signed rejection.
		_, answer := runCoAPClient(t, f, []byte("pay me"), append([]string{"-t", "18"}, pkiArgs(t, f)...)...)
		id := f.dev.Identity()
		rc, err := wire.OpenReceipt(id.Suite, id.PlatformKey, answer)
		if err != nil || rc.Outcome != wire.Rejected || rc.Code != string(iotpay.EINVALID) {
			t.Fatalf("garbage: %+v, %v; want a signed rejection invalid", rc, err)
		}
	})
	f.assertUnmoved(t, payer, merchant)
}

// rebinding is a UDP socket whose local port can change under the DTLS
// session, as a NAT rebinding does.
type rebinding struct {
	mu     sync.Mutex
	cur    *net.UDPConn
	closed bool
}

// rebindPoll is how often a read looks for a rebinding.
const rebindPoll = 20 * time.Millisecond

func newRebinding(t *testing.T) *rebinding {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &rebinding{cur: c}
	t.Cleanup(func() { r.Close() })
	return r
}

// rebind moves to a new local port and closes the old one.
func (r *rebinding) rebind(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	old := r.cur
	r.cur = c
	r.mu.Unlock()
	old.Close()
	t.Logf("rebound %s -> %s", old.LocalAddr(), c.LocalAddr())
}

func (r *rebinding) conn() (*net.UDPConn, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur, r.closed
}

func (r *rebinding) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		c, closed := r.conn()
		if closed {
			return 0, nil, net.ErrClosed
		}
		_ = c.SetReadDeadline(time.Now().Add(rebindPoll))
		n, a, err := c.ReadFrom(p)
		var ne net.Error
		if err != nil && (errors.Is(err, net.ErrClosed) || errors.As(err, &ne) && ne.Timeout()) {
			continue // rebound, or time to look
		}
		return n, a, err
	}
}

func (r *rebinding) WriteTo(p []byte, a net.Addr) (int, error) {
	c, _ := r.conn()
	return c.WriteTo(p, a)
}

func (r *rebinding) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return r.cur.Close()
}

func (r *rebinding) LocalAddr() net.Addr {
	c, _ := r.conn()
	return c.LocalAddr()
}

func (*rebinding) SetDeadline(time.Time) error      { return nil }
func (*rebinding) SetReadDeadline(time.Time) error  { return nil }
func (*rebinding) SetWriteDeadline(time.Time) error { return nil }

// TestCoAPSessionSurvivesRebinding pays, moves the device to another
// source port without a new handshake, and pays again: the connection id
// (RFC 9146) routes its records to the same session.
func TestCoAPSessionSurvivesRebinding(t *testing.T) {
	f := setup(t, "")
	id := f.dev.Identity()
	pc := newRebinding(t)
	tr, err := devcoap.Dial(context.Background(), devcoap.Config{Addr: f.d.CoAPAddr(), DeviceID: id.ID,
		TLS: id.TLSConfig("127.0.0.1"), Timeout: 3 * time.Second, Attempts: 1, PacketConn: pc})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for i := range 3 {
		if i > 0 {
			pc.rebind(t)
		}
		rc, err := f.dev.Pay(context.Background(), tr, dispense())
		if err != nil {
			t.Fatalf("payment %d: %v", i, err)
		}
		if rc.Outcome != wire.Approved {
			t.Fatalf("payment %d: %+v", i, rc)
		}
	}
	f.assertBalanced()
}

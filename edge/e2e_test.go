package edge_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	devedge "github.com/iotpay/iotpay/device/edge"
	"github.com/iotpay/iotpay/edge/gateway"
	"github.com/iotpay/iotpay/edge/lossy"
	"github.com/iotpay/iotpay/internal/opapi"
	"github.com/iotpay/iotpay/platform/daemon"
	"github.com/iotpay/iotpay/wire"
)

// The edge end to end: a real iotpayd, a real iotpay-edge gateway with its
// own certificate on the platform's MQTT/TLS port, devices speaking CoAP to
// the gateway over UDP and DTLS-PSK, and between them what a low-power
// network does: an uplink that goes away, a gateway that is killed, a
// link that loses datagrams.

// world is a platform with a vending product (amounts, offline limits) and
// a gateway product.
type world struct {
	t         testing.TB
	d         *daemon.Daemon
	api       *opapi.Client
	merchant  iotpay.AccountID
	product   iotpay.ProductID
	gwProduct iotpay.ProductID
}

const (
	fund        = 5000
	offlineMax  = 1000
	offlineN    = 5
	defaultWait = 30 * time.Second
)

func newWorld(t testing.TB) *world {
	t.Helper()
	ctx := context.Background()
	d, err := daemon.Open(ctx, daemon.Config{DataDir: filepath.Join(t.TempDir(), "data"), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
		DeviceHTTPAddr: "127.0.0.1:0", CoAPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		d.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	w := &world{t: t, d: d, api: opapi.New("http://"+d.HTTPAddr(), d.APIKey, 8)}
	var acc struct{ ID iotpay.AccountID }
	w.must("POST", "/v1/accounts", map[string]any{"name": "merchant", "kind": "merchant", "currency": "EUR"}, &acc)
	w.merchant = acc.ID
	var prod struct{ ID iotpay.ProductID }
	w.must("POST", "/v1/products", map[string]any{"name": "meter", "merchant_account": w.merchant,
		"pricing": map[string]any{"mode": "amount", "currency": "EUR"}, "offline": map[string]any{"max_amount": offlineMax, "max_count": offlineN}}, &prod)
	w.product = prod.ID
	w.must("POST", "/v1/products", map[string]any{"name": "gateways", "kind": "gateway", "merchant_account": w.merchant,
		"pricing": map[string]any{"mode": "amount", "currency": "EUR"}}, &prod)
	w.gwProduct = prod.ID
	return w
}

func (w *world) must(method, path string, in, out any) {
	w.t.Helper()
	if err := w.api.Do(context.Background(), method, path, "", in, out); err != nil {
		w.t.Fatalf("%s %s: %v", method, path, err)
	}
}

// enroll creates and enrolls a device of product with a key of its own.
func (w *world) enroll(product iotpay.ProductID) (*device.Identity, []byte) {
	w.t.Helper()
	var created struct {
		Device struct{ ID iotpay.DeviceID }
		Token  string `json:"enrollment_token"`
	}
	w.must("POST", "/v1/devices", map[string]any{"product": product, "name": "d"}, &created)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	en, err := device.Enroll(context.Background(), nil, w.api.Base, created.Device.ID, created.Token, key)
	if err != nil {
		w.t.Fatal(err)
	}
	id, err := en.Identity(key)
	if err != nil {
		w.t.Fatal(err)
	}
	return id, en.Challenge
}

// payer is a device that pays from a wallet of its own under a mandate.
type payer struct {
	dev     *device.Device
	account iotpay.AccountID
	fcnt    string // its frame counter's file
}

func (w *world) payer() *payer {
	id, challenge := w.enroll(w.product)
	st := &device.MemState{}
	st.Save(device.State{Challenge: challenge})
	dev, err := device.New(*id, st)
	if err != nil {
		w.t.Fatal(err)
	}
	var acc struct{ ID iotpay.AccountID }
	w.must("POST", "/v1/accounts", map[string]any{"name": "payer", "kind": "payer", "currency": "EUR"}, &acc)
	w.must("POST", "/v1/accounts/"+string(acc.ID)+"/fund", map[string]any{"amount": fund}, nil)
	w.must("POST", "/v1/mandates", map[string]any{"device": dev.ID(), "payer": acc.ID, "per_payment_limit": 1000,
		"daily_limit": fund, "monthly_limit": fund}, nil)
	return &payer{dev: dev, account: acc.ID, fcnt: filepath.Join(w.t.TempDir(), "fcnt")}
}

func (w *world) balance(id iotpay.AccountID) int64 {
	w.t.Helper()
	var a struct{ Balance int64 }
	w.must("GET", "/v1/accounts/"+string(id), nil, &a)
	return a.Balance
}

func (w *world) assertBalanced() {
	w.t.Helper()
	var check struct{ Balanced bool }
	w.must("GET", "/v1/ledger/check", nil, &check)
	if !check.Balanced {
		w.t.Fatal("the ledger does not balance")
	}
}

// gatewayIdentity enrolls a gateway and returns its uplink settings.
func (w *world) gatewayIdentity(uplink string) gateway.UplinkConfig {
	up, _ := w.gateway(uplink)
	return up
}

// gateway enrolls a gateway and returns its uplink settings and the
// platform's CA.
func (w *world) gateway(uplink string) (gateway.UplinkConfig, *x509.Certificate) {
	id, _ := w.enroll(w.gwProduct)
	tc := id.TLSConfig("127.0.0.1")
	tc.MinVersion = tls.VersionTLS13
	return gateway.UplinkConfig{Addr: uplink, TLS: tc, GatewayID: id.ID}, id.CA
}

// startGateway starts a gateway on dir; addrs, when given, are the plain
// and DTLS addresses to bind again (after a restart).
func startGateway(t testing.TB, dir string, up gateway.UplinkConfig, secret []byte, addrs ...string) *gateway.Gateway {
	t.Helper()
	cfg := gateway.Config{DataDir: dir, CoAPAddr: "127.0.0.1:0", DTLSAddr: "127.0.0.1:0", PSKSecret: secret, Uplink: up,
		AnswerWait: 500 * time.Millisecond}
	if len(addrs) == 2 {
		cfg.CoAPAddr, cfg.DTLSAddr = addrs[0], addrs[1]
	}
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	return g
}

func pskSecret(t testing.TB) []byte {
	s := make([]byte, gateway.PSKSecretBytes)
	rand.Read(s)
	return s
}

// dial opens p's channel to the gateway: plain UDP at addr, or DTLS with
// its PSK when secret is not nil.
func (p *payer) dial(t testing.TB, addr string, secret []byte, timeout time.Duration) *devedge.Transport {
	t.Helper()
	cfg := devedge.Config{Addr: addr, DeviceID: p.dev.ID(), FCnt: devedge.FileCounter{Path: p.fcnt}, Timeout: timeout, Attempts: 2,
		AckTimeout: 300 * time.Millisecond}
	if secret != nil {
		psk, err := gateway.DerivePSK(secret, p.dev.ID())
		if err != nil {
			t.Fatal(err)
		}
		cfg.PSK = psk
	}
	tr, err := devedge.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func eur(n int64) *iotpay.Money { return &iotpay.Money{Amount: n, Currency: "EUR"} }

// TestPaymentsThroughTheGateway: devices pay through the gateway, over plain
// UDP (their requests are signed) and over DTLS-PSK, then sealed in an
// end-to-end session with the platform that the gateway cannot read; each
// receipt is the platform's, verified by the device.
func TestPaymentsThroughTheGateway(t *testing.T) {
	w := newWorld(t)
	secret := pskSecret(t)
	g := startGateway(t, t.TempDir(), w.gatewayIdentity(w.d.MQTTAddr()), secret)
	t.Cleanup(func() { g.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, dtls := range []bool{false, true} {
		p := w.payer()
		addr, s := g.Addr(), []byte(nil)
		if dtls {
			addr, s = g.DTLSAddr(), secret
		}
		tr := p.dial(t, addr, s, 5*time.Second)
		for i := range 3 {
			rc, err := p.dev.Pay(ctx, tr, device.Payment{Amount: eur(100)})
			if err != nil || rc.Outcome != wire.Approved {
				t.Fatalf("dtls=%v payment %d: %+v %v", dtls, i, rc, err)
			}
		}
		// Sealed end to end (a session with the platform): the gateway
		// carries what it cannot read.
		if err := p.dev.Handshake(ctx, tr); err != nil {
			t.Fatalf("dtls=%v: handshake through the gateway: %v", dtls, err)
		}
		rc, err := p.dev.PaySecure(ctx, tr, device.Payment{Amount: eur(100)})
		if err != nil || rc.Outcome != wire.Approved {
			t.Fatalf("dtls=%v: sealed payment: %+v %v", dtls, rc, err)
		}
		if b := w.balance(p.account); b != fund-400 {
			t.Fatalf("dtls=%v: payer balance %d", dtls, b)
		}
	}
	w.assertBalanced()
}

// uplinkProxy is a TCP proxy between the gateway and the platform's MQTT
// port, which a test cuts (every connection closed, none accepted) and
// mends.
type uplinkProxy struct {
	target string
	ln     net.Listener
	addr   string
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	cut    bool
	done   chan struct{}
}

func newUplinkProxy(t testing.TB, target string) *uplinkProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &uplinkProxy{target: target, ln: ln, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	go p.serve()
	t.Cleanup(func() { ln.Close(); <-p.done; p.setCut(true) })
	return p
}

func (p *uplinkProxy) serve() {
	defer close(p.done)
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go func() { io.Copy(up, c); up.Close(); c.Close() }()
		go func() { io.Copy(c, up); up.Close(); c.Close() }()
	}
}

// setCut cuts the uplink (closing what is open) or mends it.
func (p *uplinkProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

// pending is what a device sent and has no receipt for yet.
type pending struct {
	p *payer
	s *device.Signed
}

// collect polls each device's gateway channel until every pending request
// has its receipt, and returns how many were approved.
func collect(t *testing.T, ctx context.Context, trs map[*payer]*devedge.Transport, want []pending) int {
	t.Helper()
	left := append([]pending(nil), want...)
	approved := 0
	for len(left) > 0 {
		if ctx.Err() != nil {
			t.Fatalf("%d requests still without a receipt", len(left))
		}
		got := false
		for p, tr := range trs {
			body, err := tr.Poll(ctx)
			if err != nil || body == nil {
				continue
			}
			for i, q := range left {
				if q.p != p {
					continue
				}
				if rc, err := p.dev.Open(q.s, body); err == nil {
					got = true
					if rc.Outcome == wire.Approved {
						approved++
					} else {
						t.Errorf("request %s: %s %s %s", q.s.Request.RequestID, rc.Outcome, rc.Code, rc.Reason)
					}
					left = append(left[:i], left[i+1:]...)
					break
				}
			}
		}
		if !got {
			time.Sleep(100 * time.Millisecond)
		}
	}
	return approved
}

// TestUplinkCutAndGatewayKilled: while the uplink is cut, devices keep
// paying — an online request is stored, then offline payments within the
// product's limits — and the gateway process is killed (SIGKILL) with the
// messages queued, then started again on its data. When the uplink is
// back, every stored message reaches the platform in order and is settled
// exactly once, the answers wait for the devices' polls, and the ledger
// balances.
func TestUplinkCutAndGatewayKilled(t *testing.T) {
	w := newWorld(t)
	secret := pskSecret(t)
	proxy := newUplinkProxy(t, w.d.MQTTAddr())
	up, ca := w.gateway(proxy.addr)
	dir := t.TempDir()
	g := startChild(t, dir, up, ca, secret, "127.0.0.1:0", "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	payers := []*payer{w.payer(), w.payer(), w.payer()}
	trs := map[*payer]*devedge.Transport{}
	for _, p := range payers {
		trs[p] = p.dial(t, g.Plain, nil, 3*time.Second)
		if rc, err := p.dev.Pay(ctx, trs[p], device.Payment{Amount: eur(100)}); err != nil || rc.Outcome != wire.Approved {
			t.Fatalf("online payment: %+v %v", rc, err)
		}
	}

	proxy.setCut(true)
	var queued []pending
	lim := device.OfflineLimits{MaxAmount: offlineMax, MaxCount: offlineN}
	for _, p := range payers {
		// The platform is out of reach: the request is stored...
		s, err := p.dev.Sign(device.Payment{Amount: eur(100)})
		if err != nil {
			t.Fatal(err)
		}
		sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = p.dev.Send(sctx, trs[p], s)
		scancel()
		if !errors.Is(err, devedge.ErrQueued) {
			t.Fatalf("with the uplink cut: %v, want ErrQueued", err)
		}
		queued = append(queued, pending{p, s})
		// ...and the device goes on offline.
		for range 2 {
			s, err := p.dev.SignOffline(device.Payment{Amount: eur(200)}, lim)
			if err != nil {
				t.Fatal(err)
			}
			sctx, scancel := context.WithTimeout(ctx, time.Second)
			_, err = p.dev.Send(sctx, trs[p], s)
			scancel()
			if !errors.Is(err, devedge.ErrQueued) {
				t.Fatalf("offline with the uplink cut: %v, want ErrQueued", err)
			}
			queued = append(queued, pending{p, s})
		}
	}

	// The gateway is killed with its queue full, and comes back on it.
	g.kill(t)
	g = startChild(t, dir, up, ca, secret, g.Plain, g.DTLS)

	proxy.setCut(false)
	if n := collect(t, ctx, trs, queued); n != len(queued) {
		t.Fatalf("%d of %d stored payments approved", n, len(queued))
	}
	for _, p := range payers {
		if b := w.balance(p.account); b != fund-100-100-2*200 {
			t.Errorf("payer balance %d, want %d: a stored payment lost or paid twice", b, fund-600)
		}
	}
	w.assertBalanced()
}

// TestLossyLink: devices pay through the gateway across a link that loses
// 10% and then 30% of the datagrams each way, and duplicates, reorders and
// delays some: a request without an answer is sent again, unchanged, and
// every payment is settled exactly once; the ledger balances.
func TestLossyLink(t *testing.T) {
	for _, loss := range []float64{0.10, 0.30} {
		t.Run(fmt.Sprintf("loss %.0f percent", loss*100), func(t *testing.T) {
			w := newWorld(t)
			g := startGateway(t, t.TempDir(), w.gatewayIdentity(w.d.MQTTAddr()), pskSecret(t))
			t.Cleanup(func() { g.Close() })
			imp := lossy.Impairment{Loss: loss, Duplicate: 0.05, Reorder: 0.05, Delay: 2 * time.Millisecond, Jitter: 5 * time.Millisecond}
			link, err := lossy.Listen("127.0.0.1:0", g.Addr(), lossy.Config{Up: imp, Down: imp, Seed: int64(loss * 100)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { link.Close() })
			const devices, payments = 3, 4
			var wg sync.WaitGroup
			payers := make([]*payer, devices)
			for i := range payers {
				payers[i] = w.payer()
			}
			errs := make(chan error, devices)
			for _, p := range payers {
				tr := p.dial(t, link.Addr().String(), nil, 2*time.Second)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range payments {
						s, err := p.dev.Sign(device.Payment{Amount: eur(100)})
						if err != nil {
							errs <- err
							return
						}
						var rc *wire.Receipt
						for attempt := 0; attempt < 30; attempt++ {
							ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
							rc, err = p.dev.Send(ctx, tr, s) // the same bytes again: the platform is idempotent
							cancel()
							if err == nil {
								break
							}
						}
						if err != nil || rc.Outcome != wire.Approved {
							errs <- fmt.Errorf("%s: %+v %v", p.dev.ID(), rc, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			for _, p := range payers {
				if b := w.balance(p.account); b != fund-payments*100 {
					t.Errorf("payer balance %d, want %d", b, fund-payments*100)
				}
			}
			w.assertBalanced()
			st := link.Stats()
			t.Logf("link: up %+v, down %+v; gateway %+v", st.Up, st.Down, g.Stats())
		})
	}
}

// TestRunningScenario: devices pay continuously through the gateway while
// the uplink is cut under them and the gateway process is killed with its
// queue full, then started again, and the uplink mended. A device goes
// offline once its request is only stored (within its limits), online again
// once its answers are back. Every request a device sent is settled exactly
// once, and each payer paid exactly what its device signed for.
func TestRunningScenario(t *testing.T) {
	w := newWorld(t)
	secret := pskSecret(t)
	proxy := newUplinkProxy(t, w.d.MQTTAddr())
	up, ca := w.gateway(proxy.addr)
	dir := t.TempDir()
	g := startChild(t, dir, up, ca, secret, "127.0.0.1:0", "127.0.0.1:0")
	plain, dtlsAddr := g.Plain, g.DTLS
	lim := device.OfflineLimits{MaxAmount: offlineMax, MaxCount: offlineN}

	type run struct {
		p       *payer
		tr      *devedge.Transport
		mu      sync.Mutex
		waiting []*device.Signed // stored at the gateway, no receipt yet
		paid    int64            // what its receipts approved
		signed  int64            // what it signed for
	}
	var runs []*run
	for range 3 {
		p := w.payer()
		runs = append(runs, &run{p: p, tr: p.dial(t, plain, nil, 2*time.Second)})
	}
	// open takes any answer that waits at the gateway for r.
	open := func(r *run) {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			body, err := r.tr.Poll(ctx)
			cancel()
			if err != nil || body == nil {
				return
			}
			r.mu.Lock()
			for i, s := range r.waiting {
				if rc, err := r.p.dev.Open(s, body); err == nil {
					if rc.Outcome == wire.Approved {
						r.paid += rc.AmountMinor
					} else {
						t.Errorf("%s: %s %s %s", s.Request.RequestID, rc.Outcome, rc.Code, rc.Reason)
					}
					r.waiting = append(r.waiting[:i], r.waiting[i+1:]...)
					break
				}
			}
			r.mu.Unlock()
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				open(r)
				r.mu.Lock()
				offline := len(r.waiting) > 0
				r.mu.Unlock()
				var s *device.Signed
				var err error
				if offline {
					s, err = r.p.dev.SignOffline(device.Payment{Amount: eur(100)}, lim)
					if errors.Is(err, device.ErrOfflineLimit) {
						continue // at its limits: it waits for its answers
					}
				} else {
					s, err = r.p.dev.Sign(device.Payment{Amount: eur(100)})
				}
				if err != nil {
					t.Error(err)
					return
				}
				r.signed += 100
				// The same bytes until the gateway has them.
				for attempt := 0; ; attempt++ {
					ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
					rc, err := r.p.dev.Send(ctx, r.tr, s)
					cancel()
					if err == nil {
						if rc.Outcome != wire.Approved {
							t.Errorf("%s: %s %s %s", s.Request.RequestID, rc.Outcome, rc.Code, rc.Reason)
						}
						r.mu.Lock()
						r.paid += rc.AmountMinor
						r.mu.Unlock()
						break
					}
					if errors.Is(err, devedge.ErrQueued) || attempt == 40 {
						r.mu.Lock()
						r.waiting = append(r.waiting, s)
						r.mu.Unlock()
						break
					}
				}
			}
		}()
	}
	time.Sleep(time.Second)
	proxy.setCut(true)
	time.Sleep(2 * time.Second)
	g.kill(t)
	time.Sleep(500 * time.Millisecond)
	g = startChild(t, dir, up, ca, secret, plain, dtlsAddr)
	time.Sleep(time.Second)
	proxy.setCut(false)
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()

	// The answers come to the devices' polls. One that the killed gateway
	// held in memory is gone with it: its device, still without an answer,
	// sends the request again and gets the original receipt.
	deadline := time.Now().Add(time.Minute)
	for _, r := range runs {
		for {
			open(r)
			r.mu.Lock()
			left := slices.Clone(r.waiting)
			r.mu.Unlock()
			if len(left) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d requests without an answer", r.p.dev.ID(), len(left))
			}
			time.Sleep(500 * time.Millisecond)
			for _, s := range left {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				rc, err := r.p.dev.Send(ctx, r.tr, s)
				cancel()
				if err != nil {
					continue
				}
				r.mu.Lock()
				if i := slices.Index(r.waiting, s); i >= 0 {
					r.waiting = slices.Delete(r.waiting, i, i+1)
					r.paid += rc.AmountMinor
				}
				r.mu.Unlock()
			}
		}
		if r.paid != r.signed {
			t.Errorf("%s: receipts approved %d of the %d signed for", r.p.dev.ID(), r.paid, r.signed)
		}
		if b := w.balance(r.p.account); b != fund-r.signed {
			t.Errorf("%s: payer paid %d, its device signed for %d: lost or paid twice", r.p.dev.ID(), fund-b, r.signed)
		}
		t.Logf("%s: %d paid", r.p.dev.ID(), r.signed)
	}
	w.assertBalanced()
}

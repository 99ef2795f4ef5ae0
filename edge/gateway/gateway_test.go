package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp"

	"github.com/iotpay/iotpay"
	deviceedge "github.com/iotpay/iotpay/device/edge"
	"github.com/iotpay/iotpay/edge/queue"
	platformcoap "github.com/iotpay/iotpay/platform/coap"
	"github.com/iotpay/iotpay/wire"
)

// dialDevice dials the gateway as device id, over DTLS or plain UDP.
func dialDevice(t testing.TB, g *Gateway, id iotpay.DeviceID, secure bool, cfg deviceedge.Config) *deviceedge.Transport {
	t.Helper()
	cfg.DeviceID = id
	if cfg.FCnt == nil {
		cfg.FCnt = deviceedge.FileCounter{Path: filepath.Join(t.TempDir(), "fcnt")}
	}
	if cfg.BlockSize == 0 {
		cfg.BlockSize = BlockSize(g.cfg.Budget)
	}
	cfg.Addr = g.Addr()
	if secure {
		cfg.Addr = g.DTLSAddr()
		psk, err := DerivePSK(testSecret, id)
		if err != nil {
			t.Fatal(err)
		}
		cfg.PSK = psk
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := deviceedge.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func matchReversed(req []byte) func([]byte) bool {
	want := reverse(req)
	return func(a []byte) bool { return bytes.Equal(a, want) }
}

func TestBlockSize(t *testing.T) {
	for _, c := range []struct{ budget, size int }{{51, 16}, {64, 32}, {100, 64}, {160, 128}, {242, 128}, {40, 0}, {2000, 1024}} {
		if got := BlockSize(c.budget); got != c.size {
			t.Errorf("BlockSize(%d) = %d, want %d", c.budget, got, c.size)
		}
	}
}

// TestRoundTrip: device → gateway → broker → platform → answer back to the
// device, on both ports at both ends of the budget range, with no CoAP
// message above the budget.
func TestRoundTrip(t *testing.T) {
	p := newPlatform(t)
	for _, budget := range []int{BudgetMin, BudgetMax} {
		for _, secure := range []bool{false, true} {
			t.Run(fmt.Sprintf("budget=%d/dtls=%v", budget, secure), func(t *testing.T) {
				t.Parallel()
				g := startGateway(t, Config{Budget: budget, Uplink: UplinkConfig{GatewayID: newID()}})
				pc := newCountingConn(t)
				tr := dialDevice(t, g, newID(), secure, deviceedge.Config{PacketConn: pc})
				var sent [][]byte
				for i, n := range []int{20, 300, 1500} {
					req := envelope(i, n)
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					ans, err := tr.Exchange(ctx, req, matchReversed(req))
					cancel()
					if err != nil {
						t.Fatalf("exchange %d: %v", i, err)
					}
					if !bytes.Equal(ans, reverse(req)) {
						t.Fatalf("exchange %d: wrong answer", i)
					}
					sent = append(sent, req)
				}
				checkOrder(t, p.Relays(g.cfg.Uplink.GatewayID), sent)
				largest, count := 0, 0
				for _, d := range pc.datagrams() {
					for _, n := range coapSize(d, secure) {
						if n < 0 {
							continue
						}
						count++
						largest = max(largest, n)
						if n > budget {
							t.Errorf("a CoAP message of %d bytes, budget %d", n, budget)
						}
					}
				}
				t.Logf("budget %d, block %d: %d CoAP messages, the largest %d bytes", budget, BlockSize(budget), count, largest)
				// The device may have its answer before the forwarder lets its
				// record go.
				waitFor(t, "the records let go", func() bool { return g.Stats().Forwarded >= 3 })
				if s := g.Stats(); s.Queued != 3 || s.Answered != 3 {
					t.Errorf("stats %+v", s)
				}
			})
		}
	}
}

// TestUplinkDown: with the uplink cut, messages are stored and the device
// told FrameQueued; when it returns, all are forwarded in order and the
// answers reach the device on Poll.
func TestUplinkDown(t *testing.T) {
	p := newPlatform(t)
	proxy := newTCPProxy(t, brokerAddr)
	gw := newID()
	g := startGateway(t, Config{AnswerWait: 100 * time.Millisecond, Uplink: UplinkConfig{Addr: proxy.addr, GatewayID: gw}})
	tr := dialDevice(t, g, newID(), false, deviceedge.Config{Attempts: 1, Timeout: 2 * time.Second})
	var sent [][]byte
	for i := range 5 {
		req := envelope(i, 200)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := tr.Exchange(ctx, req, matchReversed(req))
		cancel()
		if !errors.Is(err, deviceedge.ErrQueued) {
			t.Fatalf("exchange %d with the uplink down: %v, want ErrQueued", i, err)
		}
		sent = append(sent, req)
	}
	if s := g.Stats(); s.Queued != 5 || s.Forwarded != 0 {
		t.Fatalf("stats with the uplink down: %+v", s)
	}
	proxy.up(t)
	checkOrder(t, p.WaitRelays(t, gw, 5), sent)
	got := pollAll(t, tr, len(sent))
	for _, req := range sent {
		if !got[string(reverse(req))] {
			t.Errorf("no answer for %q", req[:12])
		}
	}
	// Cut again mid-way: the forwarder reconnects.
	proxy.down()
	req := envelope(99, 50)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	_, err := tr.Exchange(ctx, req, matchReversed(req))
	cancel()
	if !errors.Is(err, deviceedge.ErrQueued) {
		t.Fatalf("exchange with the uplink cut again: %v", err)
	}
	proxy.up(t)
	p.WaitRelays(t, gw, 6)
}

// pollAll polls tr until n distinct answers came, and returns them.
func pollAll(t *testing.T, tr *deviceedge.Transport, n int) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	waitFor(t, "the answers on Poll", func() bool {
		ans, err := tr.Poll(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ans != nil {
			got[string(ans)] = true
		}
		return len(got) == n
	})
	return got
}

// TestRestartKeepsQueue: a gateway closed with messages stored and
// reopened on its data directory forwards them all, in order.
func TestRestartKeepsQueue(t *testing.T) {
	p := newPlatform(t)
	dir := t.TempDir()
	gw := newID()
	g := startGateway(t, Config{DataDir: dir, AnswerWait: 50 * time.Millisecond,
		Uplink: UplinkConfig{Addr: newTCPProxy(t, brokerAddr).addr, GatewayID: gw}})
	fc := deviceedge.FileCounter{Path: filepath.Join(t.TempDir(), "fcnt")}
	tr := dialDevice(t, g, newID(), true, deviceedge.Config{Attempts: 1, FCnt: fc})
	var sent [][]byte
	for i := range 8 {
		req := envelope(i, 100)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		if _, err := tr.Exchange(ctx, req, matchReversed(req)); !errors.Is(err, deviceedge.ErrQueued) {
			t.Fatalf("exchange %d: %v", i, err)
		}
		cancel()
		sent = append(sent, req)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	g2 := startGateway(t, Config{DataDir: dir, Uplink: UplinkConfig{GatewayID: gw}})
	checkOrder(t, p.WaitRelays(t, gw, 8), sent)
	waitFor(t, "the queue acknowledged", func() bool { return g2.Stats().Forwarded == 8 })
}

// rawClient posts frames to the plain port as they are.
func rawPost(t testing.TB, addr string, frame []byte) (codes.Code, *wire.Frame) {
	t.Helper()
	cc, err := udp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cc.Post(ctx, FramePath, message.AppCBOR, bytes.NewReader(frame))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code() != codes.Changed {
		return resp.Code(), nil
	}
	b, _ := resp.ReadBody()
	f, err := wire.ParseFrame(b)
	if err != nil {
		t.Fatalf("answer is not a frame: %v", err)
	}
	return resp.Code(), f
}

func messageFrame(t testing.TB, id iotpay.DeviceID, fcnt uint32, body []byte) []byte {
	t.Helper()
	f, err := wire.NewFrame(wire.FrameMessage, id, fcnt, body)
	if err != nil {
		t.Fatal(err)
	}
	b, err := wire.EncodeFrame(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFrameCounter: a counter not above the last is refused, also after a
// restart; a device's counter survives its reboot.
func TestFrameCounter(t *testing.T) {
	needBroker(t)
	dir := t.TempDir()
	gw := newID()
	cfg := Config{DataDir: dir, AnswerWait: 10 * time.Millisecond, Uplink: UplinkConfig{GatewayID: gw}}
	g := startGateway(t, cfg)
	dev := newID()
	post := func(g *Gateway, fcnt uint32) wire.FrameKind {
		code, f := rawPost(t, g.Addr(), messageFrame(t, dev, fcnt, envelope(int(fcnt), 30)))
		if code != codes.Changed {
			t.Fatalf("fcnt %d: %v", fcnt, code)
		}
		return f.Kind
	}
	for _, c := range []struct {
		fcnt uint32
		want wire.FrameKind
	}{{5, wire.FrameQueued}, {5, wire.FrameRefused}, {4, wire.FrameRefused}, {6, wire.FrameQueued}} {
		if got := post(g, c.fcnt); got != c.want {
			t.Errorf("fcnt %d: kind %d, want %d", c.fcnt, got, c.want)
		}
	}
	g.Close()
	g = startGateway(t, cfg)
	if got := post(g, 6); got != wire.FrameRefused {
		t.Errorf("fcnt 6 after a restart: kind %d, want refused", got)
	}
	if got := post(g, 7); got != wire.FrameQueued {
		t.Errorf("fcnt 7 after a restart: kind %d, want queued", got)
	}
	if s := g.Stats(); s.Refused != 1 {
		t.Errorf("stats %+v", s)
	}

	// The device side: a new Transport on the same counter file goes on.
	fc := deviceedge.FileCounter{Path: filepath.Join(t.TempDir(), "fcnt")}
	dev2 := newID()
	for boot := range 3 {
		tr := dialDevice(t, g, dev2, boot%2 == 1, deviceedge.Config{FCnt: fc})
		req := envelope(boot, 40)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err := tr.Exchange(ctx, req, matchReversed(req))
		cancel()
		if err != nil && !errors.Is(err, deviceedge.ErrQueued) { // the answer may be back or not
			t.Fatalf("boot %d: %v", boot, err)
		}
		tr.Close()
	}
	if n, _ := fc.Load(); n < 3 {
		t.Errorf("device counter %d after 3 boots", n)
	}
}

// TestQueueFull: a full queue answers FrameBusy and stores nothing.
func TestQueueFull(t *testing.T) {
	needBroker(t)
	g := startGateway(t, Config{AnswerWait: 10 * time.Millisecond, Queue: queue.Options{MaxRecords: 2},
		Uplink: UplinkConfig{Addr: newTCPProxy(t, brokerAddr).addr, GatewayID: newID()}})
	tr := dialDevice(t, g, newID(), false, deviceedge.Config{Attempts: 1})
	for i := range 3 {
		req := envelope(i, 40)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err := tr.Exchange(ctx, req, matchReversed(req))
		cancel()
		var busy *deviceedge.BusyError
		switch {
		case i < 2 && !errors.Is(err, deviceedge.ErrQueued):
			t.Fatalf("message %d: %v", i, err)
		case i == 2 && !errors.As(err, &busy):
			t.Fatalf("message %d to a full queue: %v, want ErrBusy", i, err)
		case i == 2 && (busy.Wait != BusyWaitSeconds*time.Second || iotpay.ErrorCode(err) != iotpay.EUNAVAILABLE):
			t.Fatalf("busy error %v (%s)", busy, iotpay.ErrorCode(err))
		}
	}
	if n, _ := g.q.Len(); n != 2 {
		t.Errorf("queue holds %d records, want 2", n)
	}
	if s := g.Stats(); s.Busy != 1 || s.Queued != 2 {
		t.Errorf("stats %+v", s)
	}
}

// TestRefusals: the session's device, the plain port's envelopes,
// malformed frames and methods.
func TestRefusals(t *testing.T) {
	needBroker(t)
	g := startGateway(t, Config{AnswerWait: 10 * time.Millisecond, Uplink: UplinkConfig{GatewayID: newID()}})
	dev := newID()
	if code, f := rawPost(t, g.Addr(), messageFrame(t, dev, 1, []byte("not an envelope"))); code != codes.Changed || f.Kind != wire.FrameRefused {
		t.Errorf("plain non-COSE body: %v %+v", code, f)
	}
	for _, bad := range [][]byte{{0xff}, {0x85, 1, 0x50}, []byte("hello")} {
		if code, _ := rawPost(t, g.Addr(), bad); code != codes.BadRequest {
			t.Errorf("malformed %x: %v, want 4.00", bad, code)
		}
	}
	answerKind, _ := wire.NewFrame(wire.FrameNone, dev, 1, nil)
	b, _ := wire.EncodeFrame(answerKind)
	if code, _ := rawPost(t, g.Addr(), b); code != codes.BadRequest {
		t.Errorf("a gateway→device kind: %v, want 4.00", code)
	}
	// DTLS: a frame naming another device than the session's.
	other := handleOn(t, g, true, dev, messageFrame(t, newID(), 1, envelope(1, 20)))
	if other.Kind != wire.FrameRefused {
		t.Errorf("frame of another device on a DTLS session: kind %d", other.Kind)
	}
	if n, _ := g.q.Len(); n != 0 {
		t.Errorf("queue holds %d records after refusals", n)
	}
}

func handleOn(t testing.TB, g *Gateway, secure bool, session iotpay.DeviceID, frame []byte) *wire.Frame {
	t.Helper()
	r := g.handleFrame(context.Background(), frame, secure, session)
	if r.code != codes.Changed {
		t.Fatalf("code %v", r.code)
	}
	f, err := wire.ParseFrame(r.frame)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestDerivePSKMatchesPlatform: the copy of the derivation agrees with the
// platform's.
func TestDerivePSKMatchesPlatform(t *testing.T) {
	id := newID()
	a, err := DerivePSK(testSecret, id)
	if err != nil {
		t.Fatal(err)
	}
	b, err := platformcoap.DerivePSK(testSecret, id)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) || len(a) != PSKBytes {
		t.Fatalf("DerivePSK %q, platform's %q", a, b)
	}
	if _, err := DerivePSK(testSecret[:5], id); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("short secret: %v", err)
	}
	path := filepath.Join(t.TempDir(), "secret")
	s1, err := LoadOrCreatePSKSecret(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := LoadOrCreatePSKSecret(path, nil)
	if err != nil || !bytes.Equal(s1, s2) {
		t.Fatalf("secret not kept: %v", err)
	}
}

// FuzzHandleFrame: any payload on either port is answered without a
// panic, and a malformed frame stores nothing.
func FuzzHandleFrame(f *testing.F) {
	dev := newID()
	for _, k := range []wire.FrameKind{wire.FrameMessage, wire.FramePoll} {
		var body []byte
		if k == wire.FrameMessage {
			body = envelope(1, 40)
		}
		fr, _ := wire.NewFrame(k, dev, 3, body)
		b, _ := wire.EncodeFrame(fr)
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Add([]byte{0x85, 0x01, 0x50}, false)
	g, err := New(Config{DataDir: f.TempDir(), CoAPAddr: "127.0.0.1:0", AnswerWait: time.Millisecond,
		Uplink: UplinkConfig{Addr: "127.0.0.1:1", GatewayID: newID()}})
	if err != nil {
		f.Fatal(err)
	}
	if err := g.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { g.Close() })
	f.Fuzz(func(t *testing.T, payload []byte, secure bool) {
		before, _ := g.q.Len()
		r := g.handleFrame(context.Background(), payload, secure, dev)
		after, _ := g.q.Len()
		if _, err := wire.ParseFrame(payload); err != nil {
			if r.code != codes.BadRequest || after != before {
				t.Fatalf("malformed frame: code %v, queue %d → %d", r.code, before, after)
			}
			return
		}
		if r.code == codes.Changed {
			if _, err := wire.ParseFrame(r.frame); err != nil {
				t.Fatalf("answer is not a frame: %v", err)
			}
		}
	})
}

// TestUnansweredIsSentAgain: the broker's PUBACK does not let a record go,
// the platform's answer does. Relays the platform took but did not answer
// (it stopped before handling them) stay queued and are sent again on the
// next connection; once answered they are let go and their answers reach
// the device.
func TestUnansweredIsSentAgain(t *testing.T) {
	p := newPlatform(t)
	proxy := newTCPProxy(t, brokerAddr)
	proxy.up(t)
	gw := newID()
	p.Silence(gw, true)
	g := startGateway(t, Config{AnswerWait: 100 * time.Millisecond, Uplink: UplinkConfig{Addr: proxy.addr, GatewayID: gw}})
	tr := dialDevice(t, g, newID(), false, deviceedge.Config{Attempts: 1, Timeout: 2 * time.Second})
	var sent [][]byte
	for i := range 3 {
		req := envelope(i, 60)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := tr.Exchange(ctx, req, matchReversed(req))
		cancel()
		if !errors.Is(err, deviceedge.ErrQueued) {
			t.Fatalf("exchange %d: %v, want ErrQueued", i, err)
		}
		sent = append(sent, req)
	}
	p.WaitRelays(t, gw, 3)
	if s := g.Stats(); s.Forwarded != 0 {
		t.Fatalf("%d records let go without an answer", s.Forwarded)
	}
	p.Silence(gw, false)
	proxy.down()
	proxy.up(t)
	checkOrder(t, p.WaitRelays(t, gw, 6), sent)
	waitFor(t, "the queue let go of the answered records", func() bool { return g.Stats().Forwarded == 3 })
	pollAll(t, tr, len(sent))
}

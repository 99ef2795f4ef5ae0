package gateway

import (
	"context"
	"errors"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/edge/queue"
	"github.com/iotpay/iotpay/wire"
)

// Uplink bounds.
const (
	// windowMax bounds the relays published and not yet answered by the
	// platform.
	windowMax = 64
	// backoffMin and backoffMax bound the wait between two connection
	// attempts: it doubles from the first to the second.
	backoffMin = 100 * time.Millisecond
	backoffMax = 5 * time.Second
	// uplinkTimeout bounds a CONNECT, a SUBSCRIBE, and the wait for a
	// PUBACK: beyond it the connection is taken as lost.
	uplinkTimeout = 10 * time.Second
	// keepAlive is the MQTT keep-alive of the uplink.
	keepAlive = 30 * time.Second
	qos1      = 1
)

// forward runs the uplink until ctx ends: connect, forward the queue in
// order, and after any failure reconnect with back-off and forward again
// from the first record not acknowledged.
func (g *Gateway) forward(ctx context.Context) {
	backoff := backoffMin
	for ctx.Err() == nil {
		c, lost, err := g.connect(ctx)
		if err == nil {
			backoff = backoffMin
			err = g.pump(ctx, lost, c)
			c.Disconnect(250)
			if errors.Is(err, queue.ErrClosed) || ctx.Err() != nil {
				return
			}
		}
		g.log.Warn("uplink down", "addr", g.cfg.Uplink.Addr, "retry_in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, backoffMax)
	}
}

// connect opens a new MQTT connection and subscribes to the answers. The
// session is persistent (clean session off), so answers the platform
// published while the gateway was away are delivered when it returns.
// lost is closed when the connection drops.
func (g *Gateway) connect(ctx context.Context) (paho.Client, <-chan struct{}, error) {
	up := g.cfg.Uplink
	scheme := "tcp://"
	if up.TLS != nil {
		scheme = "ssl://"
	}
	lost := make(chan struct{})
	answers := g.receive
	opts := paho.NewClientOptions().
		AddBroker(scheme + up.Addr).
		SetClientID(string(up.GatewayID)).
		SetTLSConfig(up.TLS).
		SetProtocolVersion(4).
		SetCleanSession(false).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(uplinkTimeout).
		SetWriteTimeout(uplinkTimeout).
		SetKeepAlive(keepAlive).
		SetPingTimeout(uplinkTimeout).
		SetOrderMatters(false).
		SetDefaultPublishHandler(answers). // a kept session's answers may come before SUBACK
		SetConnectionLostHandler(func(paho.Client, error) { close(lost) })
	c := paho.NewClient(opts)
	if err := wait(ctx, c.Connect()); err != nil {
		return nil, nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "gateway: uplink connect", err)
	}
	if err := wait(ctx, c.Subscribe(wire.RelayAnswerTopic(string(up.GatewayID)), qos1, answers)); err != nil {
		c.Disconnect(0)
		return nil, nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "gateway: uplink subscribe", err)
	}
	g.log.Info("uplink up", "addr", up.Addr)
	return c, lost, nil
}

// wait waits for tok, uplinkTimeout at most.
func wait(ctx context.Context, tok paho.Token) error {
	t := time.NewTimer(uplinkTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return errors.New("timed out")
	}
}

// flight is one published relay waiting for the platform's answer; tok
// (its PUBACK) is nil for a record that could not be read as a relay,
// skipped.
type flight struct {
	seq   uint64
	tok   paho.Token
	acked bool      // the broker's PUBACK came
	sent  time.Time // when the wait for its answer began
}

// pump forwards the queue on c until an error: it keeps up to windowMax
// relays published and not yet answered, and acknowledges the queue up to
// the last of a run of answered ones, in order. A record is done with when
// the platform answered it, not when the broker acknowledged it: the
// broker acknowledges a message before the platform handles it, and one
// the platform had not handled when it stopped would otherwise be lost.
// The platform is idempotent on a device's request, so one sent again
// after a lost answer is answered as before.
func (g *Gateway) pump(ctx context.Context, lost <-chan struct{}, c paho.Client) error {
	topic := wire.RelayTopic(string(g.cfg.Uplink.GatewayID))
	var inflight []flight
	var next uint64 // the first seq not published on this connection
	for {
		if len(inflight) < windowMax {
			recs, err := g.q.Peek(windowMax)
			if err != nil {
				return err
			}
			for _, r := range recs {
				if r.Seq < next || len(inflight) >= windowMax {
					continue
				}
				inflight = append(inflight, g.publish(c, topic, r))
				next = r.Seq + 1
			}
		}
		if len(inflight) == 0 {
			if err := g.waitQueue(ctx, lost); err != nil {
				return err
			}
			continue
		}
		if !g.done.has(inflight[0].seq) && inflight[0].tok != nil {
			if err := g.waitAnswer(ctx, lost, &inflight[0], len(inflight) < windowMax); err != nil {
				return err
			}
			continue // answered, or something new to publish
		}
		n := 1
		for n < len(inflight) && (inflight[n].tok == nil || g.done.has(inflight[n].seq)) {
			n++
		}
		last := inflight[n-1].seq
		if err := g.q.Ack(last); err != nil {
			return err
		}
		g.done.drop(last)
		g.forwarded.Add(uint64(n))
		inflight = inflight[n:]
	}
}

// publish sends record r as a relay, its Seq set to the queue's.
func (g *Gateway) publish(c paho.Client, topic string, r queue.Record) flight {
	rel, err := wire.ParseRelay(r.Data)
	if err == nil {
		rel.Seq = r.Seq
		var b []byte
		if b, err = wire.EncodeRelay(rel); err == nil {
			return flight{seq: r.Seq, tok: c.Publish(topic, qos1, false, b)}
		}
	}
	g.log.Error("queued record is not a relay, skipped", "seq", r.Seq, "err", err)
	return flight{seq: r.Seq}
}

// answerTimeout bounds the wait for the platform's answer to the oldest
// relay in flight: past it the connection is taken as broken and what was
// not answered is sent again on a new one.
const answerTimeout = 30 * time.Second

// waitAnswer waits for something to happen to the oldest relay in flight,
// f: its answer, or its PUBACK failing; and, when the window has room, for
// a new record to publish. Past answerTimeout since f was published
// without its answer, the connection is taken as broken.
func (g *Gateway) waitAnswer(ctx context.Context, lost <-chan struct{}, f *flight, room bool) error {
	if f.sent.IsZero() {
		f.sent = time.Now()
	}
	t := time.NewTimer(time.Until(f.sent.Add(answerTimeout)))
	defer t.Stop()
	for !g.done.has(f.seq) {
		var acked <-chan struct{}
		if !f.acked {
			acked = f.tok.Done()
		}
		select {
		case <-acked:
			if err := f.tok.Error(); err != nil {
				return iotpay.Wrap(iotpay.EUNAVAILABLE, "gateway: publish", err)
			}
			f.acked = true // acknowledged by the broker; now the answer
		case <-g.done.changed():
			if room {
				return nil // perhaps a new record: publish it
			}
		case <-lost:
			return iotpay.Errorf(iotpay.EUNAVAILABLE, "gateway: uplink lost")
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return iotpay.Errorf(iotpay.EUNAVAILABLE, "gateway: no answer to relay %d within %v", f.seq, answerTimeout)
		}
	}
	return nil
}

// answeredSet is the seqs of the relays the platform answered and the
// queue has not yet let go of.
type answeredSet struct {
	mu     sync.Mutex
	m      map[uint64]struct{}
	notify chan struct{} // a value after each add
}

func newAnsweredSet() *answeredSet {
	return &answeredSet{m: make(map[uint64]struct{}), notify: make(chan struct{}, 1)}
}

func (a *answeredSet) add(seq uint64) {
	a.mu.Lock()
	a.m[seq] = struct{}{}
	a.mu.Unlock()
	select {
	case a.notify <- struct{}{}:
	default:
	}
}

func (a *answeredSet) has(seq uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.m[seq]
	return ok
}

// drop forgets the seqs up to last (done with, or answers to old ones).
func (a *answeredSet) drop(last uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for s := range a.m {
		if s <= last {
			delete(a.m, s)
		}
	}
}

// changed has a value after an answer came or a record was stored (poke).
func (a *answeredSet) changed() <-chan struct{} { return a.notify }

// poke wakes the forwarder: a record was stored.
func (a *answeredSet) poke() {
	select {
	case a.notify <- struct{}{}:
	default:
	}
}

// waitQueue waits for a record to forward, or the connection's loss.
func (g *Gateway) waitQueue(ctx context.Context, lost <-chan struct{}) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-lost:
			cancel()
		case <-wctx.Done():
		}
	}()
	err := g.q.Wait(wctx)
	select {
	case <-lost:
		return iotpay.Errorf(iotpay.EUNAVAILABLE, "gateway: uplink lost")
	default:
	}
	return err
}

// receive takes one of the platform's answers from the uplink.
func (g *Gateway) receive(_ paho.Client, m paho.Message) {
	a, err := wire.ParseRelayAnswer(m.Payload())
	if err != nil {
		g.log.Warn("malformed relay answer dropped", "topic", m.Topic(), "err", err)
		return
	}
	g.done.add(a.Seq)
	handed, kept := g.down.deliver(iotpay.DeviceID(a.Device), a.Seq, a.Body)
	if !handed && !kept && len(a.Body) > 0 {
		g.log.Warn("answer dropped, downlink full", "device", a.Device, "seq", a.Seq)
	}
}

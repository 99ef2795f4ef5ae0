package gateway

import (
	"context"
	"errors"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/edge/queue"
	"github.com/iotpay/iotpay/wire"
)

// Uplink bounds.
const (
	// windowMax bounds the relays published and not yet acknowledged by
	// the broker (PUBACK).
	windowMax = 32
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

// flight is one published relay waiting for its PUBACK; tok is nil for a
// record that could not be read as a relay, skipped.
type flight struct {
	seq uint64
	tok paho.Token
}

// pump forwards the queue on c until an error: it keeps up to windowMax
// relays in flight and acknowledges the queue up to the last of a run of
// PUBACKs, in order.
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
		if err := g.waitPuback(ctx, lost, inflight[0]); err != nil {
			return err
		}
		n := 1
		for n < len(inflight) && acked(inflight[n]) {
			n++
		}
		if err := g.q.Ack(inflight[n-1].seq); err != nil {
			return err
		}
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

// acked says whether f's PUBACK arrived (or f was skipped).
func acked(f flight) bool {
	if f.tok == nil {
		return true
	}
	select {
	case <-f.tok.Done():
		return f.tok.Error() == nil
	default:
		return false
	}
}

// waitPuback waits for f's PUBACK.
func (g *Gateway) waitPuback(ctx context.Context, lost <-chan struct{}, f flight) error {
	if f.tok == nil {
		return nil
	}
	t := time.NewTimer(uplinkTimeout)
	defer t.Stop()
	select {
	case <-f.tok.Done():
		if err := f.tok.Error(); err != nil {
			return iotpay.Wrap(iotpay.EUNAVAILABLE, "gateway: publish", err)
		}
		return nil
	case <-lost:
		return iotpay.Errorf(iotpay.EUNAVAILABLE, "gateway: uplink lost")
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return iotpay.Errorf(iotpay.EUNAVAILABLE, "gateway: no PUBACK within %v", uplinkTimeout)
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
	handed, kept := g.down.deliver(iotpay.DeviceID(a.Device), a.Seq, a.Body)
	if !handed && !kept && len(a.Body) > 0 {
		g.log.Warn("answer dropped, downlink full", "device", a.Device, "seq", a.Seq)
	}
}

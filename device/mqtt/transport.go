// Package mqtt is the device's MQTT transport: one mutual-TLS connection to
// the platform broker, on which the device publishes requests to its pay
// topic and reads answers from its receipt topic.
//
// It is the only device package that imports the MQTT client library
// (paho). The transport speaks MQTT 3.1.1 with a clean session and does not
// reconnect by itself: once the connection is lost, Exchange fails with
// EUNAVAILABLE and the caller dials again.
package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

// Defaults and bounds.
const (
	DefaultTimeout  = 5 * time.Second
	DefaultAttempts = 3
	// attemptsMax bounds Config.Attempts: each attempt republishes.
	attemptsMax = 10
	// answersMax bounds the answers received but not yet read; older ones
	// are dropped first, as a late answer to an earlier request is useless.
	answersMax = 16
	// keepalive paces pings, which find a dead connection and keep NAT
	// mappings open.
	keepalive = 60 * time.Second
	// quiesceMs is how long Close waits for the DISCONNECT to be sent, in
	// milliseconds as paho wants it.
	quiesceMs = 250
	// protocolMQTT311 pins the protocol version: left unset, paho retries a
	// refused connection with MQTT 3.1, which doubles every refusal.
	protocolMQTT311 = 4
	qos1            = 1
)

// Config configures a Transport.
type Config struct {
	Addr     string          // host:port of the broker
	TLS      *tls.Config     // client certificate (PrivateKey a crypto.Signer, e.g. in a keystore) and RootCAs
	DeviceID iotpay.DeviceID // used as the MQTT client id
	Timeout  time.Duration   // per attempt wait for an answer, and for connecting; default 5s
	Attempts int             // default 3: on timeout the SAME bytes are republished (the platform is idempotent)
	// OnDesired, when set, is given every desired state the platform
	// sends (the retained one first, on connecting): signed bytes for
	// device.OpenDesired to check.
	OnDesired func(signed []byte)
}

// Transport is a connected device. Exchange serves one caller at a time.
type Transport struct {
	client       paho.Client
	payTopic     string
	receiptTopic string
	timeout      time.Duration
	attempts     int
	answers      chan []byte

	mu        sync.Mutex // serializes Exchange
	closeOnce sync.Once
}

// Dial connects to the broker with a clean session and subscribes at QoS 1
// to the device's receipt topic.
func Dial(ctx context.Context, cfg Config) (*Transport, error) {
	switch {
	case cfg.Addr == "":
		return nil, iotpay.Errorf(iotpay.EINVALID, "mqtt: no broker address")
	case cfg.TLS == nil:
		return nil, iotpay.Errorf(iotpay.EINVALID, "mqtt: no TLS configuration")
	case !iotpay.ValidID(iotpay.PrefixDevice, string(cfg.DeviceID)):
		return nil, iotpay.Errorf(iotpay.EINVALID, "mqtt: invalid device id %q", cfg.DeviceID)
	case cfg.Timeout < 0 || cfg.Attempts < 0 || cfg.Attempts > attemptsMax:
		return nil, iotpay.Errorf(iotpay.EINVALID, "mqtt: timeout must not be negative and attempts within 0..%d", attemptsMax)
	}
	t := &Transport{
		payTopic:     wire.PayTopic(string(cfg.DeviceID)),
		receiptTopic: wire.ReceiptTopic(string(cfg.DeviceID)),
		timeout:      cfg.Timeout,
		attempts:     cfg.Attempts,
		answers:      make(chan []byte, answersMax),
	}
	if t.timeout == 0 {
		t.timeout = DefaultTimeout
	}
	if t.attempts == 0 {
		t.attempts = DefaultAttempts
	}

	tc := cfg.TLS.Clone()
	tc.MinVersion = tls.VersionTLS13 // the broker speaks nothing older
	opts := paho.NewClientOptions().
		AddBroker("tls://" + cfg.Addr).
		SetClientID(string(cfg.DeviceID)).
		SetTLSConfig(tc).
		SetProtocolVersion(protocolMQTT311).
		SetCleanSession(true).
		SetResumeSubs(false).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(t.timeout).
		SetWriteTimeout(t.timeout).
		SetKeepAlive(keepalive).
		SetPingTimeout(t.timeout).
		SetOrderMatters(true)
	t.client = paho.NewClient(opts)

	tok := t.client.Connect()
	if err := wait(ctx, tok); err != nil {
		// paho bounds the attempt by the connect timeout; disconnect it
		// once it ends, so nothing is left behind.
		go func() {
			<-tok.Done()
			t.client.Disconnect(0)
		}()
		return nil, err
	}
	if err := connectError(tok); err != nil {
		return nil, err
	}

	sub := t.client.Subscribe(t.receiptTopic, qos1, t.receive)
	err := wait(ctx, sub)
	if err == nil {
		err = subscribeError(sub)
	}
	if err == nil && cfg.OnDesired != nil {
		on := cfg.OnDesired
		sub = t.client.Subscribe(wire.DesiredTopic(string(cfg.DeviceID)), qos1, func(_ paho.Client, m paho.Message) {
			on(append([]byte(nil), m.Payload()...))
		})
		if err = wait(ctx, sub); err == nil {
			err = subscribeError(sub)
		}
	}
	if err != nil {
		t.client.Disconnect(0)
		return nil, err
	}
	return t, nil
}

// wait waits for tok, ctx or the connect timeout paho applies itself.
func wait(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		return nil
	case <-ctx.Done():
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "mqtt: gave up waiting for the broker", ctx.Err())
	}
}

// connectError classifies a finished CONNECT.
func connectError(tok paho.Token) error {
	err := tok.Error()
	if err == nil {
		return nil
	}
	if ct, ok := tok.(*paho.ConnectToken); ok {
		switch ct.ReturnCode() {
		case packets.ErrRefusedBadUsernameOrPassword, packets.ErrRefusedNotAuthorised, packets.ErrRefusedIDRejected:
			return iotpay.Wrap(iotpay.EUNAUTHORIZED, "mqtt: broker refused the device", err)
		}
	}
	// The broker ends the TLS handshake with an alert when it rejects the
	// client certificate; the device learns it on its first read.
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return iotpay.Wrap(iotpay.EUNAUTHORIZED, "mqtt: broker refused the device certificate", err)
	}
	return iotpay.Wrap(iotpay.EUNAVAILABLE, "mqtt: cannot connect to broker", err)
}

// subscribeError classifies a finished SUBSCRIBE.
func subscribeError(tok paho.Token) error {
	if err := tok.Error(); err != nil {
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "mqtt: cannot subscribe to receipts", err)
	}
	if st, ok := tok.(*paho.SubscribeToken); ok {
		for topic, granted := range st.Result() {
			if granted > qos1 { // 0x80: refused
				return iotpay.Errorf(iotpay.EUNAUTHORIZED, "mqtt: broker refused subscription to %s", topic)
			}
		}
	}
	return nil
}

// receive runs in paho's router goroutine and must not block.
func (t *Transport) receive(_ paho.Client, m paho.Message) {
	answer := append([]byte(nil), m.Payload()...)
	for {
		select {
		case t.answers <- answer:
			return
		default:
		}
		select { // full: drop the oldest and try again
		case <-t.answers:
		default:
		}
	}
}

// Exchange publishes request at QoS 1 on the device's pay topic and returns
// the first message received on its receipt topic for which match returns
// true; messages that do not match are ignored. If no answer comes within
// the timeout it republishes the same bytes, up to the configured attempts.
//
// Exchange serves one caller at a time: concurrent calls wait their turn,
// since answers on the single receipt topic cannot be told apart otherwise
// than by match.
func (t *Transport) Exchange(ctx context.Context, request []byte, match func(answer []byte) bool) ([]byte, error) {
	if match == nil {
		return nil, iotpay.Errorf(iotpay.EINVALID, "mqtt: no answer matcher")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.drain()

	timer := time.NewTimer(t.timeout)
	defer timer.Stop()
	for attempt := 1; attempt <= t.attempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "mqtt: exchange abandoned", err)
		}
		if !t.client.IsConnectionOpen() {
			return nil, iotpay.Errorf(iotpay.EUNAVAILABLE, "mqtt: not connected")
		}
		pub := t.client.Publish(t.payTopic, qos1, false, request)
		published := pub.Done()
		timer.Reset(t.timeout)
	wait:
		for {
			select {
			case <-ctx.Done():
				return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "mqtt: exchange abandoned", ctx.Err())
			case <-published:
				if err := pub.Error(); err != nil {
					return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "mqtt: publish failed", err)
				}
				published = nil // acknowledged; keep waiting for the answer
			case answer := <-t.answers:
				if match(answer) {
					return answer, nil
				}
			case <-timer.C:
				break wait
			}
		}
	}
	return nil, iotpay.Errorf(iotpay.EUNAVAILABLE, "mqtt: no answer after %d attempts of %v", t.attempts, t.timeout)
}

// drain discards answers left over from earlier exchanges.
func (t *Transport) drain() {
	for {
		select {
		case <-t.answers:
		default:
			return
		}
	}
}

// Close disconnects from the broker. It is safe to call more than once.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() { t.client.Disconnect(quiesceMs) })
	return nil
}

// Package mqtt is the platform's embedded MQTT broker: devices connect over
// mutual TLS, publish signed payment requests on their own pay topic and
// read the platform's answers on their own receipt topic.
//
// It is the only package that imports the broker library (mochi-mqtt); the
// rest of the platform sees a DeviceChecker, a Handler and a Broker.
//
// A device is identified by its client certificate alone: the MQTT client
// id must equal the device id in the certificate, and the ACL confines each
// device to its own topics, so the Handler can trust the device id it is
// given.
package mqtt

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

// Bounds.
const (
	// PayloadBytesMax bounds a message a device publishes.
	PayloadBytesMax = 4096
	// packetOverheadMax is room in an MQTT packet for the fixed header, the
	// topic, the packet id and properties around a payload.
	packetOverheadMax = 1024
	packetBytesMax    = PayloadBytesMax + packetOverheadMax

	// ConnectionsMax bounds open connections, including ones still in the
	// TLS handshake or before CONNECT.
	ConnectionsMax = 10000
	// receiveMax bounds a device's unacknowledged QoS 1 messages to the
	// broker; the handler runs one message at a time per device anyway.
	receiveMax = 8
	// inflightMax bounds QoS 1 messages the broker holds for one device.
	inflightMax = 64
	// writesPendingMax bounds a device's queue of outbound packets; mochi
	// allocates it per client, so its default (8192) costs memory.
	writesPendingMax = 64
	// messageExpiry bounds how long an undelivered message is kept; a
	// device republishes long before.
	messageExpiry = 5 * time.Minute
	// keepaliveMax, in seconds, is imposed on devices asking for no
	// keepalive or a longer one, so a silent connection is dropped after
	// 1.5 times it. MQTT 5 clients are told; 3.1.1 has no way to tell them.
	keepaliveMax = 300
	// sysTopicInterval: no device may read $SYS topics, and refreshing
	// them reads runtime memory statistics, which stops the world.
	sysTopicInterval = time.Hour

	// connectTimeout bounds the TLS handshake and CONNECT of a new
	// connection; afterwards the keepalive bounds silence.
	connectTimeout = 10 * time.Second
	// checkTimeout bounds one DeviceChecker call.
	checkTimeout = 5 * time.Second
	// handleTimeout bounds one Handler call; the device's read loop waits
	// for it.
	handleTimeout = 30 * time.Second
	// closeGrace is how long Close lets mochi disconnect clients politely
	// before cutting every remaining connection.
	closeGrace = 2 * time.Second
)

// paySubscriptionID identifies the broker's own subscription to pay topics.
const paySubscriptionID = 1

// DeviceChecker says whether a device may connect now (registered and
// active); called at every CONNECT.
type DeviceChecker interface {
	CheckDevice(ctx context.Context, id iotpay.DeviceID) error
}

// Handler processes one message a device published on its own pay topic
// and returns the bytes to publish on that device's receipt topic (nil:
// publish nothing). Called synchronously, one message at a time per client.
type Handler interface {
	HandlePay(ctx context.Context, device iotpay.DeviceID, payload []byte) []byte
}

// Config configures a Broker.
type Config struct {
	Addr   string      // e.g. "127.0.0.1:8883" or "127.0.0.1:0"
	TLS    *tls.Config // server certificate; the broker forces MinVersion TLS1.2 and ClientAuth=RequireAndVerifyClientCert (ClientCAs must be set)
	Logger *slog.Logger
}

// Broker is the embedded MQTT broker.
type Broker struct {
	addr    string
	tls     *tls.Config
	log     *slog.Logger
	checker DeviceChecker
	handler Handler
	server  *mochi.Server

	mu      sync.Mutex
	started bool
	closing bool      // no new connections or handler calls
	ln      *listener // set by Start
	calls   sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// New returns a broker that is not yet listening.
func New(cfg Config, checker DeviceChecker, h Handler) (*Broker, error) {
	switch {
	case cfg.Addr == "":
		return nil, iotpay.Errorf(iotpay.EINVALID, "mqtt: no listen address")
	case cfg.TLS == nil:
		return nil, iotpay.Errorf(iotpay.EINVALID, "mqtt: no TLS configuration")
	case len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil:
		return nil, iotpay.Errorf(iotpay.EINVALID, "mqtt: no server certificate")
	case cfg.TLS.ClientCAs == nil:
		return nil, iotpay.Errorf(iotpay.EINVALID, "mqtt: no client CA pool")
	case checker == nil || h == nil:
		return nil, iotpay.Errorf(iotpay.EINVALID, "mqtt: device checker and handler are required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "mqtt")

	tc := cfg.TLS.Clone()
	if tc.MinVersion < tls.VersionTLS12 {
		tc.MinVersion = tls.VersionTLS12
	}
	tc.ClientAuth = tls.RequireAndVerifyClientCert

	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumClients = ConnectionsMax
	caps.MaximumPacketSize = packetBytesMax
	caps.ReceiveMaximum = receiveMax
	caps.MaximumInflight = inflightMax
	caps.MaximumClientWritesPending = writesPendingMax
	caps.MaximumMessageExpiryInterval = int64(messageExpiry / time.Second)
	// Devices use clean sessions: a device that reconnects republishes
	// (the platform is idempotent), so a stored session would only hold
	// memory for a client that may never return.
	caps.MaximumSessionExpiryInterval = 0
	// QoS 1 is all the protocol needs; QoS 2 would keep state per message.
	caps.MaximumQos = 1
	caps.RetainAvailable = 0
	caps.TopicAliasMaximum = 0
	caps.SharedSubAvailable = 0
	caps.WildcardSubAvailable = 0

	b := &Broker{addr: cfg.Addr, tls: tc, log: log, checker: checker, handler: h}
	b.server = mochi.New(&mochi.Options{
		Capabilities:           caps,
		Logger:                 log.With("lib", "mochi"),
		SysTopicResendInterval: int64(sysTopicInterval / time.Second),
		InlineClient:           true,
	})
	if err := b.server.AddHook(&hook{b: b}, nil); err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "mqtt: cannot add hook", err)
	}
	if err := b.server.Subscribe(wire.TopicPrefix+"+/pay", paySubscriptionID, b.onPay); err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "mqtt: cannot subscribe to pay topics", err)
	}
	return b, nil
}

// Start binds the listening address and serves in the background.
func (b *Broker) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing {
		return iotpay.Errorf(iotpay.EUNAVAILABLE, "mqtt: broker closed")
	}
	if b.started {
		return iotpay.Errorf(iotpay.ECONFLICT, "mqtt: broker already started")
	}
	raw, err := net.Listen("tcp", b.addr)
	if err != nil {
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "mqtt: cannot listen", err)
	}
	ln := newListener("mqtts", raw, b.tls, b.log, ConnectionsMax, connectTimeout)
	if err := b.server.AddListener(ln); err != nil {
		ln.stop()
		return iotpay.Wrap(iotpay.EINTERNAL, "mqtt: cannot add listener", err)
	}
	// mochi adds each connection to its WaitGroup inside the goroutine
	// serving it, so its Close can Wait while an Add from zero is under
	// way: a race. Holding one count for the broker's life keeps the count
	// above zero until Close knows no connection is left (see Close).
	b.server.Listeners.ClientsWg.Add(1)
	if err := b.server.Serve(); err != nil {
		b.server.Listeners.ClientsWg.Done()
		ln.stop()
		return iotpay.Wrap(iotpay.EINTERNAL, "mqtt: cannot serve", err)
	}
	b.ln, b.started = ln, true
	b.log.Info("mqtt broker listening", "addr", ln.Address())
	return nil
}

// Addr returns the bound address once started, the configured one before.
func (b *Broker) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ln != nil {
		return b.ln.Address()
	}
	return b.addr
}

// Publish sends payload at QoS 1 to the subscribers of topic.
func (b *Broker) Publish(topic string, payload []byte) error {
	if topic == "" || strings.ContainsAny(topic, "+#") {
		return iotpay.Errorf(iotpay.EINVALID, "mqtt: invalid topic %q", topic)
	}
	if b.isClosing() {
		return iotpay.Errorf(iotpay.EUNAVAILABLE, "mqtt: broker closed")
	}
	return b.publish(topic, payload)
}

// publish is Publish without the checks, so a handler call that finishes
// while the broker closes still answers.
func (b *Broker) publish(topic string, payload []byte) error {
	if err := b.server.Publish(topic, payload, false, 1); err != nil {
		return iotpay.Wrap(iotpay.EINTERNAL, "mqtt: cannot publish", err)
	}
	return nil
}

// Disconnect drops the live session of device, if any. It does not stop
// the device from connecting again: the DeviceChecker decides that.
func (b *Broker) Disconnect(id iotpay.DeviceID) {
	cl, ok := b.server.Clients.Get(string(id))
	if !ok || cl.Net.Inline || cl.Closed() {
		return
	}
	b.log.Info("disconnecting device", "device", id, "remote", cl.Net.Remote)
	// The error is the reason code we gave; the connection is closed anyway.
	_ = b.server.DisconnectClient(cl, packets.ErrNotAuthorized)
}

// Close stops accepting connections, disconnects clients and waits for
// handler calls in progress to return. A message that arrives once Close
// has begun is acknowledged by mochi but not handed to the Handler; its
// device republishes after reconnecting. Close is safe to call more than
// once, but not from a Handler, which it would wait for.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closing = true
		ln := b.ln
		b.mu.Unlock()

		if ln != nil {
			ln.stop()
			<-ln.served // no connection will be accepted any more
			// mochi waits for every connection it was given, including one
			// that never sends CONNECT or a client that stops reading; cut
			// what is left once the polite disconnect had its chance. A
			// handler call in progress is not interrupted by this.
			done := make(chan struct{})
			defer close(done)
			go func() {
				select {
				case <-done:
				case <-time.After(closeGrace):
					ln.closeConns()
				}
			}()
			// Release the count Start holds once every connection has ended,
			// which lets mochi's Close return.
			go func() {
				ln.serving.Wait()
				b.server.Listeners.ClientsWg.Done()
			}()
			b.disconnectAll()
		}
		if err := b.server.Close(); err != nil {
			b.closeErr = iotpay.Wrap(iotpay.EINTERNAL, "mqtt: close", err)
		}
		b.calls.Wait()
		b.log.Info("mqtt broker closed")
	})
	return b.closeErr
}

// disconnectAll tells every connected client the server is shutting down
// and closes its connection; mochi's own way is prone to deadlock (see
// listener.Close).
func (b *Broker) disconnectAll() {
	for _, cl := range b.server.Clients.GetAll() {
		if cl.Net.Inline || cl.Closed() {
			continue
		}
		// The error is the reason code we gave; the connection is closed anyway.
		_ = b.server.DisconnectClient(cl, packets.ErrServerShuttingDown)
	}
}

func (b *Broker) listener() *listener {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ln
}

func (b *Broker) isClosing() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closing
}

// enterCall registers a handler call unless the broker is closing, so that
// Close's Wait never races with an Add.
func (b *Broker) enterCall() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing {
		return false
	}
	b.calls.Add(1)
	return true
}

// onPay receives every message published on a pay topic. mochi calls it in
// the publishing client's read goroutine, after the PUBACK.
func (b *Broker) onPay(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
	dev, ok := payTopicDevice(pk.TopicName)
	// The ACL lets a device publish only on its own pay topic; check again
	// so a path around the ACL (a will, say) cannot speak for another.
	if !ok || string(dev) != pk.Origin {
		b.log.Warn("pay message dropped: topic does not belong to publisher", "topic", pk.TopicName, "client", pk.Origin)
		return
	}
	if len(pk.Payload) > PayloadBytesMax {
		b.log.Warn("pay message dropped: too large", "device", dev, "bytes", len(pk.Payload), "max", PayloadBytesMax)
		return
	}
	if !b.enterCall() {
		b.log.Info("pay message dropped: broker closing", "device", dev)
		return
	}
	defer b.calls.Done()

	ctx, cancel := context.WithTimeout(context.Background(), handleTimeout)
	defer cancel()
	answer := b.handler.HandlePay(ctx, dev, pk.Payload)
	if answer == nil {
		return
	}
	if err := b.publish(wire.ReceiptTopic(string(dev)), answer); err != nil {
		b.log.Warn("receipt not published", "device", dev, "err", err)
	}
}

// payTopicDevice returns the device whose pay topic topic is.
func payTopicDevice(topic string) (iotpay.DeviceID, bool) {
	rest, ok := strings.CutPrefix(topic, wire.TopicPrefix)
	if !ok {
		return "", false
	}
	id, leaf, ok := strings.Cut(rest, "/")
	if !ok || !iotpay.ValidID(iotpay.PrefixDevice, id) || topic != wire.PayTopic(id) || leaf != "pay" {
		return "", false
	}
	return iotpay.DeviceID(id), true
}

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
// given. A client without a certificate is admitted only to enroll, with
// its one-time token. What the broker sees of devices' connections
// (connected, disconnected and why, last will, status, activity) is handed
// to a PresenceRecorder.
package mqtt

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/wire"
)

// Transport names MQTT in presence records.
const Transport = "mqtt"

// Bounds.
const (
	// PayloadBytesMax bounds a message a device publishes.
	PayloadBytesMax = 4096
	// RelayBytesMax bounds a message a gateway relays: a device's message
	// of up to PayloadBytesMax in a wire.Relay.
	RelayBytesMax = wire.FrameBytesMax + 64
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

	// activityInterval is how often at most a connection's activity is
	// recorded: presence costs no database write a message.
	activityInterval = time.Minute
	// presenceQueueLen bounds presence events waiting to be recorded; past
	// it activity events are dropped and the others wait.
	presenceQueueLen = 4096
	// presenceTimeout bounds one PresenceRecorder call.
	presenceTimeout = 10 * time.Second
)

// Subscription ids of the broker's own (inline) subscriptions.
const (
	paySubscriptionID    = 1
	enrollSubscriptionID = 2
	relaySubscriptionID  = 3
)

// relaysMax bounds the relayed messages in progress, across gateways: past
// it a gateway's read loop waits, which holds its next publishes back.
const relaysMax = 256

// RelayHandler processes one device message a gateway relayed
// (wire.Relay) and returns the answer to relay back to the device (nil:
// none). It decides whether gateway may relay, and for whom.
type RelayHandler interface {
	HandleRelay(ctx context.Context, gateway iotpay.DeviceID, r *wire.Relay) []byte
}

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

// PresenceRecorder records what the broker saw of devices' connections,
// in order; a device's events carry its connection's generation.
type PresenceRecorder interface {
	RecordPresence(ctx context.Context, evs []registry.PresenceEvent) error
}

// Enroller enrolls a device over MQTT: CheckEnrollment is asked at
// CONNECT (the token must not be consumed), Enroll when the CSRs arrive.
type Enroller interface {
	CheckEnrollment(ctx context.Context, id iotpay.DeviceID, token string) error
	Enroll(ctx context.Context, id iotpay.DeviceID, token string, csr, transportCSR []byte) (*registry.Enrollment, error)
}

// Config configures a Broker.
type Config struct {
	Addr string // e.g. "127.0.0.1:8883" or "127.0.0.1:0"
	// TLS has the server certificate and ClientCAs; the broker forces TLS
	// 1.3 and ClientAuth RequireAndVerifyClientCert, or
	// VerifyClientCertIfGiven when Enroller is set (a client without a
	// certificate may only enroll).
	TLS    *tls.Config
	Logger *slog.Logger
	// Presence, if set, records devices' online/offline state.
	Presence PresenceRecorder
	// Enroller, if set, lets devices enroll over MQTT.
	Enroller Enroller
	// Relay, if set, takes the messages gateways relay for constrained
	// devices (wire.RelayTopic) and answers them on wire.RelayAnswerTopic.
	Relay RelayHandler
	// ConnectionsMax bounds open connections (ConnectionsMax when 0).
	// Each holds a file descriptor: the process's open-file limit must
	// be above it.
	ConnectionsMax int
}

// conn is what the broker knows of an admitted connection.
type conn struct {
	dev    iotpay.DeviceID
	gen    int64 // orders the device's connections
	remote string
	// token is set on a connection admitted to enroll, and only then.
	token    string
	enrolled atomic.Bool  // its enrollment was answered
	online   atomic.Bool  // its connected event was emitted
	active   atomic.Int64 // Unix ns of its last recorded activity
	// ending is why the broker is ending the connection, set before it
	// closes it: mochi stores its own stop cause only after closing, so
	// the read loop may end without seeing it.
	ending atomic.Pointer[string]
}

// end records why the broker ends c, unless a reason is already set.
func (c *conn) end(reason string) {
	if c != nil {
		c.ending.CompareAndSwap(nil, &reason)
	}
}

// Broker is the embedded MQTT broker.
type Broker struct {
	addr     string
	tls      *tls.Config
	connsMax int // open connections at most
	log      *slog.Logger
	checker  DeviceChecker
	handler  Handler
	presence PresenceRecorder
	enroller Enroller
	relay    RelayHandler
	relays   chan struct{} // a slot per relayed message in progress
	lanesMu  sync.Mutex
	lanes    map[iotpay.DeviceID]*relayLane // a device's relayed messages, in order
	server   *mochi.Server

	conns sync.Map     // net.Conn → *conn, admitted connections
	gen   atomic.Int64 // the last connection generation given

	eventsMu     sync.RWMutex
	events       chan registry.PresenceEvent // nil without a PresenceRecorder
	eventsClosed bool
	eventsDone   chan struct{}

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
	tc.MinVersion = tls.VersionTLS13
	tc.ClientAuth = tls.RequireAndVerifyClientCert
	if cfg.Enroller != nil {
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	}

	caps := mochi.NewDefaultServerCapabilities()
	conns := cfg.ConnectionsMax
	if conns <= 0 {
		conns = ConnectionsMax
	}
	caps.MaximumClients = int64(conns)
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

	b := &Broker{addr: cfg.Addr, tls: tc, log: log, connsMax: conns, checker: checker, handler: h, presence: cfg.Presence, enroller: cfg.Enroller,
		relay: cfg.Relay, relays: make(chan struct{}, relaysMax), lanes: map[iotpay.DeviceID]*relayLane{}}
	if b.presence != nil {
		b.events = make(chan registry.PresenceEvent, presenceQueueLen)
		b.eventsDone = make(chan struct{})
	}
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
	if b.relay != nil {
		if err := b.server.Subscribe(wire.TopicPrefix+"+/relay", relaySubscriptionID, b.onRelay); err != nil {
			return nil, iotpay.Wrap(iotpay.EINTERNAL, "mqtt: cannot subscribe to relay topics", err)
		}
	}
	if b.enroller != nil {
		if err := b.server.Subscribe(wire.TopicPrefix+"+/enroll", enrollSubscriptionID, b.onEnroll); err != nil {
			return nil, iotpay.Wrap(iotpay.EINTERNAL, "mqtt: cannot subscribe to enroll topics", err)
		}
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
	ln := newListener("mqtts", raw, b.tls, b.log, b.connsMax, connectTimeout)
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
	if b.events != nil {
		go b.recordPresence()
	}
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

// PublishRetained sends payload at QoS 1 to the subscribers of topic and
// keeps it for those who subscribe later (a device's desired state).
func (b *Broker) PublishRetained(topic string, payload []byte) error {
	if topic == "" || strings.ContainsAny(topic, "+#") {
		return iotpay.Errorf(iotpay.EINVALID, "mqtt: invalid topic %q", topic)
	}
	if b.isClosing() {
		return iotpay.Errorf(iotpay.EUNAVAILABLE, "mqtt: broker closed")
	}
	if err := b.server.Publish(topic, payload, true, 1); err != nil {
		return iotpay.Wrap(iotpay.EINTERNAL, "mqtt: cannot publish", err)
	}
	return nil
}

// publish is Publish without the checks, so a handler call that finishes
// while the broker closes still answers.
func (b *Broker) publish(topic string, payload []byte) error {
	if err := b.server.Publish(topic, payload, false, 1); err != nil {
		return iotpay.Wrap(iotpay.EINTERNAL, "mqtt: cannot publish", err)
	}
	return nil
}

// Disconnect drops the live session of device, if any: an MQTT 5 client
// is told "administrative action" (0x98) in a DISCONNECT, a 3.1.1 client's
// connection is closed. It does not stop the device from connecting again:
// the DeviceChecker decides that.
func (b *Broker) Disconnect(id iotpay.DeviceID) {
	cl, ok := b.server.Clients.Get(string(id))
	if !ok || cl.Net.Inline || cl.Closed() {
		return
	}
	b.log.Info("disconnecting device", "device", id, "remote", cl.Net.Remote)
	b.conn(cl).end(ReasonAdministrative)
	if cl.Properties.ProtocolVersion < 5 {
		cl.Stop(packets.ErrAdministrativeAction)
		return
	}
	// The error is the reason code we gave; the connection is closed anyway.
	_ = b.server.DisconnectClient(cl, packets.ErrAdministrativeAction)
}

// conn returns what the broker knows of cl's connection, nil if it was
// not admitted.
func (b *Broker) conn(cl *mochi.Client) *conn {
	if cl == nil || cl.Net.Conn == nil {
		return nil
	}
	c, ok := b.conns.Load(cl.Net.Conn)
	if !ok {
		return nil
	}
	return c.(*conn)
}

// nextGeneration returns a connection generation above every one given
// before, in this process and, as long as the clock does not go back, in
// earlier ones: Unix nanoseconds, or one more than the last.
func (b *Broker) nextGeneration() int64 {
	for {
		last := b.gen.Load()
		g := max(time.Now().UnixNano(), last+1)
		if b.gen.CompareAndSwap(last, g) {
			return g
		}
	}
}

// emit queues a presence event. Past the queue's bound an activity event
// is dropped (the next one will do), any other waits for room.
func (b *Broker) emit(ev registry.PresenceEvent) {
	if b.events == nil {
		return
	}
	b.eventsMu.RLock()
	defer b.eventsMu.RUnlock()
	if b.eventsClosed {
		return
	}
	select {
	case b.events <- ev:
		return
	default:
	}
	if ev.Kind == registry.PresenceActivity {
		return
	}
	b.events <- ev
}

// recordPresence hands queued events to the PresenceRecorder, as many as
// are waiting at once, until the queue is closed and drained.
func (b *Broker) recordPresence() {
	defer close(b.eventsDone)
	for ev := range b.events {
		batch := []registry.PresenceEvent{ev}
	more:
		for len(batch) < registry.PresenceEventsMax {
			select {
			case ev, ok := <-b.events:
				if !ok {
					break more
				}
				batch = append(batch, ev)
			default:
				break more
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), presenceTimeout)
		if err := b.presence.RecordPresence(ctx, batch); err != nil {
			b.log.Warn("presence not recorded", "events", len(batch), "err", err)
		}
		cancel()
	}
}

// stopPresence records the events queued and stops.
func (b *Broker) stopPresence() {
	if b.events == nil {
		return
	}
	b.eventsMu.Lock()
	closed := b.eventsClosed
	b.eventsClosed = true
	if !closed {
		close(b.events)
	}
	b.eventsMu.Unlock()
	b.mu.Lock()
	started := b.started
	b.mu.Unlock()
	if started {
		<-b.eventsDone
	}
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
		b.stopPresence()
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
		b.conn(cl).end(ReasonShutdown)
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

// relayLane is one device's relayed messages waiting to be handled, in the
// order they came; one goroutine drains a lane while it is not empty.
type relayLane struct{ jobs []func() }

// inLane runs job after the relayed messages of device before it, on the
// lane's goroutine.
func (b *Broker) inLane(device iotpay.DeviceID, job func()) {
	b.lanesMu.Lock()
	defer b.lanesMu.Unlock()
	if l, ok := b.lanes[device]; ok {
		l.jobs = append(l.jobs, job)
		return
	}
	l := &relayLane{jobs: []func(){job}}
	b.lanes[device] = l
	go func() {
		for {
			b.lanesMu.Lock()
			if len(l.jobs) == 0 {
				delete(b.lanes, device)
				b.lanesMu.Unlock()
				return
			}
			next := l.jobs[0]
			l.jobs[0] = nil
			l.jobs = l.jobs[1:]
			b.lanesMu.Unlock()
			next()
		}
	}()
}

// onRelay receives every message a gateway published on its relay topic.
// Unlike a device's own payments, which the handler takes one at a time
// per connection, a gateway's relayed messages (many devices' on one
// connection) are handled concurrently, up to relaysMax in all, but one
// device's in the order they came (its counter must rise); each answer
// goes back on the gateway's relay answer topic with its Seq.
func (b *Broker) onRelay(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
	gw, ok := topicDevice(pk.TopicName, "relay")
	if !ok || string(gw) != pk.Origin {
		b.log.Warn("relay message dropped: topic does not belong to publisher", "topic", pk.TopicName, "client", pk.Origin)
		return
	}
	r, err := wire.ParseRelay(pk.Payload)
	if err != nil {
		b.log.Warn("relay message dropped", "gateway", gw, "err", err)
		return
	}
	if !b.enterCall() {
		b.log.Info("relay message dropped: broker closing", "gateway", gw)
		return
	}
	b.relays <- struct{}{}
	b.inLane(iotpay.DeviceID(r.Device), func() {
		defer func() { <-b.relays; b.calls.Done() }()
		ctx, cancel := context.WithTimeout(context.Background(), handleTimeout)
		defer cancel()
		answer := b.relay.HandleRelay(ctx, gw, r)
		out, err := wire.EncodeRelayAnswer(&wire.RelayAnswer{Device: r.Device, Body: answer, Seq: r.Seq})
		if err == nil {
			err = b.publish(wire.RelayAnswerTopic(string(gw)), out)
		}
		if err != nil {
			b.log.Warn("relay answer not published", "gateway", gw, "device", r.Device, "err", err)
		}
	})
}

// payTopicDevice returns the device whose pay topic topic is.
func payTopicDevice(topic string) (iotpay.DeviceID, bool) { return topicDevice(topic, "pay") }

// topicDevice returns the device whose topic under leaf topic is.
func topicDevice(topic, leaf string) (iotpay.DeviceID, bool) {
	rest, ok := strings.CutPrefix(topic, wire.TopicPrefix)
	if !ok {
		return "", false
	}
	id, l, ok := strings.Cut(rest, "/")
	if !ok || !iotpay.ValidID(iotpay.PrefixDevice, id) || l != leaf {
		return "", false
	}
	return iotpay.DeviceID(id), true
}

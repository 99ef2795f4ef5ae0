package mqtt

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotpay/iotpay"
	devmqtt "github.com/iotpay/iotpay/device/mqtt"
	"github.com/iotpay/iotpay/internal/syncbuf"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/wire"
)

const testWait = 10 * time.Second

// checker is a DeviceChecker with a revocation list; err, when set, is
// its answer to every device.
type checker struct {
	mu      sync.Mutex
	revoked map[iotpay.DeviceID]bool
	calls   []iotpay.DeviceID
	err     error
}

func (c *checker) CheckDevice(_ context.Context, id iotpay.DeviceID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, id)
	if c.err != nil {
		return c.err
	}
	if c.revoked[id] {
		return iotpay.Errorf(iotpay.EUNAUTHORIZED, "device %s is revoked", id)
	}
	return nil
}

func (c *checker) revoke(id iotpay.DeviceID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.revoked == nil {
		c.revoked = map[iotpay.DeviceID]bool{}
	}
	c.revoked[id] = true
}

func (c *checker) called() []iotpay.DeviceID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]iotpay.DeviceID(nil), c.calls...)
}

// call is one Handler call.
type call struct {
	device  iotpay.DeviceID
	payload string
}

// handler echoes "receipt:" and the payload, and reports each call. When
// release is set, each call first waits for it.
type handler struct {
	calls   chan call
	entered chan struct{}
	release chan struct{}
}

func newHandler() *handler {
	return &handler{calls: make(chan call, 100), entered: make(chan struct{}, 100)}
}

func (h *handler) HandlePay(_ context.Context, device iotpay.DeviceID, payload []byte) []byte {
	h.entered <- struct{}{}
	if h.release != nil {
		<-h.release
	}
	h.calls <- call{device, string(payload)}
	return append([]byte("receipt:"), payload...)
}

// next returns the next handler call, failing after testWait.
func (h *handler) next(t testing.TB) call {
	t.Helper()
	select {
	case c := <-h.calls:
		return c
	case <-time.After(testWait):
		t.Fatal("handler not called")
		return call{}
	}
}

// none fails if the handler has been called.
func (h *handler) none(t testing.TB) {
	t.Helper()
	select {
	case c := <-h.calls:
		t.Fatalf("handler called unexpectedly: %+v", c)
	default:
	}
}

// device is a device key and its certificate.
type device struct {
	id   iotpay.DeviceID
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newDevice(t testing.TB, ca *pki.CA) device {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "device")
	if err != nil {
		t.Fatal(err)
	}
	id := iotpay.DeviceID(iotpay.NewID(iotpay.PrefixDevice, time.Now(), nil))
	cert, err := ca.SignDeviceCSR(csr, id, "ten_test")
	if err != nil {
		t.Fatal(err)
	}
	return device{id: id, cert: cert, key: key}
}

// tlsConfig is the device's client TLS configuration; its certificate's
// private key is a crypto.Signer as a keystore would give.
func (d device) tlsConfig(roots *x509.CertPool) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{d.cert.Raw}, PrivateKey: d.key, Leaf: d.cert}},
		RootCAs:      roots,
		MinVersion:   tls.VersionTLS12,
	}
}

// env is a started broker with its CA.
type env struct {
	ca      *pki.CA
	broker  *Broker
	checker *checker
	handler *handler
	logs    *syncbuf.Buffer
}

func newCA(t testing.TB) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA("test CA", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func startBroker(t testing.TB, h *handler) *env {
	t.Helper()
	return startBrokerWith(t, h, nil)
}

// startBrokerWith starts a broker whose configuration edit may complete
// (a PresenceRecorder, an Enroller).
func startBrokerWith(t testing.TB, h *handler, edit func(*Config)) *env {
	t.Helper()
	logs := &syncbuf.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker log:\n%s", logs.String())
		}
	})
	ca := newCA(t)
	cert, key, err := ca.IssueServerCert([]string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{ca: ca, checker: &checker{}, handler: h, logs: logs}
	cfg := Config{
		Addr: "127.0.0.1:0",
		TLS: &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}},
			ClientCAs:    ca.Pool(),
		},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&cfg)
	}
	e.broker, err = New(cfg, e.checker, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.broker.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.broker.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

func (e *env) dial(t testing.TB, d device, clientID iotpay.DeviceID) (*devmqtt.Transport, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	tr, err := devmqtt.Dial(ctx, devmqtt.Config{
		Addr:     e.broker.Addr(),
		TLS:      d.tlsConfig(e.ca.Pool()),
		DeviceID: clientID,
		Timeout:  testWait / 2, // generous: -race on a loaded machine is slow
	})
	if err == nil {
		t.Cleanup(func() { tr.Close() })
	}
	return tr, err
}

func wantCode(t testing.TB, err error, codes ...iotpay.Code) {
	t.Helper()
	var e *iotpay.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *iotpay.Error", err, err)
	}
	for _, c := range codes {
		if e.Code == c {
			return
		}
	}
	t.Fatalf("error %v has code %s, want one of %v", err, e.Code, codes)
}

func TestRoundTrip(t *testing.T) {
	e := startBroker(t, newHandler())
	d := newDevice(t, e.ca)
	tr, err := e.dial(t, d, d.id)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	answer, err := tr.Exchange(ctx, []byte("hello"), func(a []byte) bool { return bytes.Equal(a, []byte("receipt:hello")) })
	if err != nil {
		t.Fatal(err)
	}
	if string(answer) != "receipt:hello" {
		t.Fatalf("answer %q", answer)
	}
	if c := e.handler.next(t); c.device != d.id || c.payload != "hello" {
		t.Fatalf("handler got %+v, want device %s payload hello", c, d.id)
	}
	if got := e.checker.called(); len(got) != 1 || got[0] != d.id {
		t.Fatalf("checker calls %v", got)
	}

	// Answers that do not match are skipped; the next exchange works too.
	answer, err = tr.Exchange(ctx, []byte("second"), func(a []byte) bool { return strings.HasSuffix(string(a), "second") })
	if err != nil || string(answer) != "receipt:second" {
		t.Fatalf("second exchange: %q, %v", answer, err)
	}
}

func TestExchangeRepublishesOnTimeout(t *testing.T) {
	e := startBroker(t, newHandler())
	d := newDevice(t, e.ca)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	tr, err := devmqtt.Dial(ctx, devmqtt.Config{
		Addr: e.broker.Addr(), TLS: d.tlsConfig(e.ca.Pool()), DeviceID: d.id,
		Timeout: 200 * time.Millisecond, Attempts: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	_, err = tr.Exchange(ctx, []byte("again"), func([]byte) bool { return false })
	wantCode(t, err, iotpay.EUNAVAILABLE)
	for i := 0; i < 3; i++ {
		if c := e.handler.next(t); c.payload != "again" {
			t.Fatalf("call %d: %+v", i, c)
		}
	}
}

func TestForeignTopicsDenied(t *testing.T) {
	e := startBroker(t, newHandler())
	a, b := newDevice(t, e.ca), newDevice(t, e.ca)

	c := dialRaw(t, e.broker.Addr(), a.tlsConfig(e.ca.Pool()), string(a.id))
	if ack := c.connect(t); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK reason %#x", ack.ReasonCode)
	}

	// Publishing on b's pay topic: PUBACK "not authorized".
	c.publish(t, wire.PayTopic(string(b.id)), 7, []byte("steal"), false)
	if ack := c.read(t); ack.FixedHeader.Type != packets.Puback || ack.PacketID != 7 || ack.ReasonCode != packets.ErrNotAuthorized.Code {
		t.Fatalf("got packet type %d id %d reason %#x, want PUBACK 7 0x87", ack.FixedHeader.Type, ack.PacketID, ack.ReasonCode)
	}
	// Other topics of its own, and foreign or wildcard subscriptions.
	c.publish(t, wire.ReceiptTopic(string(a.id)), 8, []byte("forge"), false)
	if ack := c.read(t); ack.PacketID != 8 || ack.ReasonCode != packets.ErrNotAuthorized.Code {
		t.Fatalf("publish to own receipt topic: id %d reason %#x", ack.PacketID, ack.ReasonCode)
	}
	filters := []string{
		wire.ReceiptTopic(string(b.id)),
		wire.TopicPrefix + "+/receipt",
		wire.TopicPrefix + "#",
		"$share/g/" + wire.ReceiptTopic(string(a.id)),
		wire.ReceiptTopic(string(a.id)),
	}
	c.subscribe(t, 9, filters...)
	ack := c.read(t)
	want := []byte{0x87, 0x87, 0x87, 0x87, 0x01}
	if ack.FixedHeader.Type != packets.Suback || !bytes.Equal(ack.ReasonCodes, want) {
		// A shared filter is refused as "not authorized" like the others.
		t.Fatalf("SUBACK type %d codes %x, want %x", ack.FixedHeader.Type, ack.ReasonCodes, want)
	}

	// Its own pay topic works, and that is the only call the handler sees.
	c.publish(t, wire.PayTopic(string(a.id)), 10, []byte("mine"), false)
	if ack := c.read(t); ack.PacketID != 10 || ack.ReasonCode != 0 {
		t.Fatalf("own publish: id %d reason %#x", ack.PacketID, ack.ReasonCode)
	}
	if got := e.handler.next(t); got.device != a.id || got.payload != "mine" {
		t.Fatalf("handler got %+v", got)
	}
	receipt := c.read(t)
	if receipt.FixedHeader.Type != packets.Publish || receipt.TopicName != wire.ReceiptTopic(string(a.id)) || string(receipt.Payload) != "receipt:mine" {
		t.Fatalf("receipt: type %d topic %q payload %q", receipt.FixedHeader.Type, receipt.TopicName, receipt.Payload)
	}
	e.handler.none(t)
}

func TestForeignTopicDisconnectsV311(t *testing.T) {
	e := startBroker(t, newHandler())
	a, b := newDevice(t, e.ca), newDevice(t, e.ca)
	c := dialRaw(t, e.broker.Addr(), a.tlsConfig(e.ca.Pool()), string(a.id))
	c.version = 4
	if ack := c.connect(t); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %#x", ack.ReasonCode)
	}
	c.publish(t, wire.PayTopic(string(b.id)), 1, []byte("steal"), false)
	// mochi sends a DISCONNECT even to a 3.1.1 client, for which servers
	// have no such packet, then closes the connection.
	if pk, err := c.readPacket(); err == nil && pk.FixedHeader.Type != packets.Disconnect {
		t.Fatalf("got packet type %d", pk.FixedHeader.Type)
	}
	c.wantClosed(t)
	e.handler.none(t)
}

func TestRetainedAndOversizeRefused(t *testing.T) {
	e := startBroker(t, newHandler())
	d := newDevice(t, e.ca)
	for _, tc := range []struct {
		name    string
		payload []byte
		retain  bool
		reason  packets.Code
	}{
		{"retained", []byte("keep me"), true, packets.ErrRetainNotSupported},
		{"oversize", bytes.Repeat([]byte("x"), PayloadBytesMax+1), false, packets.ErrPacketTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, e.broker.Addr(), d.tlsConfig(e.ca.Pool()), string(d.id))
			ack := c.connect(t)
			if ack.ReasonCode != 0 || ack.Properties.RetainAvailableFlag != true || ack.Properties.MaximumPacketSize != packetBytesMax {
				t.Fatalf("CONNACK reason %#x properties %+v", ack.ReasonCode, ack.Properties)
			}
			c.publish(t, wire.PayTopic(string(d.id)), 1, tc.payload, tc.retain)
			if dis := c.read(t); dis.FixedHeader.Type != packets.Disconnect || dis.ReasonCode != tc.reason.Code {
				t.Fatalf("got type %d reason %#x, want DISCONNECT %#x", dis.FixedHeader.Type, dis.ReasonCode, tc.reason.Code)
			}
			c.wantClosed(t)
		})
	}
	e.handler.none(t)
}

func TestClientIDMismatchRefused(t *testing.T) {
	e := startBroker(t, newHandler())
	a, b := newDevice(t, e.ca), newDevice(t, e.ca)
	_, err := e.dial(t, a, b.id)
	wantCode(t, err, iotpay.EUNAUTHORIZED)
	if got := e.checker.called(); len(got) != 0 {
		t.Fatalf("checker called for a mismatched client id: %v", got)
	}

	// MQTT 5 gets a CONNACK reason code.
	c := dialRaw(t, e.broker.Addr(), a.tlsConfig(e.ca.Pool()), string(b.id))
	if ack := c.connect(t); ack.ReasonCode != packets.ErrClientIdentifierNotValid.Code {
		t.Fatalf("CONNACK reason %#x", ack.ReasonCode)
	}
	c.wantClosed(t)
	if !strings.Contains(e.logs.String(), "client id is not the certificate's device id") {
		t.Fatal("refusal reason not logged")
	}
}

func TestRevokedDeviceRefused(t *testing.T) {
	e := startBroker(t, newHandler())
	d := newDevice(t, e.ca)
	e.checker.revoke(d.id)
	_, err := e.dial(t, d, d.id)
	wantCode(t, err, iotpay.EUNAUTHORIZED)
	if got := e.checker.called(); len(got) != 1 || got[0] != d.id {
		t.Fatalf("checker calls %v", got)
	}
}

func TestForeignCARefused(t *testing.T) {
	e := startBroker(t, newHandler())
	other := newCA(t)
	d := newDevice(t, other) // a valid device id, certified by the wrong CA
	cfg := d.tlsConfig(e.ca.Pool())
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	_, err := devmqtt.Dial(ctx, devmqtt.Config{Addr: e.broker.Addr(), TLS: cfg, DeviceID: d.id, Timeout: testWait / 2})
	wantCode(t, err, iotpay.EUNAUTHORIZED)

	// No certificate at all.
	cfg.Certificates = nil
	_, err = devmqtt.Dial(ctx, devmqtt.Config{Addr: e.broker.Addr(), TLS: cfg, DeviceID: d.id, Timeout: testWait / 2})
	wantCode(t, err, iotpay.EUNAUTHORIZED)
	if got := e.checker.called(); len(got) != 0 {
		t.Fatalf("checker called: %v", got)
	}
}

func TestDisconnect(t *testing.T) {
	e := startBroker(t, newHandler())
	d := newDevice(t, e.ca)
	c := dialRaw(t, e.broker.Addr(), d.tlsConfig(e.ca.Pool()), string(d.id))
	if ack := c.connect(t); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %#x", ack.ReasonCode)
	}
	e.broker.Disconnect(d.id)
	if dis := c.read(t); dis.FixedHeader.Type != packets.Disconnect || dis.ReasonCode != packets.ErrAdministrativeAction.Code {
		t.Fatalf("got type %d reason %#x", dis.FixedHeader.Type, dis.ReasonCode)
	}
	c.wantClosed(t)
	e.broker.Disconnect(d.id) // gone already: nothing happens
}

func TestCloseWaitsForHandler(t *testing.T) {
	h := newHandler()
	h.release = make(chan struct{})
	e := startBroker(t, h)
	d := newDevice(t, e.ca)
	c := dialRaw(t, e.broker.Addr(), d.tlsConfig(e.ca.Pool()), string(d.id))
	if ack := c.connect(t); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %#x", ack.ReasonCode)
	}
	c.publish(t, wire.PayTopic(string(d.id)), 1, []byte("slow"), false)
	select {
	case <-h.entered:
	case <-time.After(testWait):
		t.Fatal("handler not entered")
	}

	closed := make(chan error, 1)
	go func() { closed <- e.broker.Close() }()
	// Longer than closeGrace, after which Close cuts connections: that must
	// not end the wait for the handler.
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a handler call was in progress", err)
	case <-time.After(closeGrace + 500*time.Millisecond):
	}
	close(h.release)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testWait):
		t.Fatal("Close did not return after the handler did")
	}
	if got := h.next(t); got.payload != "slow" {
		t.Fatalf("handler call %+v", got)
	}
	if err := e.broker.Close(); err != nil { // twice is fine
		t.Fatal(err)
	}
	if err := e.broker.Publish(wire.ReceiptTopic(string(d.id)), []byte("late")); iotpay.ErrorCode(err) != iotpay.EUNAVAILABLE {
		t.Fatalf("Publish after Close: %v", err)
	}
}

func TestCloseCutsSilentConnection(t *testing.T) {
	e := startBroker(t, newHandler())
	conn, err := net.Dial("tcp", e.broker.Addr()) // no TLS handshake, no CONNECT
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if err := e.broker.Close(); err != nil {
		t.Fatal(err)
	}
	// Well under connectTimeout, which alone would bound the connection.
	if d := time.Since(start); d > closeGrace+time.Second {
		t.Fatalf("Close took %v", d)
	}
}

func TestPayTopicDevice(t *testing.T) {
	id := iotpay.NewID(iotpay.PrefixDevice, time.Now(), nil)
	for topic, ok := range map[string]bool{
		wire.PayTopic(id):                   true,
		wire.ReceiptTopic(id):               false,
		wire.PayTopic(id) + "/x":            false,
		wire.PayTopic("dev_nope"):           false,
		"other/v1/" + id + "/pay":           false,
		wire.TopicPrefix + id + "/x/pay":    false,
		wire.PayTopic(strings.ToUpper(id)):  false,
		wire.TopicPrefix + "/" + id + "pay": false,
	} {
		dev, got := payTopicDevice(topic)
		if got != ok || (ok && string(dev) != id) {
			t.Errorf("payTopicDevice(%q) = %q, %v", topic, dev, got)
		}
	}
}

func TestMayAccess(t *testing.T) {
	a := iotpay.NewID(iotpay.PrefixDevice, time.Now(), nil)
	b := iotpay.NewID(iotpay.PrefixDevice, time.Now(), nil)
	for _, tc := range []struct {
		device, topic string
		write, ok     bool
	}{
		{a, wire.PayTopic(a), true, true},
		{a, wire.PayTopic(a), false, false},
		{a, wire.ReceiptTopic(a), false, true},
		{a, wire.ReceiptTopic(a), true, false},
		{a, wire.PayTopic(b), true, false},
		{a, wire.ReceiptTopic(b), false, false},
		{a, wire.TopicPrefix + a + "/#", false, false},
		{a, wire.TopicPrefix + a + "/+", false, false},
		{a, wire.TopicPrefix + "+/receipt", false, false},
		{a, wire.TopicPrefix + a + "/pay/x", true, false},
		{"inline", wire.PayTopic("inline"), true, false},
	} {
		if got := mayAccess(tc.device, tc.topic, tc.write); got != tc.ok {
			t.Errorf("mayAccess(%s, %q, write=%v) = %v", tc.device, tc.topic, tc.write, got)
		}
	}
}

// rawClient speaks just enough MQTT (5 by default) to see reason codes
// paho's 3.1.1 client cannot show.
type rawClient struct {
	conn    net.Conn
	r       *bufio.Reader
	id      string
	version byte
}

func dialRaw(t testing.TB, addr string, cfg *tls.Config, clientID string) *rawClient {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: testWait}, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(testWait))
	return &rawClient{conn: conn, r: bufio.NewReader(conn), id: clientID, version: 5}
}

func (c *rawClient) send(t testing.TB, pk packets.Packet) {
	t.Helper()
	pk.ProtocolVersion = c.version
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	default:
		err = fmt.Errorf("cannot send packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
}

func (c *rawClient) connect(t testing.TB) packets.Packet {
	t.Helper()
	return c.connectWith(t, func(*packets.Packet) {})
}

// connectWith sends a CONNECT that edit may change (credentials, will,
// keepalive) and returns the CONNACK.
func (c *rawClient) connectWith(t testing.TB, edit func(*packets.Packet)) packets.Packet {
	t.Helper()
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect:     packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, ClientIdentifier: c.id, Keepalive: 30},
	}
	edit(&pk)
	c.send(t, pk)
	ack := c.read(t)
	if ack.FixedHeader.Type != packets.Connack {
		t.Fatalf("got packet type %d, want CONNACK", ack.FixedHeader.Type)
	}
	return ack
}

func (c *rawClient) publish(t testing.TB, topic string, id uint16, payload []byte, retain bool) {
	t.Helper()
	c.send(t, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: retain},
		TopicName:   topic, PacketID: id, Payload: payload,
	})
}

func (c *rawClient) subscribe(t testing.TB, id uint16, filters ...string) {
	t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: id}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: 1})
	}
	c.send(t, pk)
}

func (c *rawClient) readPacket() (packets.Packet, error) {
	hb, err := c.r.ReadByte()
	if err != nil {
		return packets.Packet{}, err
	}
	pk := packets.Packet{ProtocolVersion: c.version}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pk, err
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Pingresp:
	default:
		err = fmt.Errorf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	return pk, err
}

func (c *rawClient) read(t testing.TB) packets.Packet {
	t.Helper()
	pk, err := c.readPacket()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return pk
}

// wantClosed fails unless the broker closes the connection.
func (c *rawClient) wantClosed(t testing.TB) {
	t.Helper()
	pk, err := c.readPacket()
	if err == nil {
		t.Fatalf("connection still open: got packet type %d", pk.FixedHeader.Type)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection still open")
	}
}

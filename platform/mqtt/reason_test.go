package mqtt

import (
	"context"
	"crypto/tls"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/wire"
)

// TestConnackReasonCodes checks the CONNACK code a refused CONNECT gets,
// for MQTT 5 and 3.1.1, and that the precise reason is logged.
func TestConnackReasonCodes(t *testing.T) {
	e := startBroker(t, newHandler())
	a, b := newDevice(t, e.ca), newDevice(t, e.ca)
	revoked := newDevice(t, e.ca)
	e.checker.revoke(revoked.id)
	status := wire.StatusTopic(string(a.id))
	will := func(topic, payload string, qos byte, retain bool) func(*packets.Packet) {
		return func(pk *packets.Packet) {
			pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload = true, topic, []byte(payload)
			pk.Connect.WillQos, pk.Connect.WillRetain = qos, retain
		}
	}
	for _, tc := range []struct {
		name     string
		dev      device
		clientID iotpay.DeviceID
		edit     func(*packets.Packet)
		v5, v3   byte
		logged   string
	}{
		{"client id of another device", a, b.id, nil, 0x85, 0x02, "client id is not the certificate's device id"},
		{"revoked device", revoked, revoked.id, nil, 0x87, 0x05, "device checker refused"},
		{"will on another device's status topic", a, a.id, will(wire.StatusTopic(string(b.id)), "offline", 1, false), 0x87, 0x05, "will message on another topic"},
		{"will on its own pay topic", a, a.id, will(wire.PayTopic(string(a.id)), "offline", 1, false), 0x87, 0x05, "will message on another topic"},
		{"will too large", a, a.id, will(status, strings.Repeat("x", registry.PresenceStatusBytesMax+1), 1, false), 0x95, 0x05, "will message over the status bound"},
		{"will not a status", a, a.id, will(status, "off\x00line", 1, false), 0x99, 0x05, "will message is not a status text"},
		{"will retained", a, a.id, will(status, "offline", 1, true), 0x9A, 0x05, ""},
		{"will at QoS 2", a, a.id, will(status, "offline", 2, false), 0x9B, 0x05, ""},
		{"enhanced authentication", a, a.id, func(pk *packets.Packet) { pk.Properties.AuthenticationMethod = "SCRAM-SHA-1" }, 0x8C, 0, "enhanced authentication"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, version := range []byte{5, 4} {
				want := tc.v5
				if version == 4 {
					if tc.v3 == 0 {
						continue // an MQTT 5 feature
					}
					want = tc.v3
					if tc.v3 == 0x05 && (tc.v5 == 0x9A || tc.v5 == 0x9B) {
						// mochi refuses these itself, before our hook, and
						// sends 3.1.1 clients the MQTT 5 code as it is.
						want = tc.v5
					}
				}
				c := dialRaw(t, e.broker.Addr(), tc.dev.tlsConfig(e.ca.Pool()), string(tc.clientID))
				c.version = version
				edit := tc.edit
				if edit == nil {
					edit = func(*packets.Packet) {}
				}
				if ack := c.connectWith(t, edit); ack.ReasonCode != want {
					t.Errorf("MQTT %d: CONNACK %#x, want %#x", version, ack.ReasonCode, want)
				}
				c.wantClosed(t)
			}
			if tc.logged != "" && !strings.Contains(e.logs.String(), tc.logged) {
				t.Errorf("reason %q not logged", tc.logged)
			}
		})
	}
	e.handler.none(t)
}

// TestWildcardTopicName: a publish on a topic name with a wildcard ends
// the connection with DISCONNECT 0x90.
func TestWildcardTopicName(t *testing.T) {
	e := startBroker(t, newHandler())
	d := newDevice(t, e.ca)
	c := dialRaw(t, e.broker.Addr(), d.tlsConfig(e.ca.Pool()), string(d.id))
	if ack := c.connect(t); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %#x", ack.ReasonCode)
	}
	c.publish(t, wire.TopicPrefix+string(d.id)+"/+", 1, []byte("x"), false)
	if dis := c.read(t); dis.FixedHeader.Type != packets.Disconnect || dis.ReasonCode != packets.ErrTopicNameInvalid.Code {
		t.Fatalf("got type %d reason %#x, want DISCONNECT 0x90", dis.FixedHeader.Type, dis.ReasonCode)
	}
	c.wantClosed(t)
	e.handler.none(t)
}

func TestConnackServerUnavailable(t *testing.T) {
	e := startBroker(t, newHandler())
	d := newDevice(t, e.ca)
	e.checker.err = iotpay.Errorf(iotpay.EUNAVAILABLE, "database down")
	for version, want := range map[byte]byte{5: 0x88, 4: 0x03} {
		c := dialRaw(t, e.broker.Addr(), d.tlsConfig(e.ca.Pool()), string(d.id))
		c.version = version
		if ack := c.connect(t); ack.ReasonCode != want {
			t.Errorf("MQTT %d: CONNACK %#x, want %#x", version, ack.ReasonCode, want)
		}
	}
}

// TestTLS13Only: a client that offers at most TLS 1.2 is refused in the
// handshake.
func TestTLS13Only(t *testing.T) {
	e := startBroker(t, newHandler())
	d := newDevice(t, e.ca)
	cfg := d.tlsConfig(e.ca.Pool())
	cfg.MaxVersion = tls.VersionTLS12
	conn, err := tls.Dial("tcp", e.broker.Addr(), cfg)
	if err == nil {
		err = conn.Handshake()
		conn.Close()
	}
	if err == nil {
		t.Fatal("TLS 1.2 handshake succeeded")
	}
	c := dialRaw(t, e.broker.Addr(), d.tlsConfig(e.ca.Pool()), string(d.id))
	if v := c.conn.(*tls.Conn).ConnectionState().Version; v != tls.VersionTLS13 {
		t.Fatalf("negotiated %#x, want TLS 1.3", v)
	}
}

// recorder is a PresenceRecorder that keeps the events.
type recorder struct {
	mu     sync.Mutex
	events []registry.PresenceEvent
	added  chan struct{}
}

func newRecorder() *recorder { return &recorder{added: make(chan struct{}, 1000)} }

func (r *recorder) RecordPresence(_ context.Context, evs []registry.PresenceEvent) error {
	r.mu.Lock()
	r.events = append(r.events, evs...)
	r.mu.Unlock()
	r.added <- struct{}{}
	return nil
}

// wait returns the events once one of device matches ok.
func (r *recorder) wait(t *testing.T, dev iotpay.DeviceID, ok func(registry.PresenceEvent) bool) []registry.PresenceEvent {
	t.Helper()
	deadline := time.After(testWait)
	for {
		r.mu.Lock()
		evs := append([]registry.PresenceEvent(nil), r.events...)
		r.mu.Unlock()
		for _, ev := range evs {
			if ev.Device == dev && ok(ev) {
				return evs
			}
		}
		select {
		case <-r.added:
		case <-deadline:
			t.Fatalf("no such presence event of %s in %+v", dev, evs)
		}
	}
}

func kind(k registry.PresenceKind) func(registry.PresenceEvent) bool {
	return func(ev registry.PresenceEvent) bool { return ev.Kind == k }
}

func disconnected(reason string) func(registry.PresenceEvent) bool {
	return func(ev registry.PresenceEvent) bool {
		return ev.Kind == registry.PresenceDisconnected && ev.Reason == reason
	}
}

func TestPresenceEvents(t *testing.T) {
	rec := newRecorder()
	e := startBrokerWith(t, newHandler(), func(c *Config) { c.Presence = rec })
	d := newDevice(t, e.ca)
	statusWill := func(pk *packets.Packet) {
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload = true, wire.StatusTopic(string(d.id)), []byte(`{"state":"lost"}`)
		pk.Connect.WillQos = 1
	}

	t.Run("connect, status, clean disconnect", func(t *testing.T) {
		c := dialRaw(t, e.broker.Addr(), d.tlsConfig(e.ca.Pool()), string(d.id))
		if ack := c.connectWith(t, statusWill); ack.ReasonCode != 0 {
			t.Fatalf("CONNACK %#x", ack.ReasonCode)
		}
		evs := rec.wait(t, d.id, kind(registry.PresenceConnected))
		conn := evs[len(evs)-1]
		if conn.Transport != Transport || conn.Remote == "" || conn.Generation == 0 {
			t.Fatalf("connected event %+v", conn)
		}
		c.publish(t, wire.StatusTopic(string(d.id)), 3, []byte("online"), false)
		if ack := c.read(t); ack.FixedHeader.Type != packets.Puback || ack.ReasonCode >= 0x80 {
			t.Fatalf("status PUBACK type %d reason %#x", ack.FixedHeader.Type, ack.ReasonCode)
		}
		rec.wait(t, d.id, func(ev registry.PresenceEvent) bool {
			return ev.Kind == registry.PresenceStatus && ev.Status == "online" && ev.Generation == conn.Generation
		})
		// A status that is not one: PUBACK "payload format invalid".
		c.publish(t, wire.StatusTopic(string(d.id)), 4, []byte("bad\x01"), false)
		if ack := c.read(t); ack.FixedHeader.Type != packets.Puback || ack.ReasonCode != packets.ErrPayloadFormatInvalid.Code {
			t.Fatalf("bad status PUBACK type %d reason %#x", ack.FixedHeader.Type, ack.ReasonCode)
		}
		c.send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
		c.wantClosed(t)
		evs = rec.wait(t, d.id, disconnected(ReasonDisconnected))
		for _, ev := range evs {
			if ev.Kind == registry.PresenceStatus && ev.Status == `{"state":"lost"}` {
				t.Fatal("will published after a clean disconnect")
			}
		}
	})

	t.Run("keepalive timeout publishes the will", func(t *testing.T) {
		c := dialRaw(t, e.broker.Addr(), d.tlsConfig(e.ca.Pool()), string(d.id))
		if ack := c.connectWith(t, func(pk *packets.Packet) { statusWill(pk); pk.Connect.Keepalive = 1 }); ack.ReasonCode != 0 {
			t.Fatalf("CONNACK %#x", ack.ReasonCode)
		}
		// Silent for longer than the keepalive: the broker says why and
		// ends it.
		if dis := c.read(t); dis.FixedHeader.Type != packets.Disconnect || dis.ReasonCode != packets.ErrKeepAliveTimeout.Code {
			t.Fatalf("got type %d reason %#x, want DISCONNECT 0x8D", dis.FixedHeader.Type, dis.ReasonCode)
		}
		c.wantClosed(t)
		evs := rec.wait(t, d.id, disconnected(ReasonKeepaliveTimeout))
		last := evs[len(evs)-1]
		if !slicesContainsStatus(evs, last.Generation, `{"state":"lost"}`) {
			t.Fatalf("will not recorded as the status: %+v", evs)
		}
	})

	t.Run("connection lost", func(t *testing.T) {
		c := dialRaw(t, e.broker.Addr(), d.tlsConfig(e.ca.Pool()), string(d.id))
		if ack := c.connect(t); ack.ReasonCode != 0 {
			t.Fatalf("CONNACK %#x", ack.ReasonCode)
		}
		c.conn.(*tls.Conn).NetConn().Close() // no DISCONNECT, no TLS close
		rec.wait(t, d.id, disconnected(ReasonConnectionLost))
	})

	t.Run("session takeover", func(t *testing.T) {
		before := lastGeneration(rec)
		old := dialRaw(t, e.broker.Addr(), d.tlsConfig(e.ca.Pool()), string(d.id))
		if ack := old.connect(t); ack.ReasonCode != 0 {
			t.Fatalf("CONNACK %#x", ack.ReasonCode)
		}
		rec.wait(t, d.id, func(ev registry.PresenceEvent) bool {
			return ev.Kind == registry.PresenceConnected && ev.Generation > before
		})
		oldGen := lastGeneration(rec)
		var evs []registry.PresenceEvent
		c := dialRaw(t, e.broker.Addr(), d.tlsConfig(e.ca.Pool()), string(d.id))
		if ack := c.connect(t); ack.ReasonCode != 0 {
			t.Fatalf("CONNACK %#x", ack.ReasonCode)
		}
		if dis := old.read(t); dis.FixedHeader.Type != packets.Disconnect || dis.ReasonCode != packets.ErrSessionTakenOver.Code {
			t.Fatalf("old connection got type %d reason %#x, want DISCONNECT 0x8E", dis.FixedHeader.Type, dis.ReasonCode)
		}
		evs = rec.wait(t, d.id, func(ev registry.PresenceEvent) bool {
			return ev.Kind == registry.PresenceConnected && ev.Generation > oldGen
		})
		evs = rec.wait(t, d.id, func(ev registry.PresenceEvent) bool {
			return ev.Kind == registry.PresenceDisconnected && ev.Generation == oldGen
		})
		for _, ev := range evs {
			if ev.Kind == registry.PresenceDisconnected && ev.Generation == oldGen && ev.Reason != ReasonTakenOver {
				t.Fatalf("old connection ended for %q", ev.Reason)
			}
		}

		// Then the platform drops it (a revocation).
		e.broker.Disconnect(d.id)
		if dis := c.read(t); dis.FixedHeader.Type != packets.Disconnect || dis.ReasonCode != packets.ErrAdministrativeAction.Code {
			t.Fatalf("got type %d reason %#x, want DISCONNECT 0x98", dis.FixedHeader.Type, dis.ReasonCode)
		}
		rec.wait(t, d.id, disconnected(ReasonAdministrative))
	})
}

// lastGeneration is the generation of the latest connection recorded.
func lastGeneration(r *recorder) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var g int64
	for _, ev := range r.events {
		if ev.Kind == registry.PresenceConnected {
			g = max(g, ev.Generation)
		}
	}
	return g
}

func slicesContainsStatus(evs []registry.PresenceEvent, gen int64, status string) bool {
	for _, ev := range evs {
		if ev.Kind == registry.PresenceStatus && ev.Generation == gen && ev.Status == status {
			return true
		}
	}
	return false
}

func TestValidStatus(t *testing.T) {
	for s, ok := range map[string]bool{
		"online": true, "offline": true, `{"battery":93,"fw":"1.2"}`: true, "en panne ✗": true,
		"": false, "a\nb": false, "\x00": false, "\xff": false,
		strings.Repeat("x", registry.PresenceStatusBytesMax):   true,
		strings.Repeat("x", registry.PresenceStatusBytesMax+1): false,
	} {
		if got := validStatus([]byte(s)); got != ok {
			t.Errorf("validStatus(%q) = %v", s, got)
		}
	}
}

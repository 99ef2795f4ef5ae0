package mqtt

import (
	"context"
	"testing"

	"github.com/iotpay/iotpay/platform/registry"
)

// BenchmarkConnect measures a device's connection: TCP, the TLS 1.3
// handshake with its client certificate (P-256), CONNECT and CONNACK (the
// registry check a fake), presence events queued, then the connection
// closed.
func BenchmarkConnect(b *testing.B) {
	e := startBrokerWith(b, newHandler(), func(c *Config) { c.Presence = nopRecorder{} })
	d := newDevice(b, e.ca)
	cfg := d.tlsConfig(e.ca.Pool())
	b.ReportAllocs()
	for b.Loop() {
		c := dialRaw(b, e.broker.Addr(), cfg, string(d.id))
		if ack := c.connect(b); ack.ReasonCode != 0 {
			b.Fatalf("CONNACK %#x", ack.ReasonCode)
		}
		c.conn.Close()
	}
}

// nopRecorder records nothing.
type nopRecorder struct{}

func (nopRecorder) RecordPresence(context.Context, []registry.PresenceEvent) error { return nil }

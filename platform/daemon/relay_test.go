package daemon_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

// relayGateway is a gateway's MQTT/TLS connection to the platform, as
// iotpay-edge makes it: its own certificate, its relay topics.
type relayGateway struct {
	t       *testing.T
	id      iotpay.DeviceID
	client  paho.Client
	answers chan *wire.RelayAnswer
	seq     uint64
}

// gatewayProduct makes a product of kind gateway.
func (f *fixture) gatewayProduct() iotpay.ProductID {
	var prod struct {
		ID   iotpay.ProductID
		Kind string
	}
	f.must("POST", "/v1/products", map[string]any{"name": "gateways", "kind": "gateway", "merchant_account": f.merchant,
		"pricing": map[string]any{"mode": "amount", "currency": "EUR"}}, &prod)
	if prod.Kind != "gateway" {
		f.t.Fatalf("product kind %q", prod.Kind)
	}
	return prod.ID
}

// dialGateway enrolls a device of product and connects it as a gateway.
func (f *fixture) dialGateway(t *testing.T, product iotpay.ProductID) *relayGateway {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	dev, tr := f.enroll(product, key)
	tr.Close()
	id := dev.Identity()
	tc := id.TLSConfig("127.0.0.1")
	tc.MinVersion = tls.VersionTLS13
	g := &relayGateway{t: t, id: dev.ID(), answers: make(chan *wire.RelayAnswer, 16)}
	g.client = paho.NewClient(paho.NewClientOptions().AddBroker("tls://" + f.d.MQTTAddr()).SetClientID(string(dev.ID())).
		SetTLSConfig(tc).SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(false))
	if tok := g.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("gateway connect: %v", tok.Error())
	}
	t.Cleanup(func() { g.client.Disconnect(100) })
	tok := g.client.Subscribe(wire.RelayAnswerTopic(string(dev.ID())), 1, func(_ paho.Client, m paho.Message) {
		a, err := wire.ParseRelayAnswer(m.Payload())
		if err != nil {
			t.Errorf("relay answer: %v", err)
			return
		}
		g.answers <- a
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("gateway subscribe: %v", tok.Error())
	}
	return g
}

// relay forwards body for device and returns the platform's answer.
func (g *relayGateway) relay(device iotpay.DeviceID, body []byte) *wire.RelayAnswer {
	g.t.Helper()
	g.seq++
	b, err := wire.EncodeRelay(&wire.Relay{Device: string(device), Body: body, Seq: g.seq, FCnt: uint32(g.seq), RxMs: time.Now().UnixMilli()})
	if err != nil {
		g.t.Fatal(err)
	}
	if tok := g.client.Publish(wire.RelayTopic(string(g.id)), 1, false, b); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		g.t.Fatalf("relay publish: %v", tok.Error())
	}
	select {
	case a := <-g.answers:
		if a.Seq != g.seq || a.Device != string(device) {
			g.t.Fatalf("answer for %s #%d, want %s #%d", a.Device, a.Seq, device, g.seq)
		}
		return a
	case <-time.After(10 * time.Second):
		g.t.Fatal("no relay answer")
		return nil
	}
}

// TestRelayThroughAGateway: a gateway relays a device's signed request over
// its own MQTT/TLS connection and gets the device's receipt; a copy it
// altered by one byte is refused with nothing paid; another gateway's copy
// of a relayed message is dropped; a device that is not a gateway relays
// nothing; the ledger balances.
func TestRelayThroughAGateway(t *testing.T) {
	f := setup(t, "")
	gwProduct := f.gatewayProduct()
	gw := f.dialGateway(t, gwProduct)

	s, err := f.dev.Sign(dispense())
	if err != nil {
		t.Fatal(err)
	}
	a := gw.relay(f.dev.ID(), s.Raw)
	rc, err := f.dev.Open(s, a.Body)
	if err != nil || rc.Outcome != wire.Approved {
		t.Fatalf("relayed payment: %+v %v", rc, err)
	}
	if got := f.balance(f.payer); got != 2000-250 {
		t.Fatalf("payer balance %d after one relayed payment", got)
	}

	// The gateway changes one byte of the next request.
	s2, err := f.dev.Sign(dispense())
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), s2.Raw...)
	bad[len(bad)/2] ^= 0x01
	a = gw.relay(f.dev.ID(), bad)
	rc, err = wire.OpenReceipt(wire.Intl, f.dev.Identity().PlatformKey, a.Body)
	if err != nil || rc.Outcome != wire.Rejected {
		t.Fatalf("altered request: %+v %v", rc, err)
	}
	if got := f.balance(f.payer); got != 2000-250 {
		t.Fatalf("payer balance %d after an altered request", got)
	}

	// A second gateway hears the same (intact) request: the first's copy
	// is handled, the second's dropped, one payment.
	gw2 := f.dialGateway(t, gwProduct)
	a = gw.relay(f.dev.ID(), s2.Raw)
	if rc, err := f.dev.Open(s2, a.Body); err != nil || rc.Outcome != wire.Approved {
		t.Fatalf("second payment: %+v %v", rc, err)
	}
	if a := gw2.relay(f.dev.ID(), s2.Raw); len(a.Body) != 0 {
		t.Fatalf("another gateway's copy answered: %x", a.Body)
	}
	// The first gateway relaying it again (its store resent it) gets the
	// original receipt.
	if a := gw.relay(f.dev.ID(), s2.Raw); len(a.Body) == 0 {
		t.Fatal("a resent copy got no answer")
	} else if rc, err := wire.OpenReceipt(wire.Intl, f.dev.Identity().PlatformKey, a.Body); err != nil || rc.Outcome != wire.Approved {
		t.Fatalf("resent copy: %+v %v", rc, err)
	}
	if got := f.balance(f.payer); got != 2000-500 {
		t.Fatalf("payer balance %d after two payments, one heard twice", got)
	}

	// A device's message as large as a device may send on its own is
	// relayed too (the relay adds a few bytes), and answered: here a
	// refusal, signed, for bytes that are no request.
	if a := gw.relay(f.dev.ID(), append([]byte{0xd2}, make([]byte, 4095)...)); len(a.Body) == 0 {
		t.Fatal("a relay of the largest message got no answer")
	} else if rc, err := wire.OpenReceipt(wire.Intl, f.dev.Identity().PlatformKey, a.Body); err != nil || rc.Outcome != wire.Rejected {
		t.Fatalf("largest message: %+v %v", rc, err)
	}

	// A gateway relays for its own tenant's devices only: another tenant's
	// device gets nothing, not even a refusal.
	if a := gw.relay(f.otherTenantDevice(t), append([]byte{0xd2}, make([]byte, 40)...)); len(a.Body) != 0 {
		t.Fatalf("a relay for another tenant's device was answered: %x", a.Body)
	}

	// A device of a product that is not a gateway relays nothing.
	var prod struct{ ID iotpay.ProductID }
	f.must("POST", "/v1/products", map[string]any{"name": "plain", "merchant_account": f.merchant,
		"pricing": map[string]any{"mode": "amount", "currency": "EUR"}}, &prod)
	notGW := f.dialGateway(t, prod.ID)
	s3, err := f.dev.Sign(dispense())
	if err != nil {
		t.Fatal(err)
	}
	if a := notGW.relay(f.dev.ID(), s3.Raw); len(a.Body) != 0 {
		t.Fatalf("a device that is no gateway relayed: %x", a.Body)
	}
	if got := f.balance(f.payer); got != 2000-500 {
		t.Fatalf("payer balance %d after a refused relay", got)
	}
	f.assertBalanced()
}

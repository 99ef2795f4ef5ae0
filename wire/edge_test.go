package wire_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

func TestFrameRoundTrip(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	raw := mustSignRequest(t, key, amountRequest())
	f, err := wire.NewFrame(wire.FrameMessage, iotpay.DeviceID(testDevice), 9, raw)
	if err != nil {
		t.Fatal(err)
	}
	b, err := wire.EncodeFrame(f)
	if err != nil {
		t.Fatal(err)
	}
	// The frame costs a few bytes over the envelope it carries.
	if over := len(b) - len(raw); over > 24 {
		t.Errorf("frame adds %d bytes to a %d-byte envelope", over, len(raw))
	}
	t.Logf("signed request %d bytes, its frame %d", len(raw), len(b))
	g, err := wire.ParseFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	if g.Kind != wire.FrameMessage || g.FCnt != 9 || !bytes.Equal(g.Body, raw) || string(g.DeviceID()) != testDevice {
		t.Fatalf("round trip: %+v", g)
	}
	for _, k := range []wire.FrameKind{wire.FramePoll, wire.FrameQueued, wire.FrameNone, wire.FrameBusy} {
		f, _ := wire.NewFrame(k, iotpay.DeviceID(testDevice), 1, nil)
		b, err := wire.EncodeFrame(f)
		if err != nil {
			t.Fatal(k, err)
		}
		if len(b) > 24 {
			t.Errorf("a kind %d frame takes %d bytes", k, len(b))
		}
		if _, err := wire.ParseFrame(b); err != nil {
			t.Fatal(k, err)
		}
	}
}

func TestFrameRefusals(t *testing.T) {
	dev, _ := iotpay.IDBytes(iotpay.PrefixDevice, testDevice)
	for name, f := range map[string]*wire.Frame{
		"unknown kind":      {Kind: 9, Device: dev[:], FCnt: 1},
		"short device":      {Kind: wire.FramePoll, Device: dev[:15], FCnt: 1},
		"message, no body":  {Kind: wire.FrameMessage, Device: dev[:], FCnt: 1},
		"message, fcnt 0":   {Kind: wire.FrameMessage, Device: dev[:], Body: []byte{1}},
		"poll with a body":  {Kind: wire.FramePoll, Device: dev[:], FCnt: 1, Body: []byte{1}},
		"long refusal":      {Kind: wire.FrameRefused, Device: dev[:], Body: bytes.Repeat([]byte{'x'}, 65)},
		"body over the max": {Kind: wire.FrameAnswer, Device: dev[:], Body: make([]byte, wire.EnvelopeBytesMax+1)},
	} {
		if _, err := wire.EncodeFrame(f); iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("%s: encoded (%v)", name, err)
		}
	}
	good, _ := wire.NewFrame(wire.FramePoll, iotpay.DeviceID(testDevice), 3, nil)
	b, _ := wire.EncodeFrame(good)
	for name, bad := range map[string][]byte{
		"empty":           {},
		"truncated":       b[:len(b)-1],
		"trailing byte":   append(append([]byte{}, b...), 0),
		"not an array":    {0xa0},
		"long form count": {0x85, 0x02, 0x50},
	} {
		if _, err := wire.ParseFrame(bad); iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("%s: parsed (%v)", name, err)
		}
	}
}

func TestRelayRoundTrip(t *testing.T) {
	r := &wire.Relay{Device: testDevice, Body: []byte{0xd2, 1, 2}, Seq: 77, FCnt: 5, RxMs: 1_750_000_000_000}
	b, err := wire.EncodeRelay(r)
	if err != nil {
		t.Fatal(err)
	}
	g, err := wire.ParseRelay(b)
	if err != nil || g.Device != r.Device || g.Seq != 77 || g.FCnt != 5 || !bytes.Equal(g.Body, r.Body) {
		t.Fatalf("relay round trip: %+v %v", g, err)
	}
	a := &wire.RelayAnswer{Device: testDevice, Body: []byte{1}, Seq: 77}
	b, err = wire.EncodeRelayAnswer(a)
	if err != nil {
		t.Fatal(err)
	}
	if g, err := wire.ParseRelayAnswer(b); err != nil || g.Seq != 77 {
		t.Fatalf("answer round trip: %+v %v", g, err)
	}
	if _, err := wire.EncodeRelay(&wire.Relay{Device: "dev_x", Body: []byte{1}}); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("relay for a malformed device: %v", err)
	}
	if _, err := wire.EncodeRelay(&wire.Relay{Device: testDevice}); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("relay without a body: %v", err)
	}
	if got := wire.RelayTopic("dev_1"); got != "iotpay/v1/dev_1/relay" {
		t.Errorf("RelayTopic = %q", got)
	}
}

// FuzzParseFrame: a frame from the radio is untrusted; parsing never
// panics, and what parses encodes back to the same bytes.
func FuzzParseFrame(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	raw := mustSignRequest(f, key, amountRequest())
	for _, k := range []wire.FrameKind{wire.FrameMessage, wire.FramePoll, wire.FrameAnswer, wire.FrameBusy} {
		var body []byte
		if k == wire.FrameMessage || k == wire.FrameAnswer {
			body = raw
		}
		fr, _ := wire.NewFrame(k, iotpay.DeviceID(testDevice), 1, body)
		b, err := wire.EncodeFrame(fr)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x85, 1, 0x50})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := wire.ParseFrame(b)
		if err != nil {
			if iotpay.ErrorCode(err) != iotpay.EINVALID {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		again, err := wire.EncodeFrame(fr)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("parsed frame does not encode back: %x → %x (%v)", b, again, err)
		}
	})
}

// FuzzParseRelay: what a gateway relays is untrusted by the platform.
func FuzzParseRelay(f *testing.F) {
	for _, r := range []*wire.Relay{
		{Device: testDevice, Body: []byte{0xd2, 0x84}, Seq: 1, FCnt: 1, RxMs: 1},
		{Device: otherDevice, Body: bytes.Repeat([]byte{7}, 300), Seq: 1 << 40},
	} {
		b, _ := wire.EncodeRelay(r)
		f.Add(b)
		a, _ := wire.EncodeRelayAnswer(&wire.RelayAnswer{Device: r.Device, Body: r.Body, Seq: r.Seq})
		f.Add(a)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := wire.ParseRelay(b); err == nil {
			if again, err := wire.EncodeRelay(r); err != nil || !bytes.Equal(again, b) {
				t.Fatalf("relay does not encode back: %x (%v)", b, err)
			}
		} else if iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Fatalf("untyped error %v", err)
		}
		if a, err := wire.ParseRelayAnswer(b); err == nil {
			if again, err := wire.EncodeRelayAnswer(a); err != nil || !bytes.Equal(again, b) {
				t.Fatalf("answer does not encode back: %x (%v)", b, err)
			}
		} else if iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Fatalf("untyped error %v", err)
		}
	})
}

package wire_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

// Fuzz targets. Each body decodes data twice: as a whole frame, as a peer
// would send it, and as a payload the body signs itself, so the decoders
// behind the signature check are reached too, not only the envelope.
// Signing uses a nil rand (RFC 6979) so every run of an input is the same.

// addSeeds adds b and damaged variants of it to the corpus.
func addSeeds(f *testing.F, b []byte) {
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add(b[:len(b)-1])
	f.Add(append(bytes.Clone(b), 0x00))
	g := bytes.Clone(b)
	g[len(g)/2] ^= 0xff
	f.Add(g)
	g = bytes.Clone(b)
	g[0] ^= 0x01
	f.Add(g)
}

func addGarbage(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0xd2})
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0xf6, 0x40})
	f.Add([]byte{0xd2, 0x9f, 0xff})
	f.Add([]byte{0xbf, 0x01, 0x01, 0x01, 0x01, 0xff})
	f.Add(bytes.Repeat([]byte{0x81}, 100))
	f.Add([]byte("not cbor at all"))
}

// fuzzKeys are the device and platform keys the seeds are signed with.
func fuzzKeys(f *testing.F) (dev, platform *ecdsa.PrivateKey) {
	return testKey(f, "device"), testKey(f, "platform")
}

// payloadOf returns the payload of a frame known to be good.
func payloadOf(f *testing.F, b []byte) []byte {
	m, err := wire.ParseSign1(b)
	if err != nil {
		f.Fatal(err)
	}
	return m.Payload
}

func FuzzParseRequest(f *testing.F) {
	dev, _ := fuzzKeys(f)
	for _, r := range []*wire.Request{amountRequest(), eventRequest(), reportRequest()} {
		b, err := wire.SignRequest(wire.Intl, dev, nil, r)
		if err != nil {
			f.Fatal(err)
		}
		addSeeds(f, b)
		addSeeds(f, payloadOf(f, b))
		// A gm frame parses the same; under the intl key it must not verify.
		gm, err := wire.SignRequest(wire.GM, suiteKey(f, wire.GM, "device"), rand.Reader, r)
		if err != nil {
			f.Fatal(err)
		}
		addSeeds(f, gm)
	}
	addGarbage(f)

	f.Fuzz(func(t *testing.T, data []byte) {
		checkRequest(t, dev, data, false)
		// data as the payload of a frame the device key signed.
		b, err := wire.Sign(wire.Intl, dev, nil, []byte(testDevice), data)
		if err != nil {
			t.Fatalf("Sign: %v", err)
		}
		checkRequest(t, dev, b, true)
	})
}

// checkRequest parses b and checks what holds of any request that parses.
func checkRequest(t *testing.T, dev *ecdsa.PrivateKey, b []byte, signed bool) {
	env, r, err := wire.ParseRequest(b)
	if err != nil {
		if c := iotpay.ErrorCode(err); c != iotpay.EINVALID {
			t.Fatalf("ParseRequest error code %q, want %q: %v", c, iotpay.EINVALID, err)
		}
		return
	}
	if len(b) > wire.EnvelopeBytesMax {
		t.Fatalf("parsed a frame of %d bytes", len(b))
	}
	if err := r.Validate(); err != nil {
		t.Fatalf("parsed request does not validate: %v", err)
	}
	if string(env.Kid) != r.Device {
		t.Fatalf("kid %q, device %q", env.Kid, r.Device)
	}
	err = env.Verify(wire.Intl, &dev.PublicKey)
	if signed && err != nil {
		t.Fatalf("frame signed by the device does not verify: %v", err)
	}
	if err != nil && iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
		t.Fatalf("Verify error code %q: %v", iotpay.ErrorCode(err), err)
	}
	// What parsed re-encodes, and parses back to the same request.
	again, err := wire.SignRequest(wire.Intl, dev, nil, r)
	if err != nil {
		t.Fatalf("re-signing a parsed request: %v", err)
	}
	env2, r2, err := wire.ParseRequest(again)
	if err != nil {
		t.Fatalf("re-signed request does not parse: %v", err)
	}
	if diff := cmp.Diff(r, r2, equateEmpty); diff != "" {
		t.Fatalf("request changed by re-encoding (-parsed +reparsed):\n%s", diff)
	}
	if err := env2.Verify(wire.Intl, &dev.PublicKey); err != nil {
		t.Fatalf("re-signed request does not verify: %v", err)
	}
}

func FuzzOpenReceipt(f *testing.F) {
	_, platform := fuzzKeys(f)
	rejected := &wire.Receipt{V: wire.Version, Device: testDevice, RequestHash: seq(32, 0),
		Outcome: wire.Rejected, Code: "replay", Reason: "stale counter", TimeMs: 1}
	for _, r := range []*wire.Receipt{testReceipt(), rejected} {
		b, err := wire.SignReceipt(wire.Intl, platform, nil, platformKid, r)
		if err != nil {
			f.Fatal(err)
		}
		addSeeds(f, b)
		addSeeds(f, payloadOf(f, b))
	}
	addGarbage(f)

	f.Fuzz(func(t *testing.T, data []byte) {
		checkReceipt(t, platform, data, false)
		b, err := wire.Sign(wire.Intl, platform, nil, platformKid, data)
		if err != nil {
			t.Fatalf("Sign: %v", err)
		}
		checkReceipt(t, platform, b, true)
	})
}

func checkReceipt(t *testing.T, platform *ecdsa.PrivateKey, b []byte, signed bool) {
	r, err := wire.OpenReceipt(wire.Intl, &platform.PublicKey, b)
	if err != nil {
		c := iotpay.ErrorCode(err)
		switch {
		case c == iotpay.EINVALID:
		case c == iotpay.EUNAUTHORIZED && !signed:
		default:
			t.Fatalf("OpenReceipt error code %q (signed by the platform: %v): %v", c, signed, err)
		}
		return
	}
	if len(b) > wire.EnvelopeBytesMax {
		t.Fatalf("opened a frame of %d bytes", len(b))
	}
	if r.V != wire.Version {
		t.Fatalf("opened a receipt of version %d", r.V)
	}
	again, err := wire.SignReceipt(wire.Intl, platform, nil, platformKid, r)
	if err != nil {
		t.Fatalf("re-signing an opened receipt: %v", err)
	}
	if len(again) > wire.EnvelopeBytesMax {
		// An input that left out a field without omitempty (TimeMs) gets
		// it back as a zero, and so can grow past the bound.
		return
	}
	r2, err := wire.OpenReceipt(wire.Intl, &platform.PublicKey, again)
	if err != nil {
		t.Fatalf("re-signed receipt does not open: %v", err)
	}
	if diff := cmp.Diff(r, r2, equateEmpty); diff != "" {
		t.Fatalf("receipt changed by re-encoding (-opened +reopened):\n%s", diff)
	}
}

func FuzzParseSign1(f *testing.F) {
	dev, platform := fuzzKeys(f)
	req, err := wire.SignRequest(wire.Intl, dev, nil, amountRequest())
	if err != nil {
		f.Fatal(err)
	}
	rc, err := wire.SignReceipt(wire.Intl, platform, nil, platformKid, testReceipt())
	if err != nil {
		f.Fatal(err)
	}
	addSeeds(f, req)
	addSeeds(f, rc)
	addGarbage(f)

	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := wire.ParseSign1(data)
		if err != nil {
			if c := iotpay.ErrorCode(err); c != iotpay.EINVALID {
				t.Fatalf("error code %q, want %q: %v", c, iotpay.EINVALID, err)
			}
			return
		}
		if len(data) > wire.EnvelopeBytesMax || m.Alg == 0 || len(m.Kid) == 0 || len(m.Kid) > 64 || m.Payload == nil {
			t.Fatalf("parsed a message breaking the envelope rules: %d bytes, alg %d, kid %q, payload nil %v",
				len(data), m.Alg, m.Kid, m.Payload == nil)
		}
		for _, pub := range []*ecdsa.PublicKey{&dev.PublicKey, &platform.PublicKey} {
			err := m.Verify(wire.Intl, pub)
			if err == nil && m.Alg != wire.AlgES256 {
				t.Fatalf("verified a message with alg %d", m.Alg)
			}
			if err != nil && iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
				t.Fatalf("Verify error code %q: %v", iotpay.ErrorCode(err), err)
			}
		}
		// The same kid and payload signed afresh parse back the same.
		again, err := wire.Sign(wire.Intl, dev, nil, m.Kid, m.Payload)
		if err != nil {
			t.Fatalf("Sign: %v", err)
		}
		if len(again) > wire.EnvelopeBytesMax {
			return // the input's signature may have been shorter than 64 bytes
		}
		m2, err := wire.ParseSign1(again)
		if err != nil {
			t.Fatalf("re-signed message does not parse: %v", err)
		}
		if !bytes.Equal(m.Kid, m2.Kid) || !bytes.Equal(m.Payload, m2.Payload) || m2.Alg != wire.AlgES256 {
			t.Fatalf("re-signed message differs: kid %q/%q payload %x/%x", m.Kid, m2.Kid, m.Payload, m2.Payload)
		}
		if err := m2.Verify(wire.Intl, &dev.PublicKey); err != nil {
			t.Fatalf("re-signed message does not verify: %v", err)
		}
	})
}

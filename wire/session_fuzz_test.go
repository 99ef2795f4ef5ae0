package wire_test

import (
	"bytes"
	"testing"

	"github.com/iotpay/iotpay/wire"
)

// Fuzz targets of the session's decoders: the hello the platform parses,
// the welcome the device parses, and COSE_Encrypt0 both parse. Seeds are
// the golden session of each suite and damaged copies; an input other
// than a seed must never be accepted.

func FuzzParseHello(f *testing.F) {
	seeds := map[string]bool{}
	for _, s := range []wire.Suite{wire.Intl, wire.GM} {
		hs := doHandshake(f, s)
		addSeeds(f, hs.hello)
		addSeeds(f, payloadOf(f, hs.hello))
		seeds[string(hs.hello)] = true
	}
	addGarbage(f)
	hs := doHandshake(f, wire.Intl)
	f.Fuzz(func(t *testing.T, data []byte) {
		if env, h, err := wire.ParseHello(data); err == nil {
			if h.Device != string(env.Kid) {
				t.Fatal("hello accepted with a kid that is not its device")
			}
			if env.Verify(wire.Intl, hs.devKey.Public()) == nil && !seeds[string(data)] {
				t.Fatal("a hello that is no seed verified")
			}
		}
		b, err := wire.SignTyped(wire.Intl, hs.devKey, nil, []byte(testDevice), wire.ContentTypeHello, data)
		if err != nil {
			t.Fatal(err)
		}
		if _, h, err := wire.ParseHello(b); err == nil && (len(h.Key) != wire.PointBytes || h.Device != testDevice) {
			t.Fatalf("malformed hello accepted: %+v", h)
		}
	})
}

func FuzzFinish(f *testing.F) {
	for _, s := range []wire.Suite{wire.Intl, wire.GM} {
		hs := doHandshake(f, s)
		addSeeds(f, hs.welcome)
		addSeeds(f, payloadOf(f, hs.welcome))
	}
	addGarbage(f)
	hs := doHandshake(f, wire.Intl)
	f.Fuzz(func(t *testing.T, data []byte) {
		x, err := wire.NewEphemeral(wire.Intl, &fixedRand{label: "device intl"})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := wire.Finish(wire.Intl, hs.platKey.Public(), x, hs.hello, data); err == nil && !bytes.Equal(data, hs.welcome) {
			t.Fatal("a welcome that is no seed was accepted")
		}
		b, err := wire.SignTyped(wire.Intl, hs.platKey, nil, platformKid, wire.ContentTypeWelcome, data)
		if err != nil {
			t.Fatal(err)
		}
		if w, sess, err := wire.Finish(wire.Intl, hs.platKey.Public(), x, hs.hello, b); err == nil {
			if len(sess.ID) != wire.SessionIDBytes || !bytes.Equal(w.Hello, wire.Intl.Hash(hs.hello)) {
				t.Fatalf("malformed welcome accepted: %+v", w)
			}
		}
	})
}

func FuzzOpenEncrypt0(f *testing.F) {
	type sealed struct{ req, resp []byte }
	var good []sealed
	for _, s := range []wire.Suite{wire.Intl, wire.GM} {
		hs := doHandshake(f, s)
		req, _ := hs.dev.SealRequest(goldenSeq, []byte("request"))
		resp, _ := hs.plat.SealResponse(goldenSeq, []byte("receipt"))
		addSeeds(f, req)
		addSeeds(f, resp)
		good = append(good, sealed{req, resp})
	}
	addGarbage(f)
	f.Add([]byte{0xd0, 0x83, 0x43, 0xa1, 0x01, 0x01, 0xa0, 0x40})
	hs := doHandshake(f, wire.Intl)
	f.Fuzz(func(t *testing.T, data []byte) {
		if m, err := wire.ParseEncrypt0(data); err == nil {
			if m.HasSeq && (m.Seq > wire.SeqMax || len(m.Kid) != wire.SessionIDBytes) {
				t.Fatalf("malformed header accepted: %+v", m)
			}
			if _, err := hs.plat.OpenRequest(m); err == nil && !bytes.Equal(data, good[0].req) {
				t.Fatal("a request that is no seed opened")
			}
		}
		if _, err := hs.dev.OpenResponse(goldenSeq, data); err == nil && !bytes.Equal(data, good[0].resp) {
			t.Fatal("a response that is no seed opened")
		}
	})
}

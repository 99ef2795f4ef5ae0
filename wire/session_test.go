package wire_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

// handshake is a completed handshake between a test device and platform.
type handshake struct {
	suite           wire.Suite
	devKey, platKey crypto.Signer
	hello, welcome  []byte
	dev, plat       *wire.Session
	w               *wire.Welcome
}

// fixedRand is a deterministic stream for ephemeral keys: SHA-256 of a
// label and a counter.
type fixedRand struct {
	label string
	n     byte
	buf   []byte
}

func (r *fixedRand) Read(b []byte) (int, error) {
	for len(r.buf) < len(b) {
		h := sha256.Sum256(append([]byte("iotpay wire test ephemeral: "+r.label), r.n))
		r.n++
		r.buf = append(r.buf, h[:]...)
	}
	n := copy(b, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// doHandshake runs both ends of a handshake in suite s, deterministically.
func doHandshake(t testing.TB, s wire.Suite) *handshake {
	t.Helper()
	hs := &handshake{suite: s, devKey: suiteKey(t, s, "golden device"), platKey: suiteKey(t, s, "golden platform")}
	x, err := wire.NewEphemeral(s, &fixedRand{label: "device " + s.Name()})
	if err != nil {
		t.Fatal(err)
	}
	hs.hello, err = wire.SignHello(s, hs.devKey, goldenRand(s), &wire.Hello{V: wire.Version, Device: testDevice, Suite: s.Name(), Key: x.Public(), TimeMs: 1_750_000_100_000})
	if err != nil {
		t.Fatal(err)
	}
	env, h, err := wire.ParseHello(hs.hello)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Verify(s, hs.devKey.Public()); err != nil {
		t.Fatal(err)
	}
	y, err := wire.NewEphemeral(s, &fixedRand{label: "platform " + s.Name()})
	if err != nil {
		t.Fatal(err)
	}
	hs.welcome, hs.plat, err = wire.Accept(s, hs.platKey, goldenRand(s), platformKid, y, hs.hello, h,
		&wire.Welcome{Session: seq(wire.SessionIDBytes, 0x30), Challenge: seq(wire.ChallengeBytes, 0xa0), TimeMs: 1_750_000_100_200})
	if err != nil {
		t.Fatal(err)
	}
	hs.w, hs.dev, err = wire.Finish(s, hs.platKey.Public(), x, hs.hello, hs.welcome)
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

func TestSessionRoundTrip(t *testing.T) {
	for _, s := range []wire.Suite{wire.Intl, wire.GM} {
		t.Run(s.Name(), func(t *testing.T) {
			hs := doHandshake(t, s)
			if !bytes.Equal(hs.w.Challenge, seq(wire.ChallengeBytes, 0xa0)) || !bytes.Equal(hs.dev.ID, hs.plat.ID) {
				t.Fatalf("welcome: %+v", hs.w)
			}
			if hs.dev.Alg() != map[string]int64{"intl": wire.AlgA128GCM, "gm": wire.AlgSM4GCM}[s.Name()] {
				t.Errorf("alg %d", hs.dev.Alg())
			}
			for _, n := range []uint64{0, 1, 255, 256, wire.SeqMax} {
				msg := []byte("request " + s.Name())
				sealed, err := hs.dev.SealRequest(n, msg)
				if err != nil {
					t.Fatal(err)
				}
				if !wire.IsEncrypt0(sealed) {
					t.Fatal("sealed request is not a COSE_Encrypt0")
				}
				m, err := wire.ParseEncrypt0(sealed)
				if err != nil {
					t.Fatal(err)
				}
				if m.Seq != n || !bytes.Equal(m.Kid, hs.dev.ID) {
					t.Fatalf("seq %d kid %x", m.Seq, m.Kid)
				}
				got, err := hs.plat.OpenRequest(m)
				if err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("OpenRequest: %q, %v", got, err)
				}
				resp, err := hs.plat.SealResponse(n, []byte("receipt"))
				if err != nil {
					t.Fatal(err)
				}
				if got, err := hs.dev.OpenResponse(n, resp); err != nil || string(got) != "receipt" {
					t.Fatalf("OpenResponse: %q, %v", got, err)
				}
				// The answer is bound to its request: not to another number.
				if _, err := hs.dev.OpenResponse(n^1, resp); iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
					t.Errorf("response opened for another request: %v", err)
				}
				// A request does not open as a response nor the reverse.
				if _, err := hs.dev.OpenResponse(n, sealed); err == nil {
					t.Error("a request opened as a response")
				}
			}
			if _, err := hs.dev.SealRequest(wire.SeqMax+1, nil); iotpay.ErrorCode(err) != iotpay.EINVALID {
				t.Errorf("sequence over the bound: %v", err)
			}
		})
	}
}

func TestSessionRefusals(t *testing.T) {
	for _, s := range []wire.Suite{wire.Intl, wire.GM} {
		t.Run(s.Name(), func(t *testing.T) {
			hs := doHandshake(t, s)
			sealed, _ := hs.dev.SealRequest(3, []byte("pay"))
			open := func(b []byte) error {
				m, err := wire.ParseEncrypt0(b)
				if err != nil {
					return err
				}
				_, err = hs.plat.OpenRequest(m)
				return err
			}
			g := bytes.Clone(sealed)
			g[len(g)-1] ^= 1
			if err := open(g); iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
				t.Errorf("garbled ciphertext: %v", err)
			}
			if err := open(sealed[:len(sealed)-1]); iotpay.ErrorCode(err) != iotpay.EINVALID {
				t.Errorf("truncated: %v", err)
			}
			if err := open(append(bytes.Clone(sealed), 0)); iotpay.ErrorCode(err) != iotpay.EINVALID {
				t.Errorf("trailing byte: %v", err)
			}
			if err := open(make([]byte, wire.EnvelopeBytesMax+1)); iotpay.ErrorCode(err) != iotpay.EINVALID {
				t.Errorf("oversized: %v", err)
			}
			// Downgrade: the other suite's cipher in the protected header.
			other := wire.AlgA128GCM
			if s == wire.Intl {
				other = wire.AlgSM4GCM
			}
			if err := open(withAlg(t, sealed, other)); iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
				t.Errorf("other alg: %v", err)
			}
			// Another session's request.
			hs2 := doHandshake(t, s)
			x, _ := wire.NewEphemeral(s, rand.Reader)
			hello, _ := wire.SignHello(s, hs2.devKey, rand.Reader, &wire.Hello{V: wire.Version, Device: testDevice, Suite: s.Name(), Key: x.Public(), TimeMs: 1})
			_, h, _ := wire.ParseHello(hello)
			y, _ := wire.NewEphemeral(s, rand.Reader)
			_, plat2, err := wire.Accept(s, hs2.platKey, rand.Reader, platformKid, y, hello, h, &wire.Welcome{Session: hs.dev.ID, TimeMs: 2})
			if err != nil {
				t.Fatal(err)
			}
			m, _ := wire.ParseEncrypt0(sealed)
			if _, err := plat2.OpenRequest(m); iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
				t.Errorf("another session's keys opened the request: %v", err)
			}
		})
	}
}

func TestHandshakeRefusals(t *testing.T) {
	for _, s := range []wire.Suite{wire.Intl, wire.GM} {
		t.Run(s.Name(), func(t *testing.T) {
			hs := doHandshake(t, s)
			x, _ := wire.NewEphemeral(s, &fixedRand{label: "device " + s.Name()})
			// A welcome to another hello is refused.
			x2, _ := wire.NewEphemeral(s, rand.Reader)
			hello2, _ := wire.SignHello(s, hs.devKey, rand.Reader, &wire.Hello{V: wire.Version, Device: testDevice, Suite: s.Name(), Key: x2.Public(), TimeMs: 1})
			if _, _, err := wire.Finish(s, hs.platKey.Public(), x2, hello2, hs.welcome); iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
				t.Errorf("welcome to another hello: %v", err)
			}
			// A welcome signed by another key is refused.
			if _, _, err := wire.Finish(s, hs.devKey.Public(), x, hs.hello, hs.welcome); iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
				t.Errorf("welcome under another key: %v", err)
			}
			// A hello is neither a request nor a receipt, and the reverse.
			if _, _, err := wire.ParseRequest(hs.hello); err == nil {
				t.Error("hello parsed as a request")
			}
			if _, err := wire.OpenReceipt(s, hs.platKey.Public(), hs.welcome); err == nil {
				t.Error("welcome opened as a receipt")
			}
			if _, _, err := wire.ParseHello(hs.welcome); err == nil {
				t.Error("welcome parsed as a hello")
			}
			if !wire.IsHello(hs.hello) || wire.IsHello(hs.welcome) {
				t.Error("IsHello")
			}
			// Downgrade: a hello in the other suite does not verify under
			// the device's.
			other, otherKey := wire.GM, suiteKey(t, wire.GM, "golden device")
			if s == wire.GM {
				other, otherKey = wire.Intl, suiteKey(t, wire.Intl, "golden device")
			}
			xo, _ := wire.NewEphemeral(other, rand.Reader)
			ho, err := wire.SignHello(other, otherKey, rand.Reader, &wire.Hello{V: wire.Version, Device: testDevice, Suite: other.Name(), Key: xo.Public(), TimeMs: 1})
			if err != nil {
				t.Fatal(err)
			}
			env, _, err := wire.ParseHello(ho)
			if err != nil {
				t.Fatal(err)
			}
			if err := env.Verify(s, hs.devKey.Public()); iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
				t.Errorf("hello of the other suite: %v", err)
			}
			// A point off the curve is refused.
			_, h, _ := wire.ParseHello(hs.hello)
			bad := *h
			bad.Key = bytes.Repeat([]byte{4}, wire.PointBytes)
			y, _ := wire.NewEphemeral(s, rand.Reader)
			if _, _, err := wire.Accept(s, hs.platKey, rand.Reader, platformKid, y, hs.hello, &bad, &wire.Welcome{Session: seq(8, 1)}); iotpay.ErrorCode(err) != iotpay.EINVALID {
				t.Errorf("point off the curve: %v", err)
			}
		})
	}
}

// detCBOR encodes deterministically, as ParseEncrypt0 requires.
var detCBOR, _ = cbor.CoreDetEncOptions().EncMode()

// withAlg re-encodes a COSE_Encrypt0 with alg in its protected header.
func withAlg(t *testing.T, b []byte, alg int64) []byte {
	t.Helper()
	var tag cbor.RawTag
	if err := cbor.Unmarshal(b, &tag); err != nil {
		t.Fatal(err)
	}
	var m []cbor.RawMessage
	if err := cbor.Unmarshal(tag.Content, &m); err != nil {
		t.Fatal(err)
	}
	prot, _ := detCBOR.Marshal(map[int]int64{1: alg})
	m[0], _ = detCBOR.Marshal(prot)
	out, err := detCBOR.Marshal(cbor.Tag{Number: 16, Content: m})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestReplayWindow(t *testing.T) {
	var w wire.ReplayWindow
	accept := func(n uint64) error {
		if err := w.Check(n); err != nil {
			return err
		}
		w.Accept(n)
		return nil
	}
	steps := []struct {
		seq  uint64
		want iotpay.Code
	}{
		{5, ""}, {5, iotpay.EREPLAY}, {3, ""}, {3, iotpay.EREPLAY}, {4, ""}, {100, ""}, {36, iotpay.EREPLAY},
		{37, ""}, {37, iotpay.EREPLAY}, {5, iotpay.EREPLAY}, {100, iotpay.EREPLAY}, {99, ""},
		{164, ""}, {100, iotpay.EREPLAY}, {101, ""}, {wire.SeqMax + 1, iotpay.EINVALID}, {wire.SeqMax, ""},
		{164, iotpay.EREPLAY},
	}
	for i, st := range steps {
		err := accept(st.seq)
		if got := iotpay.ErrorCode(err); (err == nil) != (st.want == "") || (err != nil && got != st.want) {
			t.Errorf("step %d: seq %d: %q, want %q", i, st.seq, got, st.want)
		}
	}
}

func TestPartialIVIsStrict(t *testing.T) {
	hs := doHandshake(t, wire.Intl)
	sealed, _ := hs.dev.SealRequest(0, []byte("x"))
	var tag cbor.RawTag
	cbor.Unmarshal(sealed, &tag)
	var m []cbor.RawMessage
	cbor.Unmarshal(tag.Content, &m)
	for _, piv := range [][]byte{{}, {0, 1}, {1, 2, 3, 4, 5, 6}} {
		m[1], _ = detCBOR.Marshal(map[int][]byte{4: hs.dev.ID, 6: piv})
		b, _ := detCBOR.Marshal(cbor.Tag{Number: 16, Content: m})
		if _, err := wire.ParseEncrypt0(b); iotpay.ErrorCode(err) != iotpay.EINVALID || (len(piv) > 0 && !strings.Contains(err.Error(), "partial IV")) {
			t.Errorf("piv %x: %v", piv, err)
		}
	}
	m[1], _ = detCBOR.Marshal(map[int][]byte{6: {1}})
	b, _ := detCBOR.Marshal(cbor.Tag{Number: 16, Content: m})
	if _, err := wire.ParseEncrypt0(b); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("piv without kid: %v", err)
	}
	// The same message with a length written longer than needed: the
	// protected header's bstr length (0x43) as 0x58 0x03.
	if !bytes.HasPrefix(sealed, []byte{0xd0, 0x83, 0x43}) {
		t.Fatalf("unexpected start %x", sealed[:3])
	}
	long := append([]byte{0xd0, 0x83, 0x58, 0x03}, sealed[3:]...)
	if _, err := wire.ParseEncrypt0(long); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("non-deterministic encoding: %v", err)
	}
}

// TestInnerTagsRefused: only a message's outer COSE tag may be a tag; a
// tag inside (here, tag 8 on the protected header) would give a message
// a second encoding with the same meaning, which the fuzzer found for a
// COSE_Encrypt0: refused there and in a COSE_Sign1.
func TestInnerTagsRefused(t *testing.T) {
	hs := doHandshake(t, wire.Intl)
	sealed, _ := hs.dev.SealRequest(1, []byte("x"))
	req, err := wire.SignRequest(wire.Intl, hs.devKey, nil, amountRequest())
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"encrypt0": sealed, "sign1": req} {
		var tag cbor.RawTag
		if err := cbor.Unmarshal(b, &tag); err != nil {
			t.Fatal(err)
		}
		var m []cbor.RawMessage
		if err := cbor.Unmarshal(tag.Content, &m); err != nil {
			t.Fatal(err)
		}
		m[0] = append([]byte{0xc8}, m[0]...)
		b, _ := cbor.Marshal(cbor.Tag{Number: tag.Number, Content: m})
		var err1, err2 error
		if name == "encrypt0" {
			_, err1 = wire.ParseEncrypt0(b)
			_, err2 = hs.dev.OpenResponse(1, b)
		} else {
			_, _, err1 = wire.ParseRequest(b)
			_, err2 = wire.ParseSign1(b)
		}
		if iotpay.ErrorCode(err1) != iotpay.EINVALID || iotpay.ErrorCode(err2) != iotpay.EINVALID {
			t.Errorf("%s with an inner tag: %v, %v", name, err1, err2)
		}
	}
}

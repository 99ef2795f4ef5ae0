package wire_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm2"
	"github.com/fxamacker/cbor/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

// testKey returns a P-256 key derived from label, the same on every run.
func testKey(t testing.TB, label string) *ecdsa.PrivateKey {
	t.Helper()
	d := sha256.Sum256([]byte("iotpay wire test key: " + label))
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
	if err != nil {
		t.Fatalf("test key %q: %v", label, err)
	}
	return k
}

// suiteKey is testKey for a suite: an SM2 key from the same label for gm.
func suiteKey(t testing.TB, s wire.Suite, label string) crypto.Signer {
	t.Helper()
	if s != wire.GM {
		return testKey(t, label)
	}
	d := sha256.Sum256([]byte("iotpay wire test key: " + label))
	c := sm2.P256()
	k := new(sm2.PrivateKey)
	k.Curve, k.D = c, new(big.Int).SetBytes(d[:])
	k.D.Mod(k.D, new(big.Int).Sub(c.Params().N, big.NewInt(1))) // in [0, n-2]
	k.D.Add(k.D, big.NewInt(1))
	k.X, k.Y = c.ScalarBaseMult(k.D.FillBytes(make([]byte, 32)))
	return k
}

// keyBytes returns the scalar and the uncompressed point of an ECDSA or
// SM2 key.
func keyBytes(k crypto.Signer) (scalar, point []byte) {
	var e *ecdsa.PrivateKey
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		e = k
	case *sm2.PrivateKey:
		e = &k.PrivateKey
	}
	return e.D.FillBytes(make([]byte, 32)), elliptic.Marshal(e.Curve, e.X, e.Y) //nolint:staticcheck // SM2 has no crypto/ecdh form
}

// rawSigDER is the ASN.1 form of an r‖s signature.
func rawSigDER(sig []byte) []byte {
	der := func(n []byte) []byte {
		n = bytes.TrimLeft(n, "\x00")
		if len(n) == 0 || n[0]&0x80 != 0 {
			n = append([]byte{0}, n...)
		}
		return append([]byte{0x02, byte(len(n))}, n...)
	}
	body := append(der(sig[:32]), der(sig[32:])...)
	return append([]byte{0x30, byte(len(body))}, body...)
}

// testDevice is a fixed, well-formed device id.
var testDevice = iotpay.NewID(iotpay.PrefixDevice, time.UnixMilli(1_750_000_000_000),
	bytes.NewReader([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}))

var otherDevice = iotpay.NewID(iotpay.PrefixDevice, time.UnixMilli(1_750_000_000_001),
	bytes.NewReader([]byte{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}))

var platformKid = []byte("platform-receipt-1")

func seq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func amountRequest() *wire.Request {
	return &wire.Request{
		V: wire.Version, Device: testDevice, Counter: 7,
		Nonce:       seq(wire.NonceBytes, 0x10),
		TimeMs:      1_750_000_123_456,
		RequestID:   "req-0007",
		Challenge:   seq(wire.ChallengeBytes, 0xa0),
		AmountMinor: 250, Currency: "EUR",
	}
}

func eventRequest() *wire.Request {
	return &wire.Request{
		V: wire.Version, Device: testDevice, Counter: 8,
		Nonce:     seq(wire.NonceBytes, 0x20),
		TimeMs:    1_750_000_223_456,
		RequestID: "req-0008",
		Event: &wire.Event{
			Type: "charge_session",
			Num:  map[string]int64{"wh": 12_345, "duration_s": 3_600},
			Str:  map[string]string{"connector": "CCS2", "plate": "B-IO 2026"},
		},
	}
}

func testReceipt() *wire.Receipt {
	idx := uint64(41)
	return &wire.Receipt{
		V: wire.Version, Device: testDevice, RequestID: "req-0007",
		RequestHash: seq(32, 0x40),
		Outcome:     wire.Approved,
		PaymentID:   iotpay.NewID(iotpay.PrefixPayment, time.UnixMilli(1_750_000_123_999), bytes.NewReader(seq(10, 0x70))),
		AmountMinor: 250, Currency: "EUR",
		Transfers: []string{iotpay.NewID(iotpay.PrefixTransfer, time.UnixMilli(1_750_000_124_000), bytes.NewReader(seq(10, 0x80)))},
		LogIndex:  &idx,
		Challenge: seq(wire.ChallengeBytes, 0xb0),
		TimeMs:    1_750_000_124_001,
	}
}

func mustSignRequest(t testing.TB, key crypto.Signer, r *wire.Request) []byte {
	t.Helper()
	b, err := wire.SignRequest(wire.Intl, key, rand.Reader, r)
	if err != nil {
		t.Fatalf("SignRequest: %v", err)
	}
	return b
}

func mustSignReceipt(t testing.TB, key crypto.Signer, r *wire.Receipt) []byte {
	t.Helper()
	b, err := wire.SignReceipt(wire.Intl, key, rand.Reader, platformKid, r)
	if err != nil {
		t.Fatalf("SignReceipt: %v", err)
	}
	return b
}

// wantCode fails t unless err is an *iotpay.Error with code want.
func wantCode(t testing.TB, err error, want iotpay.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", want)
	}
	var e *iotpay.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is a %T, want *iotpay.Error", err, err)
	}
	if got := iotpay.ErrorCode(err); got != want {
		t.Fatalf("code %q, want %q (%v)", got, want, err)
	}
}

// Forging helpers: they build COSE_Sign1 messages by hand, so each test
// message differs from a good one in exactly the way under test.

var detEnc = func() cbor.EncMode {
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()

func enc(t testing.TB, v any) []byte {
	t.Helper()
	b, err := detEnc.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// protected returns a protected header map encoded as COSE puts it.
func protected(t testing.TB, alg int64, kid []byte) []byte {
	t.Helper()
	h := map[int]any{}
	if alg != 0 {
		h[1] = alg
	}
	if kid != nil {
		h[4] = kid
	}
	return enc(t, h)
}

// sigStructure is RFC 9052 §4.4's Sig_structure for COSE_Sign1, written
// out here independently of the package.
func sigStructure(t testing.TB, prot, payload []byte) []byte {
	t.Helper()
	return enc(t, []any{"Signature1", prot, []byte{}, payload})
}

// signRaw signs prot and payload with key, whatever prot says.
func signRaw(t testing.TB, key crypto.Signer, prot, payload []byte) []byte {
	t.Helper()
	sig, err := wire.Intl.Sign(key, rand.Reader, sigStructure(t, prot, payload))
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// frame assembles a COSE_Sign1 from already-encoded parts; raw CBOR
// items are spliced in unchanged.
func frame(tag uint64, prot []byte, unprot, payload, sig cbor.RawMessage) []byte {
	var b []byte
	if tag != 0 {
		b = appendHead(b, 6, tag)
	}
	b = appendHead(b, 4, 4)
	b = appendHead(b, 2, uint64(len(prot)))
	b = append(b, prot...)
	b = append(b, unprot...)
	b = append(b, payload...)
	return append(b, sig...)
}

// appendHead appends a CBOR item head of major type mt and argument n.
func appendHead(b []byte, mt byte, n uint64) []byte {
	switch {
	case n < 24:
		return append(b, mt<<5|byte(n))
	case n < 1<<8:
		return append(b, mt<<5|24, byte(n))
	case n < 1<<16:
		return append(b, mt<<5|25, byte(n>>8), byte(n))
	default:
		return append(b, mt<<5|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

func bstr(b []byte) cbor.RawMessage { return append(appendHead(nil, 2, uint64(len(b))), b...) }

var emptyMap = cbor.RawMessage{0xa0}

// signedFrame is a well-formed, correctly signed COSE_Sign1 over payload.
func signedFrame(t testing.TB, key crypto.Signer, alg int64, kid, payload []byte) []byte {
	t.Helper()
	prot := protected(t, alg, kid)
	return frame(18, prot, emptyMap, bstr(payload), bstr(signRaw(t, key, prot, payload)))
}

func TestRequestRoundTrip(t *testing.T) {
	key := testKey(t, "device")
	for _, tc := range []struct {
		name string
		req  *wire.Request
	}{
		{"amount", amountRequest()},
		{"event", eventRequest()},
		{"no challenge", func() *wire.Request { r := amountRequest(); r.Challenge = nil; return r }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mustSignRequest(t, key, tc.req)
			if len(b) > wire.EnvelopeBytesMax {
				t.Fatalf("frame of %d bytes exceeds EnvelopeBytesMax", len(b))
			}
			env, got, err := wire.ParseRequest(b)
			if err != nil {
				t.Fatalf("ParseRequest: %v", err)
			}
			if diff := cmp.Diff(tc.req, got); diff != "" {
				t.Errorf("request (-sent +parsed):\n%s", diff)
			}
			if string(env.Kid) != tc.req.Device || env.Alg != wire.AlgES256 {
				t.Errorf("kid %q alg %d, want %q and %d", env.Kid, env.Alg, tc.req.Device, wire.AlgES256)
			}
			if err := env.Verify(wire.Intl, &key.PublicKey); err != nil {
				t.Errorf("Verify: %v", err)
			}
			if err := env.Verify(wire.Intl, &testKey(t, "another device").PublicKey); err == nil {
				t.Error("verified with another device's key")
			} else {
				wantCode(t, err, iotpay.EUNAUTHORIZED)
			}
		})
	}
}

func TestSignRequestValidates(t *testing.T) {
	r := amountRequest()
	r.Counter = 0
	_, err := wire.SignRequest(wire.Intl, testKey(t, "device"), rand.Reader, r)
	wantCode(t, err, iotpay.EINVALID)
}

func TestReceiptRoundTrip(t *testing.T) {
	platform := testKey(t, "platform")
	for _, tc := range []struct {
		name string
		rc   *wire.Receipt
	}{
		{"approved", testReceipt()},
		{"rejected", &wire.Receipt{
			V: wire.Version, Device: testDevice, RequestHash: seq(32, 1),
			Outcome: wire.Rejected, Code: string(iotpay.EREPLAY), Reason: "stale counter",
			TimeMs: 1_750_000_000_000,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mustSignReceipt(t, platform, tc.rc)
			got, err := wire.OpenReceipt(wire.Intl, &platform.PublicKey, b)
			if err != nil {
				t.Fatalf("OpenReceipt: %v", err)
			}
			if diff := cmp.Diff(tc.rc, got); diff != "" {
				t.Errorf("receipt (-sent +opened):\n%s", diff)
			}
			if !got.For(tc.rc.RequestHash, testDevice) {
				t.Error("For(own hash, own device) = false")
			}
		})
	}
}

func TestReceiptFor(t *testing.T) {
	r := testReceipt()
	for _, tc := range []struct {
		name   string
		hash   []byte
		device string
		want   bool
	}{
		{"match", seq(32, 0x40), testDevice, true},
		{"other hash", seq(32, 0x41), testDevice, false},
		{"short hash", seq(31, 0x40), testDevice, false},
		{"other device", seq(32, 0x40), otherDevice, false},
		{"nil hash", nil, testDevice, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.For(tc.hash, tc.device); got != tc.want {
				t.Errorf("For = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestReceiptWrongKey(t *testing.T) {
	platform := testKey(t, "platform")
	impostor := testKey(t, "impostor")
	b := mustSignReceipt(t, impostor, testReceipt())
	_, err := wire.OpenReceipt(wire.Intl, &platform.PublicKey, b)
	wantCode(t, err, iotpay.EUNAUTHORIZED)

	// A device's request is not a receipt, even when the device key were
	// mistaken for the platform's.
	dev := testKey(t, "device")
	_, err = wire.OpenReceipt(wire.Intl, &platform.PublicKey, mustSignRequest(t, dev, amountRequest()))
	wantCode(t, err, iotpay.EUNAUTHORIZED)
}

func TestReceiptVersion(t *testing.T) {
	platform := testKey(t, "platform")
	r := testReceipt()
	r.V = 2
	_, err := wire.OpenReceipt(wire.Intl, &platform.PublicKey, mustSignReceipt(t, platform, r))
	wantCode(t, err, iotpay.EINVALID)
}

// TestFlippedBytes changes every byte of a signed request and receipt in
// turn: each change must be refused, at parsing or at verification.
func TestFlippedBytes(t *testing.T) {
	dev, platform := testKey(t, "device"), testKey(t, "platform")
	req := mustSignRequest(t, dev, amountRequest())
	rc := mustSignReceipt(t, platform, testReceipt())
	for _, mask := range []byte{0x01, 0x80, 0xff} {
		t.Run(fmt.Sprintf("request^%#02x", mask), func(t *testing.T) {
			for i := range req {
				b := bytes.Clone(req)
				b[i] ^= mask
				env, _, err := wire.ParseRequest(b)
				if err != nil {
					if c := iotpay.ErrorCode(err); c != iotpay.EINVALID {
						t.Fatalf("byte %d: parse error code %q, want %q", i, c, iotpay.EINVALID)
					}
					continue
				}
				if err := env.Verify(wire.Intl, &dev.PublicKey); err == nil {
					t.Fatalf("byte %d flipped: still verifies", i)
				}
			}
		})
		t.Run(fmt.Sprintf("receipt^%#02x", mask), func(t *testing.T) {
			for i := range rc {
				b := bytes.Clone(rc)
				b[i] ^= mask
				if _, err := wire.OpenReceipt(wire.Intl, &platform.PublicKey, b); err == nil {
					t.Fatalf("byte %d flipped: receipt still opens", i)
				}
			}
		})
	}

	// The case the signature alone must catch: a payload changed by one
	// byte that still decodes to a valid request.
	env, _, err := wire.ParseRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(req, []byte("req-0007"))
	if i < 0 {
		t.Fatal("request id not found in frame")
	}
	b := bytes.Clone(req)
	b[i+len("req-000")] = '8'
	env2, r2, err := wire.ParseRequest(b)
	if err != nil {
		t.Fatalf("changed request no longer parses: %v", err)
	}
	if r2.RequestID != "req-0008" || bytes.Equal(env.Payload, env2.Payload) {
		t.Fatal("test did not change the payload")
	}
	wantCode(t, env2.Verify(wire.Intl, &dev.PublicKey), iotpay.EUNAUTHORIZED)
}

// TestDowngrade signs messages correctly but names another algorithm in
// the protected header: Verify must refuse them whatever the signature.
func TestDowngrade(t *testing.T) {
	dev, platform := testKey(t, "device"), testKey(t, "platform")
	payload := func() []byte {
		env, _, err := wire.ParseRequest(mustSignRequest(t, dev, amountRequest()))
		if err != nil {
			t.Fatal(err)
		}
		return env.Payload
	}()
	for _, alg := range []int64{-35 /* ES384 */, -8 /* EdDSA */, 5 /* HMAC 256/256 */, -48 /* SM2 draft */, 7} {
		t.Run(fmt.Sprint(alg), func(t *testing.T) {
			b := signedFrame(t, dev, alg, []byte(testDevice), payload)
			env, _, err := wire.ParseRequest(b)
			if err != nil {
				t.Fatalf("ParseRequest checks form only, got %v", err)
			}
			if env.Alg != alg {
				t.Fatalf("alg %d, want %d", env.Alg, alg)
			}
			wantCode(t, env.Verify(wire.Intl, &dev.PublicKey), iotpay.EUNAUTHORIZED)
		})
	}
	t.Run("receipt", func(t *testing.T) {
		rp, err := cbor.Marshal(testReceipt())
		if err != nil {
			t.Fatal(err)
		}
		_, err = wire.OpenReceipt(wire.Intl, &platform.PublicKey, signedFrame(t, platform, -35, platformKid, rp))
		wantCode(t, err, iotpay.EUNAUTHORIZED)
	})
	t.Run("control: ES256 verifies", func(t *testing.T) {
		env, _, err := wire.ParseRequest(signedFrame(t, dev, wire.AlgES256, []byte(testDevice), payload))
		if err != nil {
			t.Fatal(err)
		}
		if err := env.Verify(wire.Intl, &dev.PublicKey); err != nil {
			t.Fatalf("hand-built ES256 frame does not verify: %v", err)
		}
	})
}

// TestMalformed feeds messages that are each wrong in one way, correctly
// signed where a signature is possible, to all three decoders: each must
// refuse with EINVALID before the signature is even considered.
func TestMalformed(t *testing.T) {
	dev, platform := testKey(t, "device"), testKey(t, "platform")
	good := mustSignRequest(t, dev, amountRequest())
	env, _, err := wire.ParseRequest(good)
	if err != nil {
		t.Fatal(err)
	}
	payload := env.Payload
	kid := []byte(testDevice)
	prot := protected(t, wire.AlgES256, kid)
	sig := signRaw(t, dev, prot, payload)

	// withPayload signs a hand-changed payload properly.
	withPayload := func(p []byte) []byte { return signedFrame(t, dev, wire.AlgES256, kid, p) }
	// withProt signs under a hand-built protected header.
	withProt := func(pr []byte) []byte {
		return frame(18, pr, emptyMap, bstr(payload), bstr(signRaw(t, dev, pr, payload)))
	}
	// The payload is a map of n < 24 pairs: its head is one byte.
	if payload[0]&0xe0 != 0xa0 || payload[0]&0x1f >= 23 {
		t.Fatalf("payload head %#x is not a small map", payload[0])
	}
	addPair := func(k, v []byte) []byte {
		p := append([]byte{payload[0] + 1}, payload[1:]...)
		return append(append(p, k...), v...)
	}
	indefinitePayload := append(append([]byte{0xbf}, payload[1:]...), 0xff)
	// A request for another device, signed by this one and naming it as kid.
	forOther := amountRequest()
	forOther.Device = otherDevice
	otherPayload := func() []byte {
		e, _, err := wire.ParseRequest(mustSignRequest(t, dev, forOther))
		if err != nil {
			t.Fatal(err)
		}
		return e.Payload
	}()
	bigPayload := make([]byte, wire.EnvelopeBytesMax)

	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"not CBOR", []byte("POST /pay HTTP/1.1")},
		{"truncated", good[:len(good)-1]},
		{"only the tag", good[:1]},
		{"trailing byte", append(bytes.Clone(good), 0x00)},
		{"two frames", append(bytes.Clone(good), good...)},
		{"oversized", withPayload(bigPayload)},
		{"oversized by padding", append(bytes.Clone(good), make([]byte, wire.EnvelopeBytesMax)...)},
		{"untagged", good[1:]},
		{"tag COSE_Mac0", frame(17, prot, emptyMap, bstr(payload), bstr(sig))},
		{"tag COSE_Sign", frame(98, prot, emptyMap, bstr(payload), bstr(sig))},
		{"three elements", append([]byte{0xd2, 0x83}, good[2:len(good)-len(bstr(sig))]...)},
		{"five elements", append(append([]byte{0xd2, 0x85}, good[2:]...), 0xf6)},
		{"indefinite array", append(append([]byte{0xd2, 0x9f}, good[2:]...), 0xff)},
		{"indefinite payload bstr", frame(18, prot, emptyMap,
			append(append([]byte{0x5f}, bstr(payload)...), 0xff), bstr(sig))},
		{"indefinite payload map", withPayload(indefinitePayload)},
		{"indefinite protected map", withProt(append(append([]byte{0xbf}, prot[1:]...), 0xff))},
		{"duplicate key in payload", withPayload(addPair([]byte{0x06}, enc(t, "req-other")))},
		{"duplicate identical key in payload", withPayload(addPair([]byte{0x01}, []byte{0x01}))},
		{"duplicate key in protected", withProt(append([]byte{prot[0] + 1}, append(prot[1:], 0x01, 0x26)...))},
		{"duplicate key in unprotected", frame(18, prot, cbor.RawMessage{0xa2, 0x04, 0x41, 'k', 0x04, 0x41, 'k'}, bstr(payload), bstr(sig))},
		{"unknown field in payload", withPayload(addPair([]byte{0x18, 99}, []byte{0x01}))},
		{"unknown label in protected", withProt(enc(t, map[int]any{1: wire.AlgES256, 4: kid, 3: 0}))},
		{"unknown label in unprotected", frame(18, prot, cbor.RawMessage{0xa1, 0x18, 33, 0x40}, bstr(payload), bstr(sig))},
		{"alg in unprotected", frame(18, prot, cbor.RawMessage{0xa1, 0x01, 0x26}, bstr(payload), bstr(sig))},
		{"kid in unprotected", frame(18, protected(t, wire.AlgES256, nil), enc(t, map[int]any{4: kid}), bstr(payload), bstr(sig))},
		{"missing kid", withProt(protected(t, wire.AlgES256, nil))},
		{"empty kid", withProt(enc(t, map[int]any{1: wire.AlgES256, 4: []byte{}}))},
		{"kid too long", withProt(protected(t, wire.AlgES256, bytes.Repeat([]byte("k"), 65)))},
		{"kid is text", withProt(enc(t, map[int]any{1: wire.AlgES256, 4: testDevice}))},
		{"missing alg", withProt(protected(t, 0, kid))},
		{"alg as text", withProt(enc(t, map[int]any{1: "ES256", 4: kid}))},
		{"empty protected", frame(18, nil, emptyMap, bstr(payload), bstr(sig))},
		{"protected trailing byte", withProt(append(bytes.Clone(prot), 0x00))},
		{"protected not a map", withProt(enc(t, []any{1, -7}))},
		{"detached payload", frame(18, prot, emptyMap, cbor.RawMessage{0xf6}, bstr(sig))},
		{"payload is text", frame(18, prot, emptyMap, enc(t, "payload"), bstr(sig))},
		{"payload invalid UTF-8 text", frame(18, prot, emptyMap, enc(t, string(payload)), bstr(sig))},
		{"empty signature", frame(18, prot, emptyMap, bstr(payload), bstr(nil))},
		{"signature too long", frame(18, prot, emptyMap, bstr(payload), bstr(make([]byte, 133)))},
		{"kid names another device", signedFrame(t, dev, wire.AlgES256, []byte(otherDevice), payload)},
		{"payload for another device", withPayload(otherPayload)},
		{"payload trailing byte", withPayload(append(bytes.Clone(payload), 0x00))},
		{"payload not a map", withPayload(enc(t, []int{1, 2, 3}))},
		{"payload invalid request", withPayload(func() []byte {
			var m map[int]cbor.RawMessage
			if err := cbor.Unmarshal(payload, &m); err != nil {
				t.Fatal(err)
			}
			m[3] = enc(t, 0) // counter 0
			return enc(t, m)
		}())},
		{"payload invalid UTF-8", withPayload(func() []byte {
			i := bytes.Index(payload, []byte("req-0007"))
			p := bytes.Clone(payload)
			p[i] = 0xff
			return p
		}())},
		{"nested too deep", withPayload(addPair([]byte{0x0a}, append(bytes.Repeat([]byte{0x81}, wire.NestedLevelsMax+1), 0x01)))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := wire.ParseRequest(tc.b)
			wantCode(t, err, iotpay.EINVALID)
			t.Log(err)
			if len(tc.b) > 0 && tc.b[0] == 0xd2 && len(tc.b) <= wire.EnvelopeBytesMax {
				// Receipts share the envelope checks.
				if _, err := wire.ParseSign1(tc.b); err != nil {
					wantCode(t, err, iotpay.EINVALID)
				}
			}
		})
	}

	// Envelope checks apply to receipts before their signature: the
	// platform's key verifying nothing here is not what refuses them.
	rc := mustSignReceipt(t, platform, testReceipt())
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"trailing byte", append(bytes.Clone(rc), 0x00)},
		{"untagged", rc[1:]},
		{"oversized", append(bytes.Clone(rc), make([]byte, wire.EnvelopeBytesMax)...)},
		{"missing kid", func() []byte {
			e, err := wire.ParseSign1(rc)
			if err != nil {
				t.Fatal(err)
			}
			pr := protected(t, wire.AlgES256, nil)
			return frame(18, pr, emptyMap, bstr(e.Payload), bstr(signRaw(t, platform, pr, e.Payload)))
		}()},
	} {
		t.Run("receipt/"+tc.name, func(t *testing.T) {
			_, err := wire.OpenReceipt(wire.Intl, &platform.PublicKey, tc.b)
			wantCode(t, err, iotpay.EINVALID)
		})
	}
	t.Run("receipt/unknown field", func(t *testing.T) {
		var m map[int]cbor.RawMessage
		e, err := wire.ParseSign1(rc)
		if err != nil {
			t.Fatal(err)
		}
		if err := cbor.Unmarshal(e.Payload, &m); err != nil {
			t.Fatal(err)
		}
		m[99] = enc(t, "surprise")
		_, err = wire.OpenReceipt(wire.Intl, &platform.PublicKey, signedFrame(t, platform, wire.AlgES256, platformKid, enc(t, m)))
		wantCode(t, err, iotpay.EINVALID)
	})
}

// TestEnvelopeBytesMax checks the bound is inclusive: a frame of exactly
// EnvelopeBytesMax bytes parses, one more byte does not.
func TestEnvelopeBytesMax(t *testing.T) {
	key := testKey(t, "device")
	build := func(payloadLen int) []byte {
		return signedFrame(t, key, wire.AlgES256, []byte(testDevice), make([]byte, payloadLen))
	}
	// The bstr head is 3 bytes for any length from 256 to 65535, so the
	// overhead is the same for both sizes.
	overhead := len(build(1000)) - 1000
	for _, tc := range []struct {
		size int
		want iotpay.Code
	}{
		{wire.EnvelopeBytesMax, ""},
		{wire.EnvelopeBytesMax + 1, iotpay.EINVALID},
	} {
		t.Run(fmt.Sprint(tc.size), func(t *testing.T) {
			b := build(tc.size - overhead)
			if len(b) != tc.size {
				t.Fatalf("built %d bytes, want %d", len(b), tc.size)
			}
			_, err := wire.ParseSign1(b)
			if got := iotpay.ErrorCode(err); got != tc.want {
				t.Errorf("code %q, want %q (%v)", got, tc.want, err)
			}
		})
	}
}

func TestRequestValidate(t *testing.T) {
	long := strings.Repeat("x", 65)
	fields := func(n int) map[string]int64 {
		m := map[string]int64{}
		for i := range n {
			m[fmt.Sprintf("f%02d", i)] = int64(i)
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		change func(r *wire.Request)
		want   string // "" for valid, else a fragment of the message
	}{
		{"amount request", func(r *wire.Request) {}, ""},
		{"event request", func(r *wire.Request) { *r = *eventRequest() }, ""},
		{"version 0", func(r *wire.Request) { r.V = 0 }, "unsupported version"},
		{"version 2", func(r *wire.Request) { r.V = 2 }, "unsupported version"},
		{"no device", func(r *wire.Request) { r.Device = "" }, "malformed device id"},
		{"account id as device", func(r *wire.Request) { r.Device = "acc" + r.Device[3:] }, "malformed device id"},
		{"device id bad character", func(r *wire.Request) { r.Device = r.Device[:len(r.Device)-1] + "u" }, "malformed device id"},
		{"device id upper case", func(r *wire.Request) { r.Device = strings.ToUpper(r.Device) }, "malformed device id"},
		{"counter 0", func(r *wire.Request) { r.Counter = 0 }, "counter must start at 1"},
		{"counter max", func(r *wire.Request) { r.Counter = 1<<64 - 1 }, ""},
		{"no nonce", func(r *wire.Request) { r.Nonce = nil }, "nonce must be 16 bytes"},
		{"short nonce", func(r *wire.Request) { r.Nonce = r.Nonce[:15] }, "nonce must be 16 bytes"},
		{"long nonce", func(r *wire.Request) { r.Nonce = append(r.Nonce, 0) }, "nonce must be 16 bytes"},
		{"no request id", func(r *wire.Request) { r.RequestID = "" }, "request id"},
		{"request id 64", func(r *wire.Request) { r.RequestID = long[:64] }, ""},
		{"request id 65", func(r *wire.Request) { r.RequestID = long }, "request id"},
		{"request id non-ASCII", func(r *wire.Request) { r.RequestID = "Zahlung-Ä-1" }, ""},
		{"request id control", func(r *wire.Request) { r.RequestID = "req\n1" }, "request id"},
		{"request id DEL", func(r *wire.Request) { r.RequestID = "req\x7f1" }, "request id"},
		{"request id invalid UTF-8", func(r *wire.Request) { r.RequestID = "req\xff" }, "request id"},
		{"no challenge", func(r *wire.Request) { r.Challenge = nil }, ""},
		{"empty challenge", func(r *wire.Request) { r.Challenge = []byte{} }, "challenge must be 16 bytes"},
		{"short challenge", func(r *wire.Request) { r.Challenge = r.Challenge[:15] }, "challenge must be 16 bytes"},
		{"negative amount", func(r *wire.Request) { r.AmountMinor = -1 }, "negative amount"},
		{"amount and event", func(r *wire.Request) { r.Event = eventRequest().Event }, "both an amount and an event"},
		{"currency and event", func(r *wire.Request) { *r = *eventRequest(); r.Currency = "EUR" }, "both an amount and an event"},
		{"neither", func(r *wire.Request) { r.AmountMinor, r.Currency = 0, "" }, "neither"},
		{"currency without amount", func(r *wire.Request) { r.AmountMinor = 0 }, "amount must be positive"},
		{"amount without currency", func(r *wire.Request) { r.Currency = "" }, "unknown currency"},
		{"unknown currency", func(r *wire.Request) { r.Currency = "XXX" }, "unknown currency"},
		{"lower-case currency", func(r *wire.Request) { r.Currency = "eur" }, "unknown currency"},
		{"amount 1 JPY", func(r *wire.Request) { r.AmountMinor, r.Currency = 1, "JPY" }, ""},
		{"event no type", func(r *wire.Request) { *r = *eventRequest(); r.Event.Type = "" }, "event type"},
		{"event type 64", func(r *wire.Request) { *r = *eventRequest(); r.Event.Type = long[:64] }, ""},
		{"event type 65", func(r *wire.Request) { *r = *eventRequest(); r.Event.Type = long }, "event type"},
		{"event type control", func(r *wire.Request) { *r = *eventRequest(); r.Event.Type = "a\tb" }, "event type"},
		{"event no fields", func(r *wire.Request) { *r = *eventRequest(); r.Event.Num, r.Event.Str = nil, nil }, ""},
		{"event 16 fields", func(r *wire.Request) {
			*r = *eventRequest()
			r.Event.Num, r.Event.Str = fields(15), map[string]string{"s": "v"}
		}, ""},
		{"event 17 fields", func(r *wire.Request) {
			*r = *eventRequest()
			r.Event.Num, r.Event.Str = fields(16), map[string]string{"s": "v"}
		}, "more than 16 fields"},
		{"event empty num name", func(r *wire.Request) { *r = *eventRequest(); r.Event.Num[""] = 1 }, "bad event field name"},
		{"event long num name", func(r *wire.Request) { *r = *eventRequest(); r.Event.Num[long] = 1 }, "bad event field name"},
		{"event control num name", func(r *wire.Request) { *r = *eventRequest(); r.Event.Num["w\x00h"] = 1 }, "bad event field name"},
		{"event negative num", func(r *wire.Request) { *r = *eventRequest(); r.Event.Num["delta"] = -5 }, ""},
		{"event empty str name", func(r *wire.Request) { *r = *eventRequest(); r.Event.Str[""] = "v" }, "bad event field"},
		{"event long str name", func(r *wire.Request) { *r = *eventRequest(); r.Event.Str[long] = "v" }, "bad event field"},
		{"event control str name", func(r *wire.Request) { *r = *eventRequest(); r.Event.Str["a\rb"] = "v" }, "bad event field"},
		{"event empty str value", func(r *wire.Request) { *r = *eventRequest(); r.Event.Str["note"] = "" }, ""},
		{"event long str value", func(r *wire.Request) { *r = *eventRequest(); r.Event.Str["note"] = long }, "bad event field"},
		{"event control str value", func(r *wire.Request) { *r = *eventRequest(); r.Event.Str["note"] = "a\x1bb" }, "bad event field"},
		{"event invalid UTF-8 value", func(r *wire.Request) { *r = *eventRequest(); r.Event.Str["note"] = "\xc3" }, "bad event field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := amountRequest()
			tc.change(r)
			err := r.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			wantCode(t, err, iotpay.EINVALID)
			if msg := iotpay.ErrorMessage(err); !strings.Contains(msg, tc.want) {
				t.Errorf("message %q, want it to contain %q", msg, tc.want)
			}
		})
	}
}

func TestRequestTime(t *testing.T) {
	r := amountRequest()
	if got, want := r.Time(), time.UnixMilli(1_750_000_123_456); !got.Equal(want) {
		t.Errorf("Time() = %v, want %v", got, want)
	}
}

func TestSuite(t *testing.T) {
	t.Run("by name", func(t *testing.T) {
		for _, name := range []string{wire.SuiteIntl, ""} {
			s, err := wire.SuiteByName(name)
			if err != nil || s.Name() != wire.SuiteIntl || s.Alg() != wire.AlgES256 {
				t.Errorf("SuiteByName(%q) = %v, %v", name, s, err)
			}
		}
		_, err := wire.SuiteByName("cn")
		wantCode(t, err, iotpay.EINVALID)
	})
	t.Run("hash", func(t *testing.T) {
		want := sha256.Sum256([]byte("abc"))
		if diff := cmp.Diff(want[:], wire.Intl.Hash([]byte("abc"))); diff != "" {
			t.Errorf("Hash (-want +got):\n%s", diff)
		}
	})
	t.Run("refuses non-P-256 signer", func(t *testing.T) {
		k384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		_, err = wire.Intl.Sign(k384, rand.Reader, []byte("m"))
		wantCode(t, err, iotpay.EINVALID)
		_, err = wire.SignRequest(wire.Intl, k384, rand.Reader, amountRequest())
		wantCode(t, err, iotpay.EINVALID)
		_, err = wire.Intl.Sign(nilPublicSigner{k384}, rand.Reader, []byte("m"))
		wantCode(t, err, iotpay.EINVALID)
	})
	t.Run("Sign1.Verify with a typed nil key", func(t *testing.T) {
		env, _, err := wire.ParseRequest(mustSignRequest(t, testKey(t, "device"), amountRequest()))
		if err != nil {
			t.Fatal(err)
		}
		var unknown *ecdsa.PublicKey // as a failed device lookup returns
		wantCode(t, env.Verify(wire.Intl, unknown), iotpay.EUNAUTHORIZED)
		_, err = wire.OpenReceipt(wire.Intl, unknown, mustSignReceipt(t, testKey(t, "platform"), testReceipt()))
		wantCode(t, err, iotpay.EUNAUTHORIZED)
	})
	t.Run("verify", func(t *testing.T) {
		key := testKey(t, "device")
		msg := []byte("message")
		sig, err := wire.Intl.Sign(key, rand.Reader, msg)
		if err != nil {
			t.Fatal(err)
		}
		if len(sig) != 64 {
			t.Fatalf("signature of %d bytes, want 64 (r||s)", len(sig))
		}
		k384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		for _, tc := range []struct {
			name string
			pub  crypto.PublicKey
			msg  []byte
			sig  []byte
			want bool
		}{
			{"good", &key.PublicKey, msg, sig, true},
			{"other message", &key.PublicKey, []byte("messagf"), sig, false},
			{"other key", &testKey(t, "x").PublicKey, msg, sig, false},
			{"P-384 key", &k384.PublicKey, msg, sig, false},
			{"value not pointer", key.PublicKey, msg, sig, false},
			{"nil key", nil, msg, sig, false},
			{"typed nil key", (*ecdsa.PublicKey)(nil), msg, sig, false},
			{"key without point", &ecdsa.PublicKey{Curve: elliptic.P256()}, msg, sig, false},
			{"short sig", &key.PublicKey, msg, sig[:63], false},
			{"long sig", &key.PublicKey, msg, append(bytes.Clone(sig), 0), false},
			{"zero sig", &key.PublicKey, msg, make([]byte, 64), false},
			{"all-ones sig", &key.PublicKey, msg, bytes.Repeat([]byte{0xff}, 64), false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if got := wire.Intl.Verify(tc.pub, tc.msg, tc.sig); got != tc.want {
					t.Errorf("Verify = %v, want %v", got, tc.want)
				}
			})
		}
	})
}

// TestCOSESignatureForm checks the signature is COSE's fixed-width r||s
// over SHA-256 of the Sig_structure, by verifying it with crypto/ecdsa.
func TestCOSESignatureForm(t *testing.T) {
	key := testKey(t, "device")
	b := mustSignRequest(t, key, amountRequest())
	var msg struct {
		_           struct{} `cbor:",toarray"`
		Protected   []byte
		Unprotected map[int]any
		Payload     []byte
		Signature   []byte
	}
	var tag cbor.RawTag
	if err := cbor.Unmarshal(b, &tag); err != nil {
		t.Fatal(err)
	}
	if tag.Number != 18 {
		t.Fatalf("tag %d, want 18", tag.Number)
	}
	if err := cbor.Unmarshal(tag.Content, &msg); err != nil {
		t.Fatal(err)
	}
	if len(msg.Unprotected) != 0 {
		t.Errorf("unprotected header %v, want empty", msg.Unprotected)
	}
	var h map[int]any
	if err := cbor.Unmarshal(msg.Protected, &h); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[int]any{1: int64(-7), 4: []byte(testDevice)}, h); diff != "" {
		t.Errorf("protected header (-want +got):\n%s", diff)
	}
	digest := sha256.Sum256(sigStructure(t, msg.Protected, msg.Payload))
	if len(msg.Signature) != 64 {
		t.Fatalf("signature of %d bytes", len(msg.Signature))
	}
	if !verifyRaw(&key.PublicKey, digest[:], msg.Signature) {
		t.Fatal("signature is not ES256 over the Sig_structure")
	}
}

// nilPublicSigner is a signer whose Public returns a typed nil key.
type nilPublicSigner struct{ crypto.Signer }

func (nilPublicSigner) Public() crypto.PublicKey { return (*ecdsa.PublicKey)(nil) }

// verifyRaw checks a COSE r||s signature with crypto/ecdsa alone.
func verifyRaw(pub *ecdsa.PublicKey, digest, sig []byte) bool {
	if len(sig) != 64 {
		return false
	}
	// ASN.1-encode r and s so ecdsa.VerifyASN1 does the checking.
	return ecdsa.VerifyASN1(pub, digest, rawSigDER(sig))
}

func TestTopics(t *testing.T) {
	if got, want := wire.PayTopic(testDevice), "iotpay/v1/"+testDevice+"/pay"; got != want {
		t.Errorf("PayTopic = %q, want %q", got, want)
	}
	if got, want := wire.ReceiptTopic(testDevice), "iotpay/v1/"+testDevice+"/receipt"; got != want {
		t.Errorf("ReceiptTopic = %q, want %q", got, want)
	}
}

// equateEmpty treats nil and empty slices and maps alike: a decoder cannot
// tell them apart once omitempty has dropped them.
var equateEmpty = cmpopts.EquateEmpty()

// TestOneFormPerMessage checks that a signed message has exactly one byte
// string: the second ECDSA signature (r, n−s) and every non-deterministic
// CBOR framing of the same content are refused, so the request hash is the
// request's identity.
func TestOneFormPerMessage(t *testing.T) {
	key := testKey(t, "device")
	n := elliptic.P256().Params().N
	half := new(big.Int).Rsh(n, 1)
	for i := range 64 { // random nonces: about half come out high before normalization
		b := mustSignRequest(t, key, amountRequest())
		var tag cbor.RawTag
		if err := cbor.Unmarshal(b, &tag); err != nil {
			t.Fatal(err)
		}
		var msg []cbor.RawMessage
		if err := cbor.Unmarshal(tag.Content, &msg); err != nil {
			t.Fatal(err)
		}
		var sig []byte
		if err := cbor.Unmarshal(msg[3], &sig); err != nil {
			t.Fatal(err)
		}
		s := new(big.Int).SetBytes(sig[32:])
		if s.Cmp(half) > 0 {
			t.Fatalf("signature %d: s in high form", i)
		}
		// The mirror signature is valid ECDSA, and refused.
		high := bytes.Clone(sig)
		new(big.Int).Sub(n, s).FillBytes(high[32:])
		var payload, prot []byte
		_ = cbor.Unmarshal(msg[2], &payload)
		_ = cbor.Unmarshal(msg[0], &prot)
		digest := sha256.Sum256(sigStructure(t, prot, payload))
		if !verifyRaw(&key.PublicKey, digest[:], high) {
			t.Fatal("mirror signature should be valid ECDSA")
		}
		mirror, err := cbor.Marshal(cbor.Tag{Number: 18, Content: []any{prot, map[int]any{}, payload, high}})
		if err != nil {
			t.Fatal(err)
		}
		env, _, err := wire.ParseRequest(mirror)
		if err != nil {
			t.Fatalf("mirror frame should parse: %v", err)
		}
		if err := env.Verify(wire.Intl, key.Public()); iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
			t.Fatalf("high-s signature: err %v, want unauthorized", err)
		}
	}

	b := mustSignRequest(t, key, amountRequest())
	if _, _, err := wire.ParseRequest(b); err != nil {
		t.Fatal(err)
	}
	// Re-encodings of the same envelope that a lax decoder would accept.
	var tag cbor.RawTag
	_ = cbor.Unmarshal(b, &tag)
	var parts []cbor.RawMessage
	_ = cbor.Unmarshal(tag.Content, &parts)
	var prot, payload, sig []byte
	_ = cbor.Unmarshal(parts[0], &prot)
	_ = cbor.Unmarshal(parts[2], &payload)
	_ = cbor.Unmarshal(parts[3], &sig)
	longBstr := func(v []byte) []byte { // a byte string with a 2-byte length where 1 suffices
		if len(v) > 255 {
			t.Fatalf("test needs a short value, got %d bytes", len(v))
		}
		return append([]byte{0x59, 0, byte(len(v))}, v...)
	}
	frame := func(items ...[]byte) []byte {
		out := []byte{0xd2, 0x84}
		for _, it := range items {
			out = append(out, it...)
		}
		return out
	}
	enc := func(v any) []byte {
		t.Helper()
		out, err := cbor.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if !bytes.Equal(frame(parts[0], parts[1], parts[2], parts[3]), b) {
		t.Fatal("test frame builder does not rebuild the original")
	}
	var hdr map[int]any
	_ = cbor.Unmarshal(prot, &hdr)
	reordered := append([]byte{0xa2}, enc(4)...)
	reordered = append(reordered, enc(hdr[4])...)
	reordered = append(append(reordered, enc(1)...), enc(hdr[1])...)
	for name, bad := range map[string][]byte{
		"long tag":              append([]byte{0xd8, 18}, b[1:]...),
		"long array header":     append([]byte{0xd2, 0x98, 4}, b[2:]...),
		"long signature length": frame(parts[0], parts[1], parts[2], longBstr(sig)),
		"long protected length": frame(longBstr(prot), parts[1], parts[2], parts[3]),
		"header keys reordered": frame(enc(reordered), parts[1], parts[2], parts[3]),
	} {
		_, _, err := wire.ParseRequest(bad)
		if iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("%s: err %v, want invalid", name, err)
		}
	}
}

// TestSignedNonCanonicalPayload checks that a request signed over a
// payload that is not in deterministic encoding is refused: a signer
// cannot give one request two forms either.
func TestSignedNonCanonicalPayload(t *testing.T) {
	key := testKey(t, "device")
	b := mustSignRequest(t, key, amountRequest())
	env, _, err := wire.ParseRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[int]cbor.RawMessage
	if err := cbor.Unmarshal(env.Payload, &fields); err != nil {
		t.Fatal(err)
	}
	keys := make([]int, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	slices.Reverse(keys) // descending: not the deterministic order
	payload := []byte{byte(0xa0 + len(keys))}
	for _, k := range keys {
		kb, _ := cbor.Marshal(k)
		payload = append(append(payload, kb...), fields[k]...)
	}
	bad, err := wire.Sign(wire.Intl, key, rand.Reader, []byte(testDevice), payload)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := wire.ParseRequest(bad); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Fatalf("err %v, want invalid", err)
	}
}

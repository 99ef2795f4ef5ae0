package wire_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"path/filepath"
	"testing"

	gmecdh "github.com/emmansun/gmsm/ecdh"
	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/sm4"
	"github.com/fxamacker/cbor/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/iotpay/iotpay/wire"
)

const sessionGoldenHeader = "# iotpay session golden vectors: a handshake (hello, welcome), its key schedule,\n" +
	"# a request sealed as message 5 and its sealed receipt; hex. Regenerate with\n" +
	"#   go test ./wire -run TestGoldenSession -update\n"

// sessionParts is the order of a session golden file's lines.
var sessionParts = []string{"device_key", "platform_key", "device_ephemeral", "platform_ephemeral", "hello", "welcome",
	"shared_secret", "th", "prk", "req_key", "req_iv", "resp_key", "resp_iv",
	"request", "sealed_request", "receipt", "sealed_response"}

// goldenSeq is the sequence number of the golden sealed request.
const goldenSeq = 5

// TestGoldenSession pins a whole session in each suite (session.golden,
// gm_session.golden) and checks the stored vectors with the primitives
// alone — ECDH, HKDF, AES-GCM or SM4-GCM, the cbor package — so another
// implementation can follow them step by step.
func TestGoldenSession(t *testing.T) {
	for _, s := range []wire.Suite{wire.Intl, wire.GM} {
		name := "session"
		if s == wire.GM {
			name = "gm_session"
		}
		t.Run(name, func(t *testing.T) {
			got := sessionVectors(t, s)
			path := filepath.Join("testdata", name+".golden")
			if *update {
				writeGoldenParts(t, path, sessionGoldenHeader, sessionParts, got)
			}
			want := readGoldenParts(t, path, sessionParts)
			for _, part := range sessionParts {
				if diff := cmp.Diff(want[part], got[part]); diff != "" {
					t.Errorf("%s differs from %s (-golden +now):\n%s", part, path, diff)
				}
			}
			checkSessionIndependently(t, s, want)
		})
	}
}

func sessionVectors(t *testing.T, s wire.Suite) map[string][]byte {
	hs := doHandshake(t, s)
	x := make([]byte, 32)
	(&fixedRand{label: "device " + s.Name()}).Read(x)
	y := make([]byte, 32)
	(&fixedRand{label: "platform " + s.Name()}).Read(y)
	devScalar, _ := keyBytes(hs.devKey)
	platScalar, _ := keyBytes(hs.platKey)
	req, err := wire.SignRequest(s, hs.devKey, goldenRand(s), amountRequest())
	if err != nil {
		t.Fatal(err)
	}
	rc, err := wire.SignReceipt(s, hs.platKey, goldenRand(s), platformKid, testReceipt())
	if err != nil {
		t.Fatal(err)
	}
	sreq, err := hs.dev.SealRequest(goldenSeq, req)
	if err != nil {
		t.Fatal(err)
	}
	sresp, err := hs.plat.SealResponse(goldenSeq, rc)
	if err != nil {
		t.Fatal(err)
	}
	v := wire.SessionSecrets(hs.dev)
	if diff := cmp.Diff(v, wire.SessionSecrets(hs.plat)); diff != "" {
		t.Fatalf("device and platform derived different keys:\n%s", diff)
	}
	v["device_key"], v["platform_key"], v["device_ephemeral"], v["platform_ephemeral"] = devScalar, platScalar, x, y
	v["hello"], v["welcome"], v["request"], v["sealed_request"], v["receipt"], v["sealed_response"] = hs.hello, hs.welcome, req, sreq, rc, sresp
	z, err := ecdhOf(s, x, y)
	if err != nil {
		t.Fatal(err)
	}
	v["shared_secret"] = z
	return v
}

// ecdhOf is the ECDH secret of scalar x with scalar y's public key.
func ecdhOf(s wire.Suite, x, y []byte) ([]byte, error) {
	if s == wire.GM {
		kx, err := gmecdh.P256().NewPrivateKey(x)
		if err != nil {
			return nil, err
		}
		ky, err := gmecdh.P256().NewPrivateKey(y)
		if err != nil {
			return nil, err
		}
		return kx.ECDH(ky.PublicKey())
	}
	kx, err := ecdh.P256().NewPrivateKey(x)
	if err != nil {
		return nil, err
	}
	ky, err := ecdh.P256().NewPrivateKey(y)
	if err != nil {
		return nil, err
	}
	return kx.ECDH(ky.PublicKey())
}

func checkSessionIndependently(t *testing.T, s wire.Suite, v map[string][]byte) {
	z, err := ecdhOf(s, v["device_ephemeral"], v["platform_ephemeral"])
	if err != nil || !bytes.Equal(z, v["shared_secret"]) {
		t.Fatalf("shared secret does not follow from the ephemeral keys: %v", err)
	}
	newHash := func() hash.Hash { return sha256.New() }
	if s == wire.GM {
		newHash = sm3.New
	}
	th0, _ := cbor.Marshal([][]byte{v["hello"], v["welcome"]})
	h := newHash()
	h.Write(th0)
	if th := h.Sum(nil); !bytes.Equal(th, v["th"]) {
		t.Error("th is not H([hello, welcome])")
	}
	prk, _ := hkdf.Extract(newHash, z, v["th"])
	if !bytes.Equal(prk, v["prk"]) {
		t.Error("prk is not HKDF-Extract(th, shared secret)")
	}
	for part, label := range map[string]string{"req_key": "iotpay session device->platform key", "req_iv": "iotpay session device->platform iv",
		"resp_key": "iotpay session platform->device key", "resp_iv": "iotpay session platform->device iv"} {
		if k, _ := hkdf.Expand(newHash, prk, label, len(v[part])); !bytes.Equal(k, v[part]) {
			t.Errorf("%s is not HKDF-Expand(prk, %q)", part, label)
		}
	}
	var w struct {
		Session []byte `cbor:"6,keyasint"`
	}
	if err := cbor.Unmarshal(decodeFrame(t, v["welcome"]).Payload, &w); err != nil {
		t.Fatal(err)
	}
	if pt := openIndependently(t, s, v["req_key"], v["req_iv"], v["sealed_request"], w.Session, 0); !bytes.Equal(pt, v["request"]) {
		t.Error("sealed request does not decrypt to the request")
	}
	if pt := openIndependently(t, s, v["resp_key"], v["resp_iv"], v["sealed_response"], w.Session, 1); !bytes.Equal(pt, v["receipt"]) {
		t.Error("sealed response does not decrypt to the receipt")
	}
}

// openIndependently decrypts a golden COSE_Encrypt0 with the cbor package
// and the block cipher's GCM directly.
func openIndependently(t *testing.T, s wire.Suite, key, iv, frame, session []byte, dir int) []byte {
	t.Helper()
	var tag cbor.RawTag
	if err := cbor.Unmarshal(frame, &tag); err != nil || tag.Number != 16 {
		t.Fatalf("not a COSE_Encrypt0: %v", err)
	}
	var m struct {
		_           struct{} `cbor:",toarray"`
		Protected   []byte
		Unprotected map[int][]byte
		Ciphertext  []byte
	}
	if err := cbor.Unmarshal(tag.Content, &m); err != nil {
		t.Fatal(err)
	}
	newBlock := aes.NewCipher
	if s == wire.GM {
		newBlock = sm4.NewCipher
	}
	b, _ := newBlock(key)
	a, _ := cipher.NewGCM(b)
	n := bytes.Clone(iv)
	var sq [8]byte
	binary.BigEndian.PutUint64(sq[:], goldenSeq)
	for i := range sq {
		n[4+i] ^= sq[i]
	}
	ext, _ := cbor.Marshal([]any{1, s.Name(), session, dir, goldenSeq})
	aad, _ := cbor.Marshal([]any{"Encrypt0", m.Protected, ext})
	pt, err := a.Open(nil, n, m.Ciphertext, aad)
	if err != nil {
		t.Fatalf("does not decrypt: %v", err)
	}
	return pt
}

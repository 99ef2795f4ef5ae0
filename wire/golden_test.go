package wire_test

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/sm2"
	"github.com/fxamacker/cbor/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/iotpay/iotpay/wire"
)

var update = flag.Bool("update", false, "rewrite wire/testdata/*.golden from the current encoder")

// Golden frames pin the bytes on the wire, so a change to field numbers,
// encoding options or the COSE structure shows up as a diff, and a device
// written in another language has test vectors. Each file holds the signing
// key, the payload, the protected header, the Sig_structure and the whole
// frame, in hex.
//
// ECDSA signatures are normally randomized; signing with a nil rand makes
// crypto/ecdsa use RFC 6979 deterministic nonces, so the frame, signature
// included, is stable too (SM2: see zeroRand). The signature is also checked to verify over the
// Sig_structure, independently of the package's own Verify.

const goldenHeader = "# iotpay wire golden file: hex of each part. Regenerate with\n" +
	"#   go test ./wire -run TestGolden -update\n"

// goldenParts is the order of a golden file's lines.
var goldenParts = []string{"key_scalar", "public_key", "payload", "protected", "sig_structure", "frame"}

// goldenCase is one golden file.
type goldenCase struct {
	name  string
	suite wire.Suite
	key   string // testKey label
	sign  func(s wire.Suite, k crypto.Signer) ([]byte, error)
	// check decodes the golden frame and compares it with what was signed.
	check func(t *testing.T, s wire.Suite, pub crypto.PublicKey, frame []byte)
}

// goldenCases are the same three frames in each suite, the gm ones in
// files named gm_….
func goldenCases() []goldenCase {
	var cs []goldenCase
	for _, s := range []wire.Suite{wire.Intl, wire.GM} {
		prefix := ""
		if s == wire.GM {
			prefix = "gm_"
		}
		cs = append(cs,
			goldenCase{prefix + "request_amount", s, "golden device", goldenRequest(amountRequest()), checkGoldenRequest(amountRequest())},
			goldenCase{prefix + "request_event", s, "golden device", goldenRequest(eventRequest()), checkGoldenRequest(eventRequest())},
			goldenCase{prefix + "receipt", s, "golden platform", goldenReceipt, checkGoldenReceipt})
	}
	return cs
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			key := suiteKey(t, tc.suite, tc.key)
			frame, err := tc.sign(tc.suite, key)
			if err != nil {
				t.Fatal(err)
			}
			got := goldenOf(t, key, frame)
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				writeGolden(t, path, got)
			}
			want := readGolden(t, path)
			for _, part := range goldenParts {
				if diff := cmp.Diff(want[part], got[part]); diff != "" {
					t.Errorf("%s differs from %s (-golden +now):\n%s", part, path, diff)
				}
			}

			// The stored bytes stand on their own: the signature verifies
			// over the stored Sig_structure with the stored public key, and
			// the stored frame decodes to the message in this file.
			curve := key.Public().(*ecdsa.PublicKey).Curve
			x, y := elliptic.Unmarshal(curve, want["public_key"]) //nolint:staticcheck // SM2 has no crypto/ecdh form
			if x == nil {
				t.Fatal("golden public key does not decode")
			}
			pub := &ecdsa.PublicKey{Curve: curve, X: x, Y: y}
			if !verifyIndependently(tc.suite, pub, want["sig_structure"], signatureOf(t, want["frame"])) {
				t.Error("golden signature does not verify over the golden Sig_structure")
			}
			if want := sigStructure(t, want["protected"], want["payload"]); !bytes.Equal(want, got["sig_structure"]) {
				t.Error("golden Sig_structure is not built from the golden protected header and payload")
			}
			tc.check(t, tc.suite, pub, want["frame"])
		})
	}
}

// zeroRand makes SM2 signatures deterministic: gmsm mixes what it reads
// with the key and the digest (as crypto/ecdsa does), so a constant source
// gives a stable nonce. For golden files only.
type zeroRand struct{}

func (zeroRand) Read(b []byte) (int, error) { clear(b); return len(b), nil }

// goldenRand is the randomness golden frames are signed with: nil (RFC 6979)
// for ECDSA, a constant source for SM2.
func goldenRand(s wire.Suite) io.Reader {
	if s == wire.GM {
		return zeroRand{}
	}
	return nil
}

func goldenRequest(r *wire.Request) func(wire.Suite, crypto.Signer) ([]byte, error) {
	return func(s wire.Suite, k crypto.Signer) ([]byte, error) { return wire.SignRequest(s, k, goldenRand(s), r) }
}

func goldenReceipt(s wire.Suite, k crypto.Signer) ([]byte, error) {
	return wire.SignReceipt(s, k, goldenRand(s), platformKid, testReceipt())
}

func checkGoldenReceipt(t *testing.T, s wire.Suite, pub crypto.PublicKey, frame []byte) {
	r, err := wire.OpenReceipt(s, pub, frame)
	if err != nil {
		t.Fatalf("golden receipt does not open: %v", err)
	}
	if diff := cmp.Diff(testReceipt(), r); diff != "" {
		t.Errorf("golden receipt (-want +got):\n%s", diff)
	}
}

// verifyIndependently checks a COSE signature with the primitives directly,
// not through the suite: SHA-256 and ECDSA, or gmsm's SM2 with the user id.
func verifyIndependently(s wire.Suite, pub *ecdsa.PublicKey, tbs, sig []byte) bool {
	if s == wire.GM {
		return len(sig) == 64 && sm2.VerifyASN1WithSM2(pub, []byte("1234567812345678"), tbs, rawSigDER(sig))
	}
	digest := sha256.Sum256(tbs)
	return verifyRaw(pub, digest[:], sig)
}

func checkGoldenRequest(want *wire.Request) func(*testing.T, wire.Suite, crypto.PublicKey, []byte) {
	return func(t *testing.T, s wire.Suite, pub crypto.PublicKey, frame []byte) {
		env, r, err := wire.ParseRequest(frame)
		if err != nil {
			t.Fatalf("golden request does not parse: %v", err)
		}
		if diff := cmp.Diff(want, r); diff != "" {
			t.Errorf("golden request (-want +got):\n%s", diff)
		}
		if err := env.Verify(s, pub); err != nil {
			t.Errorf("golden request does not verify: %v", err)
		}
	}
}

// goldenOf splits frame into the parts a golden file records.
func goldenOf(t *testing.T, key crypto.Signer, frame []byte) map[string][]byte {
	t.Helper()
	scalar, pub := keyBytes(key)
	m := decodeFrame(t, frame)
	return map[string][]byte{
		"key_scalar":    scalar,
		"public_key":    pub,
		"payload":       m.Payload,
		"protected":     m.Protected,
		"sig_structure": sigStructure(t, m.Protected, m.Payload),
		"frame":         frame,
	}
}

type rawSign1 struct {
	_           struct{} `cbor:",toarray"`
	Protected   []byte
	Unprotected map[int]any
	Payload     []byte
	Signature   []byte
}

// decodeFrame decodes a COSE_Sign1 with the cbor package alone.
func decodeFrame(t *testing.T, frame []byte) rawSign1 {
	t.Helper()
	var tag cbor.RawTag
	if err := cbor.Unmarshal(frame, &tag); err != nil {
		t.Fatal(err)
	}
	if tag.Number != 18 {
		t.Fatalf("tag %d, want 18 (COSE_Sign1)", tag.Number)
	}
	var m rawSign1
	if err := cbor.Unmarshal(tag.Content, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func signatureOf(t *testing.T, frame []byte) []byte {
	t.Helper()
	return decodeFrame(t, frame).Signature
}

func writeGolden(t *testing.T, path string, parts map[string][]byte) {
	t.Helper()
	writeGoldenParts(t, path, goldenHeader, goldenParts, parts)
}

// writeGoldenParts writes parts in order under header.
func writeGoldenParts(t *testing.T, path, header string, order []string, parts map[string][]byte) {
	t.Helper()
	var b strings.Builder
	b.WriteString(header)
	for _, p := range order {
		fmt.Fprintf(&b, "%s: %s\n", p, hex.EncodeToString(parts[p]))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readGolden(t *testing.T, path string) map[string][]byte {
	t.Helper()
	return readGoldenParts(t, path, goldenParts)
}

// readGoldenParts reads a golden file that must hold every part of order.
func readGoldenParts(t *testing.T, path string, order []string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	defer f.Close()
	parts := map[string][]byte{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<10)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hx, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("%s: malformed line %q", path, line)
		}
		b, err := hex.DecodeString(strings.TrimSpace(hx))
		if err != nil {
			t.Fatalf("%s: %s: %v", path, name, err)
		}
		parts[name] = b
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, p := range order {
		if _, ok := parts[p]; !ok {
			t.Fatalf("%s lacks %s", path, p)
		}
	}
	return parts
}

package wire_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
// included, is stable too. The signature is also checked to verify over the
// Sig_structure, independently of the package's own Verify.

const goldenHeader = "# iotpay wire golden file: hex of each part. Regenerate with\n" +
	"#   go test ./wire -run TestGolden -update\n"

// goldenParts is the order of a golden file's lines.
var goldenParts = []string{"key_scalar", "public_key", "payload", "protected", "sig_structure", "frame"}

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  string // testKey label
		sign func(*ecdsa.PrivateKey) ([]byte, error)
		// check decodes the golden frame and compares it with what was signed.
		check func(t *testing.T, key *ecdsa.PrivateKey, frame []byte)
	}{
		{
			name: "request_amount", key: "golden device",
			sign: func(k *ecdsa.PrivateKey) ([]byte, error) {
				return wire.SignRequest(wire.Intl, k, nil, amountRequest())
			},
			check: checkGoldenRequest(amountRequest()),
		},
		{
			name: "request_event", key: "golden device",
			sign: func(k *ecdsa.PrivateKey) ([]byte, error) {
				return wire.SignRequest(wire.Intl, k, nil, eventRequest())
			},
			check: checkGoldenRequest(eventRequest()),
		},
		{
			name: "receipt", key: "golden platform",
			sign: func(k *ecdsa.PrivateKey) ([]byte, error) {
				return wire.SignReceipt(wire.Intl, k, nil, platformKid, testReceipt())
			},
			check: func(t *testing.T, k *ecdsa.PrivateKey, frame []byte) {
				r, err := wire.OpenReceipt(wire.Intl, &k.PublicKey, frame)
				if err != nil {
					t.Fatalf("golden receipt does not open: %v", err)
				}
				if diff := cmp.Diff(testReceipt(), r); diff != "" {
					t.Errorf("golden receipt (-want +got):\n%s", diff)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := testKey(t, tc.key)
			frame, err := tc.sign(key)
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
			pub, err := ecdsa.ParseUncompressedPublicKey(key.Curve, want["public_key"])
			if err != nil {
				t.Fatalf("golden public key: %v", err)
			}
			sig := signatureOf(t, want["frame"])
			digest := sha256.Sum256(want["sig_structure"])
			if !verifyRaw(pub, digest[:], sig) {
				t.Error("golden signature does not verify over the golden Sig_structure")
			}
			if want := sigStructure(t, want["protected"], want["payload"]); !bytes.Equal(want, got["sig_structure"]) {
				t.Error("golden Sig_structure is not built from the golden protected header and payload")
			}
			tc.check(t, key, want["frame"])
		})
	}
}

func checkGoldenRequest(want *wire.Request) func(*testing.T, *ecdsa.PrivateKey, []byte) {
	return func(t *testing.T, k *ecdsa.PrivateKey, frame []byte) {
		env, r, err := wire.ParseRequest(frame)
		if err != nil {
			t.Fatalf("golden request does not parse: %v", err)
		}
		if diff := cmp.Diff(want, r); diff != "" {
			t.Errorf("golden request (-want +got):\n%s", diff)
		}
		if err := env.Verify(wire.Intl, &k.PublicKey); err != nil {
			t.Errorf("golden request does not verify: %v", err)
		}
	}
}

// goldenOf splits frame into the parts a golden file records.
func goldenOf(t *testing.T, key *ecdsa.PrivateKey, frame []byte) map[string][]byte {
	t.Helper()
	scalar, err := key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := key.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
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
	var b strings.Builder
	b.WriteString(goldenHeader)
	for _, p := range goldenParts {
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
	for _, p := range goldenParts {
		if _, ok := parts[p]; !ok {
			t.Fatalf("%s lacks %s", path, p)
		}
	}
	return parts
}

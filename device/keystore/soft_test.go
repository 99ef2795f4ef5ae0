package keystore

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/iotpay/iotpay/internal/atomicfile"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/iotpay/iotpay"
)

// cheapKDF keeps tests fast; the format and code paths are those of the
// default parameters.
var cheapKDF = kdfParams{N: 16, R: 1, P: 1}

var testPass = []byte("correct horse battery staple")

// newTestFile creates a keystore with cheap parameters in a fresh directory
// and returns its path and the open keystore.
func newTestFile(t testing.TB) (string, *Soft) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "device.key")
	s, err := createSoft(path, testPass, cheapKDF, rand.Reader)
	if err != nil {
		t.Fatalf("createSoft: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return path, s
}

// writeFile replaces path with data, mode 0600.
func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil { // WriteFile keeps an existing file's mode
		t.Fatal(err)
	}
}

func signAndVerify(t testing.TB, g crypto.Signer, msg string) {
	t.Helper()
	d := sha256.Sum256([]byte(msg))
	sig, err := g.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	pub, ok := g.Public().(*ecdsa.PublicKey)
	if !ok {
		t.Fatalf("Public() is %T, want *ecdsa.PublicKey", g.Public())
	}
	if !ecdsa.VerifyASN1(pub, d[:], sig) {
		t.Fatal("signature does not verify with the signer's public key")
	}
}

func TestCreateOpenRoundTrip(t *testing.T) {
	path, created := newTestFile(t)
	signAndVerify(t, created.Signer(), "created")

	opened, err := OpenSoft(path, testPass)
	if err != nil {
		t.Fatalf("OpenSoft: %v", err)
	}
	defer opened.Close()
	signAndVerify(t, opened.Signer(), "opened")

	if !created.Signer().Public().(*ecdsa.PublicKey).Equal(opened.Signer().Public()) {
		t.Fatal("reopened keystore holds another key")
	}
	// A signature by one verifies with the other's public key.
	d := sha256.Sum256([]byte("cross"))
	sig, err := opened.Signer().Sign(nil, d[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(created.Signer().Public().(*ecdsa.PublicKey), d[:], sig) {
		t.Fatal("signature by the reopened key does not verify with the created key")
	}
}

// TestDefaultParameters runs the exported path once with the real scrypt
// cost, so the default parameters are known to pass the bounds Open checks.
func TestDefaultParameters(t *testing.T) {
	if diff := cmp.Diff(kdfParams{N: 1 << 15, R: 8, P: 1}, defaultKDF); diff != "" {
		t.Errorf("default scrypt parameters (-want +got):\n%s", diff)
	}
	if testing.Short() {
		t.Skip("real scrypt cost")
	}
	path := filepath.Join(t.TempDir(), "device.key")
	s, err := CreateSoft(path, testPass)
	if err != nil {
		t.Fatalf("CreateSoft: %v", err)
	}
	s.Close()
	o, err := OpenSoft(path, testPass)
	if err != nil {
		t.Fatalf("OpenSoft: %v", err)
	}
	defer o.Close()
	signAndVerify(t, o.Signer(), "default")
}

func TestCreatedFile(t *testing.T) {
	path, _ := newTestFile(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if fi.Size() > KeystoreBytesMax {
		t.Errorf("file of %d bytes exceeds KeystoreBytesMax %d", fi.Size(), KeystoreBytesMax)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"device.key"}, names); diff != "" {
		t.Errorf("directory after create (-want +got):\n%s", diff)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f file
	if err := decMode.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	got := file{Format: f.Format, Version: f.Version, KDF: f.KDF, N: f.N, R: f.R, P: f.P, Cipher: f.Cipher}
	want := file{Format: formatName, Version: formatVersion, KDF: kdfScrypt, N: cheapKDF.N, R: cheapKDF.R, P: cheapKDF.P, Cipher: cipherAESGCM}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	if len(f.Salt) != SaltBytes || len(f.Nonce) != nonceBytes {
		t.Errorf("salt %d bytes, nonce %d bytes; want %d and %d", len(f.Salt), len(f.Nonce), SaltBytes, nonceBytes)
	}
}

func TestWrongPassphrase(t *testing.T) {
	path, _ := newTestFile(t)
	for _, pass := range [][]byte{
		[]byte("correct horse battery stapler"),
		[]byte("Correct horse battery staple"),
		{},
		nil,
	} {
		t.Run(fmt.Sprintf("%q", pass), func(t *testing.T) {
			s, err := OpenSoft(path, pass)
			if err == nil {
				s.Close()
				t.Fatal("opened with a wrong passphrase")
			}
			if got := iotpay.ErrorCode(err); got != iotpay.EUNAUTHORIZED {
				t.Errorf("code %q, want %q (%v)", got, iotpay.EUNAUTHORIZED, err)
			}
			if got := iotpay.ErrorMessage(err); got != "cannot open keystore" {
				t.Errorf("message %q, want the vague %q", got, "cannot open keystore")
			}
		})
	}
}

// TestTamperedFile changes the file at every byte position, by every
// single-bit flip and by inverting the byte, and truncates it at every
// length: each must fail to open with EUNAUTHORIZED, never panic.
func TestTamperedFile(t *testing.T) {
	path, _ := newTestFile(t)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	open := func(t *testing.T, data []byte, what string) {
		t.Helper()
		writeFile(t, path, data)
		s, err := OpenSoft(path, testPass)
		if err == nil {
			s.Close()
			t.Fatalf("%s: opened", what)
		}
		if got := iotpay.ErrorCode(err); got != iotpay.EUNAUTHORIZED {
			t.Fatalf("%s: code %q, want %q (%v)", what, got, iotpay.EUNAUTHORIZED, err)
		}
	}
	t.Run("flip", func(t *testing.T) {
		for i := range orig {
			for _, mask := range []byte{1, 2, 4, 8, 16, 32, 64, 128, 0xff} {
				b := bytes.Clone(orig)
				b[i] ^= mask
				open(t, b, fmt.Sprintf("byte %d ^ %#02x", i, mask))
			}
		}
	})
	t.Run("truncate", func(t *testing.T) {
		for n := range len(orig) {
			open(t, orig[:n], fmt.Sprintf("first %d bytes", n))
		}
	})
	t.Run("append", func(t *testing.T) {
		open(t, append(bytes.Clone(orig), 0), "trailing zero byte")
		open(t, append(bytes.Clone(orig), orig...), "file twice")
	})
}

// TestChangedHeader re-encodes a file properly with one header field
// changed: only the GCM additional data can catch it.
func TestChangedHeader(t *testing.T) {
	path, _ := newTestFile(t)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(*file)
		detail string
	}{
		{"N doubled", func(f *file) { f.N *= 2 }, "wrong passphrase"},
		{"r raised", func(f *file) { f.R++ }, "wrong passphrase"},
		{"p raised", func(f *file) { f.P++ }, "wrong passphrase"},
		{"salt changed", func(f *file) { f.Salt[0] ^= 1 }, "wrong passphrase"},
		{"nonce changed", func(f *file) { f.Nonce[11] ^= 1 }, "wrong passphrase"},
		{"version", func(f *file) { f.Version = 2 }, "unsupported keystore version"},
		{"format", func(f *file) { f.Format = "iotpay-keystorf" }, "not a keystore"},
		{"kdf", func(f *file) { f.KDF = "argon2id" }, "unsupported key derivation"},
		{"cipher", func(f *file) { f.Cipher = "chacha20-poly1305" }, "unsupported cipher"},
		{"short salt", func(f *file) { f.Salt = f.Salt[:8] }, "salt of 8 bytes"},
		{"long nonce", func(f *file) { f.Nonce = append(f.Nonce, 0) }, "nonce of 13 bytes"},
		{"no ciphertext", func(f *file) { f.Sealed = nil }, "wrong passphrase"},
		{"short ciphertext", func(f *file) { f.Sealed = f.Sealed[:10] }, "wrong passphrase"},
		// Planted costs are refused before scrypt allocates anything.
		{"huge N", func(f *file) { f.N = 1 << 40 }, "not a power of two"},
		{"N not power of two", func(f *file) { f.N = 24 }, "not a power of two"},
		{"huge memory", func(f *file) { f.N, f.R = 1<<20, 8 }, "needs more than"},
		{"huge p", func(f *file) { f.P = 1 << 20 }, "out of range"},
		{"huge cost", func(f *file) { f.N, f.R, f.P = 1<<20, 2, 16 }, "costs more than"},
		{"zero r", func(f *file) { f.R = 0 }, "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f file
			if err := decMode.Unmarshal(orig, &f); err != nil {
				t.Fatal(err)
			}
			tc.change(&f)
			data, err := encMode.Marshal(&f)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, data)
			s, err := OpenSoft(path, testPass)
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if got := iotpay.ErrorCode(err); got != iotpay.EUNAUTHORIZED {
				t.Errorf("code %q, want %q", got, iotpay.EUNAUTHORIZED)
			}
			if !strings.Contains(err.Error(), tc.detail) {
				t.Errorf("error %q lacks detail %q", err, tc.detail)
			}
		})
	}
}

func TestOpenMalformed(t *testing.T) {
	path, _ := newTestFile(t)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f file
	if err := decMode.Unmarshal(orig, &f); err != nil {
		t.Fatal(err)
	}
	withUnknown, err := encMode.Marshal(map[int]any{
		1: f.Format, 2: f.Version, 3: f.KDF, 4: f.N, 5: f.R, 6: f.P,
		7: f.Salt, 8: f.Cipher, 9: f.Nonce, 10: f.Sealed, 11: "extra",
	})
	if err != nil {
		t.Fatal(err)
	}
	// The same map with its keys in the wrong order: valid CBOR, not the
	// deterministic encoding.
	unordered := []byte{0xaa}
	for _, kv := range []struct {
		k int
		v any
	}{{2, f.Version}, {1, f.Format}, {3, f.KDF}, {4, f.N}, {5, f.R}, {6, f.P}, {7, f.Salt}, {8, f.Cipher}, {9, f.Nonce}, {10, f.Sealed}} {
		k, _ := encMode.Marshal(kv.k)
		v, _ := encMode.Marshal(kv.v)
		unordered = append(append(unordered, k...), v...)
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"garbage", []byte("not a keystore at all")},
		{"PEM key", []byte("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n")},
		{"CBOR null", []byte{0xf6}},
		{"CBOR array", []byte{0x80}},
		{"indefinite map", []byte{0xbf, 0xff}},
		{"tagged", append([]byte{0xd9, 0xd9, 0xf7}, orig...)},
		{"unknown field", withUnknown},
		{"unordered keys", unordered},
		{"too large", append(bytes.Clone(orig), make([]byte, KeystoreBytesMax)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writeFile(t, path, tc.data)
			s, err := OpenSoft(path, testPass)
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if got := iotpay.ErrorCode(err); got != iotpay.EUNAUTHORIZED {
				t.Errorf("code %q, want %q (%v)", got, iotpay.EUNAUTHORIZED, err)
			}
		})
	}
}

func TestOpenFileChecks(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	path, _ := newTestFile(t)
	for _, tc := range []struct {
		mode os.FileMode
		want iotpay.Code // "" to open
	}{
		{0o600, ""},
		{0o400, ""},
		{0o640, iotpay.EINVALID},
		{0o604, iotpay.EINVALID},
		{0o644, iotpay.EINVALID},
		{0o660, iotpay.EINVALID},
		{0o601, iotpay.EINVALID},
		{0o610, iotpay.EINVALID},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			s, err := OpenSoft(path, testPass)
			if err == nil {
				s.Close()
			}
			if got := iotpay.ErrorCode(err); got != tc.want {
				t.Errorf("code %q, want %q (%v)", got, tc.want, err)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		_, err := OpenSoft(filepath.Join(t.TempDir(), "nope"), testPass)
		if got := iotpay.ErrorCode(err); got != iotpay.ENOTFOUND {
			t.Errorf("code %q, want %q (%v)", got, iotpay.ENOTFOUND, err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "d")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		_, err := OpenSoft(dir, testPass)
		if got := iotpay.ErrorCode(err); got != iotpay.EINVALID {
			t.Errorf("code %q, want %q (%v)", got, iotpay.EINVALID, err)
		}
	})
}

func TestCreateRefusesOverwrite(t *testing.T) {
	path, _ := newTestFile(t)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(filepath.Dir(path), "notes.txt")
	writeFile(t, other, []byte("not a keystore"))
	dangling := filepath.Join(filepath.Dir(path), "dangling")
	if err := os.Symlink(filepath.Join(filepath.Dir(path), "nowhere"), dangling); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, path string
		want       []byte
	}{
		{"keystore", path, orig},
		{"other file", other, []byte("not a keystore")},
		{"dangling symlink", dangling, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := createSoft(tc.path, []byte("another passphrase"), cheapKDF, rand.Reader)
			if err == nil {
				s.Close()
				t.Fatal("created over an existing file")
			}
			if got := iotpay.ErrorCode(err); got != iotpay.ECONFLICT {
				t.Errorf("code %q, want %q (%v)", got, iotpay.ECONFLICT, err)
			}
			if tc.want == nil {
				return
			}
			got, err := os.ReadFile(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Error("existing file was changed")
			}
		})
	}
	// The link step refuses on its own too, for a file that appears after
	// the early check.
	if err := atomicfile.WriteNew(path, []byte("x"), 0o600); !errors.Is(err, os.ErrExist) {
		t.Errorf("WriteNew over an existing file: %v, want ErrExist", err)
	}
}

func TestCreateBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		pass []byte
		kdf  kdfParams
		path string
		want iotpay.Code
	}{
		{"empty passphrase", nil, cheapKDF, "a.key", iotpay.EINVALID},
		{"bad N", testPass, kdfParams{N: 15, R: 1, P: 1}, "b.key", iotpay.EINVALID},
		{"no such directory", testPass, cheapKDF, "missing/c.key", iotpay.EINTERNAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := createSoft(filepath.Join(dir, tc.path), tc.pass, tc.kdf, rand.Reader)
			if err == nil {
				s.Close()
			}
			if got := iotpay.ErrorCode(err); got != tc.want {
				t.Errorf("code %q, want %q (%v)", got, tc.want, err)
			}
		})
	}
	t.Run("failing randomness", func(t *testing.T) {
		_, err := createSoft(filepath.Join(dir, "d.key"), testPass, cheapKDF, failingReader{})
		if err == nil {
			t.Fatal("created without randomness")
		}
		if _, err := os.Stat(filepath.Join(dir, "d.key")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("file left behind: %v", err)
		}
	})
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestKDFParamsCheck(t *testing.T) {
	for _, tc := range []struct {
		p  kdfParams
		ok bool
	}{
		{defaultKDF, true},
		{cheapKDF, true},
		{kdfParams{N: 2, R: 1, P: 1}, true},
		{kdfParams{N: 1 << 20, R: 2, P: 1}, true}, // exactly the memory bound
		{kdfParams{N: 1 << 20, R: 3, P: 1}, false},
		{kdfParams{N: 1 << 21, R: 1, P: 1}, false},
		{kdfParams{N: 0, R: 1, P: 1}, false},
		{kdfParams{N: 1, R: 1, P: 1}, false},
		{kdfParams{N: 3, R: 1, P: 1}, false},
		{kdfParams{N: 1 << 63, R: 1, P: 1}, false},
		{kdfParams{N: 16, R: 0, P: 1}, false},
		{kdfParams{N: 16, R: kdfRMax, P: 1}, true},
		{kdfParams{N: 16, R: kdfRMax + 1, P: 1}, false},
		{kdfParams{N: 16, R: 1, P: 0}, false},
		{kdfParams{N: 16, R: 1, P: kdfPMax}, true},
		{kdfParams{N: 16, R: 1, P: kdfPMax + 1}, false},
		{kdfParams{N: 1 << 15, R: 8, P: 16}, true}, // exactly the cost bound
		{kdfParams{N: 1 << 16, R: 8, P: 16}, false},
		{kdfParams{N: 1 << 20, R: 2, P: 2}, true},
		{kdfParams{N: 1 << 20, R: 2, P: 3}, false},
	} {
		t.Run(fmt.Sprintf("N=%d,r=%d,p=%d", tc.p.N, tc.p.R, tc.p.P), func(t *testing.T) {
			if err := tc.p.check(); (err == nil) != tc.ok {
				t.Errorf("check() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestSignerPrintsNoSecret checks that formatting the signer does not
// print the private scalar; keystoretest checks the rest of its opacity.
func TestSignerPrintsNoSecret(t *testing.T) {
	_, s := newTestFile(t)
	g := s.Signer()
	d := s.key.D
	for _, form := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
		out := fmt.Sprintf(form, g)
		for _, secret := range []string{d.Text(16), d.Text(10)} {
			if strings.Contains(out, secret) {
				t.Errorf("fmt %s prints the private scalar: %s", form, out)
			}
		}
	}
}

// TestSignDeterministic: a nil rand gives RFC 6979 signatures. The rest
// of signing is keystoretest's.
func TestSignDeterministic(t *testing.T) {
	_, s := newTestFile(t)
	g := s.Signer()
	d256 := sha256.Sum256([]byte("m"))
	a, err := g.Sign(nil, d256[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.Sign(nil, d256[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("RFC 6979 signatures of one digest differ")
	}
}

func TestClose(t *testing.T) {
	_, s := newTestFile(t)
	g := s.Signer()
	pub := g.Public().(*ecdsa.PublicKey)
	d := s.key.D
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i, w := range d.Bits() {
		if w != 0 {
			t.Fatalf("private scalar word %d not zeroed", i)
		}
	}
	if s.key != nil {
		t.Error("key still referenced after Close")
	}
	digest := sha256.Sum256([]byte("m"))
	if _, err := g.Sign(rand.Reader, digest[:], crypto.SHA256); err == nil {
		t.Error("signed after Close")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if !pub.Equal(g.Public()) {
		t.Error("public key changed by Close")
	}
}

package keystore

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/iotpay/iotpay"
)

// FuzzOpenSoft feeds arbitrary file contents to OpenSoft: it must never
// panic, must refuse everything but a genuine file with EUNAUTHORIZED, and
// a file that opens must sign.
func FuzzOpenSoft(f *testing.F) {
	dir := f.TempDir()
	valid := filepath.Join(dir, "seed.key")
	s, err := createSoft(valid, testPass, cheapKDF, rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	s.Close()
	good, err := os.ReadFile(valid)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(good[:len(good)-1])
	f.Add(append(bytes.Clone(good), 0x00))
	flipped := bytes.Clone(good)
	flipped[len(flipped)-1] ^= 1 // in the GCM tag
	f.Add(flipped)
	f.Add([]byte{})
	f.Add([]byte{0xa0})
	f.Add([]byte{0xbf, 0x01, 0x02, 0xff})
	f.Add([]byte("garbage, not CBOR"))
	f.Add(bytes.Repeat([]byte{0xff}, 64))

	path := filepath.Join(dir, "fuzz.key")
	f.Fuzz(func(t *testing.T, data []byte) {
		// Files with legal but costly scrypt parameters only spend time in
		// scrypt; skip them so the fuzzer keeps its pace. The bounds
		// themselves are tested in TestKDFParamsCheck and TestChangedHeader.
		var h file
		if decMode.Unmarshal(data, &h) == nil {
			k := kdfParams{N: h.N, R: h.R, P: h.P}
			if k.check() == nil && k.N*k.R*k.P > 1<<10 {
				t.Skip("costly scrypt parameters")
			}
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := OpenSoft(path, testPass)
		if err != nil {
			if got := iotpay.ErrorCode(err); got != iotpay.EUNAUTHORIZED {
				t.Fatalf("code %q, want %q (%v)", got, iotpay.EUNAUTHORIZED, err)
			}
			return
		}
		defer s.Close()
		signAndVerify(t, s.Signer(), "fuzz")
	})
}

package device

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

func TestSoftSM2(t *testing.T) {
	path := filepath.Join(t.TempDir(), SM2KeyFile)
	ks, err := createSoftSM2(path, []byte("pass"), 4, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if !wire.IsSM2Key(ks.Signer().Public()) {
		t.Fatal("not an SM2 key")
	}
	sig, err := wire.GM.Sign(ks.Signer(), rand.Reader, []byte("m"))
	if err != nil || !wire.GM.Verify(ks.Signer().Public(), []byte("m"), sig) {
		t.Fatalf("sign: %v", err)
	}
	if _, err := createSoftSM2(path, []byte("pass"), 4, rand.Reader); iotpay.ErrorCode(err) != iotpay.ECONFLICT {
		t.Errorf("second create: %v, want conflict", err)
	}
	again, err := OpenSoftSM2(path, []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	if !wire.GM.Verify(again.Signer().Public(), []byte("m"), sig) {
		t.Error("reopened keystore holds another key")
	}
	if _, err := OpenSoftSM2(path, []byte("wrong")); iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
		t.Errorf("wrong passphrase: %v", err)
	}
	data, _ := os.ReadFile(path)
	data[len(data)-1] ^= 1
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSoftSM2(path, []byte("pass")); iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
		t.Errorf("damaged file: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSoftSM2(path, []byte("pass")); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("readable file: %v", err)
	}
	ks.Close()
	if _, err := ks.Signer().Sign(rand.Reader, make([]byte, 32), nil); iotpay.ErrorCode(err) != iotpay.EUNAVAILABLE {
		t.Errorf("closed keystore signs: %v", err)
	}
}

// FuzzUnsealSM2 feeds the SM2 keystore's decoder arbitrary files: no
// panic, and no key out of a file not sealed under the passphrase.
func FuzzUnsealSM2(f *testing.F) {
	path := filepath.Join(f.TempDir(), SM2KeyFile)
	if _, err := createSoftSM2(path, []byte("pass"), 1, rand.Reader); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa5, 0x02, 0x18, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		if k, err := unsealSM2(data, []byte("other")); err == nil {
			t.Errorf("unsealed %v without the passphrase", k.Public())
		}
	})
}

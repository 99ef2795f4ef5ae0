package psk

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/iotpay/iotpay"
)

// TestDeriveIsStable: deployed devices hold keys derived once; the
// derivation must never change.
func TestDeriveIsStable(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, SecretBytes)
	const id = "dev_01jxy6tm8g0g20c1g50g30c1g5"
	k, err := Derive(secret, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(k) != KeyBytes {
		t.Fatalf("key of %d bytes", len(k))
	}
	if again, _ := Derive(secret, id); !bytes.Equal(again, k) {
		t.Fatal("not deterministic")
	}
	if got, want := string(k), golden; got != want {
		t.Fatalf("Derive = %s, want %s", got, want)
	}
	if _, err := Derive(secret[:31], id); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("short secret: %v", err)
	}
	if _, err := Derive(secret, "not-a-device"); iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
		t.Errorf("bad identity: %v", err)
	}
}

func TestSecretFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	s, err := LoadOrCreateSecret(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", fi, err)
	}
	if again, err := LoadOrCreateSecret(path, nil); err != nil || !bytes.Equal(again, s) {
		t.Fatalf("reloaded: %v", err)
	}
	os.WriteFile(path, []byte("short"), 0o600)
	if _, err := LoadOrCreateSecret(path, nil); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("a damaged secret: %v", err)
	}
}

// golden is Derive's answer for the test's secret and id, as the
// platform's CoAP port derived it before this package held the derivation.
const golden = "932bab70c9b80d5827ac72b4a924e3e0"

package coap_test

import (
	"bytes"
	"encoding/hex"
	"path/filepath"
	"testing"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/coap"
)

// FuzzPSKIdentity feeds DerivePSK what a DTLS client may put in its PSK
// identity, the one untrusted input the platform reads before the
// handshake completes: it must refuse everything but a device id, and for
// a device id give the same 32 hex characters every time.
func FuzzPSKIdentity(f *testing.F) {
	secret := bytes.Repeat([]byte{7}, coap.PSKSecretBytes)
	for _, seed := range []string{"dev_01m88db1g6vgavgq32npz223mn", "", "dev_", "acc_01m88db1g6vgavgq32npz223mn", "dev_\x00\xff", "Pion DTLS Client"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, identity []byte) {
		k, err := coap.DerivePSK(secret, iotpay.DeviceID(identity))
		valid := iotpay.ValidID(iotpay.PrefixDevice, string(identity))
		if !valid {
			if err == nil || iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
				t.Fatalf("identity %q: key %q, err %v; want unauthorized", identity, k, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("device id %q: %v", identity, err)
		}
		if _, err := hex.DecodeString(string(k)); err != nil || len(k) != coap.PSKBytes {
			t.Fatalf("key %q is not %d hex characters", k, coap.PSKBytes)
		}
		again, _ := coap.DerivePSK(secret, iotpay.DeviceID(identity))
		if !bytes.Equal(k, again) {
			t.Fatal("derivation is not deterministic")
		}
	})
}

func TestDerivePSKSeparatesDevicesAndSecrets(t *testing.T) {
	a, b := iotpay.DeviceID("dev_01m88db1g6vgavgq32npz223mn"), iotpay.DeviceID("dev_01m88db1g6vgavgq32npz223mp")
	s1, s2 := bytes.Repeat([]byte{1}, coap.PSKSecretBytes), bytes.Repeat([]byte{2}, coap.PSKSecretBytes)
	ka, _ := coap.DerivePSK(s1, a)
	kb, _ := coap.DerivePSK(s1, b)
	ka2, _ := coap.DerivePSK(s2, a)
	if bytes.Equal(ka, kb) || bytes.Equal(ka, ka2) {
		t.Fatal("keys collide across devices or secrets")
	}
	if _, err := coap.DerivePSK(s1[:16], a); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Fatalf("short secret: %v, want invalid", err)
	}
}

func TestLoadOrCreatePSKSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "coap-psk-secret")
	first, err := coap.LoadOrCreatePSKSecret(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	again, err := coap.LoadOrCreatePSKSecret(path, nil)
	if err != nil || !bytes.Equal(first, again) || len(first) != coap.PSKSecretBytes {
		t.Fatalf("reloaded %x, %v; want %x", again, err, first)
	}
}

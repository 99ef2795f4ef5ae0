//go:build cgo

package pkcs11_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device/keystore"
	"github.com/iotpay/iotpay/device/keystore/keystoretest"
	"github.com/iotpay/iotpay/device/keystore/pkcs11"
	"github.com/iotpay/iotpay/device/keystore/pkcs11/pkcs11test"
)

// create makes a key on a token, closed with the test.
func create(t *testing.T, cfg pkcs11.Config) *pkcs11.Keystore { return must(t)(pkcs11.Create(cfg)) }

// open opens the key on a token, closed with the test.
func open(t *testing.T, cfg pkcs11.Config) *pkcs11.Keystore { return must(t)(pkcs11.Open(cfg)) }

func must(t *testing.T) func(*pkcs11.Keystore, error) *pkcs11.Keystore {
	return func(k *pkcs11.Keystore, err error) *pkcs11.Keystore {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { k.Close() })
		return k
	}
}

// signAndVerify signs the SHA-256 of msg and checks the signature with
// crypto/ecdsa.
func signAndVerify(t testing.TB, s crypto.Signer, msg string) {
	t.Helper()
	d := sha256.Sum256([]byte(msg))
	sig, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(s.Public().(*ecdsa.PublicKey), d[:], sig) {
		t.Fatalf("signature of %q does not verify", msg)
	}
}

func wantCode(t *testing.T, err error, code iotpay.Code) {
	t.Helper()
	if got := iotpay.ErrorCode(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

func TestCreateSignReopen(t *testing.T) {
	cfg := pkcs11test.Token(t, "device")
	k, err := pkcs11.Create(cfg)
	if err != nil {
		t.Fatal(err)
	}
	signAndVerify(t, k.Signer(), "first")
	pub := k.Signer().Public().(*ecdsa.PublicKey)
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, err = k.Signer().Sign(rand.Reader, make([]byte, 32), crypto.SHA256)
	wantCode(t, err, iotpay.EINVALID)

	k2 := open(t, cfg)
	if !pub.Equal(k2.Signer().Public()) {
		t.Fatal("reopened keystore has another public key")
	}
	signAndVerify(t, k2.Signer(), "after reopen")
}

func TestCreateRefusesAnExistingKey(t *testing.T) {
	cfg := pkcs11test.Token(t, "device")
	create(t, cfg)
	_, err := pkcs11.Create(cfg)
	wantCode(t, err, iotpay.ECONFLICT)
}

func TestOpenWithoutKey(t *testing.T) {
	cfg := pkcs11test.Token(t, "device")
	_, err := pkcs11.Open(cfg)
	wantCode(t, err, iotpay.ENOTFOUND)
}

// Keys of several labels live on one token; each keystore's Close leaves
// the others logged in.
func TestTwoKeysOnOneToken(t *testing.T) {
	cfg := pkcs11test.Token(t, "device")
	a := create(t, cfg)
	cfg.Label = "other"
	b := create(t, cfg)
	if a.Signer().Public().(*ecdsa.PublicKey).Equal(b.Signer().Public()) {
		t.Fatal("two labels, one key")
	}
	a.Close()
	signAndVerify(t, b.Signer(), "b after a closed")
}

func TestPrivateKeyIsNotExportable(t *testing.T) {
	k := create(t, pkcs11test.Token(t, "device"))
	for _, attr := range []uint{p11.CKA_VALUE, p11.CKA_PRIVATE_EXPONENT} {
		v, err := pkcs11.PrivateAttribute(k, attr)
		if !errors.Is(err, p11.Error(p11.CKR_ATTRIBUTE_SENSITIVE)) && !errors.Is(err, p11.Error(p11.CKR_ATTRIBUTE_TYPE_INVALID)) {
			t.Errorf("reading attribute %#x: %x, %v; want CKR_ATTRIBUTE_SENSITIVE", attr, v, err)
		}
	}
	for _, c := range []struct {
		attr uint
		v    bool
	}{{p11.CKA_EXTRACTABLE, true}, {p11.CKA_SENSITIVE, false}} {
		if err := pkcs11.SetPrivateAttribute(k, c.attr, c.v); err == nil {
			t.Errorf("setting attribute %#x to %v was allowed", c.attr, c.v)
		}
	}
	for _, attr := range []uint{p11.CKA_SENSITIVE, p11.CKA_NEVER_EXTRACTABLE, p11.CKA_ALWAYS_SENSITIVE} {
		if v, err := pkcs11.PrivateAttribute(k, attr); err != nil || len(v) != 1 || v[0] != 1 {
			t.Errorf("attribute %#x = %x, %v; want true", attr, v, err)
		}
	}
	signAndVerify(t, k.Signer(), "still signs")
}

func TestWrongPIN(t *testing.T) {
	cfg := pkcs11test.Token(t, "device")
	create(t, cfg).Close()
	bad := cfg
	bad.PIN = "0000"
	_, err := pkcs11.Open(bad)
	wantCode(t, err, iotpay.EUNAUTHORIZED)
	if strings.Contains(err.Error(), bad.PIN) {
		t.Errorf("error shows the PIN: %v", err)
	}
	signAndVerify(t, open(t, cfg).Signer(), "right PIN after a wrong one")
}

func TestMissingMechanism(t *testing.T) {
	cfg := pkcs11test.Token(t, "device")
	// A vendor-defined SM2 key generation, as SM2 tokens number it;
	// SoftHSM2 has no SM2 at all.
	_, err := pkcs11.Create(pkcs11.Requiring(cfg, p11.CKM_VENDOR_DEFINED|0x8001, p11.CKF_GENERATE_KEY_PAIR, "CKM_SM2_KEY_PAIR_GEN"))
	wantCode(t, err, iotpay.EINVALID)
	var me *pkcs11.MechanismError
	if !errors.As(err, &me) || len(me.Missing) != 1 || me.Missing[0] != "CKM_SM2_KEY_PAIR_GEN" {
		t.Fatalf("error %v, want a MechanismError naming CKM_SM2_KEY_PAIR_GEN", err)
	}
	// Nothing was generated: the refusal comes before.
	_, err = pkcs11.Open(cfg)
	wantCode(t, err, iotpay.ENOTFOUND)

	// A mechanism the token has, but not for the use: SHA-256 does not sign.
	_, err = pkcs11.Create(pkcs11.Requiring(cfg, p11.CKM_SHA256, p11.CKF_SIGN, "CKM_SHA256"))
	wantCode(t, err, iotpay.EINVALID)
	if !errors.As(err, &me) || len(me.Missing) != 1 || !strings.HasPrefix(me.Missing[0], "CKM_SHA256 (flags") {
		t.Fatalf("error %v, want a MechanismError naming CKM_SHA256", err)
	}
}

func TestTokenBySlot(t *testing.T) {
	cfg := pkcs11test.Token(t, "device")
	pub := create(t, cfg).Signer().Public().(*ecdsa.PublicKey)
	cfg.Token = ""
	if k := open(t, cfg); !pub.Equal(k.Signer().Public()) {
		t.Fatal("the key by slot is not the key by label")
	}
}

// Two tokens of one label are refused by label, not chosen by chance.
func TestTwoTokensOfOneLabel(t *testing.T) {
	first := pkcs11test.Token(t, "twin")
	second := pkcs11test.AnotherToken(t, "twin")
	byLabel := first
	byLabel.Slot = nil
	_, err := pkcs11.Create(byLabel)
	wantCode(t, err, iotpay.ECONFLICT)
	a, b := create(t, first), create(t, second) // label and slot
	if _, err := pkcs11.Open(pkcs11.Config{Module: first.Module, Token: "other", Slot: first.Slot, PIN: first.PIN}); iotpay.ErrorCode(err) != iotpay.ENOTFOUND {
		t.Errorf("a slot whose token has another label: %v", err)
	}
	if a.Signer().Public().(*ecdsa.PublicKey).Equal(b.Signer().Public()) {
		t.Fatal("two tokens, one key")
	}
}

func TestBadConfig(t *testing.T) {
	good := pkcs11test.Token(t, "device")
	slot, blank := uint(1<<30), uint(1) // SoftHSM2 leaves a blank token in slot 1
	for _, c := range []struct {
		name string
		edit func(*pkcs11.Config)
		code iotpay.Code
	}{
		{"no token", func(c *pkcs11.Config) { c.Token, c.Slot = "", nil }, iotpay.EINVALID},
		{"no PIN", func(c *pkcs11.Config) { c.PIN = "" }, iotpay.EINVALID},
		{"long label", func(c *pkcs11.Config) { c.Token = strings.Repeat("x", 33) }, iotpay.EINVALID},
		{"NUL in PIN", func(c *pkcs11.Config) { c.PIN = "12\x0034" }, iotpay.EINVALID},
		{"no module", func(c *pkcs11.Config) { c.Module = "/nonexistent/libnothing.so" }, iotpay.EINVALID},
		{"not a module", func(c *pkcs11.Config) { c.Module = "/etc/hostname" }, iotpay.EINVALID},
		{"unknown token", func(c *pkcs11.Config) { c.Token = "nobody" }, iotpay.ENOTFOUND},
		{"blank token's slot", func(c *pkcs11.Config) { c.Token, c.Slot = "", &blank }, iotpay.ENOTFOUND},
		{"unknown slot", func(c *pkcs11.Config) { c.Token, c.Slot = "", &slot }, iotpay.ENOTFOUND},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := good
			c.edit(&cfg)
			k, err := pkcs11.Create(cfg)
			if err == nil {
				k.Close()
			}
			wantCode(t, err, c.code)
		})
	}
}

// A session the token closed is replaced, and signing goes on.
func TestLostSessionIsReplaced(t *testing.T) {
	k := create(t, pkcs11test.Token(t, "device"))
	pkcs11.CloseSession(k)
	for i := range 2 * pkcs11.SessionsMax {
		signAndVerify(t, k.Signer(), fmt.Sprint("after the reset ", i))
	}
}

func TestConfigHidesPIN(t *testing.T) {
	cfg := pkcs11test.Token(t, "device")
	cfg.PIN = "s3cret-pin"
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg)} {
		if strings.Contains(s, cfg.PIN) {
			t.Fatalf("config prints its PIN: %s", s)
		}
	}
	cfg.PIN = pkcs11test.PIN
	k := create(t, cfg)
	if s := fmt.Sprintf("%v %+v %#v", k.Signer(), k.Signer(), k.Signer()); strings.Contains(s, cfg.PIN) {
		t.Fatalf("signer prints its PIN: %s", s)
	}
}

func TestConformance(t *testing.T) {
	keystoretest.Run(t, func(t *testing.T) keystore.Keystore {
		k, err := pkcs11.Create(pkcs11test.Token(t, "device"))
		if err != nil {
			t.Fatal(err)
		}
		return k
	})
}

package wire_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/emmansun/gmsm/sm2"
	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

func TestGMSuite(t *testing.T) {
	t.Run("by name", func(t *testing.T) {
		s, err := wire.SuiteByName(wire.SuiteGM)
		if err != nil || s != wire.GM || s.Name() != "gm" || s.Alg() != wire.AlgSM2SM3 || wire.AlgSM2SM3 >= -65536 {
			t.Errorf("SuiteByName(gm) = %v, %v (alg %d must be private use)", s, err, wire.AlgSM2SM3)
		}
	})
	t.Run("SM3 of abc", func(t *testing.T) {
		// GB/T 32905-2016 appendix A.1.
		const want = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
		if got := hex.EncodeToString(wire.GM.Hash([]byte("abc"))); got != want {
			t.Errorf("SM3(abc) = %s, want %s", got, want)
		}
	})
	t.Run("sign and verify with the default user id", func(t *testing.T) {
		k := suiteKey(t, wire.GM, "device")
		sig, err := wire.GM.Sign(k, rand.Reader, []byte("message"))
		if err != nil {
			t.Fatal(err)
		}
		if !wire.GM.Verify(k.Public(), []byte("message"), sig) {
			t.Error("own signature does not verify")
		}
		if !sm2.VerifyASN1WithSM2(k.Public().(*ecdsa.PublicKey), nil, []byte("message"), rawSigDER(sig)) {
			t.Error("gmsm's default user id does not verify the signature")
		}
		if wire.GM.Verify(k.Public(), []byte("other"), sig) {
			t.Error("signature verifies another message")
		}
		other := suiteKey(t, wire.GM, "other")
		if wire.GM.Verify(other.Public(), []byte("message"), sig) {
			t.Error("signature verifies under another key")
		}
	})
	t.Run("keys of the other suite are refused", func(t *testing.T) {
		p256 := testKey(t, "device")
		_, err := wire.GM.Sign(p256, rand.Reader, []byte("m"))
		wantCode(t, err, iotpay.EINVALID)
		_, err = wire.Intl.Sign(suiteKey(t, wire.GM, "device"), rand.Reader, []byte("m"))
		wantCode(t, err, iotpay.EINVALID)
		sig, _ := wire.Intl.Sign(p256, rand.Reader, []byte("m"))
		if wire.GM.Verify(&p256.PublicKey, []byte("m"), sig) {
			t.Error("gm verifies a P-256 signature")
		}
		var typedNil *ecdsa.PublicKey
		for _, pub := range []any{nil, typedNil, &ecdsa.PublicKey{Curve: sm2.P256()}, &ecdsa.PublicKey{Curve: elliptic.P256()}} {
			if wire.GM.Verify(pub, []byte("m"), make([]byte, 64)) {
				t.Errorf("Verify with key %v succeeded", pub)
			}
		}
	})
	t.Run("no downgrade either way", func(t *testing.T) {
		gmKey, intlKey := suiteKey(t, wire.GM, "device"), testKey(t, "device")
		gmFrame, err := wire.SignRequest(wire.GM, gmKey, rand.Reader, amountRequest())
		if err != nil {
			t.Fatal(err)
		}
		intlFrame, err := wire.SignRequest(wire.Intl, intlKey, rand.Reader, amountRequest())
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name  string
			frame []byte
			suite wire.Suite
			key   any
		}{
			{"ES256 frame to a gm device", intlFrame, wire.GM, gmKey.Public()},
			{"ES256 frame to a gm device, P-256 key", intlFrame, wire.GM, &intlKey.PublicKey},
			{"SM2 frame to an intl device", gmFrame, wire.Intl, &intlKey.PublicKey},
			{"SM2 frame to an intl device, SM2 key", gmFrame, wire.Intl, gmKey.Public()},
		} {
			env, _, err := wire.ParseRequest(tc.frame)
			if err != nil {
				t.Fatal(err)
			}
			wantCode(t, env.Verify(tc.suite, tc.key), iotpay.EUNAUTHORIZED)
		}
		env, _, _ := wire.ParseRequest(gmFrame)
		if err := env.Verify(wire.GM, gmKey.Public()); err != nil {
			t.Errorf("gm frame: %v", err)
		}
	})
	t.Run("malformed signatures", func(t *testing.T) {
		pub := suiteKey(t, wire.GM, "device").Public()
		n := sm2.P256().Params().N.FillBytes(make([]byte, 32))
		for _, sig := range [][]byte{nil, make([]byte, 63), make([]byte, 64), make([]byte, 65), append(n, n...),
			append(make([]byte, 32), n...), append(n, make([]byte, 32)...)} {
			if wire.GM.Verify(pub, []byte("m"), sig) {
				t.Errorf("Verify(%x) succeeded", sig)
			}
		}
	})
}

// FuzzGMVerify feeds the gm suite's signature decoder (r‖s to ASN.1) and
// SM2 verification arbitrary signatures: no panic, and nothing verifies
// that the key did not sign.
func FuzzGMVerify(f *testing.F) {
	k := suiteKey(f, wire.GM, "device")
	sig, err := wire.GM.Sign(k, rand.Reader, []byte("message"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("message"), sig)
	f.Add([]byte("message"), make([]byte, 64))
	f.Add([]byte{}, []byte{0xff})
	f.Fuzz(func(t *testing.T, msg, sig []byte) {
		if wire.GM.Verify(k.Public(), msg, sig) && string(msg) != "message" {
			t.Errorf("forged signature %x verifies %q", sig, msg)
		}
	})
}

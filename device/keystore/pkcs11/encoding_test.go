package pkcs11

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/asn1"
	"math/big"
	"testing"
)

// FuzzParsePoint feeds arbitrary CKA_EC_POINT values: never a panic, and
// what parses is a point on P-256 that encodes back to the same point.
func FuzzParsePoint(f *testing.F) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	raw, err := k.PublicKey.Bytes()
	if err != nil {
		f.Fatal(err)
	}
	wrapped, _ := asn1.Marshal(raw)
	for _, seed := range [][]byte{raw, wrapped, raw[:33], append(wrapped, 0), {0x04}, {0x04, 0x41}, nil} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		pub, err := parsePoint(v)
		if err != nil {
			return
		}
		again, err := pub.Bytes()
		if err != nil || !bytes.Contains(v, again) {
			t.Fatalf("parsed %x from %x (%v)", again, v, err)
		}
	})
}

// FuzzRawToDER checks that every r‖s of 64 bytes becomes the DER of the
// same r and s, and that other lengths are refused.
func FuzzRawToDER(f *testing.F) {
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Add(make([]byte, 64))
	f.Add(make([]byte, 63))
	f.Fuzz(func(t *testing.T, raw []byte) {
		der, err := rawToDER(raw)
		if len(raw) != 64 {
			if err == nil {
				t.Fatalf("%d bytes accepted", len(raw))
			}
			return
		}
		var sig struct{ R, S *big.Int }
		if err != nil {
			t.Fatal(err)
		}
		if rest, err := asn1.Unmarshal(der, &sig); err != nil || len(rest) != 0 {
			t.Fatalf("DER %x does not parse: %v", der, err)
		}
		if sig.R.Cmp(new(big.Int).SetBytes(raw[:32])) != 0 || sig.S.Cmp(new(big.Int).SetBytes(raw[32:])) != 0 {
			t.Fatalf("DER %x is not of %x", der, raw)
		}
	})
}

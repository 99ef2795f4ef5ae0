// Package keystoretest is the conformance suite of keystore.Keystore: every
// implementation (the software keystore, the PKCS#11 one) runs Run, so
// they sign, refuse and close alike.
package keystoretest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"sync"
	"testing"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device/keystore"
)

// Run runs the suite; newKeystore returns a fresh keystore holding a new
// P-256 key, which the suite closes.
func Run(t *testing.T, newKeystore func(t *testing.T) keystore.Keystore) {
	for _, c := range []struct {
		name string
		test func(*testing.T, keystore.Keystore)
	}{
		{"SignOptions", testSignOptions},
		{"SignerIsOpaque", testSignerIsOpaque},
		{"ConcurrentSign", testConcurrentSign},
		{"Close", testClose},
		{"ConcurrentSignClose", testConcurrentSignClose},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := newKeystore(t)
			t.Cleanup(func() { k.Close() })
			c.test(t, k)
		})
	}
}

// verify checks sig over digest with crypto/ecdsa.
func verify(t *testing.T, s crypto.Signer, digest, sig []byte) {
	t.Helper()
	pub, ok := s.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("public key %T is not P-256", s.Public())
	}
	if !ecdsa.VerifyASN1(pub, digest, sig) {
		t.Fatal("signature does not verify")
	}
}

func testSignOptions(t *testing.T, k keystore.Keystore) {
	g := k.Signer()
	d256 := sha256.Sum256([]byte("m"))
	d512 := sha512.Sum512([]byte("m"))
	for _, tc := range []struct {
		name   string
		digest []byte
		opts   crypto.SignerOpts
		ok     bool
	}{
		{"sha256", d256[:], crypto.SHA256, true},
		{"sha512", d512[:], crypto.SHA512, true},
		{"nil rand", d256[:], crypto.SHA256, true},
		{"nil opts", d256[:], nil, false},
		{"no hash", d256[:], crypto.Hash(0), false},
		{"unknown hash", d256[:], crypto.Hash(250), false},
		{"short digest", d256[:20], crypto.SHA256, false},
		{"nil digest", nil, crypto.SHA256, false},
		{"digest of another hash", d512[:], crypto.SHA256, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			random := rand.Reader
			if tc.name == "nil rand" {
				random = nil
			}
			sig, err := g.Sign(random, tc.digest, tc.opts)
			if (err == nil) != tc.ok {
				t.Fatalf("Sign: %v, want ok=%v", err, tc.ok)
			}
			if err != nil {
				if got := iotpay.ErrorCode(err); got != iotpay.EINVALID {
					t.Errorf("code %q, want %q", got, iotpay.EINVALID)
				}
				return
			}
			verify(t, g, tc.digest, sig)
		})
	}
}

// testSignerIsOpaque checks that the signer leads to no private key and
// that its public key is a copy.
func testSignerIsOpaque(t *testing.T, k keystore.Keystore) {
	g := k.Signer()
	var v any = g
	if _, ok := v.(*ecdsa.PrivateKey); ok {
		t.Error("Signer is an *ecdsa.PrivateKey")
	}
	if _, ok := v.(crypto.Decrypter); ok {
		t.Error("Signer is a crypto.Decrypter")
	}
	if _, ok := v.(interface{ Bytes() ([]byte, error) }); ok {
		t.Error("Signer has Bytes()")
	}
	if _, ok := g.Public().(*ecdsa.PrivateKey); ok {
		t.Error("Public() is an *ecdsa.PrivateKey")
	}
	p := g.Public().(*ecdsa.PublicKey)
	p.X.SetInt64(1)
	d := sha256.Sum256([]byte("after a caller changed its copy"))
	sig, err := g.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	verify(t, g, d[:], sig)
}

// testConcurrentSign signs from many goroutines at once (for -race, and
// for a keystore whose sessions are shared).
func testConcurrentSign(t *testing.T, k keystore.Keystore) {
	g := k.Signer()
	const goroutines, each = 16, 10
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for n := range goroutines {
		wg.Go(func() {
			for i := range each {
				d := sha256.Sum256(fmt.Appendf(nil, "%d/%d", n, i))
				sig, err := g.Sign(rand.Reader, d[:], crypto.SHA256)
				if err == nil && !ecdsa.VerifyASN1(g.Public().(*ecdsa.PublicKey), d[:], sig) {
					err = fmt.Errorf("signature %d/%d does not verify", n, i)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testClose(t *testing.T, k keystore.Keystore) {
	g := k.Signer()
	pub := g.Public().(*ecdsa.PublicKey)
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("m"))
	_, err := g.Sign(rand.Reader, d[:], crypto.SHA256)
	if got := iotpay.ErrorCode(err); got != iotpay.EINVALID {
		t.Errorf("Sign after Close: %v, want code %q", err, iotpay.EINVALID)
	}
	if err := k.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if !pub.Equal(g.Public()) {
		t.Error("public key changed by Close")
	}
}

// testConcurrentSignClose closes while signing: signatures in progress
// finish, later ones fail cleanly.
func testConcurrentSignClose(t *testing.T, k keystore.Keystore) {
	g := k.Signer()
	d := sha256.Sum256([]byte("m"))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				sig, err := g.Sign(rand.Reader, d[:], crypto.SHA256)
				if err != nil {
					if got := iotpay.ErrorCode(err); got != iotpay.EINVALID {
						t.Errorf("Sign while closing: %v", err)
					}
					return
				}
				if !ecdsa.VerifyASN1(g.Public().(*ecdsa.PublicKey), d[:], sig) {
					t.Error("bad signature")
				}
			}
		})
	}
	wg.Go(func() { k.Close() })
	wg.Wait()
}

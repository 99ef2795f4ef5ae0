//go:build cgo

package pkcs11_test

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"path/filepath"
	"testing"

	"github.com/iotpay/iotpay/device/keystore"
	"github.com/iotpay/iotpay/device/keystore/pkcs11"
	"github.com/iotpay/iotpay/device/keystore/pkcs11/pkcs11test"
)

// BenchmarkSign compares a P-256 signature on a SoftHSM2 token with one
// in the software keystore, one at a time and from every CPU at once.
func BenchmarkSign(b *testing.B) {
	tok, err := pkcs11.Create(pkcs11test.Token(b, "bench"))
	if err != nil {
		b.Fatal(err)
	}
	defer tok.Close()
	soft, err := keystore.CreateSoft(filepath.Join(b.TempDir(), "device.key"), []byte("bench"))
	if err != nil {
		b.Fatal(err)
	}
	defer soft.Close()
	d := sha256.Sum256([]byte("a payment request"))
	for _, k := range []struct {
		name string
		s    crypto.Signer
	}{{"softhsm2", tok.Signer()}, {"soft", soft.Signer()}} {
		b.Run(k.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := k.s.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(k.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := k.s.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

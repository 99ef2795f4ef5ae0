package device

import (
	"crypto"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm4"
	"github.com/emmansun/gmsm/smx509"
	"github.com/fxamacker/cbor/v2"
	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/internal/atomicfile"
	"golang.org/x/crypto/scrypt"
)

// SoftSM2 keeps a gm device's SM2 key encrypted at rest, as
// device/keystore.Soft keeps a P-256 key (which it alone can hold today):
// the PKCS#8 key sealed with SM4-GCM under a key scrypt derives from a
// passphrase, the file's header bound in as additional data. It satisfies
// keystore.Keystore and hands out a crypto.Signer only.
type SoftSM2 struct {
	mu  sync.RWMutex
	key *sm2.PrivateKey // nil once closed
	pub crypto.PublicKey
}

// SM2KeyFile is a gm device's SM2 key in its directory; KeyFile then holds
// its P-256 transport key.
const SM2KeyFile = "sm2-key.enc"

// Bounds of a SoftSM2 file.
const (
	SM2KeystoreBytesMax = 1024 // a sealed key is about 250 bytes
	sm2Format           = "iotpay-sm2-keystore"
	sm2SaltBytes        = 16
	sm2ScryptLogN       = 15 // N = 2^15, r = 8, p = 1: about 32 MiB, 100 ms
	sm2ScryptLogNMax    = 16 // 64 MiB at most, for a planted file
)

type sm2File struct {
	Format string `cbor:"1,keyasint"`
	LogN   uint8  `cbor:"2,keyasint"`
	Salt   []byte `cbor:"3,keyasint"`
	Nonce  []byte `cbor:"4,keyasint"`
	Sealed []byte `cbor:"5,keyasint,omitempty"` // SM4-GCM of the PKCS#8 key
}

var sm2Dec = func() cbor.DecMode {
	m, err := cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF, IndefLength: cbor.IndefLengthForbidden,
		TagsMd: cbor.TagsForbidden, MaxNestedLevels: 4, MaxMapPairs: 16,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// CreateSoftSM2 generates an SM2 key and writes it sealed to a new file at
// path (mode 0600); an existing file is never replaced.
func CreateSoftSM2(path string, passphrase []byte) (*SoftSM2, error) {
	return createSoftSM2(path, passphrase, sm2ScryptLogN, rand.Reader)
}

func createSoftSM2(path string, passphrase []byte, logN uint8, random io.Reader) (*SoftSM2, error) {
	if len(passphrase) == 0 {
		return nil, iotpay.Errorf(iotpay.EINVALID, "keystore passphrase is empty")
	}
	if _, err := os.Lstat(path); err == nil {
		return nil, iotpay.Errorf(iotpay.ECONFLICT, "keystore %s already exists", path)
	}
	key, err := sm2.GenerateKey(random)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "cannot generate SM2 key", err)
	}
	der, err := smx509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "cannot encode SM2 key", err)
	}
	f := sm2File{Format: sm2Format, LogN: logN, Salt: make([]byte, sm2SaltBytes), Nonce: make([]byte, 12)}
	if _, err := io.ReadFull(random, f.Salt); err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "randomness source failed", err)
	}
	if _, err := io.ReadFull(random, f.Nonce); err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "randomness source failed", err)
	}
	aead, ad, err := f.aead(passphrase)
	if err != nil {
		return nil, err
	}
	f.Sealed = aead.Seal(nil, f.Nonce, der, ad)
	clear(der)
	data, err := cbor.Marshal(&f)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "cannot encode keystore", err)
	}
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "cannot write keystore", err)
	}
	return &SoftSM2{key: key, pub: key.Public()}, nil
}

// OpenSoftSM2 opens the SM2 keystore at path. A wrong passphrase and a
// damaged file give the same EUNAUTHORIZED error.
func OpenSoftSM2(path string, passphrase []byte) (*SoftSM2, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, iotpay.Wrap(iotpay.ENOTFOUND, "no keystore at "+path, err)
	}
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "cannot read keystore", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 || fi.Size() > SM2KeystoreBytesMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "keystore %s must be a regular file of mode 0600 and at most %d bytes",
			path, SM2KeystoreBytesMax)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "cannot read keystore", err)
	}
	key, err := unsealSM2(data, passphrase)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EUNAUTHORIZED, "cannot open keystore", err)
	}
	return &SoftSM2{key: key, pub: key.Public()}, nil
}

// unsealSM2 decodes and decrypts a keystore file: strict CBOR, known
// format, bounded scrypt cost.
func unsealSM2(data, passphrase []byte) (*sm2.PrivateKey, error) {
	if len(data) > SM2KeystoreBytesMax {
		return nil, fmt.Errorf("file larger than %d bytes", SM2KeystoreBytesMax)
	}
	var f sm2File
	if err := sm2Dec.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	if f.Format != sm2Format || f.LogN < 1 || f.LogN > sm2ScryptLogNMax || len(f.Salt) != sm2SaltBytes ||
		len(f.Nonce) != 12 || len(f.Sealed) == 0 {
		return nil, errors.New("not an SM2 keystore")
	}
	aead, ad, err := f.aead(passphrase)
	if err != nil {
		return nil, err
	}
	der, err := aead.Open(nil, f.Nonce, f.Sealed, ad)
	if err != nil {
		return nil, errors.New("wrong passphrase or damaged file")
	}
	defer clear(der)
	k, err := smx509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	key, ok := k.(*sm2.PrivateKey)
	if !ok {
		return nil, errors.New("keystore holds no SM2 key")
	}
	return key, nil
}

// aead derives the SM4-GCM key and returns it with the additional data,
// the header without the ciphertext.
func (f sm2File) aead(passphrase []byte) (cipher.AEAD, []byte, error) {
	k, err := scrypt.Key(passphrase, f.Salt, 1<<f.LogN, 8, 1, sm4.BlockSize)
	if err != nil {
		return nil, nil, iotpay.Wrap(iotpay.EINVALID, "bad keystore parameters", err)
	}
	defer clear(k)
	block, err := sm4.NewCipher(k)
	if err != nil {
		return nil, nil, iotpay.Wrap(iotpay.EINTERNAL, "SM4", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, nil, iotpay.Wrap(iotpay.EINTERNAL, "SM4-GCM", err)
	}
	h := f
	h.Sealed = nil
	ad, err := cbor.Marshal(&h)
	return aead, ad, err
}

// Signer returns a signer backed by the key; it cannot be turned back
// into the private key.
func (s *SoftSM2) Signer() crypto.Signer { return sm2Signer{s} }

// Close drops the key; signing fails after it.
func (s *SoftSM2) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.key != nil {
		s.key.D.SetInt64(0)
		s.key = nil
	}
	return nil
}

type sm2Signer struct{ s *SoftSM2 }

func (g sm2Signer) Public() crypto.PublicKey { return g.s.pub }

// Sign signs digest as gmsm's key does: a digest already SM3(ZA ‖ msg)
// unless opts asks for the GM pre-hash.
func (g sm2Signer) Sign(random io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	g.s.mu.RLock()
	defer g.s.mu.RUnlock()
	if g.s.key == nil {
		return nil, iotpay.Errorf(iotpay.EUNAVAILABLE, "keystore is closed")
	}
	return g.s.key.Sign(random, digest, opts)
}

func (g sm2Signer) String() string { return "device.SoftSM2" }

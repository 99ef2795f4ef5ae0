package keystore

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/iotpay/iotpay/internal/atomicfile"
	"io"
	"io/fs"
	"math/big"
	"os"
	"runtime"
	"sync"

	"github.com/fxamacker/cbor/v2"
	"github.com/iotpay/iotpay"
	"golang.org/x/crypto/scrypt"
)

// Bounds and sizes of a Soft keystore file.
const (
	// KeystoreBytesMax bounds the file OpenSoft reads. A P-256 keystore is
	// about 250 bytes; anything much larger is not ours.
	KeystoreBytesMax = 4096
	// SaltBytes is the length of the random scrypt salt.
	SaltBytes = 16

	keyBytes   = 32 // AES-256
	nonceBytes = 12 // the standard GCM nonce

	// kdfMemoryBytesMax bounds the memory scrypt may allocate (128·N·r
	// bytes) for a file being opened, so that a planted file with huge
	// parameters cannot exhaust a small device. The default uses 32 MiB.
	kdfMemoryBytesMax = 256 << 20
	// kdfCostMax bounds scrypt's work, N·r·p (p runs the memory-hard part
	// p times over): 16 times the default's, a few seconds on a laptop.
	kdfCostMax = 16 << 18
	kdfLogNMax = 20 // N at most 2^20
	kdfRMax    = 32
	kdfPMax    = 16
)

// File format identifiers, written in every file and bound into the seal.
const (
	formatName    = "iotpay-keystore"
	formatVersion = 1
	kdfScrypt     = "scrypt"
	cipherAESGCM  = "aes-256-gcm"
)

// kdfParams are scrypt's cost parameters.
type kdfParams struct {
	N, R, P uint64
}

// defaultKDF is scrypt's recommended interactive cost (N=2^15, r=8, p=1):
// about 32 MiB and 100 ms on a laptop, once per boot of a device.
var defaultKDF = kdfParams{N: 1 << 15, R: 8, P: 1}

// check refuses parameters scrypt would reject or that would cost more
// than a device should spend opening its keystore.
func (k kdfParams) check() error {
	switch {
	case k.N < 2 || k.N > 1<<kdfLogNMax || k.N&(k.N-1) != 0:
		return fmt.Errorf("scrypt N=%d is not a power of two from 2 to 2^%d", k.N, kdfLogNMax)
	case k.R < 1 || k.R > kdfRMax:
		return fmt.Errorf("scrypt r=%d out of range 1 to %d", k.R, kdfRMax)
	case k.P < 1 || k.P > kdfPMax:
		return fmt.Errorf("scrypt p=%d out of range 1 to %d", k.P, kdfPMax)
	case 128*k.N*k.R > kdfMemoryBytesMax: // no overflow: N ≤ 2^20, r ≤ 32
		return fmt.Errorf("scrypt N=%d r=%d needs more than %d bytes", k.N, k.R, kdfMemoryBytesMax)
	case k.N*k.R*k.P > kdfCostMax: // no overflow: p ≤ 16 too
		return fmt.Errorf("scrypt N=%d r=%d p=%d costs more than %d", k.N, k.R, k.P, kdfCostMax)
	}
	return nil
}

// file is the keystore on disk: a CBOR map in deterministic encoding. All
// fields but Sealed are the header, which is bound into the seal as GCM
// additional data, so a changed parameter fails to open like a wrong
// passphrase does.
type file struct {
	Format  string `cbor:"1,keyasint"`
	Version uint64 `cbor:"2,keyasint"`
	KDF     string `cbor:"3,keyasint"`
	N       uint64 `cbor:"4,keyasint"`
	R       uint64 `cbor:"5,keyasint"`
	P       uint64 `cbor:"6,keyasint"`
	Salt    []byte `cbor:"7,keyasint"`
	Cipher  string `cbor:"8,keyasint"`
	Nonce   []byte `cbor:"9,keyasint"`
	Sealed  []byte `cbor:"10,keyasint,omitempty"` // AES-256-GCM of the PKCS#8 DER key, tag appended
}

// additionalData is the header in deterministic CBOR: the file without its
// ciphertext.
func (f *file) additionalData() ([]byte, error) {
	h := *f
	h.Sealed = nil
	return encMode.Marshal(&h)
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	encMode, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   4, // the least cbor allows; the file is one flat map
		MaxMapPairs:       16,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// Soft is a software secure element: one P-256 key, encrypted at rest in a
// file with a key derived from a passphrase. It is safe for concurrent use.
type Soft struct {
	mu     sync.RWMutex
	key    *ecdsa.PrivateKey // nil once closed
	pub    ecdsa.PublicKey   // kept apart from key so Public works after Close
	signer *softSigner
}

// CreateSoft generates a P-256 key and writes it to a new file at path,
// encrypted under passphrase, readable by the owner only. It refuses to
// replace an existing file: that would destroy the device's identity.
func CreateSoft(path string, passphrase []byte) (*Soft, error) {
	return createSoft(path, passphrase, defaultKDF, rand.Reader)
}

// createSoft is CreateSoft with the scrypt cost and the randomness for
// salt and nonce injected, so tests can use cheap parameters.
func createSoft(path string, passphrase []byte, kdf kdfParams, random io.Reader) (*Soft, error) {
	if len(passphrase) == 0 {
		return nil, iotpay.Errorf(iotpay.EINVALID, "keystore passphrase is empty")
	}
	if err := kdf.check(); err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "bad keystore parameters", err)
	}
	// Fail early, before the expensive key derivation; the link below is
	// what really guarantees no overwrite.
	if _, err := os.Lstat(path); err == nil {
		return nil, iotpay.Errorf(iotpay.ECONFLICT, "keystore %s already exists", path)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), random)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "cannot generate key", err)
	}
	data, err := seal(key, passphrase, kdf, random)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "cannot seal keystore", err)
	}
	if err := atomicfile.WriteNew(path, data, 0o600); err != nil {
		zeroKey(key)
		if errors.Is(err, fs.ErrExist) {
			return nil, iotpay.Errorf(iotpay.ECONFLICT, "keystore %s already exists", path)
		}
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "cannot write keystore", err)
	}
	return newSoft(key), nil
}

// OpenSoft opens the keystore file at path with passphrase. A wrong
// passphrase and a damaged or tampered file give the same vague
// EUNAUTHORIZED error: the keystore says nothing about which it was.
func OpenSoft(path string, passphrase []byte) (*Soft, error) {
	data, err := readPrivate(path)
	if err != nil {
		return nil, err
	}
	key, err := unseal(data, passphrase)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EUNAUTHORIZED, "cannot open keystore", err)
	}
	return newSoft(key), nil
}

func newSoft(key *ecdsa.PrivateKey) *Soft {
	s := &Soft{key: key, pub: ecdsa.PublicKey{
		Curve: key.Curve,
		X:     new(big.Int).Set(key.X),
		Y:     new(big.Int).Set(key.Y),
	}}
	s.signer = &softSigner{s: s}
	return s
}

// Signer returns a signer backed by the key. It exposes only the public key
// and signing: it cannot be converted back to the private key.
func (s *Soft) Signer() crypto.Signer { return s.signer }

// Close zeroes the private scalar and drops the key; signing fails after
// it. Copies the Go runtime and crypto library made (the decrypted PKCS#8
// parse, crypto/ecdsa's internal precomputed form) cannot be reached and
// are left to the garbage collector. Close is idempotent.
func (s *Soft) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.key != nil {
		zeroKey(s.key)
		s.key = nil
	}
	return nil
}

func zeroKey(k *ecdsa.PrivateKey) {
	if k.D != nil {
		clear(k.D.Bits())
		k.D = nil
	}
}

// softSigner is the only view of a Soft that leaves the package. It is a
// distinct type so a caller cannot type-assert its way to the
// *ecdsa.PrivateKey, and it prints without its contents.
type softSigner struct{ s *Soft }

// Public returns a copy of the public key, so a caller changing it cannot
// change what other callers see.
func (g *softSigner) Public() crypto.PublicKey {
	return ClonePublic(&g.s.pub)
}

// Sign signs digest, the output of opts.HashFunc(), in ASN.1 form. A nil
// rand gives a deterministic RFC 6979 signature.
func (g *softSigner) Sign(random io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := CheckDigest(digest, opts); err != nil {
		return nil, err
	}
	g.s.mu.RLock()
	defer g.s.mu.RUnlock()
	if g.s.key == nil {
		return nil, iotpay.Errorf(iotpay.EINVALID, "keystore is closed")
	}
	return g.s.key.Sign(random, digest, opts)
}

func (g *softSigner) String() string   { return "keystore.Soft(P-256)" }
func (g *softSigner) GoString() string { return g.String() }

// seal encrypts key under passphrase and returns the file's bytes.
func seal(key *ecdsa.PrivateKey, passphrase []byte, kdf kdfParams, random io.Reader) ([]byte, error) {
	f := file{
		Format: formatName, Version: formatVersion,
		KDF: kdfScrypt, N: kdf.N, R: kdf.R, P: kdf.P,
		Salt:   make([]byte, SaltBytes),
		Cipher: cipherAESGCM,
		Nonce:  make([]byte, nonceBytes),
	}
	if _, err := io.ReadFull(random, f.Salt); err != nil {
		return nil, err
	}
	// The nonce is random, not a counter: every file has a fresh salt and
	// so a fresh AES key, which is used for this one seal only.
	if _, err := io.ReadFull(random, f.Nonce); err != nil {
		return nil, err
	}
	aead, err := newAEAD(passphrase, &f)
	if err != nil {
		return nil, err
	}
	ad, err := f.additionalData()
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	f.Sealed = aead.Seal(nil, f.Nonce, der, ad)
	clear(der)
	return encMode.Marshal(&f)
}

// unseal parses and decrypts a keystore file. Its errors are detail for
// the log; OpenSoft shows the caller only that the keystore did not open.
func unseal(data, passphrase []byte) (*ecdsa.PrivateKey, error) {
	if len(data) > KeystoreBytesMax {
		return nil, fmt.Errorf("file of %d bytes exceeds %d", len(data), KeystoreBytesMax)
	}
	var f file
	if err := decMode.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("malformed file: %w", err)
	}
	// Accept only the deterministic encoding, the one seal writes: then no
	// two files hold the same contents, and a byte changed anywhere either
	// changes a value (caught by the seal) or is refused here.
	if again, err := encMode.Marshal(&f); err != nil || !bytes.Equal(again, data) {
		return nil, errors.New("file is not in deterministic encoding")
	}
	switch {
	case f.Format != formatName:
		return nil, errors.New("not a keystore file")
	case f.Version != formatVersion:
		return nil, fmt.Errorf("unsupported keystore version %d", f.Version)
	case f.KDF != kdfScrypt:
		return nil, fmt.Errorf("unsupported key derivation %q", f.KDF)
	case f.Cipher != cipherAESGCM:
		return nil, fmt.Errorf("unsupported cipher %q", f.Cipher)
	case len(f.Salt) != SaltBytes:
		return nil, fmt.Errorf("salt of %d bytes, want %d", len(f.Salt), SaltBytes)
	case len(f.Nonce) != nonceBytes:
		return nil, fmt.Errorf("nonce of %d bytes, want %d", len(f.Nonce), nonceBytes)
	}
	if err := (kdfParams{N: f.N, R: f.R, P: f.P}).check(); err != nil {
		return nil, err
	}
	aead, err := newAEAD(passphrase, &f)
	if err != nil {
		return nil, err
	}
	ad, err := f.additionalData()
	if err != nil {
		return nil, err
	}
	der, err := aead.Open(nil, f.Nonce, f.Sealed, ad)
	if err != nil {
		return nil, errors.New("wrong passphrase or damaged file")
	}
	defer clear(der)
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("sealed key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, errors.New("sealed key is not a P-256 key")
	}
	return key, nil
}

// newAEAD derives the file key from passphrase with the file's KDF
// parameters and returns AES-256-GCM under it.
func newAEAD(passphrase []byte, f *file) (cipher.AEAD, error) {
	k, err := scrypt.Key(passphrase, f.Salt, int(f.N), int(f.R), int(f.P), keyBytes)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// readPrivate reads a keystore file, refusing one that is not a regular
// file, is readable by group or others, or is larger than KeystoreBytesMax.
func readPrivate(path string) ([]byte, error) {
	// Stat before opening so that a FIFO or device in path is refused
	// rather than blocked on; the file opened is checked again below.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, statError(path, err)
	}
	if err := checkFile(path, fi); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, statError(path, err)
	}
	defer f.Close()
	ofi, err := f.Stat()
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "cannot read keystore", err)
	}
	if !os.SameFile(fi, ofi) {
		return nil, iotpay.Errorf(iotpay.EINVALID, "keystore %s changed while being opened", path)
	}
	if err := checkFile(path, ofi); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, KeystoreBytesMax+1))
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "cannot read keystore", err)
	}
	if len(data) > KeystoreBytesMax {
		return nil, iotpay.Wrap(iotpay.EUNAUTHORIZED, "cannot open keystore",
			fmt.Errorf("file larger than %d bytes", KeystoreBytesMax))
	}
	return data, nil
}

func statError(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return iotpay.Wrap(iotpay.ENOTFOUND, "no keystore at "+path, err)
	}
	return iotpay.Wrap(iotpay.EINTERNAL, "cannot read keystore", err)
}

func checkFile(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return iotpay.Errorf(iotpay.EINVALID, "keystore %s is not a regular file", path)
	}
	// Windows has no Unix permission bits to check; Go reports 0666 there.
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return iotpay.Errorf(iotpay.EINVALID, "keystore %s is accessible by group or others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	return nil
}

package tlog

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/emmansun/gmsm/smx509"
	"golang.org/x/mod/sumdb/note"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

// sm2Type is the signature type of an SM2 note key. C2SP signed-note
// assigns one-byte types (0x01 Ed25519, 0x04 cosignature/v1…) and leaves
// 0xff as the escape for types it does not assign, followed by an
// identifier; ours names the algorithm: SM2 over SM3 with the default user
// id (GB/T 32918.2, as the gm suite signs), the signature r‖s (64 bytes).
// The public key follows as DER SubjectPublicKeyInfo.
var sm2Type = []byte("\xffiotpay/sm2-sm3\x00")

// SM2Signer co-signs notes (checkpoints) with an SM2 key, for a platform
// that runs the gm suite.
type SM2Signer struct {
	name string
	hash uint32
	key  crypto.Signer
}

// NewSM2Signer returns a note signer named name for the SM2 key.
func NewSM2Signer(name string, key crypto.Signer) (*SM2Signer, error) {
	spki, err := sm2SPKI(name, key.Public())
	if err != nil {
		return nil, err
	}
	return &SM2Signer{name: name, hash: keyHash(name, append(append([]byte(nil), sm2Type...), spki...)), key: key}, nil
}

func (s *SM2Signer) Name() string    { return s.name }
func (s *SM2Signer) KeyHash() uint32 { return s.hash }
func (s *SM2Signer) Sign(msg []byte) ([]byte, error) {
	return wire.GM.Sign(s.key, rand.Reader, msg)
}

// VerifierKey is the signer's verifier key, name+hash+base64(type‖key), in
// the form note verifier keys have.
func (s *SM2Signer) VerifierKey() string {
	spki, _ := sm2SPKI(s.name, s.key.Public()) // checked by NewSM2Signer
	return fmt.Sprintf("%s+%08x+%s", s.name, s.hash, base64.StdEncoding.EncodeToString(append(append([]byte(nil), sm2Type...), spki...)))
}

func sm2SPKI(name string, pub crypto.PublicKey) ([]byte, error) {
	if !wire.IsSM2Key(pub) {
		return nil, iotpay.Errorf(iotpay.EINVALID, "note key %q: not an SM2 public key", name)
	}
	if !validKeyName(name) {
		return nil, iotpay.Errorf(iotpay.EINVALID, "note key name %q is not valid", name)
	}
	spki, err := smx509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "note key: SM2 public key", err)
	}
	return spki, nil
}

// validKeyName is x/mod/sumdb/note's rule: non-empty, no space or plus,
// valid UTF-8 without control characters.
func validKeyName(name string) bool {
	return name != "" && !strings.ContainsAny(name, " +\n") && strings.ToValidUTF8(name, "\uFFFD") == name &&
		strings.IndexFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0
}

func keyHash(name string, typedKey []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte("\n"))
	h.Write(typedKey)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

type sm2Verifier struct {
	name string
	hash uint32
	pub  *ecdsa.PublicKey
}

func (v *sm2Verifier) Name() string    { return v.name }
func (v *sm2Verifier) KeyHash() uint32 { return v.hash }
func (v *sm2Verifier) Verify(msg, sig []byte) bool {
	return wire.GM.Verify(v.pub, msg, sig)
}

// NewVerifier parses a note verifier key: an Ed25519 key (x/mod/sumdb/note's
// form) or an SM2 key (SM2Signer.VerifierKey's).
func NewVerifier(vkey string) (note.Verifier, error) {
	name, rest, ok1 := strings.Cut(vkey, "+")
	hexHash, b64, ok2 := strings.Cut(rest, "+")
	key, err := base64.StdEncoding.DecodeString(b64)
	if !ok1 || !ok2 || err != nil || len(key) == 0 {
		return nil, iotpay.Errorf(iotpay.EINVALID, "note verifier key is malformed")
	}
	if !strings.HasPrefix(string(key), string(sm2Type)) {
		v, err := note.NewVerifier(vkey)
		if err != nil {
			return nil, iotpay.Wrap(iotpay.EINVALID, "note verifier key", err)
		}
		return v, nil
	}
	h, err := strconv.ParseUint(hexHash, 16, 32)
	if err != nil || len(hexHash) != 8 || !validKeyName(name) || uint32(h) != keyHash(name, key) {
		return nil, iotpay.Errorf(iotpay.EINVALID, "note verifier key: name or hash does not match the key")
	}
	pub, err := smx509.ParsePKIXPublicKey(key[len(sm2Type):])
	if err != nil || !wire.IsSM2Key(pub) {
		return nil, iotpay.Errorf(iotpay.EINVALID, "note verifier key: not an SM2 public key")
	}
	return &sm2Verifier{name: name, hash: uint32(h), pub: pub.(*ecdsa.PublicKey)}, nil
}

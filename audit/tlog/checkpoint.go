package tlog

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/iotpay/iotpay"
)

// CheckpointBytesMax bounds a signed checkpoint read from the network: the
// body and a few dozen signature lines.
const CheckpointBytesMax = 16 << 10

// Checkpoint is the body of a C2SP tlog-checkpoint: the log's origin, its
// size and its root hash. Extension lines are not used.
type Checkpoint struct {
	Origin string
	Size   uint64
	Hash   []byte
}

// Marshal returns the checkpoint's note text.
func (c Checkpoint) Marshal() []byte {
	return []byte(c.Origin + "\n" + strconv.FormatUint(c.Size, 10) + "\n" + base64.StdEncoding.EncodeToString(c.Hash) + "\n")
}

// ParseCheckpoint reads a checkpoint's note text strictly: a non-empty
// origin, a size in decimal without leading zeros, a 32-byte hash in
// standard base64, and no extension lines.
func ParseCheckpoint(text string) (Checkpoint, error) {
	bad := func(why string) (Checkpoint, error) {
		return Checkpoint{}, iotpay.Errorf(iotpay.EINVALID, "checkpoint: %s", why)
	}
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) != 4 || lines[3] != "" {
		return bad("want three lines, each ending in a newline, and no extension lines")
	}
	origin, sz, h := lines[0], lines[1], lines[2]
	if origin == "" || strings.TrimSpace(origin) != origin {
		return bad("empty or padded origin")
	}
	size, err := strconv.ParseUint(sz, 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != sz {
		return bad("size is not a decimal number without leading zeros")
	}
	hash, err := base64.StdEncoding.Strict().DecodeString(h)
	if err != nil || len(hash) != HashSize || base64.StdEncoding.EncodeToString(hash) != h {
		return bad("root hash is not 32 bytes of standard base64")
	}
	return Checkpoint{Origin: origin, Size: size, Hash: hash}, nil
}

// SignCheckpoint signs c as a note with the log's key (first) and any
// co-signers.
func SignCheckpoint(c Checkpoint, signers ...note.Signer) ([]byte, error) {
	if len(signers) == 0 {
		return nil, iotpay.Errorf(iotpay.EINVALID, "checkpoint: no signer")
	}
	if len(c.Hash) != HashSize || c.Origin == "" || strings.ContainsAny(c.Origin, "\n") {
		return nil, iotpay.Errorf(iotpay.EINVALID, "checkpoint: malformed")
	}
	b, err := note.Sign(&note.Note{Text: string(c.Marshal())}, signers...)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "checkpoint: sign", err)
	}
	return b, nil
}

// OpenCheckpoint verifies a signed checkpoint: the log's signature by
// logKey must be there and verify, its origin must be logKey's name (the
// C2SP convention), and every other signature whose key is among others
// must verify too (a signature by an unknown key is ignored). It returns
// the checkpoint and the note, whose Sigs are the verified signatures.
func OpenCheckpoint(b []byte, logKey note.Verifier, others ...note.Verifier) (Checkpoint, *note.Note, error) {
	if len(b) > CheckpointBytesMax {
		return Checkpoint{}, nil, iotpay.Errorf(iotpay.EINVALID, "checkpoint: %d bytes exceeds %d", len(b), CheckpointBytesMax)
	}
	n, err := note.Open(b, note.VerifierList(append([]note.Verifier{logKey}, others...)...))
	if err != nil {
		// A note that verifies under no known key, or whose known key's
		// signature fails, is unauthorized; anything else is malformed.
		code := iotpay.EINVALID
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			code = iotpay.EUNAUTHORIZED
		}
		return Checkpoint{}, nil, iotpay.Wrap(code, "checkpoint: signature", err)
	}
	signed := false
	for _, s := range n.Sigs {
		if s.Name == logKey.Name() && s.Hash == logKey.KeyHash() {
			signed = true
		}
	}
	if !signed {
		return Checkpoint{}, n, iotpay.Errorf(iotpay.EUNAUTHORIZED, "checkpoint: not signed by the log key %s", logKey.Name())
	}
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, n, err
	}
	if c.Origin != logKey.Name() {
		return Checkpoint{}, n, iotpay.Errorf(iotpay.EUNAUTHORIZED, "checkpoint: origin %q is not the log key's name %q", c.Origin, logKey.Name())
	}
	return c, n, nil
}

// GenerateLogKey makes an Ed25519 note key for a log of that origin: the
// signer key (secret, "PRIVATE+KEY+…") and the verifier key anyone may hold.
func GenerateLogKey(origin string) (skey, vkey string, err error) {
	skey, vkey, err = note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return "", "", iotpay.Wrap(iotpay.EINVALID, "log key", err)
	}
	return skey, vkey, nil
}

// Note signature types of Ed25519 keys (C2SP signed-note): a plain
// signature, and a timestamped cosignature/v1 (what witnesses sign).
const (
	TypeEd25519       byte = 0x01
	TypeCosignatureV1 byte = 0x04
)

// Ed25519VerifierKey derives from an Ed25519 note signer key
// (PRIVATE+KEY+name+hash+base64(type‖seed)) the verifier key of signature
// type typ: name+hash+base64(typ‖public key).
func Ed25519VerifierKey(skey string, typ byte) (string, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" || !validKeyName(parts[2]) {
		return "", iotpay.Errorf(iotpay.EINVALID, "malformed note signer key")
	}
	key, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(key) != 1+ed25519.SeedSize || (key[0] != TypeEd25519 && key[0] != TypeCosignatureV1) {
		return "", iotpay.Errorf(iotpay.EINVALID, "note signer key is not Ed25519")
	}
	pub := append([]byte{typ}, ed25519.NewKeyFromSeed(key[1:]).Public().(ed25519.PublicKey)...)
	return fmt.Sprintf("%s+%08x+%s", parts[2], keyHash(parts[2], pub), base64.StdEncoding.EncodeToString(pub)), nil
}

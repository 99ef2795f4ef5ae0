package wire

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"io"

	gmecdh "github.com/emmansun/gmsm/ecdh"
	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/sm4"
	"github.com/iotpay/iotpay"
)

// A session gives a device's payment messages end-to-end object security,
// whatever carries them: a handshake of two signed messages (Hello, from
// the device; Welcome, from the platform) agrees ephemeral ECDH keys of the
// device's suite, in the manner of EDHOC's signature method (RFC 9528);
// then each request is the device's usual COSE_Sign1, sealed in a
// COSE_Encrypt0 under the device→platform key with the device's next
// sequence number as Partial IV, and its answer is the platform's usual
// signed receipt sealed under the platform→device key with the request's
// nonce and sequence number (OSCORE, RFC 8613), so the answer is bound to
// the request twice: by the AEAD and by the request hash it carries.

// Content types (COSE header 3) of the handshake's signed messages, which
// tell them from payment requests and receipts on the same channel.
const (
	ContentTypeHello   = "application/vnd.iotpay.hello+cbor"
	ContentTypeWelcome = "application/vnd.iotpay.welcome+cbor"
)

// Sizes of session values.
const (
	SessionIDBytes = 8
	PointBytes     = 65 // an uncompressed P-256 or SM2 point
	aeadKeyBytes   = 16
	aeadNonceBytes = 12
)

// Directions, bound into every message's additional data.
const (
	dirRequest  = 0 // device → platform
	dirResponse = 1 // platform → device
)

// Hello is a session handshake's first message (EDHOC message_1 with the
// initiator's signature): the device's ephemeral public key, signed by the
// device key under its suite (kid = the device id).
type Hello struct {
	V      uint64 `cbor:"1,keyasint"`
	Device string `cbor:"2,keyasint"`
	Suite  string `cbor:"3,keyasint"`
	Key    []byte `cbor:"4,keyasint"` // G_X, uncompressed
	TimeMs int64  `cbor:"5,keyasint"` // device clock, Unix milliseconds
}

// Welcome is the handshake's second message, signed by the platform's
// receipt key of the device's suite: its ephemeral key, the hash of the
// Hello it answers, the session id the device's requests will carry, and
// the challenge the device's next request must echo.
type Welcome struct {
	V         uint64 `cbor:"1,keyasint"`
	Device    string `cbor:"2,keyasint"`
	Suite     string `cbor:"3,keyasint"`
	Key       []byte `cbor:"4,keyasint"` // G_Y, uncompressed
	Hello     []byte `cbor:"5,keyasint"` // the suite's hash of the Hello's bytes
	Session   []byte `cbor:"6,keyasint"`
	Challenge []byte `cbor:"7,keyasint,omitempty"`
	TimeMs    int64  `cbor:"8,keyasint"`
}

func (h *Hello) validate(s Suite) error {
	switch {
	case h.V != Version:
		return iotpay.Errorf(iotpay.EINVALID, "unsupported version %d", h.V)
	case !iotpay.ValidID(iotpay.PrefixDevice, h.Device):
		return iotpay.Errorf(iotpay.EINVALID, "malformed device id")
	case len(h.Key) != PointBytes:
		return iotpay.Errorf(iotpay.EINVALID, "ephemeral key must be %d bytes", PointBytes)
	case s != nil && h.Suite != s.Name():
		return iotpay.Errorf(iotpay.EUNAUTHORIZED, "verification failed: hello for suite %q, not %s", h.Suite, s.Name())
	}
	return nil
}

// SignHello encodes h and signs it with the device key; kid is the device id.
func SignHello(s Suite, signer crypto.Signer, rand io.Reader, h *Hello) ([]byte, error) {
	if err := h.validate(s); err != nil {
		return nil, err
	}
	payload, err := marshal(h)
	if err != nil {
		return nil, err
	}
	return signTyped(s, signer, rand, []byte(h.Device), ContentTypeHello, payload)
}

var helloType = []byte(ContentTypeHello)

// IsHello reports whether b is a COSE_Sign1 of content type
// ContentTypeHello; it checks the form of the envelope only.
func IsHello(b []byte) bool {
	// A hello holds its content type in clear: most messages, requests,
	// are told apart without decoding them twice.
	if !bytes.Contains(b, helloType) {
		return false
	}
	env, err := ParseSign1(b)
	return err == nil && env.ContentType == ContentTypeHello
}

// ParseHello decodes a Hello without checking its signature: the caller
// looks up the device the kid names, then calls Verify on the envelope
// with that device's suite and key.
func ParseHello(b []byte) (*Sign1, *Hello, error) {
	env, err := ParseSign1(b)
	if err != nil {
		return nil, nil, err
	}
	if env.ContentType != ContentTypeHello {
		return nil, nil, iotpay.Errorf(iotpay.EINVALID, "envelope is not a hello")
	}
	var h Hello
	if err := unmarshal(env.Payload, &h); err != nil {
		return nil, nil, iotpay.Wrap(iotpay.EINVALID, "malformed hello", err)
	}
	if err := h.validate(nil); err != nil {
		return nil, nil, err
	}
	if string(env.Kid) != h.Device {
		return nil, nil, iotpay.Errorf(iotpay.EINVALID, "key id does not name the device")
	}
	return env, &h, nil
}

// Ephemeral is one side's ephemeral ECDH key in a handshake, on the curve
// of the suite: P-256 for intl, the SM2 curve for gm.
type Ephemeral struct {
	suite  Suite
	scalar []byte
	pub    []byte
	priv   func(peer []byte) ([]byte, error)
}

// ephemeralTries bounds the draws of a scalar: one in 2^32 is out of range.
const ephemeralTries = 4

// NewEphemeral draws an ephemeral key from rand for suite s. The scalar is
// read from rand directly, so a test's fixed source gives fixed keys.
func NewEphemeral(s Suite, rand io.Reader) (*Ephemeral, error) {
	for range ephemeralTries {
		scalar := make([]byte, 32)
		if _, err := io.ReadFull(rand, scalar); err != nil {
			return nil, iotpay.Wrap(iotpay.EINTERNAL, "randomness source failed", err)
		}
		if e, err := ephemeralOf(s, scalar); err == nil {
			return e, nil
		}
	}
	return nil, iotpay.Errorf(iotpay.EINTERNAL, "randomness source gives no valid scalar")
}

func ephemeralOf(s Suite, scalar []byte) (*Ephemeral, error) {
	switch s.Name() {
	case SuiteIntl:
		k, err := ecdh.P256().NewPrivateKey(scalar)
		if err != nil {
			return nil, err
		}
		return &Ephemeral{suite: s, scalar: scalar, pub: k.PublicKey().Bytes(), priv: func(peer []byte) ([]byte, error) {
			p, err := ecdh.P256().NewPublicKey(peer)
			if err != nil {
				return nil, err
			}
			return k.ECDH(p)
		}}, nil
	case SuiteGM:
		k, err := gmecdh.P256().NewPrivateKey(scalar)
		if err != nil {
			return nil, err
		}
		return &Ephemeral{suite: s, scalar: scalar, pub: k.PublicKey().Bytes(), priv: func(peer []byte) ([]byte, error) {
			p, err := gmecdh.P256().NewPublicKey(peer)
			if err != nil {
				return nil, err
			}
			return k.ECDH(p)
		}}, nil
	}
	return nil, iotpay.Errorf(iotpay.EINVALID, "no key exchange for suite %s", s.Name())
}

// Public is the ephemeral public key, uncompressed.
func (e *Ephemeral) Public() []byte { return e.pub }

// shared is the ECDH secret with peer's public key; a point not on the
// curve (or the identity) is refused.
func (e *Ephemeral) shared(peer []byte) ([]byte, error) {
	z, err := e.priv(peer)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "bad ephemeral public key", err)
	}
	return z, nil
}

// Accept answers a verified Hello (its bytes hello, decoded h) for the
// platform: it signs a Welcome with the platform's receipt key of suite s
// (kid) carrying e's public key, and derives the session. w gives the
// session id, the challenge and the time; the rest is filled in.
func Accept(s Suite, signer crypto.Signer, rand io.Reader, kid []byte, e *Ephemeral, hello []byte, h *Hello, w *Welcome) ([]byte, *Session, error) {
	if e.suite != s || h.Suite != s.Name() {
		return nil, nil, iotpay.Errorf(iotpay.EINVALID, "hello and key exchange are not of suite %s", s.Name())
	}
	if len(w.Session) != SessionIDBytes || (w.Challenge != nil && len(w.Challenge) != ChallengeBytes) {
		return nil, nil, iotpay.Errorf(iotpay.EINVALID, "malformed welcome")
	}
	z, err := e.shared(h.Key)
	if err != nil {
		return nil, nil, err
	}
	w.V, w.Device, w.Suite, w.Key, w.Hello = Version, h.Device, s.Name(), e.Public(), s.Hash(hello)
	payload, err := marshal(w)
	if err != nil {
		return nil, nil, err
	}
	welcome, err := signTyped(s, signer, rand, kid, ContentTypeWelcome, payload)
	if err != nil {
		return nil, nil, err
	}
	sess, err := deriveSession(s, z, hello, welcome, w.Session, h.Device)
	if err != nil {
		return nil, nil, err
	}
	return welcome, sess, nil
}

// Finish completes a handshake for the device that sent hello with
// ephemeral key e: it checks that b is a Welcome signed by the platform key
// pub under suite s that answers this very hello, and derives the session.
func Finish(s Suite, pub crypto.PublicKey, e *Ephemeral, hello []byte, b []byte) (*Welcome, *Session, error) {
	env, err := ParseSign1(b)
	if err != nil {
		return nil, nil, err
	}
	if env.ContentType != ContentTypeWelcome {
		return nil, nil, iotpay.Errorf(iotpay.EINVALID, "envelope is not a welcome")
	}
	if err := env.Verify(s, pub); err != nil {
		return nil, nil, err
	}
	var w Welcome
	if err := unmarshal(env.Payload, &w); err != nil {
		return nil, nil, iotpay.Wrap(iotpay.EINVALID, "malformed welcome", err)
	}
	_, h, err := ParseHello(hello)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case w.V != Version || w.Suite != s.Name() || w.Device != h.Device || !bytes.Equal(w.Hello, s.Hash(hello)):
		return nil, nil, iotpay.Errorf(iotpay.EUNAUTHORIZED, "welcome answers another hello")
	case len(w.Session) != SessionIDBytes || len(w.Key) != PointBytes || (w.Challenge != nil && len(w.Challenge) != ChallengeBytes):
		return nil, nil, iotpay.Errorf(iotpay.EINVALID, "malformed welcome")
	}
	z, err := e.shared(w.Key)
	if err != nil {
		return nil, nil, err
	}
	sess, err := deriveSession(s, z, hello, b, w.Session, h.Device)
	if err != nil {
		return nil, nil, err
	}
	return &w, sess, nil
}

// Session is the keys of one handshake, for both ends: the device seals
// requests and opens responses, the platform the other way round. It holds
// no sequence state: the device numbers its requests, the platform keeps a
// ReplayWindow.
type Session struct {
	Suite  Suite
	ID     []byte
	Device string
	alg    int64
	prot   []byte // the protected header {alg} of every message
	keys   sessionKeys
	req    cipher.AEAD
	resp   cipher.AEAD
}

// sessionKeys are what the key schedule derives.
type sessionKeys struct {
	TH, PRK                        []byte
	ReqKey, ReqIV, RespKey, RespIV []byte
}

// Labels of the key schedule's HKDF-Expand.
const (
	labelReqKey  = "iotpay session device->platform key"
	labelReqIV   = "iotpay session device->platform iv"
	labelRespKey = "iotpay session platform->device key"
	labelRespIV  = "iotpay session platform->device iv"
)

// deriveSession is the key schedule: TH = H(CBOR [hello, welcome]) binds
// the whole transcript, PRK = HKDF-Extract(salt TH, ECDH secret), and each
// direction's key and IV are HKDF-Expand(PRK, label); the hash is the
// suite's (SHA-256, SM3).
func deriveSession(s Suite, z, hello, welcome, id []byte, device string) (*Session, error) {
	th0, err := marshal([]any{hello, welcome})
	if err != nil {
		return nil, err
	}
	th := s.Hash(th0)
	h := suiteHash(s)
	prk, err := hkdf.Extract(h, z, th)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "key schedule failed", err)
	}
	k := sessionKeys{TH: th, PRK: prk}
	for _, x := range []struct {
		out   *[]byte
		label string
		n     int
	}{{&k.ReqKey, labelReqKey, aeadKeyBytes}, {&k.ReqIV, labelReqIV, aeadNonceBytes},
		{&k.RespKey, labelRespKey, aeadKeyBytes}, {&k.RespIV, labelRespIV, aeadNonceBytes}} {
		if *x.out, err = hkdf.Expand(h, prk, x.label, x.n); err != nil {
			return nil, iotpay.Wrap(iotpay.EINTERNAL, "key schedule failed", err)
		}
	}
	sess := &Session{Suite: s, ID: bytes.Clone(id), Device: device, keys: k}
	if sess.alg, sess.req, err = suiteAEAD(s, k.ReqKey); err != nil {
		return nil, err
	}
	if _, sess.resp, err = suiteAEAD(s, k.RespKey); err != nil {
		return nil, err
	}
	if sess.prot, err = marshal(header{Alg: sess.alg}); err != nil {
		return nil, err
	}
	return sess, nil
}

// suiteHash is the hash the suite's key schedule runs HKDF with.
func suiteHash(s Suite) func() hash.Hash {
	if s.Name() == SuiteGM {
		return sm3.New
	}
	return sha256.New
}

// suiteAEAD is the suite's AEAD under key: AES-128-GCM or SM4-GCM.
func suiteAEAD(s Suite, key []byte) (int64, cipher.AEAD, error) {
	alg, newBlock := AlgA128GCM, aes.NewCipher
	if s.Name() == SuiteGM {
		alg, newBlock = AlgSM4GCM, sm4.NewCipher
	}
	b, err := newBlock(key)
	if err != nil {
		return 0, nil, iotpay.Wrap(iotpay.EINTERNAL, "cannot make the session cipher", err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		return 0, nil, iotpay.Wrap(iotpay.EINTERNAL, "cannot make the session cipher", err)
	}
	return alg, a, nil
}

// Alg is the COSE algorithm of the session's AEAD.
func (s *Session) Alg() int64 { return s.alg }

// nonce is the direction's IV xor the sequence number, right-aligned
// (OSCORE's construction, RFC 8613 §5.2, with one IV a direction in place
// of the sender id: each direction has its own key as well).
func nonce(iv []byte, seq uint64) []byte {
	n := bytes.Clone(iv)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	for i := range b {
		n[len(n)-8+i] ^= b[i]
	}
	return n
}

// externalAAD binds version, suite, session, direction and the request's
// sequence number into each message's additional data.
func (s *Session) externalAAD(dir int, seq uint64) ([]byte, error) {
	return marshal([]any{Version, s.Suite.Name(), s.ID, dir, seq})
}

// SealRequest seals a signed request as the device's message number seq.
func (s *Session) SealRequest(seq uint64, plaintext []byte) ([]byte, error) {
	return s.seal(dirRequest, seq, encHeader{Kid: s.ID, PIV: encodePIV(seq)}, plaintext)
}

// SealResponse seals the platform's answer to the request numbered seq.
func (s *Session) SealResponse(seq uint64, plaintext []byte) ([]byte, error) {
	return s.seal(dirResponse, seq, encHeader{}, plaintext)
}

func (s *Session) seal(dir int, seq uint64, u encHeader, plaintext []byte) ([]byte, error) {
	if seq > SeqMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "sequence number over %d", SeqMax)
	}
	prot := s.prot
	ext, err := s.externalAAD(dir, seq)
	if err != nil {
		return nil, err
	}
	aad, err := encStructure(prot, ext)
	if err != nil {
		return nil, err
	}
	a, iv := s.req, s.keys.ReqIV
	if dir == dirResponse {
		a, iv = s.resp, s.keys.RespIV
	}
	return sealEncrypt0(prot, u, a.Seal(nil, nonce(iv, seq), plaintext, aad))
}

// OpenRequest decrypts a request of this session (the platform's side).
// An algorithm other than the session's is refused before anything else:
// no downgrade to another suite's cipher.
func (s *Session) OpenRequest(m *Encrypt0) ([]byte, error) {
	if !m.HasSeq || !bytes.Equal(m.Kid, s.ID) {
		return nil, iotpay.Errorf(iotpay.EINVALID, "request does not name the session")
	}
	return s.open(dirRequest, m.Seq, m)
}

// OpenResponse decrypts the platform's answer b to the request numbered
// seq (the device's side).
func (s *Session) OpenResponse(seq uint64, b []byte) ([]byte, error) {
	m, err := ParseEncrypt0(b)
	if err != nil {
		return nil, err
	}
	if m.HasSeq {
		return nil, iotpay.Errorf(iotpay.EINVALID, "a response carries no partial IV")
	}
	return s.open(dirResponse, seq, m)
}

func (s *Session) open(dir int, seq uint64, m *Encrypt0) ([]byte, error) {
	if m.Alg != s.alg {
		return nil, iotpay.Errorf(iotpay.EUNAUTHORIZED, "verification failed: alg %d is not suite %s's %d", m.Alg, s.Suite.Name(), s.alg)
	}
	ext, err := s.externalAAD(dir, seq)
	if err != nil {
		return nil, err
	}
	aad, err := encStructure(m.protected, ext)
	if err != nil {
		return nil, err
	}
	a, iv := s.req, s.keys.ReqIV
	if dir == dirResponse {
		a, iv = s.resp, s.keys.RespIV
	}
	pt, err := a.Open(nil, nonce(iv, seq), m.ciphertext, aad)
	if err != nil {
		return nil, iotpay.Errorf(iotpay.EUNAUTHORIZED, "verification failed: message does not decrypt under the session's key")
	}
	return pt, nil
}

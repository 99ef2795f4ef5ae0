//go:build cgo

package pkcs11

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	p11 "github.com/miekg/pkcs11"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device/keystore"
)

// Keystore is a device key on a PKCS#11 token. It is safe for concurrent
// use: each Sign takes one of its sessions.
type Keystore struct {
	mod  *module
	slot uint
	priv p11.ObjectHandle
	pub  *ecdsa.PublicKey
	desc string

	mu       sync.RWMutex // Close takes it exclusively
	closed   bool
	sessions chan p11.SessionHandle // the idle ones
	signer   *signer
}

var _ keystore.Keystore = (*Keystore)(nil)

// Create generates the device's P-256 key pair on the token, private key
// sensitive and not extractable, under the config's label. It refuses
// (ECONFLICT) when the token already holds a key by that label: that would
// be the identity of a device already enrolled.
func Create(cfg Config) (*Keystore, error) { return openWith(cfg, (*Keystore).generate) }

// Open finds the key Create made, by its label, and checks that it is
// still sensitive and not extractable.
func Open(cfg Config) (*Keystore, error) { return openWith(cfg, (*Keystore).find) }

// openWith opens the token and then, in one of its sessions, generates or
// finds the key.
func openWith(cfg Config, key func(*Keystore, string) error) (*Keystore, error) {
	k, err := open(cfg)
	if err != nil {
		return nil, err
	}
	if err := key(k, cfg.label()); err != nil {
		k.Close()
		return nil, err
	}
	return k, nil
}

// open loads the module, finds the token, checks its mechanisms, opens
// the sessions and logs in.
func open(cfg Config) (_ *Keystore, err error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	mod, err := loadModule(cfg.module())
	if err != nil {
		return nil, err
	}
	k := &Keystore{mod: mod, desc: cfg.String(), sessions: make(chan p11.SessionHandle, SessionsMax)}
	k.signer = &signer{k: k}
	loggedIn := false
	defer func() {
		if err != nil {
			k.closeSessions(loggedIn)
			mod.release()
		}
	}()
	if k.slot, err = findSlot(mod.ctx, cfg); err != nil {
		return nil, err
	}
	if err := checkMechanisms(mod.ctx, k.slot, k.desc, append(p256Mechanisms, cfg.required...)); err != nil {
		return nil, err
	}
	for range SessionsMax {
		sh, err := mod.ctx.OpenSession(k.slot, sessionFlags)
		if err != nil {
			return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "cannot open a PKCS#11 session", err)
		}
		k.sessions <- sh
	}
	sh := <-k.sessions
	err = mod.login(sh, k.slot, cfg.PIN)
	k.sessions <- sh
	if err != nil {
		return nil, err
	}
	loggedIn = true
	return k, nil
}

// findSlot returns cfg's slot, or the slot of the one token labelled as
// cfg says: labels need not be unique, and two are refused rather than
// one chosen by chance.
func findSlot(ctx *p11.Ctx, cfg Config) (uint, error) {
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return 0, iotpay.Wrap(iotpay.EUNAVAILABLE, "cannot list PKCS#11 slots", err)
	}
	var found []uint
	for _, s := range slots {
		if cfg.Slot != nil && s != *cfg.Slot {
			continue
		}
		ti, err := ctx.GetTokenInfo(s)
		if err != nil || ti.Flags&p11.CKF_TOKEN_INITIALIZED == 0 {
			continue // a token going away, or a blank one, is not the one we want
		}
		if cfg.Token == "" || strings.TrimRight(ti.Label, " \x00") == cfg.Token {
			found = append(found, s)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) > 1:
		return 0, iotpay.Errorf(iotpay.ECONFLICT, "PKCS#11 tokens in slots %v are all labelled %q: name the slot", found, cfg.Token)
	case cfg.Token == "":
		return 0, iotpay.Errorf(iotpay.ENOTFOUND, "no initialized PKCS#11 token in slot %d", *cfg.Slot)
	case cfg.Slot != nil:
		return 0, iotpay.Errorf(iotpay.ENOTFOUND, "no PKCS#11 token labelled %q in slot %d", cfg.Token, *cfg.Slot)
	}
	return 0, iotpay.Errorf(iotpay.ENOTFOUND, "no PKCS#11 token labelled %q", cfg.Token)
}

// checkMechanisms refuses a token that lacks one of need, or offers it
// but not for the use the keystore makes of it (a token that verifies
// ECDSA but does not sign).
func checkMechanisms(ctx *p11.Ctx, slot uint, desc string, need []mechanism) error {
	list, err := ctx.GetMechanismList(slot)
	if err != nil {
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "cannot list the token's mechanisms", err)
	}
	have := make(map[uint]bool, len(list))
	for _, m := range list {
		have[m.Mechanism] = true
	}
	var missing []string
	for _, m := range need {
		if !have[m.code] {
			missing = append(missing, m.name)
			continue
		}
		info, err := ctx.GetMechanismInfo(slot, []*p11.Mechanism{p11.NewMechanism(m.code, nil)})
		if err != nil {
			return iotpay.Wrap(iotpay.EUNAVAILABLE, "cannot read the token's mechanism "+m.name, err)
		}
		if info.Flags&m.use != m.use {
			missing = append(missing, fmt.Sprintf("%s (flags %#x, without %#x)", m.name, info.Flags, m.use))
		}
	}
	if missing != nil {
		e := &MechanismError{Token: desc, Missing: missing}
		return iotpay.Wrap(iotpay.EINVALID, e.Error(), e)
	}
	return nil
}

// generate makes the key pair on the token.
func (k *Keystore) generate(label string) error {
	sh := <-k.sessions
	defer func() { k.sessions <- sh }()
	ctx := k.mod.ctx
	if objs, err := findObjects(ctx, sh, p11.CKO_PRIVATE_KEY, label, nil); err != nil {
		return err
	} else if len(objs) > 0 {
		return iotpay.Errorf(iotpay.ECONFLICT, "%s already holds a key labelled %q", k.desc, label)
	}
	id := make([]byte, keyIDBytes)
	if _, err := rand.Read(id); err != nil {
		return iotpay.Wrap(iotpay.EINTERNAL, "cannot draw a key id", err)
	}
	pubT := keyTemplate(p11.CKO_PUBLIC_KEY, label, id,
		p11.NewAttribute(p11.CKA_VERIFY, true),
		p11.NewAttribute(p11.CKA_EC_PARAMS, oidP256))
	privT := keyTemplate(p11.CKO_PRIVATE_KEY, label, id,
		p11.NewAttribute(p11.CKA_PRIVATE, true),
		p11.NewAttribute(p11.CKA_SIGN, true),
		p11.NewAttribute(p11.CKA_SENSITIVE, true),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, false))
	mech := []*p11.Mechanism{p11.NewMechanism(p11.CKM_EC_KEY_PAIR_GEN, nil)}
	pub, priv, err := ctx.GenerateKeyPair(sh, mech, pubT, privT)
	if err != nil {
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "the token cannot generate a P-256 key pair", err)
	}
	return k.adopt(sh, pub, priv)
}

// keyTemplate is a template of an EC key object kept on the token.
func keyTemplate(class uint, label string, id []byte, more ...*p11.Attribute) []*p11.Attribute {
	return append([]*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, class),
		p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_EC),
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_LABEL, label),
		p11.NewAttribute(p11.CKA_ID, id),
	}, more...)
}

// find locates the key pair by label: the private key, then the public key
// with the same CKA_ID.
func (k *Keystore) find(label string) error {
	sh := <-k.sessions
	defer func() { k.sessions <- sh }()
	ctx := k.mod.ctx
	privs, err := findObjects(ctx, sh, p11.CKO_PRIVATE_KEY, label, nil)
	if err != nil {
		return err
	}
	if len(privs) != 1 {
		return k.countError(len(privs), "private key", label)
	}
	attrs, err := ctx.GetAttributeValue(sh, privs[0], []*p11.Attribute{p11.NewAttribute(p11.CKA_ID, nil)})
	if err != nil || len(attrs) != 1 || len(attrs[0].Value) == 0 {
		return iotpay.Wrap(iotpay.EINVALID, "the private key has no CKA_ID", err)
	}
	pubs, err := findObjects(ctx, sh, p11.CKO_PUBLIC_KEY, label, attrs[0].Value)
	if err != nil {
		return err
	}
	if len(pubs) != 1 {
		return k.countError(len(pubs), "public key", label)
	}
	return k.adopt(sh, pubs[0], privs[0])
}

func (k *Keystore) countError(n int, what, label string) error {
	if n == 0 {
		return iotpay.Errorf(iotpay.ENOTFOUND, "%s holds no %s labelled %q", k.desc, what, label)
	}
	return iotpay.Errorf(iotpay.ECONFLICT, "%s holds more than one %s labelled %q", k.desc, what, label)
}

// adopt checks the key pair (a P-256 key; a private key that is sensitive
// and was never extractable) and keeps it.
func (k *Keystore) adopt(sh p11.SessionHandle, pub, priv p11.ObjectHandle) error {
	ctx := k.mod.ctx
	attrs, err := ctx.GetAttributeValue(sh, priv, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_KEY_TYPE, nil),
		p11.NewAttribute(p11.CKA_SENSITIVE, nil),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, nil),
		p11.NewAttribute(p11.CKA_NEVER_EXTRACTABLE, nil),
		p11.NewAttribute(p11.CKA_SIGN, nil),
	})
	if err != nil || len(attrs) != 5 {
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "cannot read the private key's attributes", err)
	}
	ecKey := p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_EC).Value
	yes, no := []byte{1}, []byte{0} // CK_BBOOL
	if !bytes.Equal(attrs[0].Value, ecKey) {
		return iotpay.Errorf(iotpay.EINVALID, "%s: the key is not an EC key", k.desc)
	}
	if !bytes.Equal(attrs[1].Value, yes) || !bytes.Equal(attrs[2].Value, no) || !bytes.Equal(attrs[3].Value, yes) {
		return iotpay.Errorf(iotpay.EINVALID, "%s: the private key is or was exportable (CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_NEVER_EXTRACTABLE)", k.desc)
	}
	if !bytes.Equal(attrs[4].Value, yes) {
		return iotpay.Errorf(iotpay.EINVALID, "%s: the private key may not sign", k.desc)
	}
	attrs, err = ctx.GetAttributeValue(sh, pub, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_EC_PARAMS, nil),
		p11.NewAttribute(p11.CKA_EC_POINT, nil),
	})
	if err != nil || len(attrs) != 2 {
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "cannot read the public key", err)
	}
	if !bytes.Equal(attrs[0].Value, oidP256) {
		return iotpay.Errorf(iotpay.EINVALID, "%s: the key is not on P-256", k.desc)
	}
	pk, err := parsePoint(attrs[1].Value)
	if err != nil {
		return iotpay.Wrap(iotpay.EINVALID, "the token's public key is malformed", err)
	}
	k.pub, k.priv = pk, priv
	return nil
}

// findObjects returns up to objectsMax objects of class with label (and
// id, when not nil).
func findObjects(ctx *p11.Ctx, sh p11.SessionHandle, class uint, label string, id []byte) ([]p11.ObjectHandle, error) {
	t := []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, class),
		p11.NewAttribute(p11.CKA_LABEL, label),
	}
	if id != nil {
		t = append(t, p11.NewAttribute(p11.CKA_ID, id))
	}
	if err := ctx.FindObjectsInit(sh, t); err != nil {
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "cannot search the token", err)
	}
	objs, _, err := ctx.FindObjects(sh, objectsMax)
	if ferr := ctx.FindObjectsFinal(sh); err == nil {
		err = ferr
	}
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "cannot search the token", err)
	}
	return objs, nil
}

// Signer returns the token-backed signer.
func (k *Keystore) Signer() crypto.Signer { return k.signer }

// Close logs out (when no other keystore of the process is logged in to
// the token), closes the sessions and releases the module. The key stays
// on the token. Close is idempotent and waits for Sign calls in progress.
func (k *Keystore) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil
	}
	k.closed = true
	k.closeSessions(true)
	k.mod.release()
	return nil
}

// closeSessions logs out (if loggedIn) and closes the idle sessions,
// which are all of them when no Sign is in progress.
func (k *Keystore) closeSessions(loggedIn bool) {
	for {
		select {
		case sh := <-k.sessions:
			if loggedIn {
				k.mod.logout(sh, k.slot)
				loggedIn = false
			}
			k.mod.ctx.CloseSession(sh)
		default:
			return
		}
	}
}

// signer is the keystore's crypto.Signer; it prints without its PIN.
type signer struct{ k *Keystore }

// Public returns a copy of the public key.
func (s *signer) Public() crypto.PublicKey {
	return keystore.ClonePublic(s.k.pub)
}

// Sign signs digest, the output of opts.HashFunc(), on the token with
// CKM_ECDSA and returns an ASN.1 DER signature, as crypto.Signer
// requires. random is not used: the token draws its own nonce.
func (s *signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := keystore.CheckDigest(digest, opts); err != nil {
		return nil, err
	}
	k := s.k
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.closed {
		return nil, iotpay.Errorf(iotpay.EINVALID, "keystore is closed")
	}
	sh := <-k.sessions
	defer func() { k.sessions <- sh }()
	raw, err := k.sign(sh, digest)
	if sessionLost(err) {
		// The session is gone but the process is still logged in (a token
		// reset logs out too; that takes reopening the keystore): a new
		// session, which shares the login, and one retry.
		var fresh p11.SessionHandle
		if fresh, err = k.mod.ctx.OpenSession(k.slot, sessionFlags); err == nil {
			k.mod.ctx.CloseSession(sh)
			sh = fresh
			raw, err = k.sign(sh, digest)
		}
	}
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "the token refused to sign", err)
	}
	return rawToDER(raw)
}

// sign runs CKM_ECDSA on session sh.
func (k *Keystore) sign(sh p11.SessionHandle, digest []byte) ([]byte, error) {
	if err := k.mod.ctx.SignInit(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_ECDSA, nil)}, k.priv); err != nil {
		return nil, err
	}
	return k.mod.ctx.Sign(sh, digest)
}

// sessionLost says whether err means that the session is gone, rather
// than that the token refused the operation.
func sessionLost(err error) bool {
	var code p11.Error
	if !errors.As(err, &code) {
		return false
	}
	switch uint(code) {
	case p11.CKR_SESSION_HANDLE_INVALID, p11.CKR_SESSION_CLOSED:
		return true
	}
	return false
}

func (s *signer) String() string   { return "keystore/pkcs11(" + s.k.desc + ")" }
func (s *signer) GoString() string { return s.String() }

//go:build cgo

package pkcs11

import p11 "github.com/miekg/pkcs11"

// Requiring adds a mechanism the token must offer for use (a CKF_ flag),
// as a future algorithm would (SM2, which SoftHSM2 lacks).
func Requiring(c Config, code, use uint, name string) Config {
	c.required = append(c.required, mechanism{code, use, name})
	return c
}

// PrivateAttribute reads an attribute of the private key on the token, as
// an application holding a session could try to.
func PrivateAttribute(k *Keystore, attr uint) ([]byte, error) {
	sh := <-k.sessions
	defer func() { k.sessions <- sh }()
	a, err := k.mod.ctx.GetAttributeValue(sh, k.priv, []*p11.Attribute{p11.NewAttribute(attr, nil)})
	if err != nil {
		return nil, err
	}
	return a[0].Value, nil
}

// SetPrivateAttribute tries to change an attribute of the private key.
func SetPrivateAttribute(k *Keystore, attr uint, v bool) error {
	sh := <-k.sessions
	defer func() { k.sessions <- sh }()
	return k.mod.ctx.SetAttributeValue(sh, k.priv, []*p11.Attribute{p11.NewAttribute(attr, v)})
}

// CloseSession closes one session of the keystore behind its back and
// leaves the dead handle in its pool. (Closing all would log the process
// out of the token: that takes reopening the keystore.)
func CloseSession(k *Keystore) {
	sh := <-k.sessions
	k.mod.ctx.CloseSession(sh)
	k.sessions <- sh
}

//go:build cgo

package pkcs11

import (
	"errors"
	"sync"

	p11 "github.com/miekg/pkcs11"

	"github.com/iotpay/iotpay"
)

// A PKCS#11 library is initialized once per process (C_Initialize) and its
// login state is per token, shared by every session of the process. Two
// keystores on one library must therefore share its initialization and a
// token's login, and the last to close finalizes or logs out; modules is
// that shared state. It is the package's only global, forced by the
// PKCS#11 model rather than chosen.
var modules = struct {
	sync.Mutex
	byPath map[string]*module
}{byPath: map[string]*module{}}

// module is one loaded, initialized PKCS#11 library.
type module struct {
	path   string
	ctx    *p11.Ctx
	refs   int          // keystores using it; guarded by modules
	logins map[uint]int // keystores logged in, by slot; guarded by modules
}

// loadModule returns the initialized library at path, loading it the
// first time.
func loadModule(path string) (*module, error) {
	modules.Lock()
	defer modules.Unlock()
	if m := modules.byPath[path]; m != nil {
		m.refs++
		return m, nil
	}
	ctx := p11.New(path) // nil when the library cannot be loaded
	if ctx == nil {
		return nil, iotpay.Errorf(iotpay.EINVALID, "cannot load PKCS#11 module %s", path)
	}
	if err := ctx.Initialize(); err != nil && !errors.Is(err, p11.Error(p11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		ctx.Destroy()
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "cannot initialize PKCS#11 module "+path, err)
	}
	m := &module{path: path, ctx: ctx, refs: 1, logins: map[uint]int{}}
	modules.byPath[path] = m
	return m, nil
}

// release drops one reference; the last finalizes and unloads the library.
func (m *module) release() {
	modules.Lock()
	defer modules.Unlock()
	m.refs--
	if m.refs > 0 {
		return
	}
	delete(modules.byPath, m.path)
	m.ctx.Finalize()
	m.ctx.Destroy()
}

// login logs the user in to slot's token through session sh, unless
// another keystore of the process already did.
func (m *module) login(sh p11.SessionHandle, slot uint, pin string) error {
	modules.Lock()
	defer modules.Unlock()
	if m.logins[slot] == 0 {
		err := m.ctx.Login(sh, p11.CKU_USER, pin)
		if err != nil && !errors.Is(err, p11.Error(p11.CKR_USER_ALREADY_LOGGED_IN)) {
			return loginError(err)
		}
	}
	m.logins[slot]++
	return nil
}

// logout undoes one login; the last logs the token out.
func (m *module) logout(sh p11.SessionHandle, slot uint) {
	modules.Lock()
	defer modules.Unlock()
	m.logins[slot]--
	if m.logins[slot] == 0 {
		delete(m.logins, slot)
		m.ctx.Logout(sh)
	}
}

// loginError types a failed C_Login. The PIN itself is never in an error.
func loginError(err error) error {
	var code p11.Error
	if !errors.As(err, &code) {
		return iotpay.Wrap(iotpay.EINTERNAL, "PKCS#11 login failed", err)
	}
	switch uint(code) {
	case p11.CKR_PIN_INCORRECT, p11.CKR_PIN_INVALID, p11.CKR_PIN_LEN_RANGE, p11.CKR_ARGUMENTS_BAD:
		return iotpay.Wrap(iotpay.EUNAUTHORIZED, "PKCS#11 token refused the PIN", err)
	case p11.CKR_PIN_LOCKED, p11.CKR_PIN_EXPIRED:
		return iotpay.Wrap(iotpay.EUNAUTHORIZED, "PKCS#11 token's user PIN is locked or expired", err)
	case p11.CKR_USER_PIN_NOT_INITIALIZED:
		return iotpay.Wrap(iotpay.EUNAUTHORIZED, "PKCS#11 token has no user PIN set", err)
	}
	return iotpay.Wrap(iotpay.EUNAVAILABLE, "PKCS#11 login failed", err)
}

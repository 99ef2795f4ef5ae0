// Package pkcs11 is a device keystore on a PKCS#11 token (an HSM, a smart
// card, a secure element with a PKCS#11 library, or SoftHSM2): the device's
// P-256 key pair is generated on the token, sensitive and not extractable,
// and every signature is made there. It is the only package that imports
// github.com/miekg/pkcs11.
//
// It assumes nothing of the token's mechanisms: it asks the token
// (C_GetMechanismList) and refuses with a *MechanismError when one it
// needs is missing.
//
// Loading a PKCS#11 library takes cgo; a build without it has Config and
// ParseSpec, and Create and Open refuse with EUNAVAILABLE.
package pkcs11

import (
	"fmt"
	"strings"

	p11 "github.com/miekg/pkcs11"

	"github.com/iotpay/iotpay"
)

// Bounds and defaults.
const (
	// SessionsMax is how many sessions a keystore opens: as many Sign
	// calls run on the token at once, the others wait for a session.
	SessionsMax = 4
	// DefaultKeyLabel is the CKA_LABEL of the device key when Config
	// names none.
	DefaultKeyLabel = "iotpay-device"
	// DefaultModule is Debian's path of SoftHSM2's PKCS#11 library.
	DefaultModule = "/usr/lib/softhsm/libsofthsm2.so"

	labelBytesMax = 32 // CK_TOKEN_INFO's label field
	keyIDBytes    = 16 // a new key's random CKA_ID
	objectsMax    = 2  // found per label: one is right, two is ambiguous
)

// sessionFlags open a read-write session: generation writes to the token.
const sessionFlags = p11.CKF_SERIAL_SESSION | p11.CKF_RW_SESSION

// oidP256 is the DER of the prime256v1 OID, the token's CKA_EC_PARAMS.
var oidP256 = []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}

// Config says which token and key to use. Its PIN is never printed.
type Config struct {
	Module string // path of the PKCS#11 library; DefaultModule when empty
	Token  string // token label; and/or
	Slot   *uint  // slot id: when both are set, the slot's token must have the label
	PIN    string `json:"-"` // user PIN; never marshalled or printed
	Label  string // key label (CKA_LABEL); DefaultKeyLabel when empty

	// required is what the token must offer; tests add to it.
	required []mechanism
}

// String describes the config without its PIN.
func (c Config) String() string {
	var where string
	switch {
	case c.Token != "" && c.Slot != nil:
		where = fmt.Sprintf("token %q in slot %d", c.Token, *c.Slot)
	case c.Slot != nil:
		where = fmt.Sprintf("slot %d", *c.Slot)
	default:
		where = fmt.Sprintf("token %q", c.Token)
	}
	return fmt.Sprintf("pkcs11 %s key %q (module %s)", where, c.label(), c.module())
}

// GoString is String, so %#v does not print the PIN either.
func (c Config) GoString() string { return c.String() }

func (c Config) module() string {
	if c.Module == "" {
		return DefaultModule
	}
	return c.Module
}

func (c Config) label() string {
	if c.Label == "" {
		return DefaultKeyLabel
	}
	return c.Label
}

func (c Config) check() error {
	switch {
	case c.Token == "" && c.Slot == nil:
		return iotpay.Errorf(iotpay.EINVALID, "pkcs11 keystore needs a token label or a slot")
	case len(c.Token) > labelBytesMax:
		return iotpay.Errorf(iotpay.EINVALID, "token label longer than %d bytes", labelBytesMax)
	case c.PIN == "":
		return iotpay.Errorf(iotpay.EINVALID, "pkcs11 keystore needs a PIN")
	case strings.ContainsRune(c.Module, 0) || strings.ContainsRune(c.PIN, 0):
		return iotpay.Errorf(iotpay.EINVALID, "NUL in the module path or PIN")
	}
	return nil
}

// mechanism is a PKCS#11 mechanism, the use the keystore makes of it
// (CKF_GENERATE_KEY_PAIR, CKF_SIGN) and its name for errors.
type mechanism struct {
	code, use uint
	name      string
}

// p256Mechanisms are what a P-256 device key needs.
var p256Mechanisms = []mechanism{
	{p11.CKM_EC_KEY_PAIR_GEN, p11.CKF_GENERATE_KEY_PAIR, "CKM_EC_KEY_PAIR_GEN"},
	{p11.CKM_ECDSA, p11.CKF_SIGN, "CKM_ECDSA"},
}

// MechanismError says that a token lacks mechanisms the keystore needs,
// for example SM2 on SoftHSM2. It comes wrapped in an *iotpay.Error with
// code EINVALID: the configuration chose a token that cannot do the job.
type MechanismError struct {
	Token   string
	Missing []string
}

func (e *MechanismError) Error() string {
	return fmt.Sprintf("PKCS#11 %s lacks %s", e.Token, strings.Join(e.Missing, ", "))
}

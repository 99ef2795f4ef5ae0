package pkcs11

import (
	"strconv"
	"strings"

	"github.com/iotpay/iotpay"
)

// specBytesMax bounds a keystore spec: a few paths and names.
const specBytesMax = 1024

// ParseSpec reads a config from a spec of key=value pairs separated by
// ';', as a command line gives it:
//
//	token=iotpay;pin-env=IOTPAY_PKCS11_PIN[;module=/path/lib.so][;slot=N][;label=iotpay-device]
//
// The PIN is never in the spec (it would show in ps and shell history):
// pin-env names the environment variable that holds it, read through
// getenv.
func ParseSpec(spec string, getenv func(string) string) (Config, error) {
	var c Config
	if len(spec) > specBytesMax {
		return c, iotpay.Errorf(iotpay.EINVALID, "pkcs11 spec longer than %d bytes", specBytesMax)
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(spec, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || v == "" {
			return c, iotpay.Errorf(iotpay.EINVALID, "pkcs11 spec: %q is not key=value", kv)
		}
		if seen[k] {
			return c, iotpay.Errorf(iotpay.EINVALID, "pkcs11 spec: %s given twice", k)
		}
		seen[k] = true
		switch k {
		case "module":
			c.Module = v
		case "token":
			c.Token = v
		case "label":
			c.Label = v
		case "slot":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return c, iotpay.Errorf(iotpay.EINVALID, "pkcs11 spec: slot %q is not a number", v)
			}
			s := uint(n)
			c.Slot = &s
		case "pin-env":
			if c.PIN = getenv(v); c.PIN == "" {
				return c, iotpay.Errorf(iotpay.EINVALID, "pkcs11 spec: set %s to the token's user PIN", v)
			}
		case "pin":
			return c, iotpay.Errorf(iotpay.EINVALID, "pkcs11 spec: give the PIN through pin-env, not on the command line")
		default:
			return c, iotpay.Errorf(iotpay.EINVALID, "pkcs11 spec: unknown key %q", k)
		}
	}
	return c, c.check()
}

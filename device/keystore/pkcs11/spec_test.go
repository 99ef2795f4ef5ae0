package pkcs11_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device/keystore/pkcs11"
)

func TestParseSpec(t *testing.T) {
	env := map[string]string{"PIN": "1234"}
	getenv := func(k string) string { return env[k] }
	slot := uint(7)
	for _, c := range []struct {
		spec string
		want pkcs11.Config
		code iotpay.Code
	}{
		{spec: "token=iotpay;pin-env=PIN", want: pkcs11.Config{Token: "iotpay", PIN: "1234"}},
		{spec: "slot=7;pin-env=PIN;module=/m.so;label=k", want: pkcs11.Config{Slot: &slot, PIN: "1234", Module: "/m.so", Label: "k"}},
		{spec: "token=iotpay", code: iotpay.EINVALID},
		{spec: "token=iotpay;pin-env=UNSET", code: iotpay.EINVALID},
		{spec: "token=iotpay;pin=1234", code: iotpay.EINVALID},
		{spec: "token=iotpay;pin-env=PIN;token=other", code: iotpay.EINVALID},
		{spec: "token=iotpay;pin-env=PIN;colour=blue", code: iotpay.EINVALID},
		{spec: "token=iotpay;pin-env=PIN;", code: iotpay.EINVALID},
		{spec: "token=;pin-env=PIN", code: iotpay.EINVALID},
		{spec: "slot=-1;pin-env=PIN", code: iotpay.EINVALID},
		{spec: "slot=99999999999;pin-env=PIN", code: iotpay.EINVALID},
		{spec: "", code: iotpay.EINVALID},
		{spec: "token=" + strings.Repeat("x", 2000) + ";pin-env=PIN", code: iotpay.EINVALID},
	} {
		t.Run(c.spec, func(t *testing.T) {
			got, err := pkcs11.ParseSpec(c.spec, getenv)
			if iotpay.ErrorCode(err) != c.code {
				t.Fatalf("error %v, want code %q", err, c.code)
			}
			if c.code == "" {
				if diff := cmp.Diff(c.want, got, cmp.AllowUnexported(pkcs11.Config{})); diff != "" {
					t.Errorf("config (-want +got):\n%s", diff)
				}
			} else if err != nil && strings.Contains(err.Error(), "1234") {
				t.Errorf("error shows the PIN: %v", err)
			}
		})
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"token=iotpay;pin-env=PIN", "slot=7;pin-env=PIN;module=/m.so;label=k", "pin=1", ";;=", "slot=1;slot=2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		_, err := pkcs11.ParseSpec(spec, func(string) string { return "1234" })
		if err != nil && iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Fatalf("code %q: %v", iotpay.ErrorCode(err), err)
		}
	})
}

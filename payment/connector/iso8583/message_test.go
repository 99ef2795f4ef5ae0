package iso8583_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector/iso8583"
)

func TestMessageAccessors(t *testing.T) {
	m := iso8583.NewMessage("0100")
	if err := m.SetInt(iso8583.FieldAmount, 1250, 12); err != nil {
		t.Fatal(err)
	}
	if got := m.Get(iso8583.FieldAmount); got != "000000001250" {
		t.Errorf("SetInt wrote %q", got)
	}
	if n, err := m.Int(iso8583.FieldAmount); err != nil || n != 1250 {
		t.Errorf("Int = %d, %v", n, err)
	}
	if err := m.SetInt(iso8583.FieldSTAN, 1_000_000, 6); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("SetInt overflow: %v", err)
	}
	if err := m.SetInt(iso8583.FieldSTAN, -1, 6); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("SetInt negative: %v", err)
	}
	if _, err := m.Int(iso8583.FieldSTAN); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("Int of an absent field: %v", err)
	}
	m.Set(iso8583.FieldRRN, "ABC")
	if _, err := m.Int(iso8583.FieldRRN); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("Int of letters: %v", err)
	}
	m.SetBytes(iso8583.FieldMAC, []byte{0, 1, 0xff})
	if b := m.Bytes(iso8583.FieldMAC); string(b) != "\x00\x01\xff" {
		t.Errorf("Bytes = %x", b)
	}
	if m.Bytes(64) != nil || m.Has(64) {
		t.Error("absent field present")
	}
	c := m.Clone()
	c.Set(iso8583.FieldRRN, "DEF")
	if m.Get(iso8583.FieldRRN) != "ABC" || m.Equal(c) {
		t.Error("Clone shares fields")
	}
	c.Del(iso8583.FieldRRN)
	if c.Has(iso8583.FieldRRN) {
		t.Error("Del")
	}
	if got := m.Numbers(); len(got) != 3 || got[0] != 4 || got[1] != 37 || got[2] != 128 {
		t.Errorf("Numbers = %v", got)
	}
	var z iso8583.Message
	z.Set(2, "x") // a zero Message takes fields
	if z.Get(2) != "x" {
		t.Error("Set on a zero Message")
	}
}

func TestMessageStringMasks(t *testing.T) {
	m := iso8583.NewMessage("0200")
	m.Set(iso8583.FieldPAN, "4111111111111111")
	m.Set(iso8583.FieldTrack2, "4111111111111111=2812101")
	m.Set(52, "\x01\x02\x03\x04\x05\x06\x07\x08")
	m.Set(iso8583.FieldRRN, "123456789012")
	s := m.String()
	if strings.Contains(s, "4111111111111111") || strings.Contains(s, "\\x01") {
		t.Errorf("String leaks card data: %s", s)
	}
	if !strings.Contains(s, `2="411111******1111"`) || !strings.Contains(s, `37="123456789012"`) {
		t.Errorf("String = %s", s)
	}
}

func TestOriginalDataErrors(t *testing.T) {
	for _, od := range []iso8583.OriginalData{
		{MTI: "100", STAN: "000001", Transmission: "0615143025"},
		{MTI: "0100", STAN: "1", Transmission: "0615143025"},
		{MTI: "0100", STAN: "000001", Transmission: "061514302"},
		{MTI: "0100", STAN: "000001", Transmission: "0615143025", Acquirer: "123456789012"},
		{MTI: "0100", STAN: "000001", Transmission: "0615143025", Forwarder: "12a"},
	} {
		if _, err := od.String(); iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("%+v: %v", od, err)
		}
	}
	for _, s := range []string{"", strings.Repeat("0", 41), strings.Repeat("0", 41) + "x"} {
		if _, err := iso8583.ParseOriginalData(s); iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("%q: %v", s, err)
		}
	}
}

func TestResponseMTI(t *testing.T) {
	for req, want := range map[string]string{"0100": "0110", "0200": "0210", "0220": "0230", "0221": "0230", "0400": "0410", "0401": "0410", "0800": "0810"} {
		if got, err := iso8583.ResponseMTI(req); err != nil || got != want {
			t.Errorf("ResponseMTI(%s) = %s, %v; want %s", req, got, err, want)
		}
	}
	for _, bad := range []string{"0110", "010", "01A0", "0810"} {
		if _, err := iso8583.ResponseMTI(bad); err == nil {
			t.Errorf("ResponseMTI(%s): no error", bad)
		}
	}
}

func TestRRN(t *testing.T) {
	a, b := iso8583.RRN("pay_1/authorize"), iso8583.RRN("pay_1/authorize")
	if a != b {
		t.Errorf("RRN not deterministic: %s %s", a, b)
	}
	if len(a) != 12 || strings.Trim(a, "0123456789") != "" {
		t.Errorf("RRN %q is not 12 digits", a)
	}
	seen := make(map[string]bool)
	for i := 0; i < 2000; i++ {
		seen[iso8583.RRN(fmt.Sprintf("pay_%d/authorize", i))] = true
	}
	if len(seen) != 2000 {
		t.Errorf("RRNs of 2000 keys: %d distinct", len(seen))
	}
}

func TestCurrencies(t *testing.T) {
	for c, n := range map[iotpay.Currency]string{"EUR": "978", "USD": "840", "GBP": "826", "CHF": "756", "CNY": "156", "JPY": "392", "AUD": "036"} {
		got, err := iso8583.CurrencyNumeric(c)
		if err != nil || got != n {
			t.Errorf("CurrencyNumeric(%s) = %s, %v; want %s", c, got, err, n)
		}
		back, err := iso8583.CurrencyAlpha(n)
		if err != nil || back != c {
			t.Errorf("CurrencyAlpha(%s) = %s, %v", n, back, err)
		}
	}
	if _, err := iso8583.CurrencyNumeric("XXX"); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("unknown currency: %v", err)
	}
	if _, err := iso8583.CurrencyAlpha("999"); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("unknown numeric currency: %v", err)
	}
}

func TestResponseCodes(t *testing.T) {
	for code, want := range map[string]string{"05": "do not honour", "51": "insufficient funds", "54": "expired card", "61": "exceeds withdrawal amount limit", "91": "issuer or switch inoperative", "96": "system malfunction", "Z9": "declined (response code Z9)"} {
		if got := iso8583.ResponseMessage(code); got != want {
			t.Errorf("ResponseMessage(%s) = %q, want %q", code, got, want)
		}
	}
	if !iso8583.Approved("00") || iso8583.Approved("05") || iso8583.Approved("10") {
		t.Error("Approved")
	}
	if !iso8583.Unavailable("91") || !iso8583.Unavailable("96") || iso8583.Unavailable("51") {
		t.Error("Unavailable")
	}
}

func TestParseSource(t *testing.T) {
	pan, exp, err := iso8583.ParseSource("4111111111111111=2812")
	if err != nil || pan != "4111111111111111" || exp != "2812" {
		t.Errorf("ParseSource = %q %q %v", pan, exp, err)
	}
	for _, bad := range []string{"", "4111111111111112", "41111111111", "4111x11111111111", "4111111111111111=2813", "4111111111111111=28", "tok_visa"} {
		if _, _, err := iso8583.ParseSource(bad); iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("ParseSource(%q): %v", bad, err)
		}
	}
}

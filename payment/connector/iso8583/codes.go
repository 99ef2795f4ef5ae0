package iso8583

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/iotpay/iotpay"
)

// Response codes (field 39) the client and simulator act on.
const (
	CodeApproved             = "00"
	CodeHonourWithID         = "08" // approved after identification
	CodePartialApproval      = "10"
	CodeApprovedVIP          = "11"
	CodeDoNotHonour          = "05"
	CodeInvalidTransaction   = "12"
	CodeInvalidAmount        = "13"
	CodeNoSuchRecord         = "25" // unable to locate the original
	CodeFormatError          = "30"
	CodeInsufficientFunds    = "51"
	CodeExpiredCard          = "54"
	CodeExceedsLimit         = "61"
	CodeLateResponse         = "68" // a reversal's reason: the answer came too late
	CodeIssuerUnavailable    = "91"
	CodeDuplicate            = "94"
	CodeSystemMalfunction    = "96"
	CodeCustomerCancellation = "17" // a reversal's reason: a void
	CodeSuspectedMalfunction = "22" // a reversal's reason: the acceptor could not complete it
)

// ResponseMessage returns the meaning of a response code, for a decline's
// message.
func ResponseMessage(code string) string {
	switch code {
	case "00":
		return "approved"
	case "01":
		return "refer to card issuer"
	case "03":
		return "invalid merchant"
	case "04":
		return "pick up card"
	case "05":
		return "do not honour"
	case "08":
		return "honour with identification"
	case "10":
		return "approved for partial amount"
	case "11":
		return "approved (VIP)"
	case "12":
		return "invalid transaction"
	case "13":
		return "invalid amount"
	case "14":
		return "invalid card number"
	case "15":
		return "no such issuer"
	case "17":
		return "customer cancellation"
	case "22":
		return "suspected malfunction"
	case "25":
		return "unable to locate record"
	case "30":
		return "format error"
	case "41":
		return "lost card"
	case "43":
		return "stolen card"
	case "51":
		return "insufficient funds"
	case "54":
		return "expired card"
	case "55":
		return "incorrect PIN"
	case "57":
		return "transaction not permitted to cardholder"
	case "58":
		return "transaction not permitted to terminal"
	case "59":
		return "suspected fraud"
	case "61":
		return "exceeds withdrawal amount limit"
	case "62":
		return "restricted card"
	case "65":
		return "exceeds withdrawal frequency limit"
	case "68":
		return "response received too late"
	case "75":
		return "allowable number of PIN tries exceeded"
	case "91":
		return "issuer or switch inoperative"
	case "92":
		return "routing error"
	case "94":
		return "duplicate transmission"
	case "96":
		return "system malfunction"
	}
	return "declined (response code " + code + ")"
}

// Approved reports whether code approves the full amount.
func Approved(code string) bool {
	return code == CodeApproved || code == CodeHonourWithID || code == CodeApprovedVIP
}

// Unavailable reports whether code says the issuer or the acquirer could
// not decide (91, 96): nothing was authorized and the request may be
// tried again.
func Unavailable(code string) bool {
	return code == CodeIssuerUnavailable || code == CodeSystemMalfunction
}

// CurrencyNumeric returns the ISO 4217 numeric code of c (field 49).
func CurrencyNumeric(c iotpay.Currency) (string, error) {
	if n, ok := currencyCode(c); ok {
		return n, nil
	}
	return "", iotpay.Errorf(iotpay.EINVALID, "iso8583: no numeric code for currency %q", string(c))
}

// CurrencyAlpha returns the currency whose ISO 4217 numeric code is n.
func CurrencyAlpha(n string) (iotpay.Currency, error) {
	for _, c := range currencies() {
		if c[1] == n {
			return iotpay.Currency(c[0]), nil
		}
	}
	return "", iotpay.Errorf(iotpay.EINVALID, "iso8583: unknown numeric currency %q", n)
}

func currencyCode(c iotpay.Currency) (string, bool) {
	for _, x := range currencies() {
		if x[0] == string(c) {
			return x[1], true
		}
	}
	return "", false
}

// currencies pairs the platform's currencies with their ISO 4217 numeric
// codes. A function, not a global table, so nothing can change it.
func currencies() [][2]string {
	return [][2]string{
		{"EUR", "978"}, {"USD", "840"}, {"GBP", "826"}, {"CHF", "756"},
		{"CNY", "156"}, {"JPY", "392"}, {"KRW", "410"}, {"SEK", "752"},
		{"NOK", "578"}, {"DKK", "208"}, {"PLN", "985"}, {"CAD", "124"},
		{"AUD", "036"}, {"HKD", "344"}, {"SGD", "702"}, {"INR", "356"},
		{"BRL", "986"}, {"KWD", "414"}, {"BHD", "048"}, {"TND", "788"},
	}
}

// rrnModulus is 10^12: an RRN has 12 digits.
const rrnModulus = 1_000_000_000_000

// RRN returns the retrieval reference number (field 37) of the operation
// whose idempotency key is key: 12 digits of its SHA-256, so every try of
// one operation carries the same RRN and the acquirer can recognise a
// repeat. Different keys can collide (about one pair in a million
// operations); acquirers scope an RRN to a terminal and a day, which makes
// a collision that matters far rarer still.
func RRN(key string) string {
	h := sha256.Sum256([]byte("iso8583 rrn\x00" + key))
	return fmt.Sprintf("%012d", binary.BigEndian.Uint64(h[:8])%rrnModulus)
}

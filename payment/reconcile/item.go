package reconcile

import (
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/iotpay/iotpay"
)

// Bounds of a settlement report. A report is an untrusted upload: every
// size is capped before it is spent.
const (
	// FileBytesMax bounds the bytes read from one report file.
	FileBytesMax = 256 << 20 // 256 MiB
	// ItemsMax bounds the items of one report.
	ItemsMax = 1_000_000
	// AmountMax bounds one amount or fee, in minor units, as
	// payment/ledger.AmountMax bounds one transfer.
	AmountMax = int64(1) << 50
	// RefLenMax bounds a reference or a payment id, in bytes.
	RefLenMax = 256
	// ColumnsMax bounds the columns of a CSV report.
	ColumnsMax = 256
	// DepthMax bounds the nesting depth of a camt.053 document, in
	// elements; the deepest one read is 9 deep
	// (Document/BkToCstmrStmt/Stmt/Ntry/NtryDtls/TxDtls/AmtDtls/TxAmt/Amt).
	DepthMax = 64
	// TextLenMax bounds the text kept of one XML element, in bytes;
	// every field used is far shorter (ISO 20022 Max35Text).
	TextLenMax = 4096
)

// Kinds of an item.
const (
	KindCapture = "capture" // money the connector collected for us
	KindRefund  = "refund"  // money the connector gave back to a payer
	KindFee     = "fee"     // a charge the connector made on its own account
	KindOther   = "other"   // anything else: payouts, adjustments, transfers
)

// Item is one line of a connector's settlement report.
type Item struct {
	// Ref is the connector's reference: a PaymentIntent id, an RRN, our
	// payment id — what connector.Result.Ref said.
	Ref string `json:"ref"`
	// Payment is our payment id, when the report carries it (metadata,
	// an EndToEndId).
	Payment string `json:"payment,omitempty"`
	// Kind is KindCapture, KindRefund, KindFee or KindOther.
	Kind string `json:"kind"`
	// Amount is positive: the direction is in Kind.
	Amount iotpay.Money `json:"amount"`
	// Fee is what the connector kept of this item, in minor units of
	// Amount's currency, when the report says.
	Fee  int64     `json:"fee,omitempty"`
	Date time.Time `json:"date"`
	// Line is where in the file the item starts (1-based), for messages.
	Line int `json:"line"`
}

// lineError is the error of a line or entry that does not parse.
func lineError(line int, format string, args ...any) *iotpay.Error {
	e := iotpay.Errorf(iotpay.EINVALID, format, args...)
	e.Message = "line " + strconv.Itoa(line) + ": " + e.Message
	return e
}

// errTooLarge is returned by a capped reader past FileBytesMax. It is
// built on each use, so no global holds state.
func errTooLarge() *iotpay.Error {
	return iotpay.Errorf(iotpay.EINVALID, "report larger than %d MiB", FileBytesMax>>20)
}

// capped reads at most FileBytesMax bytes and fails, rather than ending
// quietly, when the file is longer: a truncated report must not parse.
type capped struct{ r *io.LimitedReader }

func newCapped(r io.Reader) *capped {
	return &capped{r: &io.LimitedReader{R: r, N: FileBytesMax + 1}}
}

func (c *capped) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.r.N <= 0 {
		return 0, errTooLarge()
	}
	return n, err
}

// readError turns an error of the underlying reader into an *iotpay.Error.
func readError(err error) error {
	var e *iotpay.Error
	if errors.As(err, &e) {
		return e
	}
	return iotpay.Wrap(iotpay.EINVALID, "reading the report", err)
}

// parseAmount parses a decimal amount ("12.34", "-5", "1234") into minor
// units of a currency with scale digits, without floats. It allows a
// leading minus sign (reported by neg) and at most scale decimals.
func parseAmount(s string, scale int) (v int64, neg bool, err error) {
	if s == "" {
		return 0, false, errors.New("empty amount")
	}
	if s[0] == '-' {
		neg = true
		s = s[1:]
	}
	ip, fp, dot := strings.Cut(s, ".")
	if ip == "" || (dot && fp == "") {
		return 0, false, errors.New("malformed amount")
	}
	if len(fp) > scale {
		return 0, false, errors.New("more decimals than the currency has")
	}
	for i := 0; i < len(ip); i++ {
		if ip[i] < '0' || ip[i] > '9' {
			return 0, false, errors.New("malformed amount")
		}
		v = v*10 + int64(ip[i]-'0')
		if v > AmountMax {
			return 0, false, errors.New("amount too large")
		}
	}
	for i := 0; i < scale; i++ {
		d := int64(0)
		if i < len(fp) {
			if fp[i] < '0' || fp[i] > '9' {
				return 0, false, errors.New("malformed amount")
			}
			d = int64(fp[i] - '0')
		}
		v = v*10 + d
		if v > AmountMax {
			return 0, false, errors.New("amount too large")
		}
	}
	return v, neg, nil
}

// parseDate parses the forms a date may take: RFC 3339 (with or without
// fractional seconds), ISO 8601 without a zone and Stripe's export form
// (both read as UTC), and a plain date (midnight UTC). The form is
// chosen by shape, since a failed time.Parse costs an allocation.
func parseDate(s string) (time.Time, error) {
	var layout string
	switch {
	case len(s) == len(time.DateOnly):
		layout = time.DateOnly
	case len(s) > 10 && s[10] == ' ':
		layout = time.DateTime
	case len(s) > 19 && (s[len(s)-1] == 'Z' || s[len(s)-6] == '+' || s[len(s)-6] == '-'):
		layout = time.RFC3339Nano // a zone: Z or ±hh:mm
	default:
		layout = "2006-01-02T15:04:05.999999999"
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		return time.Time{}, errors.New("bad date (want RFC 3339 or YYYY-MM-DD)")
	}
	return t, nil
}

// checkText reports why s cannot be a reference: too long, not UTF-8, or
// holding control characters (which would garble a text report).
func checkText(s string) error {
	if len(s) > RefLenMax {
		return errors.New("longer than " + strconv.Itoa(RefLenMax) + " bytes")
	}
	if !utf8.ValidString(s) {
		return errors.New("not UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return errors.New("holds a control character")
		}
	}
	return nil
}

// isPayment reports whether s is one of our payment ids.
func isPayment(s string) bool { return iotpay.ValidID(iotpay.PrefixPayment, s) }

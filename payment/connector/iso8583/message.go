package iso8583

import (
	"slices"
	"strconv"
	"strings"

	"github.com/iotpay/iotpay"
)

// Message is one ISO 8583 message: its type indicator and its data
// elements by number. A value is the field's content as text — digits for
// n, characters for an and ans, raw bytes for b — without length prefix
// or padding: Pack checks it against the spec. Field 1 (the secondary
// bitmap) is never set: Pack computes the bitmaps.
type Message struct {
	MTI    string
	Fields map[int]string
}

// NewMessage returns an empty message of type mti.
func NewMessage(mti string) *Message {
	return &Message{MTI: mti, Fields: make(map[int]string)}
}

// Get returns field n, "" when absent.
func (m *Message) Get(n int) string { return m.Fields[n] }

// Lookup returns field n and whether it is present.
func (m *Message) Lookup(n int) (string, bool) {
	v, ok := m.Fields[n]
	return v, ok
}

// Has reports whether field n is present.
func (m *Message) Has(n int) bool {
	_, ok := m.Fields[n]
	return ok
}

// Set sets field n to v.
func (m *Message) Set(n int, v string) {
	if m.Fields == nil {
		m.Fields = make(map[int]string)
	}
	m.Fields[n] = v
}

// Del removes field n.
func (m *Message) Del(n int) { delete(m.Fields, n) }

// Bytes returns a copy of field n (a b field), nil when absent.
func (m *Message) Bytes(n int) []byte {
	v, ok := m.Fields[n]
	if !ok {
		return nil
	}
	return []byte(v)
}

// SetBytes sets field n (a b field) to a copy of b.
func (m *Message) SetBytes(n int, b []byte) { m.Set(n, string(b)) }

// intDigitsMax bounds the digits Int reads: 18 always fit in an int64.
const intDigitsMax = 18

// Int returns numeric field n as a number.
func (m *Message) Int(n int) (int64, error) {
	v, ok := m.Fields[n]
	if !ok {
		return 0, iotpay.Errorf(iotpay.EINVALID, "iso8583: field %d absent", n)
	}
	if v == "" || len(v) > intDigitsMax || !allDigits(v) {
		return 0, iotpay.Errorf(iotpay.EINVALID, "iso8583: field %d is not a number of at most %d digits", n, intDigitsMax)
	}
	i, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, iotpay.Wrap(iotpay.EINVALID, "iso8583: field "+strconv.Itoa(n)+" is not a number", err)
	}
	return i, nil
}

// SetInt sets numeric field n to v, zero-padded to digits (a fixed
// field's length); v must be non-negative and fit.
func (m *Message) SetInt(n int, v int64, digits int) error {
	if v < 0 {
		return iotpay.Errorf(iotpay.EINVALID, "iso8583: field %d: negative number %d", n, v)
	}
	s := strconv.FormatInt(v, 10)
	if len(s) > digits {
		return iotpay.Errorf(iotpay.EINVALID, "iso8583: field %d: %d does not fit in %d digits", n, v, digits)
	}
	m.Set(n, strings.Repeat("0", digits-len(s))+s)
	return nil
}

// Numbers returns the numbers of the fields present, ascending.
func (m *Message) Numbers() []int {
	ns := make([]int, 0, len(m.Fields))
	for n := range m.Fields {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return ns
}

// Clone returns a deep copy of m.
func (m *Message) Clone() *Message {
	c := &Message{MTI: m.MTI, Fields: make(map[int]string, len(m.Fields))}
	for n, v := range m.Fields {
		c.Fields[n] = v
	}
	return c
}

// Equal reports whether m and o have the same MTI and fields.
func (m *Message) Equal(o *Message) bool {
	if m.MTI != o.MTI || len(m.Fields) != len(o.Fields) {
		return false
	}
	for n, v := range m.Fields {
		if w, ok := o.Fields[n]; !ok || w != v {
			return false
		}
	}
	return true
}

// String formats m for logs: card data (PAN, track 2, PIN block, MACs)
// is masked so a log never holds it.
func (m *Message) String() string {
	var b strings.Builder
	b.WriteString(m.MTI)
	for _, n := range m.Numbers() {
		b.WriteString(" ")
		b.WriteString(strconv.Itoa(n))
		b.WriteString("=")
		v := m.Fields[n]
		switch n {
		case FieldPAN:
			v = MaskPAN(v)
		case FieldTrack2, 45, 52, 64, FieldMAC:
			v = "***"
		}
		b.WriteString(strconv.Quote(v))
	}
	return b.String()
}

// MaskPAN keeps the first six and last four digits of a PAN, as PCI DSS
// allows to show.
func MaskPAN(pan string) string {
	if len(pan) < 13 {
		return strings.Repeat("*", len(pan))
	}
	return pan[:6] + strings.Repeat("*", len(pan)-10) + pan[len(pan)-4:]
}

// OriginalData is field 90, original data elements (n42): what a
// reversal or completion names the request it is about by.
type OriginalData struct {
	MTI          string // 4 digits
	STAN         string // 6 digits
	Transmission string // field 7 of the original, MMDDhhmmss
	Acquirer     string // up to 11 digits; right-justified, zero-filled
	Forwarder    string // up to 11 digits; right-justified, zero-filled
}

// String formats o as the 42 digits of field 90, or returns an error when
// a part does not fit.
func (o OriginalData) String() (string, error) {
	var b strings.Builder
	for _, p := range []struct {
		name, v string
		width   int
		exact   bool
	}{
		{"MTI", o.MTI, 4, true},
		{"STAN", o.STAN, 6, true},
		{"transmission", o.Transmission, 10, true},
		{"acquirer", o.Acquirer, 11, false},
		{"forwarder", o.Forwarder, 11, false},
	} {
		if (p.exact && len(p.v) != p.width) || len(p.v) > p.width || !allDigits(p.v) {
			return "", iotpay.Errorf(iotpay.EINVALID, "iso8583: original data elements: %s %q is not %d digits", p.name, p.v, p.width)
		}
		b.WriteString(strings.Repeat("0", p.width-len(p.v)))
		b.WriteString(p.v)
	}
	return b.String(), nil
}

// ParseOriginalData splits field 90. Acquirer and Forwarder keep their
// zero fill.
func ParseOriginalData(s string) (OriginalData, error) {
	if len(s) != 42 || !allDigits(s) {
		return OriginalData{}, iotpay.Errorf(iotpay.EINVALID, "iso8583: original data elements: want 42 digits")
	}
	return OriginalData{MTI: s[0:4], STAN: s[4:10], Transmission: s[10:20], Acquirer: s[20:31], Forwarder: s[31:42]}, nil
}

// ResponseMTI returns the MTI that answers a request of type mti: the
// function digit (third) goes up by one, and a repeat (last digit 1)
// is answered like the first (0401 by 0410).
func ResponseMTI(mti string) (string, error) {
	if len(mti) != 4 || !allDigits(mti) || (mti[2]-'0')%2 != 0 {
		return "", iotpay.Errorf(iotpay.EINVALID, "iso8583: MTI %q is not a request", mti)
	}
	return mti[:2] + string(mti[2]+1) + "0", nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

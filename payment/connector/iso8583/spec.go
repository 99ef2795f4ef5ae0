package iso8583

import (
	"fmt"

	"github.com/iotpay/iotpay"
)

// Bounds of the codec.
const (
	// MessageBytesMax bounds one packed message, in bytes, without its
	// frame header: what Pack produces and Unpack accepts.
	MessageBytesMax = 8192
	// FieldsMax is the highest data element number (with a secondary
	// bitmap).
	FieldsMax = 128
	// LLVARMax and LLLVARMax bound a variable field's length, in digits,
	// characters or bytes: what a 2- or 3-digit prefix can say.
	LLVARMax  = 99
	LLLVARMax = 999
)

// LengthType says how a field's length is known.
type LengthType uint8

// Length types.
const (
	Fixed  LengthType = iota // always Field.Max long
	LLVAR                    // a 2-digit length prefix, up to 99
	LLLVAR                   // a 3-digit length prefix, up to 999
)

// String names the length type.
func (l LengthType) String() string {
	switch l {
	case Fixed:
		return "fixed"
	case LLVAR:
		return "LLVAR"
	case LLLVAR:
		return "LLLVAR"
	}
	return fmt.Sprintf("LengthType(%d)", uint8(l))
}

// Content is what a field may hold, in the standard's notation.
type Content uint8

// Contents. Track 2 (z) is carried as ans.
const (
	ContentN   Content = iota + 1 // n: digits 0-9
	ContentAN                     // an: letters and digits; space too, as fixed fields are padded with it
	ContentANS                    // ans: printable ASCII, 0x20 to 0x7e
	ContentB                      // b: any bytes; lengths count bytes
)

// String is the content's notation in the standard ("n", "ans").
func (c Content) String() string {
	switch c {
	case ContentN:
		return "n"
	case ContentAN:
		return "an"
	case ContentANS:
		return "ans"
	case ContentB:
		return "b"
	}
	return fmt.Sprintf("Content(%d)", uint8(c))
}

// Encoding is how digits travel: one ASCII byte each, or packed BCD (two
// to a byte, right-justified: an odd count starts with a zero nibble).
type Encoding uint8

// Encodings.
const (
	ASCII Encoding = iota
	BCD
)

// String names the encoding.
func (e Encoding) String() string {
	switch e {
	case ASCII:
		return "ASCII"
	case BCD:
		return "BCD"
	}
	return fmt.Sprintf("Encoding(%d)", uint8(e))
}

// BitmapEncoding is how the bitmaps travel: 8 bytes each, or 16
// upper-case hex characters each.
type BitmapEncoding uint8

// Bitmap encodings.
const (
	BitmapBinary BitmapEncoding = iota
	BitmapHex
)

// Field describes one data element.
type Field struct {
	Name   string
	Length LengthType
	// Max is the length of a Fixed field, or the most a variable one
	// may hold: digits for n, characters for an and ans, bytes for b.
	Max     int
	Content Content
	// Encoding is how the content travels; BCD only for ContentN.
	Encoding Encoding
	// LengthEncoding is how a variable field's prefix travels: ASCII
	// (2 or 3 bytes) or BCD (1 byte for LL, 2 for LLL as 0LLL).
	LengthEncoding Encoding
}

// prefixBytes is the size of the field's length prefix.
func (f *Field) prefixBytes() int {
	switch {
	case f.Length == Fixed:
		return 0
	case f.LengthEncoding == BCD:
		return int(f.Length) // LL: 1 byte, LLL: 2 bytes
	default:
		return int(f.Length) + 1 // LL: 2 bytes, LLL: 3 bytes
	}
}

// contentBytes is the size of a content of n digits, characters or bytes.
func (f *Field) contentBytes(n int) int {
	if f.Encoding == BCD {
		return (n + 1) / 2
	}
	return n
}

// Spec is a message layout: how the MTI and bitmaps are encoded and which
// data elements exist. A Spec does not change once made, so one can be
// shared by any number of goroutines.
type Spec struct {
	name   string
	mti    Encoding
	bitmap BitmapEncoding
	fields [FieldsMax + 1]Field // by number; Content 0 where undefined
}

// NewSpec checks fields and returns a Spec of them. Fields 1 and 65 are
// bitmaps and cannot be defined.
func NewSpec(name string, mti Encoding, bitmap BitmapEncoding, fields map[int]Field) (*Spec, error) {
	if name == "" {
		return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: spec needs a name")
	}
	if mti > BCD {
		return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: spec %s: unknown MTI encoding %d", name, mti)
	}
	if bitmap > BitmapHex {
		return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: spec %s: unknown bitmap encoding %d", name, bitmap)
	}
	s := &Spec{name: name, mti: mti, bitmap: bitmap}
	for n, f := range fields {
		if err := checkField(n, &f); err != nil {
			return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: spec %s: field %d (%s): %s", name, n, f.Name, err)
		}
		s.fields[n] = f
	}
	return s, nil
}

func checkField(n int, f *Field) error {
	switch {
	case n < 2 || n > FieldsMax:
		return fmt.Errorf("number out of 2..%d", FieldsMax)
	case n == 65:
		return fmt.Errorf("field 65 is the tertiary bitmap, not supported")
	case f.Name == "":
		return fmt.Errorf("no name")
	case f.Content < ContentN || f.Content > ContentB:
		return fmt.Errorf("unknown content %d", f.Content)
	case f.Encoding > BCD || f.LengthEncoding > BCD:
		return fmt.Errorf("unknown encoding")
	case f.Encoding == BCD && f.Content != ContentN:
		return fmt.Errorf("BCD content is for n fields only, not %s", f.Content)
	case f.Length > LLLVAR:
		return fmt.Errorf("unknown length type %d", f.Length)
	case f.Max < 1:
		return fmt.Errorf("max length %d", f.Max)
	case f.Length == LLVAR && f.Max > LLVARMax, f.Length == LLLVAR && f.Max > LLLVARMax:
		return fmt.Errorf("max length %d too large for %s", f.Max, f.Length)
	case f.prefixBytes()+f.contentBytes(f.Max) > MessageBytesMax:
		return fmt.Errorf("max length %d too large", f.Max)
	}
	return nil
}

// Name is the spec's name.
func (s *Spec) Name() string { return s.name }

// MTIEncoding is how the MTI travels: 4 ASCII digits or 2 BCD bytes.
func (s *Spec) MTIEncoding() Encoding { return s.mti }

// BitmapEncoding is how the bitmaps travel.
func (s *Spec) BitmapEncoding() BitmapEncoding { return s.bitmap }

// Field returns the description of data element n, and whether the spec
// defines it.
func (s *Spec) Field(n int) (Field, bool) {
	if n < 0 || n > FieldsMax || s.fields[n].Content == 0 {
		return Field{}, false
	}
	return s.fields[n], true
}

// Fields returns a copy of every field the spec defines, by number: a
// start for a variant spec.
func (s *Spec) Fields() map[int]Field {
	m := make(map[int]Field)
	for n := range s.fields {
		if s.fields[n].Content != 0 {
			m[n] = s.fields[n]
		}
	}
	return m
}

// field returns the definition of n, or nil.
func (s *Spec) field(n int) *Field {
	if n < 0 || n > FieldsMax || s.fields[n].Content == 0 {
		return nil
	}
	return &s.fields[n]
}

// Data element numbers the client and simulator use.
const (
	FieldPAN                = 2
	FieldProcessingCode     = 3
	FieldAmount             = 4
	FieldTransmission       = 7 // MMDDhhmmss, UTC
	FieldSTAN               = 11
	FieldLocalTime          = 12 // hhmmss
	FieldLocalDate          = 13 // MMDD
	FieldExpiry             = 14 // YYMM
	FieldMCC                = 18
	FieldPOSEntryMode       = 22
	FieldPOSCondition       = 25
	FieldAcquirer           = 32
	FieldTrack2             = 35
	FieldRRN                = 37
	FieldApproval           = 38
	FieldResponseCode       = 39
	FieldTerminal           = 41
	FieldMerchant           = 42
	FieldCardAcceptor       = 43
	FieldCurrency           = 49
	FieldAdditionalAmounts  = 54
	FieldNetworkManagement  = 70
	FieldOriginalData       = 90
	FieldReplacementAmounts = 95
	FieldMAC                = 128
)

// layout87 is one data element of the 1987 layout, before encodings are
// chosen.
type layout87 struct {
	n       int
	name    string
	length  LengthType
	max     int
	content Content
}

// fields87 is the part of the ISO 8583:1987 data element table this
// package carries: every element the client and simulator use, and the
// common ones around them. "a or n" currency codes are n; z (track 2) and
// x+n are not given their own content and are left out or carried as ans.
func fields87() []layout87 {
	return []layout87{
		{2, "primary account number", LLVAR, 19, ContentN},
		{3, "processing code", Fixed, 6, ContentN},
		{4, "amount, transaction", Fixed, 12, ContentN},
		{5, "amount, settlement", Fixed, 12, ContentN},
		{6, "amount, cardholder billing", Fixed, 12, ContentN},
		{7, "transmission date and time", Fixed, 10, ContentN},
		{9, "conversion rate, settlement", Fixed, 8, ContentN},
		{10, "conversion rate, cardholder billing", Fixed, 8, ContentN},
		{11, "systems trace audit number", Fixed, 6, ContentN},
		{12, "time, local transaction", Fixed, 6, ContentN},
		{13, "date, local transaction", Fixed, 4, ContentN},
		{14, "date, expiration", Fixed, 4, ContentN},
		{15, "date, settlement", Fixed, 4, ContentN},
		{18, "merchant type", Fixed, 4, ContentN},
		{19, "acquiring institution country code", Fixed, 3, ContentN},
		{22, "point of service entry mode", Fixed, 3, ContentN},
		{23, "card sequence number", Fixed, 3, ContentN},
		{24, "network international identifier", Fixed, 3, ContentN},
		{25, "point of service condition code", Fixed, 2, ContentN},
		{32, "acquiring institution identification code", LLVAR, 11, ContentN},
		{33, "forwarding institution identification code", LLVAR, 11, ContentN},
		{35, "track 2 data", LLVAR, 37, ContentANS},
		{36, "track 3 data", LLLVAR, 104, ContentN},
		{37, "retrieval reference number", Fixed, 12, ContentAN},
		{38, "authorization identification response", Fixed, 6, ContentAN},
		{39, "response code", Fixed, 2, ContentAN},
		{41, "card acceptor terminal identification", Fixed, 8, ContentANS},
		{42, "card acceptor identification code", Fixed, 15, ContentANS},
		{43, "card acceptor name/location", Fixed, 40, ContentANS},
		{44, "additional response data", LLVAR, 25, ContentAN},
		{45, "track 1 data", LLVAR, 76, ContentANS},
		{48, "additional data, private", LLLVAR, 999, ContentANS},
		{49, "currency code, transaction", Fixed, 3, ContentN},
		{50, "currency code, settlement", Fixed, 3, ContentN},
		{51, "currency code, cardholder billing", Fixed, 3, ContentN},
		{52, "personal identification number data", Fixed, 8, ContentB},
		{53, "security related control information", Fixed, 16, ContentN},
		{54, "additional amounts", LLLVAR, 120, ContentAN},
		{60, "reserved national", LLLVAR, 999, ContentANS},
		{61, "reserved private", LLLVAR, 999, ContentANS},
		{62, "reserved private", LLLVAR, 999, ContentANS},
		{63, "reserved private", LLLVAR, 999, ContentANS},
		{64, "message authentication code", Fixed, 8, ContentB},
		{66, "settlement code", Fixed, 1, ContentN},
		{70, "network management information code", Fixed, 3, ContentN},
		{73, "date, action", Fixed, 6, ContentN},
		{90, "original data elements", Fixed, 42, ContentN},
		{95, "replacement amounts", Fixed, 42, ContentAN},
		{99, "settlement institution identification code", LLVAR, 11, ContentN},
		{100, "receiving institution identification code", LLVAR, 11, ContentN},
		{102, "account identification 1", LLVAR, 28, ContentANS},
		{103, "account identification 2", LLVAR, 28, ContentANS},
		{128, "message authentication code", Fixed, 8, ContentB},
	}
}

// spec87 builds a 1987 spec: numerics and length prefixes in enc.
func spec87(name string, enc Encoding) *Spec {
	m := make(map[int]Field)
	for _, l := range fields87() {
		f := Field{Name: l.name, Length: l.length, Max: l.max, Content: l.content, LengthEncoding: enc}
		if l.content == ContentN {
			f.Encoding = enc
		}
		m[l.n] = f
	}
	s, err := NewSpec(name, enc, BitmapBinary, m)
	if err != nil {
		panic(err) // the table above is wrong: a programming error caught by any test
	}
	return s
}

// The 1987 specs. A Spec is immutable, so these are safe to share.
var (
	// Spec87ASCII carries everything in ASCII (MTI, numerics, length
	// prefixes) with binary bitmaps.
	Spec87ASCII = spec87("87ascii", ASCII)
	// Spec87BCD carries the MTI, numeric fields and every length prefix
	// in packed BCD, text in ASCII, with binary bitmaps.
	Spec87BCD = spec87("87bcd", BCD)
)

package iso8583

import (
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/iotpay/iotpay"
)

// bitmapBytes is the size of one bitmap in binary: 64 bits.
const bitmapBytes = 8

// fieldError is the error of field n of spec s.
func fieldError(s *Spec, n int, format string, args ...any) *iotpay.Error {
	name := "unknown"
	if f := s.field(n); f != nil {
		name = f.Name
	}
	return iotpay.Errorf(iotpay.EINVALID, "iso8583: field %d (%s): %s", n, name, fmt.Sprintf(format, args...))
}

// Pack encodes msg by spec: MTI, primary bitmap, secondary bitmap when any
// field 65-128 is present, then the fields in ascending order.
func Pack(spec *Spec, msg *Message) ([]byte, error) {
	if err := checkMTI(msg.MTI); err != nil {
		return nil, err
	}
	var bits [2]uint64
	size := mtiBytes(spec) + bitmapSize(spec)
	for n, v := range msg.Fields {
		f := spec.field(n)
		if f == nil {
			if n == 1 {
				return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: field 1 is the secondary bitmap: Pack sets it")
			}
			return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: field %d is not in spec %s", n, spec.name)
		}
		if err := checkValue(spec, n, f, v); err != nil {
			return nil, err
		}
		size += f.prefixBytes() + f.contentBytes(len(v))
		bits[(n-1)/64] |= 1 << (63 - uint(n-1)%64)
	}
	if bits[1] != 0 {
		bits[0] |= 1 << 63
		size += bitmapSize(spec)
	}
	if size > MessageBytesMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: message of %d bytes is larger than %d", size, MessageBytesMax)
	}
	b := make([]byte, 0, size)
	b = appendMTI(spec, b, msg.MTI)
	b = appendBitmap(spec, b, bits[0])
	if bits[1] != 0 {
		b = appendBitmap(spec, b, bits[1])
	}
	for n := 2; n <= FieldsMax; n++ {
		if bits[(n-1)/64]&(1<<(63-uint(n-1)%64)) == 0 {
			continue
		}
		f := spec.field(n)
		v := msg.Fields[n]
		b = appendPrefix(f, b, len(v))
		if f.Encoding == BCD {
			b = appendBCD(b, v)
		} else {
			b = append(b, v...)
		}
	}
	return b, nil
}

func checkMTI(mti string) error {
	if len(mti) != 4 || !allDigits(mti) {
		return iotpay.Errorf(iotpay.EINVALID, "iso8583: MTI %q is not 4 digits", mti)
	}
	return nil
}

// checkValue checks v against field n's description.
func checkValue(s *Spec, n int, f *Field, v string) error {
	switch {
	case f.Length == Fixed && len(v) != f.Max:
		return fieldError(s, n, "want %d %s, got %d", f.Max, unit(f), len(v))
	case len(v) > f.Max:
		return fieldError(s, n, "longer than %d %s: %d", f.Max, unit(f), len(v))
	case len(v) == 0:
		return fieldError(s, n, "empty")
	}
	if i := badChar(f.Content, v); i >= 0 {
		return fieldError(s, n, "%q at %d is not %s", v[i], i, f.Content)
	}
	return nil
}

func unit(f *Field) string {
	switch f.Content {
	case ContentN:
		return "digits"
	case ContentB:
		return "bytes"
	}
	return "characters"
}

// badChar returns the index of the first byte of v that content c does
// not allow, or -1.
func badChar(c Content, v string) int {
	for i := 0; i < len(v); i++ {
		x := v[i]
		var ok bool
		switch c {
		case ContentN:
			ok = x >= '0' && x <= '9'
		case ContentAN:
			ok = x >= '0' && x <= '9' || x >= 'A' && x <= 'Z' || x >= 'a' && x <= 'z' || x == ' '
		case ContentANS:
			ok = x >= 0x20 && x <= 0x7e
		case ContentB:
			ok = true
		}
		if !ok {
			return i
		}
	}
	return -1
}

func mtiBytes(s *Spec) int {
	if s.mti == BCD {
		return 2
	}
	return 4
}

func bitmapSize(s *Spec) int {
	if s.bitmap == BitmapHex {
		return 2 * bitmapBytes
	}
	return bitmapBytes
}

func appendMTI(s *Spec, b []byte, mti string) []byte {
	if s.mti == BCD {
		return appendBCD(b, mti)
	}
	return append(b, mti...)
}

func appendBitmap(s *Spec, b []byte, bits uint64) []byte {
	var raw [bitmapBytes]byte
	for i := range raw {
		raw[i] = byte(bits >> (56 - 8*uint(i)))
	}
	if s.bitmap == BitmapHex {
		const upper = "0123456789ABCDEF" // hex.Encode writes lower case; the wire wants upper
		for _, x := range raw {
			b = append(b, upper[x>>4], upper[x&15])
		}
		return b
	}
	return append(b, raw[:]...)
}

// appendPrefix appends the length prefix of a field of length l.
func appendPrefix(f *Field, b []byte, l int) []byte {
	switch f.Length {
	case LLVAR:
		if f.LengthEncoding == BCD {
			return append(b, byte(l/10)<<4|byte(l%10))
		}
		return append(b, byte('0'+l/10), byte('0'+l%10))
	case LLLVAR:
		if f.LengthEncoding == BCD {
			return append(b, byte(l/100), byte(l/10%10)<<4|byte(l%10))
		}
		return append(b, byte('0'+l/100), byte('0'+l/10%10), byte('0'+l%10))
	}
	return b
}

// appendBCD packs the digits of v two to a byte, right-justified.
func appendBCD(b []byte, v string) []byte {
	i := 0
	if len(v)%2 == 1 {
		b = append(b, v[0]-'0')
		i = 1
	}
	for ; i < len(v); i += 2 {
		b = append(b, (v[i]-'0')<<4|(v[i+1]-'0'))
	}
	return b
}

// decoder reads a message, keeping its position for errors. Field values
// are substrings of two strings made once per message — a copy of the
// input for text, the decoded digits for BCD — so a field costs no
// allocation of its own.
type decoder struct {
	spec   *Spec
	b      []byte
	s      string // b as a string
	off    int
	digits []byte // decoded BCD digits of every field
}

// span is where a field's value lies: in d.s, or in d.digits when bcd.
type span struct {
	n      int
	bcd    bool
	lo, hi int
}

func (d *decoder) take(n int, what func() string) (int, error) {
	if n > len(d.b)-d.off {
		return 0, iotpay.Errorf(iotpay.EINVALID, "iso8583: message ends at byte %d inside %s (%d more bytes wanted)", len(d.b), what(), n-(len(d.b)-d.off))
	}
	at := d.off
	d.off += n
	return at, nil
}

// Unpack decodes b by spec. It is strict: b must hold exactly one
// message, each field must match its description, and every encoding must
// be the one Pack would produce (upper-case hex, zero pad nibbles), so
// Pack(Unpack(b)) == b.
func Unpack(spec *Spec, b []byte) (*Message, error) {
	if len(b) > MessageBytesMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: message of %d bytes is larger than %d", len(b), MessageBytesMax)
	}
	d := &decoder{spec: spec, b: b}
	mti, err := d.mti()
	if err != nil {
		return nil, err
	}
	var bits [2]uint64
	if bits[0], err = d.bitmap("primary bitmap"); err != nil {
		return nil, err
	}
	if bits[0]&(1<<63) != 0 {
		if bits[1], err = d.bitmap("secondary bitmap"); err != nil {
			return nil, err
		}
		if bits[1] == 0 {
			return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: field 1 (secondary bitmap): present but announces no field 65-128")
		}
	}
	// Check every announced field is known before reading any, so the
	// error names the real culprit rather than a misread neighbour.
	count, bcd := 0, 0
	for n := 2; n <= FieldsMax; n++ {
		if bits[(n-1)/64]&(1<<(63-uint(n-1)%64)) == 0 {
			continue
		}
		count++
		f := spec.field(n)
		if f == nil {
			return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: field %d is in the bitmap but not in spec %s", n, spec.name)
		}
		if f.Encoding == BCD {
			bcd += f.Max
		}
	}
	if bcd > 0 {
		d.digits = make([]byte, 0, min(bcd, 2*len(b)))
	}
	d.s = string(b)
	var spans [FieldsMax]span
	k := 0
	for n := 2; n <= FieldsMax; n++ {
		if bits[(n-1)/64]&(1<<(63-uint(n-1)%64)) == 0 {
			continue
		}
		sp, err := d.field(n, spec.field(n))
		if err != nil {
			return nil, err
		}
		spans[k] = sp
		k++
	}
	if d.off != len(b) {
		return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: %d trailing bytes after the last field", len(b)-d.off)
	}
	ds := string(d.digits)
	msg := &Message{MTI: mti, Fields: make(map[int]string, count)}
	for _, sp := range spans[:k] {
		if sp.bcd {
			msg.Fields[sp.n] = ds[sp.lo:sp.hi]
		} else {
			msg.Fields[sp.n] = d.s[sp.lo:sp.hi]
		}
	}
	return msg, nil
}

func (d *decoder) mti() (string, error) {
	at, err := d.take(mtiBytes(d.spec), func() string { return "the MTI" })
	if err != nil {
		return "", err
	}
	p := d.b[at:d.off]
	if d.spec.mti == BCD {
		var buf [4]byte
		if _, err := appendBCDDigits(buf[:0], p, 4); err != nil {
			return "", iotpay.Errorf(iotpay.EINVALID, "iso8583: MTI: %v", err)
		}
		return string(buf[:]), nil
	}
	for _, x := range p {
		if x < '0' || x > '9' {
			return "", iotpay.Errorf(iotpay.EINVALID, "iso8583: MTI: not digits")
		}
	}
	return string(p), nil
}

func (d *decoder) bitmap(what string) (uint64, error) {
	at, err := d.take(bitmapSize(d.spec), func() string { return "the " + what })
	if err != nil {
		return 0, err
	}
	p := d.b[at:d.off]
	if d.spec.bitmap == BitmapHex {
		for _, x := range p {
			if !(x >= '0' && x <= '9' || x >= 'A' && x <= 'F') {
				return 0, iotpay.Errorf(iotpay.EINVALID, "iso8583: %s: %q is not an upper-case hex digit", what, x)
			}
		}
		var raw [bitmapBytes]byte
		if _, err := hex.Decode(raw[:], p); err != nil {
			return 0, iotpay.Wrap(iotpay.EINVALID, "iso8583: "+what+": not hex", err)
		}
		p = raw[:]
	}
	var bits uint64
	for _, x := range p {
		bits = bits<<8 | uint64(x)
	}
	return bits, nil
}

func (d *decoder) field(n int, f *Field) (span, error) {
	where := func() string { return "field " + strconv.Itoa(n) + " (" + f.Name + ")" }
	l := f.Max
	if f.Length != Fixed {
		at, err := d.take(f.prefixBytes(), where)
		if err != nil {
			return span{}, err
		}
		p := d.b[at:d.off]
		l = 0
		if f.LengthEncoding == BCD {
			var buf [4]byte
			digits, err := appendBCDDigits(buf[:0], p, int(f.Length)+1)
			if err != nil {
				return span{}, fieldError(d.spec, n, "length prefix: %v", err)
			}
			p = digits
		}
		for _, x := range p {
			if x < '0' || x > '9' {
				return span{}, fieldError(d.spec, n, "length prefix: not digits")
			}
			l = l*10 + int(x-'0')
		}
		if l > f.Max {
			return span{}, fieldError(d.spec, n, "length %d is more than %d", l, f.Max)
		}
		if l == 0 {
			return span{}, fieldError(d.spec, n, "empty")
		}
	}
	at, err := d.take(f.contentBytes(l), where)
	if err != nil {
		return span{}, err
	}
	if f.Encoding == BCD {
		lo := len(d.digits)
		if d.digits, err = appendBCDDigits(d.digits, d.b[at:d.off], l); err != nil {
			return span{}, fieldError(d.spec, n, "%v", err)
		}
		return span{n: n, bcd: true, lo: lo, hi: len(d.digits)}, nil
	}
	if i := badChar(f.Content, d.s[at:d.off]); i >= 0 {
		return span{}, fieldError(d.spec, n, "%q at %d is not %s", d.b[at+i], i, f.Content)
	}
	return span{n: n, lo: at, hi: d.off}, nil
}

// appendBCDDigits appends the digits right-justified digits packed in p,
// which holds exactly (digits+1)/2 bytes; an odd count's pad nibble must
// be 0.
func appendBCDDigits(dst, p []byte, digits int) ([]byte, error) {
	for i, x := range p {
		hi, lo := x>>4, x&15
		if hi > 9 || lo > 9 {
			return dst, fmt.Errorf("byte %#02x is not BCD", x)
		}
		if i == 0 && digits%2 == 1 {
			if hi != 0 {
				return dst, fmt.Errorf("pad nibble is %d, not 0", hi)
			}
			dst = append(dst, '0'+lo)
			continue
		}
		dst = append(dst, '0'+hi, '0'+lo)
	}
	return dst, nil
}

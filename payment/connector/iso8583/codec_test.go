package iso8583_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector/iso8583"
)

// wantInvalid fails unless err is an *iotpay.Error EINVALID whose message
// holds each of parts.
func wantInvalid(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want EINVALID with %q", parts)
	}
	if iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Fatalf("error %v: code %s, want %s", err, iotpay.ErrorCode(err), iotpay.EINVALID)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not say %q", err, p)
		}
	}
}

// TestSpecs checks the 1987 specs against the published layout of the
// fields the brief names.
func TestSpecs(t *testing.T) {
	type want struct {
		length  iso8583.LengthType
		max     int
		content iso8583.Content
	}
	n, an, ans, b := iso8583.ContentN, iso8583.ContentAN, iso8583.ContentANS, iso8583.ContentB
	fixed, ll, lll := iso8583.Fixed, iso8583.LLVAR, iso8583.LLLVAR
	layout := map[int]want{
		2: {ll, 19, n}, 3: {fixed, 6, n}, 4: {fixed, 12, n}, 7: {fixed, 10, n}, 11: {fixed, 6, n},
		12: {fixed, 6, n}, 13: {fixed, 4, n}, 14: {fixed, 4, n}, 18: {fixed, 4, n}, 22: {fixed, 3, n},
		25: {fixed, 2, n}, 32: {ll, 11, n}, 35: {ll, 37, ans}, 37: {fixed, 12, an}, 38: {fixed, 6, an},
		39: {fixed, 2, an}, 41: {fixed, 8, ans}, 42: {fixed, 15, ans}, 43: {fixed, 40, ans},
		49: {fixed, 3, n}, 54: {lll, 120, an}, 70: {fixed, 3, n}, 90: {fixed, 42, n}, 95: {fixed, 42, an},
		128: {fixed, 8, b},
	}
	for _, spec := range []*iso8583.Spec{iso8583.Spec87ASCII, iso8583.Spec87BCD} {
		bcd := spec == iso8583.Spec87BCD
		wantEnc := iso8583.ASCII
		if bcd {
			wantEnc = iso8583.BCD
		}
		if spec.MTIEncoding() != wantEnc || spec.BitmapEncoding() != iso8583.BitmapBinary {
			t.Errorf("%s: MTI %v, bitmap %v", spec.Name(), spec.MTIEncoding(), spec.BitmapEncoding())
		}
		for num, w := range layout {
			f, ok := spec.Field(num)
			if !ok {
				t.Errorf("%s: field %d missing", spec.Name(), num)
				continue
			}
			if f.Length != w.length || f.Max != w.max || f.Content != w.content {
				t.Errorf("%s: field %d is %v %v%d, want %v %v%d", spec.Name(), num, f.Length, f.Content, f.Max, w.length, w.content, w.max)
			}
			if f.Content == n && f.Encoding != wantEnc {
				t.Errorf("%s: field %d content encoding %v", spec.Name(), num, f.Encoding)
			}
			if f.Content != n && f.Encoding != iso8583.ASCII {
				t.Errorf("%s: field %d (%v) content encoding %v", spec.Name(), num, f.Content, f.Encoding)
			}
			if f.Length != fixed && f.LengthEncoding != wantEnc {
				t.Errorf("%s: field %d length encoding %v", spec.Name(), num, f.LengthEncoding)
			}
		}
		for _, num := range []int{0, 1, 65, 129} {
			if _, ok := spec.Field(num); ok {
				t.Errorf("%s: field %d defined", spec.Name(), num)
			}
		}
	}
}

// fieldTypes returns one field of every combination the codec supports.
func fieldTypes() []iso8583.Field {
	var fs []iso8583.Field
	for _, c := range []iso8583.Content{iso8583.ContentN, iso8583.ContentAN, iso8583.ContentANS, iso8583.ContentB} {
		encs := []iso8583.Encoding{iso8583.ASCII}
		if c == iso8583.ContentN {
			encs = append(encs, iso8583.BCD)
		}
		for _, enc := range encs {
			for _, l := range []iso8583.LengthType{iso8583.Fixed, iso8583.LLVAR, iso8583.LLLVAR} {
				for _, lenc := range []iso8583.Encoding{iso8583.ASCII, iso8583.BCD} {
					if l == iso8583.Fixed && lenc == iso8583.BCD {
						continue
					}
					for _, max := range []int{1, 7, 12} {
						if l == iso8583.LLLVAR && max == 12 {
							max = 300 // past 99 and 255: the third digit and the second byte matter
						}
						fs = append(fs, iso8583.Field{
							Name:   fmt.Sprintf("%v %v %v/%v %d", c, l, enc, lenc, max),
							Length: l, Max: max, Content: c, Encoding: enc, LengthEncoding: lenc,
						})
					}
				}
			}
		}
	}
	return fs
}

// value returns a value of length l for content c.
func value(r *rand.Rand, c iso8583.Content, l int) string {
	alphabet := map[iso8583.Content]string{
		iso8583.ContentN:   "0123456789",
		iso8583.ContentAN:  "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz ",
		iso8583.ContentANS: " !\"#$%&'()*+,-./0123456789:;<=>?@AZaz[\\]^_`{|}~",
	}[c]
	b := make([]byte, l)
	for i := range b {
		if c == iso8583.ContentB {
			b[i] = byte(r.IntN(256))
		} else {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
	}
	return string(b)
}

// encodedSize is the size the layout gives a field of length l.
func encodedSize(f iso8583.Field, l int) int {
	size := l
	if f.Encoding == iso8583.BCD {
		size = (l + 1) / 2
	}
	switch {
	case f.Length == iso8583.LLVAR && f.LengthEncoding == iso8583.BCD:
		size++
	case f.Length == iso8583.LLVAR:
		size += 2
	case f.Length == iso8583.LLLVAR && f.LengthEncoding == iso8583.BCD:
		size += 2
	case f.Length == iso8583.LLLVAR:
		size += 3
	}
	return size
}

// TestRoundTripFieldTypes packs and unpacks every field type at its
// shortest and longest, as a primary and as a secondary field, with each
// MTI and bitmap encoding.
func TestRoundTripFieldTypes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, f := range fieldTypes() {
		for _, mtiEnc := range []iso8583.Encoding{iso8583.ASCII, iso8583.BCD} {
			for _, bm := range []iso8583.BitmapEncoding{iso8583.BitmapBinary, iso8583.BitmapHex} {
				spec, err := iso8583.NewSpec("t", mtiEnc, bm, map[int]iso8583.Field{5: f, 100: f})
				if err != nil {
					t.Fatalf("%s: %v", f.Name, err)
				}
				lengths := []int{f.Max}
				if f.Length != iso8583.Fixed {
					lengths = append(lengths, 1, max(1, f.Max-1))
				}
				for _, l := range lengths {
					for _, num := range []int{5, 100} {
						m := &iso8583.Message{MTI: "0200", Fields: map[int]string{num: value(r, f.Content, l)}}
						b, err := iso8583.Pack(spec, m)
						if err != nil {
							t.Fatalf("%s len %d field %d: %v", f.Name, l, num, err)
						}
						head := 4
						if mtiEnc == iso8583.BCD {
							head = 2
						}
						bitmaps := 1
						if num > 64 {
							bitmaps = 2
						}
						if bm == iso8583.BitmapHex {
							head += 16 * bitmaps
						} else {
							head += 8 * bitmaps
						}
						if want := head + encodedSize(f, l); len(b) != want {
							t.Errorf("%s len %d: packed %d bytes, want %d", f.Name, l, len(b), want)
						}
						got, err := iso8583.Unpack(spec, b)
						if err != nil {
							t.Fatalf("%s len %d: unpack %X: %v", f.Name, l, b, err)
						}
						if !got.Equal(m) {
							t.Errorf("%s len %d: got %v, want %v", f.Name, l, got, m)
						}
					}
				}
			}
		}
	}
}

// TestRoundTripAllFields fills every field of each 1987 spec (and a hex
// bitmap variant) with random values of random length.
func TestRoundTripAllFields(t *testing.T) {
	hexSpec, err := iso8583.NewSpec("87hex", iso8583.ASCII, iso8583.BitmapHex, iso8583.Spec87ASCII.Fields())
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, spec := range []*iso8583.Spec{iso8583.Spec87ASCII, iso8583.Spec87BCD, hexSpec} {
		for i := 0; i < 50; i++ {
			m := iso8583.NewMessage(fmt.Sprintf("%04d", r.IntN(10000)))
			for num, f := range spec.Fields() {
				if r.IntN(3) == 0 {
					continue
				}
				l := f.Max
				if f.Length != iso8583.Fixed {
					l = 1 + r.IntN(f.Max)
				}
				m.Set(num, value(r, f.Content, l))
			}
			b, err := iso8583.Pack(spec, m)
			if err != nil {
				t.Fatalf("%s: %v", spec.Name(), err)
			}
			got, err := iso8583.Unpack(spec, b)
			if err != nil {
				t.Fatalf("%s: %v", spec.Name(), err)
			}
			if !got.Equal(m) {
				t.Fatalf("%s: got %v\nwant %v", spec.Name(), got, m)
			}
			again, err := iso8583.Pack(spec, got)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("%s: repack differs: %v", spec.Name(), err)
			}
		}
	}
}

// TestBitmapHex checks a hex bitmap is upper-case text and only that.
func TestBitmapHex(t *testing.T) {
	spec, err := iso8583.NewSpec("hex", iso8583.ASCII, iso8583.BitmapHex, iso8583.Spec87ASCII.Fields())
	if err != nil {
		t.Fatal(err)
	}
	m := &iso8583.Message{MTI: "0800", Fields: map[int]string{7: "0615143000", 11: "000042", 70: "301"}}
	b, err := iso8583.Pack(spec, m)
	if err != nil {
		t.Fatal(err)
	}
	want := "0800" + "8220000000000000" + "0400000000000000" + "0615143000" + "000042" + "301"
	if string(b) != want {
		t.Fatalf("packed %q, want %q", b, want)
	}
	lower := bytes.Replace(b, []byte("8220"), []byte("822a"), 1)
	_, err = iso8583.Unpack(spec, lower)
	wantInvalid(t, err, "primary bitmap", "hex")
}

// TestSpecNumericBCD checks the BCD layout of a numeric field of odd
// length: right-justified with a zero pad nibble, and a BCD prefix that
// counts digits.
func TestSpecNumericBCD(t *testing.T) {
	m := &iso8583.Message{MTI: "0100", Fields: map[int]string{2: "4111111111111", 22: "012", 32: "12345"}}
	b, err := iso8583.Pack(iso8583.Spec87BCD, m)
	if err != nil {
		t.Fatal(err)
	}
	want := "0100" + "4000040100000000" + "13" + "04111111111111" + "0012" + "05" + "012345"
	if fmt.Sprintf("%X", b) != want {
		t.Errorf("packed %X, want %s", b, want)
	}
}

// mustPack packs a message known to be good.
func mustPack(t testing.TB, spec *iso8583.Spec, m *iso8583.Message) []byte {
	t.Helper()
	b, err := iso8583.Pack(spec, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPackErrors checks each rule Pack enforces.
func TestPackErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		spec   *iso8583.Spec
		mti    string
		fields map[int]string
		want   []string
	}{
		{"MTI short", iso8583.Spec87ASCII, "010", nil, []string{"MTI"}},
		{"MTI not digits", iso8583.Spec87BCD, "01A0", nil, []string{"MTI"}},
		{"fixed too short", iso8583.Spec87ASCII, "0100", map[int]string{4: "1250"}, []string{"field 4", "amount, transaction", "want 12 digits, got 4"}},
		{"fixed too long", iso8583.Spec87BCD, "0100", map[int]string{3: "0000000"}, []string{"field 3", "want 6 digits"}},
		{"variable too long", iso8583.Spec87ASCII, "0100", map[int]string{2: "41111111111111111111"}, []string{"field 2", "longer than 19"}},
		{"variable empty", iso8583.Spec87ASCII, "0100", map[int]string{32: ""}, []string{"field 32", "empty"}},
		{"not numeric", iso8583.Spec87ASCII, "0100", map[int]string{4: "00000000125A"}, []string{"field 4", "'A' at 11 is not n"}},
		{"not numeric BCD", iso8583.Spec87BCD, "0100", map[int]string{11: "00012 "}, []string{"field 11", "is not n"}},
		{"an with symbol", iso8583.Spec87ASCII, "0110", map[int]string{39: "0!"}, []string{"field 39", "response code", "is not an"}},
		{"ans with control", iso8583.Spec87ASCII, "0100", map[int]string{41: "TERM\n001"}, []string{"field 41", "is not ans"}},
		{"unknown field", iso8583.Spec87ASCII, "0100", map[int]string{47: "x"}, []string{"field 47", "not in spec 87ascii"}},
		{"field 65", iso8583.Spec87ASCII, "0100", map[int]string{65: "x"}, []string{"field 65"}},
		{"field 1", iso8583.Spec87ASCII, "0100", map[int]string{1: "x"}, []string{"field 1", "secondary bitmap"}},
		{"field 0", iso8583.Spec87ASCII, "0100", map[int]string{0: "x"}, []string{"field 0"}},
		{"field 129", iso8583.Spec87ASCII, "0100", map[int]string{129: "x"}, []string{"field 129"}},
		{"larger than MessageBytesMax", bigSpec(t), "0100", bigFields(9), []string{"larger than 8192"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := iso8583.Pack(tc.spec, &iso8583.Message{MTI: tc.mti, Fields: tc.fields})
			wantInvalid(t, err, tc.want...)
		})
	}
	// Just below the bound packs.
	if _, err := iso8583.Pack(bigSpec(t), &iso8583.Message{MTI: "0100", Fields: bigFields(8)}); err != nil {
		t.Errorf("8 full fields: %v", err)
	}
}

// bigSpec has fields 2-20 of 999 characters, so a message can pass
// MessageBytesMax (the 1987 specs cannot quite).
func bigSpec(t testing.TB) *iso8583.Spec {
	fs := make(map[int]iso8583.Field)
	for n := 2; n <= 20; n++ {
		fs[n] = iso8583.Field{Name: "big", Length: iso8583.LLLVAR, Max: 999, Content: iso8583.ContentANS}
	}
	s, err := iso8583.NewSpec("big", iso8583.ASCII, iso8583.BitmapBinary, fs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// bigFields returns n full fields of bigSpec: 1002 bytes each.
func bigFields(n int) map[int]string {
	m := make(map[int]string)
	for i := 0; i < n; i++ {
		m[2+i] = strings.Repeat("x", 999)
	}
	return m
}

// TestUnpackErrors checks each rule Unpack enforces, on damaged copies of
// good messages.
func TestUnpackErrors(t *testing.T) {
	auth := readHex(t, "0100_auth.ascii.hex")
	echo := readHex(t, "0800_echo.ascii.hex")
	authBCD := readHex(t, "0100_auth.bcd.hex")
	set := func(b []byte, off int, v ...byte) []byte {
		c := bytes.Clone(b)
		copy(c[off:], v)
		return c
	}
	// Offsets in 0100_auth.ascii.hex: MTI 0-3, bitmap 4-11, field 2's
	// prefix 12-13 and PAN 14-29, field 3 30-35, field 4 36-47.
	// In 0100_auth.bcd.hex: MTI 0-1, bitmap 2-9, field 2's prefix 10 and
	// PAN 11-18, field 3 19-21.
	for _, tc := range []struct {
		name string
		spec *iso8583.Spec
		b    []byte
		want []string
	}{
		{"empty", iso8583.Spec87ASCII, nil, []string{"MTI"}},
		{"MTI not digits", iso8583.Spec87ASCII, set(auth, 1, 'X'), []string{"MTI", "not digits"}},
		{"MTI not BCD", iso8583.Spec87BCD, set(authBCD, 0, 0x0A), []string{"MTI", "not BCD"}},
		{"trailing bytes", iso8583.Spec87ASCII, append(bytes.Clone(auth), '0'), []string{"1 trailing bytes"}},
		{"field not in spec", iso8583.Spec87ASCII, set(auth, 9, auth[9]|0x02), []string{"field 47", "not in spec 87ascii"}},
		{"field 65 in bitmap", iso8583.Spec87ASCII, set(echo, 12, 0x80), []string{"field 65", "not in spec"}},
		{"secondary bitmap empty", iso8583.Spec87ASCII, append(set(echo[:12], 4, echo[4]), make([]byte, 8)...), []string{"field 1", "secondary bitmap", "no field 65-128"}},
		{"bit 1 set, fields read as secondary bitmap", iso8583.Spec87ASCII, set(auth, 4, auth[4]|0x80), []string{"field 67", "not in spec"}},
		{"LL prefix not digits", iso8583.Spec87ASCII, set(auth, 12, 'x'), []string{"field 2", "primary account number", "length prefix"}},
		{"LL prefix over max", iso8583.Spec87ASCII, set(auth, 12, '2', '0'), []string{"field 2", "length 20 is more than 19"}},
		{"LL prefix zero", iso8583.Spec87ASCII, set(auth, 12, '0', '0'), []string{"field 2", "empty"}},
		{"PAN not numeric", iso8583.Spec87ASCII, set(auth, 20, 'F'), []string{"field 2", "'F' at 6 is not n"}},
		{"amount not numeric", iso8583.Spec87ASCII, set(auth, 47, ' '), []string{"field 4", "' ' at 11 is not n"}},
		{"BCD prefix not BCD", iso8583.Spec87BCD, set(authBCD, 10, 0x1A), []string{"field 2", "length prefix", "not BCD"}},
		{"BCD content not BCD", iso8583.Spec87BCD, set(authBCD, 12, 0xF1), []string{"field 2", "not BCD"}},
		{"BCD pad nibble", iso8583.Spec87BCD, set(authBCD, 10, 0x15, 0x44), []string{"field 2", "pad nibble"}},
		{"too large", iso8583.Spec87ASCII, make([]byte, iso8583.MessageBytesMax+1), []string{"larger than 8192"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := iso8583.Unpack(tc.spec, tc.b)
			wantInvalid(t, err, tc.want...)
		})
	}
}

// TestUnpackTruncated cuts every sample at every length: each cut is an
// EINVALID error naming where the message ends, never a panic.
func TestUnpackTruncated(t *testing.T) {
	for _, g := range goldens() {
		b := readHex(t, g.file)
		for i := 0; i < len(b); i++ {
			_, err := iso8583.Unpack(g.spec, b[:i])
			if err == nil {
				t.Fatalf("%s cut at %d: no error", g.file, i)
			}
			wantInvalid(t, err, "ends at byte")
		}
	}
}

// TestUnpackBitFlips flips every bit of every sample: the result is an
// EINVALID error or a message that packs back to the same bytes.
func TestUnpackBitFlips(t *testing.T) {
	for _, g := range goldens() {
		b := readHex(t, g.file)
		for i := 0; i < len(b)*8; i++ {
			c := bytes.Clone(b)
			c[i/8] ^= 1 << (i % 8)
			m, err := iso8583.Unpack(g.spec, c)
			if err != nil {
				if iotpay.ErrorCode(err) != iotpay.EINVALID {
					t.Fatalf("%s bit %d: %v", g.file, i, err)
				}
				continue
			}
			again, err := iso8583.Pack(g.spec, m)
			if err != nil || !bytes.Equal(again, c) {
				t.Fatalf("%s bit %d: repack %X, %v; want %X", g.file, i, again, err, c)
			}
		}
	}
}

// TestNewSpecErrors checks the field descriptions NewSpec refuses.
func TestNewSpecErrors(t *testing.T) {
	ok := iso8583.Field{Name: "x", Length: iso8583.Fixed, Max: 3, Content: iso8583.ContentN}
	with := func(n int, f iso8583.Field) map[int]iso8583.Field { return map[int]iso8583.Field{n: f} }
	mod := func(f func(*iso8583.Field)) iso8583.Field { g := ok; f(&g); return g }
	for name, tc := range map[string]struct {
		fields map[int]iso8583.Field
		want   string
	}{
		"field 1":         {with(1, ok), "field 1"},
		"field 65":        {with(65, ok), "tertiary"},
		"field 129":       {with(129, ok), "field 129"},
		"no name":         {with(2, mod(func(f *iso8583.Field) { f.Name = "" })), "no name"},
		"no content":      {with(2, mod(func(f *iso8583.Field) { f.Content = 0 })), "unknown content"},
		"BCD text":        {with(2, mod(func(f *iso8583.Field) { f.Content, f.Encoding = iso8583.ContentANS, iso8583.BCD })), "BCD content"},
		"zero max":        {with(2, mod(func(f *iso8583.Field) { f.Max = 0 })), "max length 0"},
		"LLVAR over 99":   {with(2, mod(func(f *iso8583.Field) { f.Length, f.Max = iso8583.LLVAR, 100 })), "too large for LLVAR"},
		"LLLVAR over 999": {with(2, mod(func(f *iso8583.Field) { f.Length, f.Max = iso8583.LLLVAR, 1000 })), "too large for LLLVAR"},
		"fixed too large": {with(2, mod(func(f *iso8583.Field) { f.Max = 9000 })), "too large"},
		"bad length type": {with(2, mod(func(f *iso8583.Field) { f.Length = 7 })), "unknown length type"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := iso8583.NewSpec("s", iso8583.ASCII, iso8583.BitmapBinary, tc.fields)
			wantInvalid(t, err, tc.want)
		})
	}
	_, err := iso8583.NewSpec("", iso8583.ASCII, iso8583.BitmapBinary, nil)
	wantInvalid(t, err, "name")
}

package iso8583_test

import (
	"bytes"
	"testing"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector/iso8583"
)

// addSeeds adds b and damaged variants of it to the corpus.
func addSeeds(f *testing.F, b []byte) {
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add(b[:len(b)-1])
	f.Add(append(bytes.Clone(b), 0x00))
	g := bytes.Clone(b)
	g[len(g)/2] ^= 0xff
	f.Add(g)
	g = bytes.Clone(b)
	g[4] ^= 0x80 // bit 1 of an ASCII MTI's bitmap
	f.Add(g)
}

func seedFiles() []string {
	var names []string
	for _, g := range goldens() {
		names = append(names, g.file)
	}
	return names
}

// FuzzUnpack unpacks data with both 1987 specs and a hex-bitmap variant:
// never a panic, only EINVALID errors, and a message that unpacks packs
// back to the same bytes.
func FuzzUnpack(f *testing.F) {
	for _, name := range seedFiles() {
		addSeeds(f, readHex(f, name))
	}
	f.Add([]byte{})
	f.Add([]byte("0800"))
	f.Add([]byte("0800" + "8220000000000000" + "0400000000000000" + "0615143000" + "000042" + "301"))
	hexSpec, err := iso8583.NewSpec("87hex", iso8583.ASCII, iso8583.BitmapHex, iso8583.Spec87ASCII.Fields())
	if err != nil {
		f.Fatal(err)
	}
	specs := []*iso8583.Spec{iso8583.Spec87ASCII, iso8583.Spec87BCD, hexSpec}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, spec := range specs {
			m, err := iso8583.Unpack(spec, data)
			if err != nil {
				if iotpay.ErrorCode(err) != iotpay.EINVALID {
					t.Fatalf("%s: error %v is not EINVALID", spec.Name(), err)
				}
				continue
			}
			b, err := iso8583.Pack(spec, m)
			if err != nil {
				t.Fatalf("%s: unpacked %v does not pack: %v", spec.Name(), m, err)
			}
			if !bytes.Equal(b, data) {
				t.Fatalf("%s: repacked\n %X\nfrom\n %X", spec.Name(), b, data)
			}
		}
	})
}

// FuzzReadFrame reads data with both framings: a frame read writes back
// as the bytes it was read from, within the bound.
func FuzzReadFrame(f *testing.F) {
	for _, name := range seedFiles() {
		b := readHex(f, name)
		for _, fr := range []iso8583.Framing{iso8583.FrameBinary2, iso8583.FrameASCII4} {
			var buf bytes.Buffer
			if err := fr.WriteFrame(&buf, b); err != nil {
				f.Fatal(err)
			}
			addSeeds(f, buf.Bytes())
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0x20, 0x01})
	f.Add([]byte("9999"))
	f.Add([]byte("0003abc"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, fr := range []iso8583.Framing{iso8583.FrameBinary2, iso8583.FrameASCII4} {
			r := bytes.NewReader(data)
			b, err := fr.ReadFrame(r)
			if err != nil {
				if c := iotpay.ErrorCode(err); c != iotpay.EINVALID && c != iotpay.EUNAVAILABLE {
					t.Fatalf("%v: error %v", fr, err)
				}
				continue
			}
			if len(b) == 0 || len(b) > iso8583.MessageBytesMax {
				t.Fatalf("%v: frame of %d bytes", fr, len(b))
			}
			var buf bytes.Buffer
			if err := fr.WriteFrame(&buf, b); err != nil {
				t.Fatal(err)
			}
			consumed := len(data) - r.Len()
			if !bytes.Equal(buf.Bytes(), data[:consumed]) {
				t.Fatalf("%v: rewritten %X, read from %X", fr, buf.Bytes(), data[:consumed])
			}
		}
	})
}

// FuzzDecodeState decodes data as the client decodes what it loads from
// its state store: never a panic, only EINVALID errors, and a state that
// decodes encodes back to the same bytes.
func FuzzDecodeState(f *testing.F) {
	good := readGoldenState(f)
	addSeeds(f, good)
	for _, s := range []string{
		"", "null", "{}", "[]", `{"v":1}`, `{"v":2}`, `{"v":"1"}`, `{"v":1e0}`,
		`{"v":1,"mti":"0100","stan":"000001","transmission":"0615143025","rrn":"000000000001","approval":"",` +
			`"pan":"4111111111111111","expiry":"","mid":"M","tid":"T","currency":"978","amount":1,"captured":0,"refunded":0,"voided":true}`,
	} {
		f.Add([]byte(s))
	}
	f.Add(bytes.Replace(good, []byte(`"voided":false`), []byte(`"voided":false,"voided":true`), 1))
	f.Add(bytes.Replace(good, []byte(`"refunded":400`), []byte(`"refunded":-9223372036854775808`), 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := iso8583.ReencodeState(data)
		if err != nil {
			if iotpay.ErrorCode(err) != iotpay.EINVALID {
				t.Fatalf("error %v is not EINVALID", err)
			}
			return
		}
		if !bytes.Equal(b, data) {
			t.Fatalf("encoded again as\n %s\nfrom\n %s", b, data)
		}
	})
}

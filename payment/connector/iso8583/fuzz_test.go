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

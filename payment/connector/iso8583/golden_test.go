package iso8583_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iotpay/iotpay/payment/connector/iso8583"
)

// readHex reads an annotated hex file of testdata: one segment of the
// message per line, "#" starting a comment.
func readHex(tb testing.TB, name string) []byte {
	tb.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var b []byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.Join(strings.Fields(line), "")
		p, err := hex.DecodeString(line)
		if err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		b = append(b, p...)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return b
}

// Values shared by the samples, as the 1987 layout gives them.
const (
	pan      = "4111111111111111"
	rrn      = "123456789012"
	terminal = "TERM0001"
	merchant = "MERCHANT0000001"
	location = "IOTPAY VENDING 1       BERLIN         DE" // name 23, city 13, region 2, country 2
)

type golden struct {
	file   string
	spec   *iso8583.Spec
	mti    string
	fields map[int]string
}

func goldens() []golden {
	auth := map[int]string{
		2: pan, 3: "000000", 4: "000000001250", 7: "0615143025", 11: "000123", 12: "163025",
		13: "0615", 14: "2812", 18: "5999", 22: "012", 25: "00", 32: "123456", 37: rrn,
		41: terminal, 42: merchant, 43: location, 49: "978",
	}
	rev := map[int]string{
		2: pan, 3: "000000", 4: "000000001250", 7: "0615143110", 11: "000124", 12: "163110",
		13: "0615", 14: "2812", 32: "123456", 37: rrn, 39: "68", 41: terminal, 42: merchant, 49: "978",
		90: "0100" + "000123" + "0615143025" + "00000123456" + "00000000000",
	}
	sale := map[int]string{
		3: "000000", 4: "000000002000", 7: "0615150000", 11: "000200", 12: "170000", 13: "0615",
		22: "021", 25: "00", 32: "123456", 35: "4111111111111111=2812101123456789", 37: "000000000200",
		41: terminal, 42: merchant, 49: "840", 52: "\x01\x23\x45\x67\x89\xab\xcd\xef",
		54: "0002840C000000000500",
	}
	return []golden{
		{"0100_auth.ascii.hex", iso8583.Spec87ASCII, "0100", auth},
		{"0110_approved.ascii.hex", iso8583.Spec87ASCII, "0110", map[int]string{
			2: pan, 3: "000000", 4: "000000001250", 7: "0615143025", 11: "000123", 12: "163025",
			13: "0615", 32: "123456", 37: rrn, 38: "A1B2C3", 39: "00", 41: terminal, 42: merchant, 49: "978",
		}},
		{"0400_reversal.ascii.hex", iso8583.Spec87ASCII, "0400", rev},
		{"0800_echo.ascii.hex", iso8583.Spec87ASCII, "0800", map[int]string{7: "0615143000", 11: "000042", 70: "301"}},
		{"0200_track2.ascii.hex", iso8583.Spec87ASCII, "0200", sale},
		{"0400_partial.ascii.hex", iso8583.Spec87ASCII, "0400", map[int]string{
			2: pan, 3: "000000", 4: "000000002000", 7: "0615150100", 11: "000201", 32: "123456",
			37: "000000000200", 39: "00", 41: terminal, 42: merchant, 49: "840",
			90:  "0200" + "000200" + "0615150000" + "00000123456" + "00000000000",
			95:  "000000001500" + "000000001500" + "C00000000" + "C00000000",
			128: "\x11\x22\x33\x44\x55\x66\x77\x88",
		}},
		{"0100_auth.bcd.hex", iso8583.Spec87BCD, "0100", auth},
		{"0400_reversal.bcd.hex", iso8583.Spec87BCD, "0400", rev},
		{"0810_echo.bcd.hex", iso8583.Spec87BCD, "0810", map[int]string{7: "0615143000", 11: "000042", 39: "00", 70: "301"}},
		{"0200_track2.bcd.hex", iso8583.Spec87BCD, "0200", sale},
	}
}

// TestGolden decodes messages built by hand from the published layout
// field by field, and packs them back to the same bytes.
func TestGolden(t *testing.T) {
	for _, g := range goldens() {
		t.Run(g.file, func(t *testing.T) {
			b := readHex(t, g.file)
			m, err := iso8583.Unpack(g.spec, b)
			if err != nil {
				t.Fatal(err)
			}
			if m.MTI != g.mti {
				t.Errorf("MTI %q, want %q", m.MTI, g.mti)
			}
			for n, want := range g.fields {
				if got, ok := m.Lookup(n); !ok {
					t.Errorf("field %d absent, want %q", n, want)
				} else if got != want {
					t.Errorf("field %d = %q, want %q", n, got, want)
				}
			}
			for _, n := range m.Numbers() {
				if _, ok := g.fields[n]; !ok {
					t.Errorf("unexpected field %d = %q", n, m.Get(n))
				}
			}
			again, err := iso8583.Pack(g.spec, &iso8583.Message{MTI: g.mti, Fields: g.fields})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, b) {
				t.Errorf("Pack of the expected fields:\n got %X\nwant %X", again, b)
			}
		})
	}
}

// TestGoldenOriginalData splits field 90 of the reversal sample.
func TestGoldenOriginalData(t *testing.T) {
	m, err := iso8583.Unpack(iso8583.Spec87ASCII, readHex(t, "0400_reversal.ascii.hex"))
	if err != nil {
		t.Fatal(err)
	}
	od, err := iso8583.ParseOriginalData(m.Get(iso8583.FieldOriginalData))
	if err != nil {
		t.Fatal(err)
	}
	want := iso8583.OriginalData{MTI: "0100", STAN: "000123", Transmission: "0615143025", Acquirer: "00000123456", Forwarder: "00000000000"}
	if od != want {
		t.Errorf("original data %+v, want %+v", od, want)
	}
	s, err := want.String()
	if err != nil || s != m.Get(iso8583.FieldOriginalData) {
		t.Errorf("String() = %q, %v", s, err)
	}
	short := iso8583.OriginalData{MTI: "0100", STAN: "000123", Transmission: "0615143025", Acquirer: "123456"}
	if s2, err := short.String(); err != nil || s2 != s {
		t.Errorf("zero fill: %q, %v", s2, err)
	}
}

package mqttload

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// The expected bytes below are derived by hand from the MQTT 3.1.1
// specification (§2.2.3 remaining length, §3.1 CONNECT, §3.3 PUBLISH).

func TestAppendRemainingLen(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x00}},
		{127, []byte{0x7f}},
		{128, []byte{0x80, 0x01}},
		{16383, []byte{0xff, 0x7f}},
		{16384, []byte{0x80, 0x80, 0x01}},
		{2097151, []byte{0xff, 0xff, 0x7f}},
		{2097152, []byte{0x80, 0x80, 0x80, 0x01}},
		{remainingLenMax, []byte{0xff, 0xff, 0xff, 0x7f}},
	} {
		if got := appendRemainingLen(nil, tc.n); !bytes.Equal(got, tc.want) {
			t.Errorf("appendRemainingLen(%d) = % x, want % x", tc.n, got, tc.want)
		}
	}
}

func TestAppendConnect(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    connectOptions
		want []byte
	}{
		{"client id only", connectOptions{clientID: "c1", keepalive: 60}, []byte{
			0x10, 14, // CONNECT, remaining length
			0, 4, 'M', 'Q', 'T', 'T', 4, // protocol name, level 4 (3.1.1)
			0x02,  // clean session
			0, 60, // keepalive
			0, 2, 'c', '1',
		}},
		{"user name and password", connectOptions{clientID: "c1", username: "u", password: "p", keepalive: 300}, []byte{
			0x10, 20,
			0, 4, 'M', 'Q', 'T', 'T', 4,
			0xc2, // user name, password, clean session
			0x01, 0x2c,
			0, 2, 'c', '1',
			0, 1, 'u',
			0, 1, 'p',
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := appendConnect(nil, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("CONNECT (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := appendConnect(nil, connectOptions{clientID: "c", password: "p"}); err == nil {
		t.Error("a password without a user name was encoded")
	}
	if _, err := appendConnect(nil, connectOptions{clientID: strings.Repeat("c", stringBytesMax+1)}); err == nil {
		t.Error("a client id over the bound was encoded")
	}
}

func TestPublishTemplate(t *testing.T) {
	pt, err := newPublishTemplate("a/b", []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	got := pt.append([]byte{0xee}, 10)
	got = pt.append(got, 0xabcd)
	one := func(hi, lo byte) []byte {
		return []byte{0x32, 9, 0, 3, 'a', '/', 'b', hi, lo, 'h', 'i'} // PUBLISH QoS 1
	}
	want := append(append([]byte{0xee}, one(0, 10)...), one(0xab, 0xcd)...)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PUBLISH (-want +got):\n%s", diff)
	}

	// A payload needing a two-byte remaining length.
	pt, err = newPublishTemplate("t", make([]byte, 200))
	if err != nil {
		t.Fatal(err)
	}
	if got := pt.append(nil, 1)[:3]; !bytes.Equal(got, []byte{0x32, 0xcd, 0x01}) { // 2+1+2+200 = 205
		t.Errorf("PUBLISH header % x", got)
	}
	if _, err := newPublishTemplate("", nil); err == nil {
		t.Error("an empty topic was encoded")
	}
}

func TestReadPacket(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []byte
		max     int
		want    packet
		wantErr error
	}{
		{"CONNACK", []byte{0x20, 2, 0, 0}, 2, packet{typ: typeConnack, body: []byte{0, 0}}, nil},
		{"PUBACK", []byte{0x40, 2, 0x12, 0x34}, 2, packet{typ: typePuback, body: []byte{0x12, 0x34}}, nil},
		{"flags kept", []byte{0x62, 2, 0, 1}, 2, packet{typ: 6, flags: 2, body: []byte{0, 1}}, nil},
		{"empty body", []byte{0xd0, 0}, 2, packet{typ: 13, body: []byte{}}, nil},
		{"two-byte length", append([]byte{0x30, 0x80, 0x01}, make([]byte, 128)...), 128,
			packet{typ: typePublish, body: make([]byte, 128)}, nil},
		{"nothing", nil, 2, packet{}, io.EOF},
		{"no length", []byte{0x40}, 2, packet{}, io.ErrUnexpectedEOF},
		{"short body", []byte{0x40, 2, 0}, 2, packet{}, io.ErrUnexpectedEOF},
		{"over the bound", []byte{0x40, 3, 0, 0, 0}, 2, packet{}, errTooLarge},
		{"overlong length", []byte{0x40, 0x82, 0x00, 0, 0}, 2, packet{}, errMalformed},
		{"five-byte length", []byte{0x40, 0xff, 0xff, 0xff, 0xff, 0x7f}, remainingLenMax, packet{}, errMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := readPacket(bufio.NewReader(bytes.NewReader(tc.in)), nil, tc.max)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(packet{}), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("packet (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseConnack(t *testing.T) {
	for _, tc := range []struct {
		name    string
		p       packet
		wantErr error
	}{
		{"accepted", packet{typ: typeConnack, body: []byte{0, 0}}, nil},
		{"not authorized", packet{typ: typeConnack, body: []byte{0, 5}}, errConnRefused},
		{"identifier rejected", packet{typ: typeConnack, body: []byte{0, 2}}, errConnRefused},
		{"unknown code", packet{typ: typeConnack, body: []byte{0, 6}}, errMalformed},
		{"session present", packet{typ: typeConnack, body: []byte{1, 0}}, errMalformed},
		{"reserved flag", packet{typ: typeConnack, body: []byte{2, 0}}, errMalformed},
		{"fixed header flags", packet{typ: typeConnack, flags: 1, body: []byte{0, 0}}, errMalformed},
		{"MQTT 5 properties", packet{typ: typeConnack, body: []byte{0, 0, 0}}, errMalformed},
		{"not a CONNACK", packet{typ: typePuback, body: []byte{0, 1}}, errUnexpected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := parseConnack(tc.p); !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestParsePuback(t *testing.T) {
	for _, tc := range []struct {
		name    string
		p       packet
		want    uint16
		wantErr error
	}{
		{"id 1", packet{typ: typePuback, body: []byte{0, 1}}, 1, nil},
		{"id 65535", packet{typ: typePuback, body: []byte{0xff, 0xff}}, 65535, nil},
		{"id 0", packet{typ: typePuback, body: []byte{0, 0}}, 0, errMalformed},
		{"MQTT 5 reason code", packet{typ: typePuback, body: []byte{0, 1, 0x87}}, 0, errMalformed},
		{"flags", packet{typ: typePuback, flags: 2, body: []byte{0, 1}}, 0, errMalformed},
		{"PUBREC", packet{typ: 5, body: []byte{0, 1}}, 0, errUnexpected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePuback(tc.p)
			if got != tc.want || !errors.Is(err, tc.wantErr) {
				t.Errorf("parsePuback = %d, %v; want %d, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// FuzzReadPacket feeds the decoder of brokers' answers arbitrary bytes:
// it must not panic, must respect its bound, and what it accepts must be
// exactly what it consumed (the remaining length is minimal).
func FuzzReadPacket(f *testing.F) {
	// Answers as mochi 2.7.9 and Mosquitto 2.0.11 send them to a 3.1.1
	// client (the live tests read them with this decoder): CONNACK
	// accepted, CONNACK refused ("not authorized"), PUBACKs, and several
	// answers in one read.
	f.Add([]byte{0x20, 0x02, 0x00, 0x00})
	f.Add([]byte{0x20, 0x02, 0x00, 0x05})
	f.Add([]byte{0x40, 0x02, 0x00, 0x01})
	f.Add([]byte{0x40, 0x02, 0xff, 0xc0})
	f.Add([]byte{0x20, 0x02, 0x00, 0x00, 0x40, 0x02, 0x00, 0x01, 0x40, 0x02, 0x00, 0x02})
	// An MQTT 5 CONNACK and DISCONNECT, which a 3.1.1 client must refuse.
	f.Add([]byte{0x20, 0x03, 0x00, 0x00, 0x00})
	f.Add([]byte{0xe0, 0x02, 0x8d, 0x00})
	f.Add([]byte{0x40, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		var buf []byte
		consumed := 0
		for {
			p, b, err := readPacket(r, buf, answerBytesMax)
			buf = b
			if err != nil {
				return
			}
			if len(p.body) > answerBytesMax {
				t.Fatalf("body of %d bytes over the bound", len(p.body))
			}
			enc := appendRemainingLen([]byte{p.typ<<4 | p.flags}, len(p.body))
			enc = append(enc, p.body...)
			if !bytes.Equal(enc, in[consumed:consumed+len(enc)]) {
				t.Fatalf("packet %+v re-encodes as % x, read from % x", p, enc, in[consumed:])
			}
			consumed += len(enc)
			_ = parseConnack(p)
			if id, err := parsePuback(p); err == nil && id == 0 {
				t.Fatal("PUBACK for packet id 0 accepted")
			}
		}
	})
}

package iso8583_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector/iso8583"
)

func TestFrameRoundTrip(t *testing.T) {
	msgs := [][]byte{{0x42}, readHex(t, "0100_auth.ascii.hex"), bytes.Repeat([]byte{7}, iso8583.MessageBytesMax)}
	for _, f := range []iso8583.Framing{iso8583.FrameBinary2, iso8583.FrameASCII4} {
		var buf bytes.Buffer
		for _, m := range msgs {
			if err := f.WriteFrame(&buf, m); err != nil {
				t.Fatal(err)
			}
		}
		// One byte at a time: a frame may arrive in pieces.
		r := iotest.OneByteReader(&buf)
		for _, m := range msgs {
			got, err := f.ReadFrame(r)
			if err != nil {
				t.Fatalf("%v: %v", f, err)
			}
			if !bytes.Equal(got, m) {
				t.Fatalf("%v: read %d bytes, want %d", f, len(got), len(m))
			}
		}
		_, err := f.ReadFrame(r)
		if !errors.Is(err, io.EOF) || iotpay.ErrorCode(err) != iotpay.EUNAVAILABLE {
			t.Errorf("%v at the end: %v, want EUNAVAILABLE wrapping io.EOF", f, err)
		}
	}
}

func TestFrameHeaders(t *testing.T) {
	var buf bytes.Buffer
	if err := iso8583.WriteFrame(&buf, []byte("0800")); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != "\x00\x040800" {
		t.Errorf("binary2 frame %q", got)
	}
	buf.Reset()
	if err := iso8583.FrameASCII4.WriteFrame(&buf, bytes.Repeat([]byte{'x'}, 1234)); err != nil {
		t.Fatal(err)
	}
	if got := buf.String()[:4]; got != "1234" {
		t.Errorf("ascii4 header %q", got)
	}
	b, err := iso8583.ReadFrame(strings.NewReader("\x00\x040800"))
	if err != nil || string(b) != "0800" {
		t.Errorf("ReadFrame: %q, %v", b, err)
	}
}

func TestFrameErrors(t *testing.T) {
	big := string([]byte{iso8583.MessageBytesMax >> 8, iso8583.MessageBytesMax&0xff + 1})
	for _, tc := range []struct {
		name  string
		f     iso8583.Framing
		in    string
		code  iotpay.Code
		wants string
	}{
		{"header cut", iso8583.FrameBinary2, "\x00", iotpay.EINVALID, "header cut short"},
		{"zero length", iso8583.FrameBinary2, "\x00\x00", iotpay.EINVALID, "frame length 0"},
		{"over the bound", iso8583.FrameBinary2, big + "x", iotpay.EINVALID, "frame length 8193"},
		{"body cut", iso8583.FrameBinary2, "\x00\x05abc", iotpay.EINVALID, "cut short"},
		{"ascii not digits", iso8583.FrameASCII4, "00x4abcd", iotpay.EINVALID, "not 4 digits"},
		{"ascii over the bound", iso8583.FrameASCII4, "9999", iotpay.EINVALID, "frame length 9999"},
		{"ascii zero", iso8583.FrameASCII4, "0000", iotpay.EINVALID, "frame length 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.f.ReadFrame(strings.NewReader(tc.in))
			if iotpay.ErrorCode(err) != tc.code || !strings.Contains(err.Error(), tc.wants) {
				t.Errorf("%v, want %s with %q", err, tc.code, tc.wants)
			}
		})
	}
	_, err := iso8583.ReadFrame(iotest.ErrReader(errors.New("reset")))
	if iotpay.ErrorCode(err) != iotpay.EUNAVAILABLE {
		t.Errorf("read error: %v, want EUNAVAILABLE", err)
	}
	for _, n := range []int{0, iso8583.MessageBytesMax + 1} {
		if err := iso8583.WriteFrame(io.Discard, make([]byte, n)); iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("write %d bytes: %v", n, err)
		}
	}
	if err := iso8583.WriteFrame(failWriter{}, []byte("x")); iotpay.ErrorCode(err) != iotpay.EUNAVAILABLE {
		t.Errorf("write error: %v", err)
	}
	if _, err := iso8583.ParseFraming("ascii2"); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("ParseFraming: %v", err)
	}
	for _, f := range []iso8583.Framing{iso8583.FrameBinary2, iso8583.FrameASCII4} {
		if g, err := iso8583.ParseFraming(f.String()); err != nil || g != f {
			t.Errorf("ParseFraming(%v) = %v, %v", f, g, err)
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

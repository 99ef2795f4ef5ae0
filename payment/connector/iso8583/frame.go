package iso8583

import (
	"errors"
	"io"

	"github.com/iotpay/iotpay"
)

// Framing is how messages are delimited on a TCP stream: each is preceded
// by a header giving its length in bytes, the header not included. A
// length must be 1 to MessageBytesMax.
type Framing uint8

// Framings.
const (
	// FrameBinary2 is a 2-byte big-endian binary length: the default.
	FrameBinary2 Framing = iota
	// FrameASCII4 is 4 ASCII decimal digits, zero-filled ("0123").
	FrameASCII4
)

// String is the framing's name, as ParseFraming takes it.
func (f Framing) String() string {
	switch f {
	case FrameBinary2:
		return "binary2"
	case FrameASCII4:
		return "ascii4"
	}
	return "unknown"
}

// ParseFraming returns the framing named s ("binary2" or "ascii4").
func ParseFraming(s string) (Framing, error) {
	switch s {
	case "binary2":
		return FrameBinary2, nil
	case "ascii4":
		return FrameASCII4, nil
	}
	return 0, iotpay.Errorf(iotpay.EINVALID, "iso8583: unknown framing %q (binary2 or ascii4)", s)
}

func (f Framing) headerBytes() int {
	if f == FrameASCII4 {
		return 4
	}
	return 2
}

// ReadFrame reads one message framed with FrameBinary2.
func ReadFrame(r io.Reader) ([]byte, error) { return FrameBinary2.ReadFrame(r) }

// WriteFrame writes b framed with FrameBinary2.
func WriteFrame(w io.Writer, b []byte) error { return FrameBinary2.WriteFrame(w, b) }

// ReadFrame reads one message: its header, then as many bytes as the
// header says, never more than MessageBytesMax. A stream that ends
// cleanly before a header gives an EUNAVAILABLE error that wraps io.EOF;
// a bad header or a frame cut short gives EINVALID; other read errors
// give EUNAVAILABLE. After an error the stream is out of step and must be
// closed.
func (f Framing) ReadFrame(r io.Reader) ([]byte, error) {
	var h [4]byte
	hdr := h[:f.headerBytes()]
	if _, err := io.ReadFull(r, hdr); err != nil {
		switch {
		case errors.Is(err, io.EOF):
			return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "iso8583: connection closed", io.EOF)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, iotpay.Wrap(iotpay.EINVALID, "iso8583: frame header cut short", err)
		}
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "iso8583: reading frame header", err)
	}
	var n int
	if f == FrameASCII4 {
		for _, x := range hdr {
			if x < '0' || x > '9' {
				return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: frame header %q is not 4 digits", hdr)
			}
			n = n*10 + int(x-'0')
		}
	} else {
		n = int(hdr[0])<<8 | int(hdr[1])
	}
	if n == 0 || n > MessageBytesMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: frame length %d out of 1..%d", n, MessageBytesMax)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, iotpay.Wrap(iotpay.EINVALID, "iso8583: frame cut short", io.ErrUnexpectedEOF)
		}
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "iso8583: reading frame", err)
	}
	return b, nil
}

// WriteFrame writes b with its header in one Write, so a frame is never
// split between writers or segments for want of a buffer.
func (f Framing) WriteFrame(w io.Writer, b []byte) error {
	if len(b) == 0 || len(b) > MessageBytesMax {
		return iotpay.Errorf(iotpay.EINVALID, "iso8583: frame length %d out of 1..%d", len(b), MessageBytesMax)
	}
	buf := make([]byte, f.headerBytes(), f.headerBytes()+len(b))
	if f == FrameASCII4 {
		n := len(b)
		for i := 3; i >= 0; i-- {
			buf[i] = byte('0' + n%10)
			n /= 10
		}
	} else {
		buf[0], buf[1] = byte(len(b)>>8), byte(len(b))
	}
	buf = append(buf, b...)
	if _, err := w.Write(buf); err != nil {
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "iso8583: writing frame", err)
	}
	return nil
}

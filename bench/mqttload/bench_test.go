package mqttload

import (
	"bufio"
	"bytes"
	"testing"
)

// BenchmarkPublishAppend measures encoding a batch of 64 publishes of 64
// bytes, as a client's writer does.
func BenchmarkPublishAppend(b *testing.B) {
	pt, err := newPublishTemplate("iotpay/v1/dev_01JZ0000000000000000000000/status", make([]byte, 64))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 64*len(pt.b))
	b.ReportAllocs()
	for b.Loop() {
		buf = buf[:0]
		for id := range uint16(64) {
			buf = pt.append(buf, id+1)
		}
	}
}

// BenchmarkReadPuback measures decoding a PUBACK, as a client's reader
// does for every publish.
func BenchmarkReadPuback(b *testing.B) {
	in := bytes.Repeat([]byte{0x40, 0x02, 0x00, 0x01}, 1024)
	src := bytes.NewReader(in)
	r := bufio.NewReader(src)
	var buf []byte
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%1024 == 0 {
			src.Reset(in)
			r.Reset(src)
		}
		p, bb, err := readPacket(r, buf, answerBytesMax)
		buf = bb
		if err != nil {
			b.Fatal(err)
		}
		if _, err := parsePuback(p); err != nil {
			b.Fatal(err)
		}
	}
}

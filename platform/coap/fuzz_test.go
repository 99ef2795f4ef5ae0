package coap

import (
	"bytes"
	"context"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// coapSeed encodes a CoAP message as it arrives in a DTLS record.
func coapSeed(f *testing.F, code codes.Code, opts message.Options, payload []byte) []byte {
	m := pool.NewMessage(context.Background())
	m.SetCode(code)
	m.SetMessageID(7)
	m.SetType(message.Confirmable)
	m.SetToken(message.Token{1, 2, 3, 4})
	m.ResetOptionsTo(opts)
	if payload != nil {
		m.SetBody(bytes.NewReader(payload))
	}
	b, err := m.MarshalWithEncoder(coder.DefaultCoder)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzPayRequest decodes a datagram as the CoAP server does (go-coap's UDP
// coder: header, token, options, payload) and checks it as a /pay request:
// a message is refused with one of the codes the server documents, or its
// body is handed on, non-empty and within PayloadBytesMax, only for a POST
// with Content-Format 18 or 42.
func FuzzPayRequest(f *testing.F) {
	path := message.Option{ID: message.URIPath, Value: []byte("pay")}
	cose := message.Option{ID: message.ContentFormat, Value: []byte{byte(message.AppCoseSign1)}}
	octets := message.Option{ID: message.ContentFormat, Value: []byte{byte(message.AppOctets)}}
	block1 := message.Option{ID: message.Block1, Value: []byte{0x0e}}
	good := coapSeed(f, codes.POST, message.Options{path, cose}, []byte{0xd2, 0x84, 0x43})
	m := pool.NewMessage(context.Background())
	if _, err := m.UnmarshalWithDecoder(coder.DefaultCoder, good); err != nil {
		f.Fatal(err)
	}
	if body, refusal := payBody(m); refusal != codes.Empty || !bytes.Equal(body, []byte{0xd2, 0x84, 0x43}) {
		f.Fatalf("a good request refused with %v (%x)", refusal, body)
	}
	f.Add(good)
	f.Add(coapSeed(f, codes.POST, message.Options{path, octets}, make([]byte, 100)))
	f.Add(coapSeed(f, codes.POST, message.Options{path, cose, block1}, make([]byte, 1024)))
	f.Add(coapSeed(f, codes.GET, message.Options{path}, nil))
	f.Add(coapSeed(f, codes.POST, message.Options{path, {ID: message.ContentFormat, Value: []byte{0, 50}}}, []byte("{}")))
	f.Add(coapSeed(f, codes.POST, message.Options{path, cose}, nil))
	f.Add([]byte{0x44, 0x02, 0x00, 0x07, 1, 2, 3, 4, 0xff})
	refusals := map[codes.Code]bool{codes.MethodNotAllowed: true, codes.UnsupportedMediaType: true, codes.BadRequest: true,
		codes.RequestEntityTooLarge: true}
	f.Fuzz(func(t *testing.T, datagram []byte) {
		m := pool.NewMessage(context.Background())
		if _, err := m.UnmarshalWithDecoder(coder.DefaultCoder, datagram); err != nil {
			return
		}
		body, refusal := payBody(m)
		if refusal != codes.Empty {
			if !refusals[refusal] || body != nil {
				t.Fatalf("refused with %v and %d bytes", refusal, len(body))
			}
			return
		}
		cf, err := m.ContentFormat()
		if m.Code() != codes.POST || err != nil || (cf != message.AppCoseSign1 && cf != message.AppOctets) ||
			len(body) == 0 || len(body) > PayloadBytesMax {
			t.Fatalf("%v with Content-Format %v (%v) and %d bytes was taken", m.Code(), cf, err, len(body))
		}
	})
}

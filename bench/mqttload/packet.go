package mqttload

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The generator speaks MQTT 3.1.1 (protocol level 4): it sends CONNECT,
// PUBLISH at QoS 1 and DISCONNECT, and reads CONNACK and PUBACK (it never
// pings: a publishing client is not silent).
// 3.1.1 rather than 5 because a broker announces its Receive Maximum to
// MQTT 5 clients only, and the embedded broker's (8) would cap the window.

// Packet types (MQTT 3.1.1 §2.2.1).
const (
	typeConnect    = 1
	typeConnack    = 2
	typePublish    = 3
	typePuback     = 4
	typeDisconnect = 14
)

// Bounds of the codec.
const (
	// remainingLenMax is the largest remaining length MQTT can encode
	// (four bytes of seven bits).
	remainingLenMax = 1<<28 - 1
	// answerBytesMax bounds the body of a packet a broker sends the
	// generator: every answer it expects has two bytes at most.
	answerBytesMax = 2
	// stringBytesMax is MQTT's bound on a length-prefixed string.
	stringBytesMax = 1<<16 - 1
)

// Errors of the decoder.
var (
	errMalformed   = errors.New("mqttload: malformed packet")
	errUnexpected  = errors.New("mqttload: unexpected packet")
	errTooLarge    = errors.New("mqttload: packet over the bound")
	errConnRefused = errors.New("mqttload: connection refused by broker")
)

// packet is a packet read from a broker: its type, its fixed header's
// flags and its body (the bytes after the remaining length).
type packet struct {
	typ   byte
	flags byte
	body  []byte
}

// appendRemainingLen appends n in MQTT's variable-length encoding.
func appendRemainingLen(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// connectOptions are a CONNECT's fields the generator sets.
type connectOptions struct {
	clientID  string
	username  string
	password  string
	keepalive uint16 // seconds
}

// appendConnect appends a CONNECT with a clean session and no will.
func appendConnect(b []byte, o connectOptions) ([]byte, error) {
	if len(o.clientID) > stringBytesMax || len(o.username) > stringBytesMax || len(o.password) > stringBytesMax {
		return b, fmt.Errorf("mqttload: CONNECT field over %d bytes", stringBytesMax)
	}
	if o.password != "" && o.username == "" {
		return b, errors.New("mqttload: a password needs a user name in MQTT 3.1.1")
	}
	flags := byte(0x02) // clean session
	n := 10 + 2 + len(o.clientID)
	if o.username != "" {
		flags |= 0x80
		n += 2 + len(o.username)
	}
	if o.password != "" {
		flags |= 0x40
		n += 2 + len(o.password)
	}
	b = append(b, typeConnect<<4)
	b = appendRemainingLen(b, n)
	b = appendString(b, "MQTT")
	b = append(b, 4, flags) // protocol level 4: 3.1.1
	b = binary.BigEndian.AppendUint16(b, o.keepalive)
	b = appendString(b, o.clientID)
	if o.username != "" {
		b = appendString(b, o.username)
	}
	if o.password != "" {
		b = appendString(b, o.password)
	}
	return b, nil
}

// publishTemplate is a QoS 1 PUBLISH encoded once, with its packet id at
// idAt, so that a publish costs a copy and two stores.
type publishTemplate struct {
	b    []byte
	idAt int
}

func newPublishTemplate(topic string, payload []byte) (publishTemplate, error) {
	if topic == "" || len(topic) > stringBytesMax {
		return publishTemplate{}, fmt.Errorf("mqttload: topic of %d bytes", len(topic))
	}
	n := 2 + len(topic) + 2 + len(payload)
	if n > remainingLenMax {
		return publishTemplate{}, errTooLarge
	}
	b := []byte{typePublish<<4 | 1<<1} // QoS 1, not dup, not retained
	b = appendRemainingLen(b, n)
	b = appendString(b, topic)
	at := len(b)
	b = append(b, 0, 0)
	b = append(b, payload...)
	return publishTemplate{b: b, idAt: at}, nil
}

// append appends the publish with packet id id.
func (t publishTemplate) append(b []byte, id uint16) []byte {
	n := len(b)
	b = append(b, t.b...)
	binary.BigEndian.PutUint16(b[n+t.idAt:], id)
	return b
}

// disconnect is MQTT 3.1.1's DISCONNECT.
var disconnect = []byte{typeDisconnect << 4, 0}

// readPacket reads one packet from r into buf, which it returns grown if
// need be, refusing a body over max bytes. The remaining length must be
// encoded in as few bytes as possible.
func readPacket(r *bufio.Reader, buf []byte, max int) (packet, []byte, error) {
	h, err := r.ReadByte()
	if err != nil {
		return packet{}, buf, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		d, err := r.ReadByte()
		if err != nil {
			return packet{}, buf, unexpectedEOF(err)
		}
		if i > 0 && d == 0 {
			return packet{}, buf, errMalformed // a longer encoding than needed
		}
		n += int(d&0x7f) * mult
		if d&0x80 == 0 {
			break
		}
		if i == 3 {
			return packet{}, buf, errMalformed // more than four bytes
		}
		mult *= 128
	}
	if n > max {
		return packet{}, buf, errTooLarge
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	body := buf[:n]
	if _, err := io.ReadFull(r, body); err != nil {
		return packet{}, buf, unexpectedEOF(err)
	}
	return packet{typ: h >> 4, flags: h & 0x0f, body: body}, buf, nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// connackCodes says why a 3.1.1 broker refused a connection.
var connackCodes = [...]string{
	1: "unacceptable protocol version",
	2: "identifier rejected",
	3: "server unavailable",
	4: "bad user name or password",
	5: "not authorized",
}

// parseConnack checks a CONNACK accepting a clean session.
func parseConnack(p packet) error {
	switch {
	case p.typ != typeConnack:
		return fmt.Errorf("%w: type %d, want CONNACK", errUnexpected, p.typ)
	case p.flags != 0 || len(p.body) != 2 || p.body[0]&^1 != 0:
		return errMalformed
	case p.body[0] != 0:
		// A clean session cannot be present [MQTT-3.2.2-1].
		return fmt.Errorf("%w: session present on a clean session", errMalformed)
	case p.body[1] == 0:
		return nil
	case int(p.body[1]) < len(connackCodes):
		return fmt.Errorf("%w: %s", errConnRefused, connackCodes[p.body[1]])
	}
	return fmt.Errorf("%w: return code %d", errMalformed, p.body[1])
}

// Connect sends an MQTT 3.1.1 CONNECT on c (a clean session, clientID as
// client identifier and username, keepalive seconds) and checks the
// CONNACK: a device's connection with nothing more, as a benchmark that
// only holds connections opens them. Nothing may follow the CONNACK
// before the caller sends (the reader may take it).
func Connect(c io.ReadWriter, clientID string, keepalive uint16) error {
	pk, err := appendConnect(nil, connectOptions{clientID: clientID, username: clientID, keepalive: keepalive})
	if err != nil {
		return err
	}
	if _, err := c.Write(pk); err != nil {
		return err
	}
	p, _, err := readPacket(bufio.NewReaderSize(c, 16), nil, answerBytesMax)
	if err != nil {
		return fmt.Errorf("reading CONNACK: %w", err)
	}
	return parseConnack(p)
}

// parsePuback returns the packet id a PUBACK acknowledges.
func parsePuback(p packet) (uint16, error) {
	switch {
	case p.typ != typePuback:
		return 0, fmt.Errorf("%w: type %d, want PUBACK", errUnexpected, p.typ)
	case p.flags != 0 || len(p.body) != 2:
		return 0, errMalformed
	}
	id := binary.BigEndian.Uint16(p.body)
	if id == 0 {
		return 0, errMalformed
	}
	return id, nil
}

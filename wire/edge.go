package wire

import (
	"github.com/iotpay/iotpay"
)

// The edge: constrained devices reach the platform through a gateway
// (iotpay-edge, package edge/gateway). Between device and gateway travel
// Frames, small CBOR arrays that are the payload of one CoAP exchange
// (split into blocks that fit the link's payload budget); between gateway
// and platform, over the gateway's own MQTT/TLS connection, travel Relays
// and RelayAnswers. Both only carry a device's envelopes (a signed
// request, a hello, a sealed message, a log query) and the platform's
// answers as bytes: the gateway neither reads nor can alter them, since
// the device signed or sealed them and the platform verifies them.

// FrameKind says what a Frame is.
type FrameKind uint8

// Frame kinds. Device → gateway: FrameMessage, FramePoll. Gateway →
// device: the others.
const (
	// FrameMessage carries an envelope for the platform in Body.
	FrameMessage FrameKind = 1
	// FramePoll says the device is awake and asks for what waits for it.
	FramePoll FrameKind = 2
	// FrameAnswer carries one of the platform's answers in Body; Wait is
	// how many more wait at the gateway.
	FrameAnswer FrameKind = 3
	// FrameQueued says the message is stored at the gateway (durably) and
	// will reach the platform; its answer waits for a later poll.
	FrameQueued FrameKind = 4
	// FrameNone says nothing waits for the device.
	FrameNone FrameKind = 5
	// FrameBusy says the gateway cannot take the message now (its store
	// is full): nothing was stored; Wait is the seconds to wait.
	FrameBusy FrameKind = 6
	// FrameRefused says the gateway refused the frame (Body: a short
	// reason): a counter not above the last, an unknown device.
	FrameRefused FrameKind = 7
)

// Bounds on frames.
const (
	// FrameBytesMax bounds an encoded frame: an envelope and a few bytes.
	FrameBytesMax = EnvelopeBytesMax + 64
	// frameReasonMax bounds a FrameRefused reason.
	frameReasonMax = 64
)

// Frame is one device↔gateway message: [kind, device, fcnt, body, wait].
// Device is the device's id in 16 bytes (iotpay.IDBytes). FCnt is the
// device's frame counter, strictly increasing across its reboots (it keeps
// it with its state); an answer carries the FCnt of the frame it answers,
// 0 when it answers an earlier one.
type Frame struct {
	_      struct{} `cbor:",toarray"`
	Kind   FrameKind
	Device []byte
	FCnt   uint32
	Body   []byte
	Wait   uint32
}

// DeviceID returns the frame's device id.
func (f *Frame) DeviceID() iotpay.DeviceID {
	var b [16]byte
	copy(b[:], f.Device)
	return iotpay.DeviceID(iotpay.IDFromBytes(iotpay.PrefixDevice, b))
}

// NewFrame returns a frame of kind for device.
func NewFrame(kind FrameKind, device iotpay.DeviceID, fcnt uint32, body []byte) (*Frame, error) {
	id, err := iotpay.IDBytes(iotpay.PrefixDevice, string(device))
	if err != nil {
		return nil, err
	}
	return &Frame{Kind: kind, Device: id[:], FCnt: fcnt, Body: body}, nil
}

// EncodeFrame encodes f in deterministic CBOR.
func EncodeFrame(f *Frame) ([]byte, error) {
	if err := f.validate(); err != nil {
		return nil, err
	}
	return marshal(f)
}

// ParseFrame decodes and checks a frame; any fault is EINVALID.
func ParseFrame(b []byte) (*Frame, error) {
	if len(b) > FrameBytesMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "frame of %d bytes, more than %d", len(b), FrameBytesMax)
	}
	f := &Frame{}
	if err := unmarshalCanonical(b, f); err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "malformed frame", err)
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *Frame) validate() error {
	bad := func(format string, args ...any) error {
		return iotpay.Errorf(iotpay.EINVALID, "frame: "+format, args...)
	}
	if f.Kind < FrameMessage || f.Kind > FrameRefused {
		return bad("unknown kind %d", f.Kind)
	}
	if len(f.Device) != 16 {
		return bad("device id must be 16 bytes")
	}
	if len(f.Body) > EnvelopeBytesMax {
		return bad("body of %d bytes, more than %d", len(f.Body), EnvelopeBytesMax)
	}
	switch f.Kind {
	case FrameMessage, FrameAnswer:
		if len(f.Body) == 0 {
			return bad("kind %d carries a body", f.Kind)
		}
	case FrameRefused:
		if len(f.Body) > frameReasonMax {
			return bad("reason longer than %d bytes", frameReasonMax)
		}
	default:
		if len(f.Body) != 0 {
			return bad("kind %d carries no body", f.Kind)
		}
	}
	if f.Kind == FrameMessage && f.FCnt == 0 {
		return bad("frame counter must start at 1")
	}
	return nil
}

// RelayTopic is where gateway publishes the messages it relays.
func RelayTopic(gateway string) string { return TopicPrefix + gateway + "/relay" }

// RelayAnswerTopic is where the platform answers gateway's relayed
// messages.
func RelayAnswerTopic(gateway string) string { return TopicPrefix + gateway + "/relay/answer" }

// Relay is a device's message as a gateway forwards it to the platform:
// [device, body, seq, fcnt, rx_ms]. Seq is the gateway's own number for it
// (its store's), echoed in the answer; FCnt the device's frame counter;
// RxMs when the gateway heard it.
type Relay struct {
	_      struct{} `cbor:",toarray"`
	Device string
	Body   []byte
	Seq    uint64
	FCnt   uint32
	RxMs   int64
}

// RelayAnswer is the platform's answer to a Relay: [device, body, seq].
// An empty body answers a message the platform took but has no answer for
// (a copy another gateway relayed first).
type RelayAnswer struct {
	_      struct{} `cbor:",toarray"`
	Device string
	Body   []byte
	Seq    uint64
}

// EncodeRelay encodes r.
func EncodeRelay(r *Relay) ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	return marshal(r)
}

// ParseRelay decodes and checks a relayed message; any fault is EINVALID.
func ParseRelay(b []byte) (*Relay, error) {
	if len(b) > FrameBytesMax+64 {
		return nil, iotpay.Errorf(iotpay.EINVALID, "relay of %d bytes, more than %d", len(b), FrameBytesMax+64)
	}
	r := &Relay{}
	if err := unmarshalCanonical(b, r); err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "malformed relay", err)
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Relay) validate() error {
	switch {
	case !iotpay.ValidID(iotpay.PrefixDevice, r.Device):
		return iotpay.Errorf(iotpay.EINVALID, "relay: malformed device id")
	case len(r.Body) == 0 || len(r.Body) > EnvelopeBytesMax:
		return iotpay.Errorf(iotpay.EINVALID, "relay: body must be 1 to %d bytes", EnvelopeBytesMax)
	}
	return nil
}

// EncodeRelayAnswer encodes a.
func EncodeRelayAnswer(a *RelayAnswer) ([]byte, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	return marshal(a)
}

// ParseRelayAnswer decodes and checks a relay answer; any fault is
// EINVALID.
func ParseRelayAnswer(b []byte) (*RelayAnswer, error) {
	if len(b) > FrameBytesMax+64 {
		return nil, iotpay.Errorf(iotpay.EINVALID, "relay answer of %d bytes, more than %d", len(b), FrameBytesMax+64)
	}
	a := &RelayAnswer{}
	if err := unmarshalCanonical(b, a); err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "malformed relay answer", err)
	}
	if err := a.validate(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *RelayAnswer) validate() error {
	switch {
	case !iotpay.ValidID(iotpay.PrefixDevice, a.Device):
		return iotpay.Errorf(iotpay.EINVALID, "relay answer: malformed device id")
	case len(a.Body) > EnvelopeBytesMax:
		return iotpay.Errorf(iotpay.EINVALID, "relay answer: body longer than %d bytes", EnvelopeBytesMax)
	}
	return nil
}

package wire

import (
	"crypto"
	"io"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/iotpay/iotpay"
)

// Version is the message format version this package speaks.
const Version = 1

// Bounds on request fields.
const (
	NonceBytes      = 16
	ChallengeBytes  = 16
	RequestIDLenMax = 64
	EventFieldsMax  = 16
	TextLenMax      = 64
)

// Event is what the device saw: its type and its measurements. Numbers are
// integers in the unit their name says (wh for watt-hours).
type Event struct {
	Type string            `cbor:"1,keyasint" json:"type"`
	Num  map[string]int64  `cbor:"2,keyasint,omitempty" json:"num,omitempty"`
	Str  map[string]string `cbor:"3,keyasint,omitempty" json:"str,omitempty"`
}

// Request is a device's payment request, the payload of a COSE_Sign1 signed
// by the device key. Integer map keys keep frames small.
type Request struct {
	V         uint64 `cbor:"1,keyasint"`
	Device    string `cbor:"2,keyasint"`
	Counter   uint64 `cbor:"3,keyasint"` // strictly increasing per device (the EMV ATC)
	Nonce     []byte `cbor:"4,keyasint"`
	TimeMs    int64  `cbor:"5,keyasint"` // device clock, Unix milliseconds
	RequestID string `cbor:"6,keyasint"` // idempotency key chosen by the device
	Challenge []byte `cbor:"7,keyasint,omitempty"`
	// Either an explicit amount, or an event the platform prices.
	AmountMinor int64  `cbor:"8,keyasint,omitempty"`
	Currency    string `cbor:"9,keyasint,omitempty"`
	Event       *Event `cbor:"10,keyasint,omitempty"`
	// Report is the device's state as it reports it, signed with the
	// request (an event of type EventState carries nothing else).
	Report *Report `cbor:"11,keyasint,omitempty"`
	// Offline says the device paid without the platform, within its
	// product's offline limits (the chip card's offline approval): the
	// request reaches the platform later, through a gateway's store.
	// It carries its amount, and its challenge may be an old one.
	Offline bool `cbor:"12,keyasint,omitempty"`
}

// Time returns the device's clock reading.
func (r *Request) Time() time.Time { return time.UnixMilli(r.TimeMs) }

// Validate checks the request's form; it knows nothing of the device's state.
func (r *Request) Validate() error {
	bad := func(format string, args ...any) error { return iotpay.Errorf(iotpay.EINVALID, format, args...) }
	switch {
	case r.V != Version:
		return bad("unsupported version %d", r.V)
	case !iotpay.ValidID(iotpay.PrefixDevice, r.Device):
		return bad("malformed device id")
	case r.Counter == 0:
		return bad("counter must start at 1")
	case len(r.Nonce) != NonceBytes:
		return bad("nonce must be %d bytes", NonceBytes)
	case r.RequestID == "" || len(r.RequestID) > RequestIDLenMax || !printable(r.RequestID):
		return bad("request id must be 1 to %d printable characters", RequestIDLenMax)
	case r.Challenge != nil && len(r.Challenge) != ChallengeBytes:
		return bad("challenge must be %d bytes", ChallengeBytes)
	case r.AmountMinor < 0:
		return bad("negative amount")
	}
	hasAmount := r.AmountMinor != 0 || r.Currency != ""
	switch {
	case hasAmount && r.Event != nil:
		return bad("request carries both an amount and an event")
	case !hasAmount && r.Event == nil:
		return bad("request carries neither an amount nor an event")
	case hasAmount:
		if r.AmountMinor <= 0 {
			return bad("amount must be positive")
		}
		if !iotpay.Currency(r.Currency).Valid() {
			return bad("unknown currency %q", r.Currency)
		}
	default:
		if err := r.Event.validate(); err != nil {
			return err
		}
	}
	if r.Offline && !hasAmount {
		return bad("an offline request carries its amount")
	}
	if r.Report != nil {
		return r.Report.validate()
	}
	if r.Event != nil && r.Event.Type == EventState {
		return bad("a state event carries a report")
	}
	return nil
}

func (e *Event) validate() error {
	if e.Type == "" || len(e.Type) > TextLenMax || !printable(e.Type) {
		return iotpay.Errorf(iotpay.EINVALID, "event type must be 1 to %d printable characters", TextLenMax)
	}
	if len(e.Num)+len(e.Str) > EventFieldsMax {
		return iotpay.Errorf(iotpay.EINVALID, "event has more than %d fields", EventFieldsMax)
	}
	for k := range e.Num {
		if k == "" || len(k) > TextLenMax || !printable(k) {
			return iotpay.Errorf(iotpay.EINVALID, "bad event field name")
		}
	}
	for k, v := range e.Str {
		if k == "" || len(k) > TextLenMax || !printable(k) || len(v) > TextLenMax || !printable(v) {
			return iotpay.Errorf(iotpay.EINVALID, "bad event field")
		}
	}
	return nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		// Control and format characters (C1 controls, bidi overrides) could
		// disguise an id in logs and receipts.
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}

// SignRequest encodes r and signs it with the device key; kid is the device id.
func SignRequest(s Suite, signer crypto.Signer, rand io.Reader, r *Request) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	payload, err := marshal(r)
	if err != nil {
		return nil, err
	}
	return Sign(s, signer, rand, []byte(r.Device), payload)
}

// ParseRequest decodes a signed request without checking its signature:
// the caller looks up the device named by the kid, then calls Verify on the
// returned envelope. The request inside is validated for form.
func ParseRequest(b []byte) (*Sign1, *Request, error) {
	env, err := ParseSign1(b)
	if err != nil {
		return nil, nil, err
	}
	if env.ContentType != "" {
		return nil, nil, iotpay.Errorf(iotpay.EINVALID, "a handshake message is not a request")
	}
	var r Request
	if err := unmarshalCanonical(env.Payload, &r); err != nil {
		return nil, nil, iotpay.Wrap(iotpay.EINVALID, "malformed request", err)
	}
	if err := r.Validate(); err != nil {
		return nil, nil, err
	}
	if string(env.Kid) != r.Device {
		return nil, nil, iotpay.Errorf(iotpay.EINVALID, "key id does not name the requesting device")
	}
	return env, &r, nil
}

package wire

import (
	"bytes"
	"crypto"
	"io"

	"github.com/iotpay/iotpay"
)

// Outcome is what the platform did with a request.
type Outcome string

// Outcomes.
const (
	Approved Outcome = "approved" // money moved
	Declined Outcome = "declined" // a valid request refused by a limit or rule
	Rejected Outcome = "rejected" // a request refused as malformed, unauthenticated or replayed
	// Review: the amount is held, and an operator approves or declines
	// the payment later; the device should not deliver yet.
	Review Outcome = "review"
)

// Receipt is the platform's signed answer to one request. It is bound to the
// request by RequestHash and carries the challenge the device's next request
// must echo, so each answer authenticates the platform to the device.
type Receipt struct {
	V           uint64   `cbor:"1,keyasint"`
	Device      string   `cbor:"2,keyasint"`
	RequestID   string   `cbor:"3,keyasint,omitempty"`
	RequestHash []byte   `cbor:"4,keyasint"`
	Outcome     Outcome  `cbor:"5,keyasint"`
	Code        string   `cbor:"6,keyasint,omitempty"`
	Reason      string   `cbor:"7,keyasint,omitempty"`
	PaymentID   string   `cbor:"8,keyasint,omitempty"`
	AmountMinor int64    `cbor:"9,keyasint,omitempty"`
	Currency    string   `cbor:"10,keyasint,omitempty"`
	Transfers   []string `cbor:"11,keyasint,omitempty"`
	LogIndex    *uint64  `cbor:"12,keyasint,omitempty"` // the audit leaf, when the request was logged
	Challenge   []byte   `cbor:"13,keyasint,omitempty"`
	TimeMs      int64    `cbor:"14,keyasint"`
	// Action is what the product's rules made of the event (charge, hold,
	// increment, capture, bill, refill, none).
	Action string `cbor:"15,keyasint,omitempty"`
	// Desired is the platform's signed desired state (a Desired), while
	// the device has not applied its version.
	Desired []byte `cbor:"16,keyasint,omitempty"`
}

// SignReceipt encodes r and signs it with the platform's receipt key.
func SignReceipt(s Suite, signer crypto.Signer, rand io.Reader, kid []byte, r *Receipt) ([]byte, error) {
	payload, err := marshal(r)
	if err != nil {
		return nil, err
	}
	return Sign(s, signer, rand, kid, payload)
}

// OpenReceipt checks a receipt's signature with the platform key pub and
// decodes it.
func OpenReceipt(s Suite, pub crypto.PublicKey, b []byte) (*Receipt, error) {
	env, err := ParseSign1(b)
	if err != nil {
		return nil, err
	}
	if err := env.Verify(s, pub); err != nil {
		return nil, iotpay.Errorf(iotpay.EUNAUTHORIZED, "receipt signature does not verify")
	}
	if env.ContentType != "" {
		return nil, iotpay.Errorf(iotpay.EINVALID, "a handshake message is not a receipt")
	}
	var r Receipt
	if err := unmarshalCanonical(env.Payload, &r); err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "malformed receipt", err)
	}
	if r.V != Version {
		return nil, iotpay.Errorf(iotpay.EINVALID, "unsupported receipt version %d", r.V)
	}
	switch r.Outcome {
	case Approved, Declined, Rejected, Review:
	default:
		return nil, iotpay.Errorf(iotpay.EINVALID, "unknown receipt outcome %q", r.Outcome)
	}
	return &r, nil
}

// For reports whether r answers the request with that hash from device.
func (r *Receipt) For(requestHash []byte, device string) bool {
	return bytes.Equal(r.RequestHash, requestHash) && r.Device == device
}

// Topics on which devices and the platform exchange messages over MQTT. A
// device may publish only under its own prefix and read only its own
// receipts.
const TopicPrefix = "iotpay/v1/"

// PayTopic is where device publishes signed payment requests.
func PayTopic(device string) string { return TopicPrefix + device + "/pay" }

// ReceiptTopic is where the platform publishes device's receipts.
func ReceiptTopic(device string) string { return TopicPrefix + device + "/receipt" }

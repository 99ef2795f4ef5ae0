package wire

import (
	"crypto"
	"io"

	"github.com/iotpay/iotpay"
)

// EventState is the event type of a request that only reports the
// device's state: the platform records the report and moves no money.
const EventState = "state"

// Bounds on a device's state report.
const (
	MeasurementBytes = 32   // a SHA-256 or SM3 digest of the running firmware image
	ReportFieldsMax  = 16   // reported shadow fields in one report
	LatE7Max         = 90e7 // degrees × 10^7
	LonE7Max         = 180e7
)

// Report is a device's own state, carried in a signed request: what it
// says here is signed with its key, so the firmware measurement is a
// device-signed attestation of what it runs.
type Report struct {
	Firmware    string `cbor:"1,keyasint,omitempty" json:"firmware,omitempty"`
	Measurement []byte `cbor:"2,keyasint,omitempty" json:"measurement,omitempty"`
	Tamper      bool   `cbor:"3,keyasint,omitempty" json:"tamper,omitempty"`
	// Battery is in percent; nil when the device has none to report.
	Battery *int64 `cbor:"4,keyasint,omitempty" json:"battery,omitempty"`
	// Location in degrees × 10^7 (WGS 84), both or neither.
	LatE7 *int64 `cbor:"5,keyasint,omitempty" json:"lat_e7,omitempty"`
	LonE7 *int64 `cbor:"6,keyasint,omitempty" json:"lon_e7,omitempty"`
	// Num and Str are the device's reported shadow fields.
	Num map[string]int64  `cbor:"7,keyasint,omitempty" json:"num,omitempty"`
	Str map[string]string `cbor:"8,keyasint,omitempty" json:"str,omitempty"`
	// Applied is the version of the desired state the device has applied.
	Applied uint64 `cbor:"9,keyasint,omitempty" json:"applied,omitempty"`
}

func (r *Report) validate() error {
	bad := func(format string, args ...any) error {
		return iotpay.Errorf(iotpay.EINVALID, "report: "+format, args...)
	}
	switch {
	case len(r.Firmware) > TextLenMax || !printable(r.Firmware):
		return bad("firmware version must be at most %d printable characters", TextLenMax)
	case r.Measurement != nil && len(r.Measurement) != MeasurementBytes:
		return bad("firmware measurement must be %d bytes", MeasurementBytes)
	case r.Measurement != nil && r.Firmware == "":
		return bad("a firmware measurement needs its version")
	case r.Battery != nil && (*r.Battery < 0 || *r.Battery > 100):
		return bad("battery must be 0 to 100 percent")
	case (r.LatE7 == nil) != (r.LonE7 == nil):
		return bad("location needs both latitude and longitude")
	case r.LatE7 != nil && (*r.LatE7 < -LatE7Max || *r.LatE7 > LatE7Max || *r.LonE7 < -LonE7Max || *r.LonE7 > LonE7Max):
		return bad("location out of range")
	case len(r.Num)+len(r.Str) > ReportFieldsMax:
		return bad("more than %d reported fields", ReportFieldsMax)
	}
	for k := range r.Num {
		if k == "" || len(k) > TextLenMax || !printable(k) {
			return bad("bad field name")
		}
	}
	for k, v := range r.Str {
		if _, dup := r.Num[k]; dup {
			return bad("field %q reported twice", k)
		}
		if k == "" || len(k) > TextLenMax || !printable(k) || len(v) > TextLenMax || !printable(v) {
			return bad("bad field")
		}
	}
	return nil
}

// Desired is the state the platform wants a device in, signed with the
// platform's receipt key: sent on the device's desired topic when it
// changes, and in a receipt while the device has not applied it.
type Desired struct {
	V       uint64            `cbor:"1,keyasint"`
	Device  string            `cbor:"2,keyasint"`
	Version uint64            `cbor:"3,keyasint"`
	Num     map[string]int64  `cbor:"4,keyasint,omitempty"`
	Str     map[string]string `cbor:"5,keyasint,omitempty"`
	TimeMs  int64             `cbor:"6,keyasint"`
}

// DesiredContentType marks a signed Desired, so it is never taken for a
// receipt.
const DesiredContentType = "application/vnd.iotpay.desired+cbor"

// SignDesired signs d with the platform's receipt key.
func SignDesired(s Suite, signer crypto.Signer, rand io.Reader, kid []byte, d *Desired) ([]byte, error) {
	d.V = Version
	payload, err := marshal(d)
	if err != nil {
		return nil, err
	}
	return signTyped(s, signer, rand, kid, DesiredContentType, payload)
}

// OpenDesired checks a desired state's signature with the platform key pub
// and decodes it.
func OpenDesired(s Suite, pub crypto.PublicKey, b []byte) (*Desired, error) {
	env, err := ParseSign1(b)
	if err != nil {
		return nil, err
	}
	if err := env.Verify(s, pub); err != nil {
		return nil, iotpay.Errorf(iotpay.EUNAUTHORIZED, "desired state signature does not verify")
	}
	if env.ContentType != DesiredContentType {
		return nil, iotpay.Errorf(iotpay.EINVALID, "not a desired state")
	}
	var d Desired
	if err := unmarshalCanonical(env.Payload, &d); err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "malformed desired state", err)
	}
	if d.V != Version {
		return nil, iotpay.Errorf(iotpay.EINVALID, "unsupported desired state version %d", d.V)
	}
	return &d, nil
}

// DesiredTopic is where the platform publishes a device's desired state
// over MQTT (retained: a device that connects later gets the latest).
func DesiredTopic(device string) string { return TopicPrefix + device + "/desired" }

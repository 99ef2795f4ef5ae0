package mqtt

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

// enrollTimeout bounds one enrollment (a writer operation).
const enrollTimeout = 30 * time.Second

// enrollRequest is the body of an enrollment over MQTT: the same JSON
// object as POST /v1/enroll's.
type enrollRequest struct {
	Device       iotpay.DeviceID
	Token        string
	CSR          string
	TransportCSR string
}

// parseEnrollRequest decodes an enrollment request strictly: one JSON
// object of string members device, token, csr and optionally
// transport_csr, each once, nothing else, nothing after.
func parseEnrollRequest(b []byte) (*enrollRequest, error) {
	bad := func(why string) error { return iotpay.Errorf(iotpay.EINVALID, "enrollment request: %s", why) }
	if len(b) > PayloadBytesMax {
		return nil, bad("too large")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, bad("not a JSON object")
	}
	var r enrollRequest
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, bad("malformed JSON")
		}
		key, _ := t.(string) // More and a good object say it is a key
		if seen[key] {
			return nil, bad("member " + key + " twice")
		}
		seen[key] = true
		t, err = dec.Token()
		if err != nil {
			return nil, bad("malformed JSON")
		}
		v, ok := t.(string)
		if !ok {
			return nil, bad("member " + key + " must be a string")
		}
		switch key {
		case "device":
			r.Device = iotpay.DeviceID(v)
		case "token":
			r.Token = v
		case "csr":
			r.CSR = v
		case "transport_csr":
			r.TransportCSR = v
		default:
			return nil, bad("unknown member " + key)
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, bad("malformed JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, bad("data after the object")
	}
	if r.Device == "" || r.Token == "" || r.CSR == "" {
		return nil, bad("device, token and csr are required")
	}
	return &r, nil
}

// enrollError is an enrollment refusal as the device reads it: the
// operator API's error object.
type enrollError struct {
	Code    iotpay.Code `json:"code"`
	Message string      `json:"message"`
}

// onEnroll receives every message published on an enroll topic (the ACL
// admits only an enrolling connection's own, once), enrolls the device,
// writes the answer to it and disconnects it: the device reconnects with
// its certificate. mochi calls it in the client's read goroutine, after
// the PUBACK.
func (b *Broker) onEnroll(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
	cl, ok := b.server.Clients.Get(pk.Origin)
	c := b.conn(cl)
	if !ok || c == nil || c.token == "" || pk.TopicName != wire.EnrollTopic(string(c.dev)) || c.enrolled.Swap(true) {
		b.log.Warn("enrollment message dropped: not from an enrolling connection", "topic", pk.TopicName, "client", pk.Origin)
		return
	}
	if !b.enterCall() {
		b.log.Info("enrollment message dropped: broker closing", "device", c.dev)
		return
	}
	defer b.calls.Done()

	answer := b.enroll(c, pk.Payload)
	out := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   wire.EnrollAnswerTopic(string(c.dev)),
		Payload:     answer,
	}
	// Written at QoS 0 in this goroutine, so that the DISCONNECT cannot
	// overtake it: the enrollment ends this connection either way.
	if err := cl.WritePacket(out); err != nil {
		b.log.Warn("enrollment answer not sent", "device", c.dev, "err", err)
	}
	c.end("enrolled")
	if cl.Properties.ProtocolVersion < 5 {
		cl.Stop(packets.CodeDisconnect)
		return
	}
	// The returned error only repeats the code.
	_ = b.server.DisconnectClient(cl, packets.CodeDisconnect)
}

// enroll decides an enrollment request and returns the answer's bytes.
func (b *Broker) enroll(c *conn, payload []byte) []byte {
	fail := func(err error) []byte {
		b.log.Info("enrollment refused", "device", c.dev, "remote", c.remote, "err", err)
		e := enrollError{Code: iotpay.ErrorCode(err), Message: iotpay.ErrorMessage(err)}
		switch e.Code {
		case iotpay.EINTERNAL:
			e.Message = "internal error"
		case iotpay.EUNAUTHORIZED, iotpay.ENOTFOUND:
			e.Code, e.Message = iotpay.EUNAUTHORIZED, "enrollment refused"
		}
		out, _ := json.Marshal(e)
		return out
	}
	r, err := parseEnrollRequest(payload)
	if err != nil {
		return fail(err)
	}
	if r.Device != c.dev || subtle.ConstantTimeCompare([]byte(r.Token), []byte(c.token)) != 1 {
		return fail(iotpay.Errorf(iotpay.EUNAUTHORIZED, "enrollment request names another device or token than the connection"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), enrollTimeout)
	defer cancel()
	en, err := b.enroller.Enroll(ctx, c.dev, c.token, []byte(r.CSR), []byte(r.TransportCSR))
	if err != nil {
		return fail(err)
	}
	out, err := json.Marshal(en)
	if err != nil {
		return fail(iotpay.Wrap(iotpay.EINTERNAL, "cannot encode the enrollment", err))
	}
	b.log.Info("device enrolled over MQTT", "device", c.dev, "suite", en.Suite, "remote", c.remote)
	return out
}

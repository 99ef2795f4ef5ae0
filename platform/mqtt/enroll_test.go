package mqtt

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotpay/iotpay"
	devmqtt "github.com/iotpay/iotpay/device/mqtt"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/wire"
)

// enroller is an Enroller with one pending device and token; Enroll
// consumes the token and answers the CSR back as the certificate.
type enroller struct {
	mu     sync.Mutex
	dev    iotpay.DeviceID
	token  string
	used   bool
	enrols int
}

func (e *enroller) CheckEnrollment(_ context.Context, id iotpay.DeviceID, token string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if id != e.dev || token != e.token || e.used {
		return iotpay.Errorf(iotpay.EUNAUTHORIZED, "enrollment refused")
	}
	return nil
}

func (e *enroller) Enroll(ctx context.Context, id iotpay.DeviceID, token string, csr, transportCSR []byte) (*registry.Enrollment, error) {
	if err := e.CheckEnrollment(ctx, id, token); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(string(csr), "CSR") {
		return nil, iotpay.Errorf(iotpay.EINVALID, "malformed certificate request")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.used = true
	e.enrols++
	return &registry.Enrollment{Device: id, Suite: "intl", Certificate: string(csr), TransportCertificate: string(transportCSR)}, nil
}

func enrollBody(id iotpay.DeviceID, token, csr string) []byte {
	b, _ := json.Marshal(map[string]string{"device": string(id), "token": token, "csr": csr})
	return b
}

func TestEnrollOverMQTT(t *testing.T) {
	id := iotpay.DeviceID(iotpay.NewID(iotpay.PrefixDevice, time.Now(), nil))
	en := &enroller{dev: id, token: "secret-token"}
	e := startBrokerWith(t, newHandler(), func(c *Config) { c.Enroller = en })
	noCert := &tls.Config{RootCAs: e.ca.Pool()}
	enroll := func(token string, body []byte) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		return devmqtt.Enroll(ctx, devmqtt.EnrollConfig{Addr: e.broker.Addr(), TLS: noCert, DeviceID: id, Token: token, Timeout: testWait / 2}, body)
	}

	t.Run("wrong token", func(t *testing.T) {
		_, err := enroll("guess", enrollBody(id, "guess", "CSR"))
		wantCode(t, err, iotpay.EUNAUTHORIZED)
		c := dialRaw(t, e.broker.Addr(), noCert, string(id))
		ack := c.connectWith(t, func(pk *packets.Packet) {
			pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte(id)
			pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte("guess")
		})
		if ack.ReasonCode != packets.ErrBadUsernameOrPassword.Code {
			t.Fatalf("CONNACK %#x, want 0x86", ack.ReasonCode)
		}
	})
	t.Run("no certificate, no credentials", func(t *testing.T) {
		c := dialRaw(t, e.broker.Addr(), noCert, string(id))
		if ack := c.connect(t); ack.ReasonCode != packets.ErrNotAuthorized.Code {
			t.Fatalf("CONNACK %#x, want 0x87", ack.ReasonCode)
		}
	})
	t.Run("an enrolling connection can do nothing else", func(t *testing.T) {
		c := dialRaw(t, e.broker.Addr(), noCert, string(id))
		ack := c.connectWith(t, func(pk *packets.Packet) {
			pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte(id)
			pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte(en.token)
		})
		if ack.ReasonCode != 0 {
			t.Fatalf("CONNACK %#x", ack.ReasonCode)
		}
		c.publish(t, wire.PayTopic(string(id)), 1, []byte("pay"), false)
		if ack := c.read(t); ack.ReasonCode != packets.ErrNotAuthorized.Code {
			t.Fatalf("pay from an enrolling connection: PUBACK %#x", ack.ReasonCode)
		}
		c.subscribe(t, 2, wire.ReceiptTopic(string(id)), wire.EnrollAnswerTopic(string(id)))
		if ack := c.read(t); string(ack.ReasonCodes) != "\x87\x01" {
			t.Fatalf("SUBACK %x", ack.ReasonCodes)
		}
		// A bad request is answered with an error, and the connection ends.
		c.publish(t, wire.EnrollTopic(string(id)), 3, []byte(`{"device":"x"}`), false)
		if ack := c.read(t); ack.FixedHeader.Type != packets.Puback || ack.ReasonCode != 0 {
			t.Fatalf("enroll PUBACK type %d %#x", ack.FixedHeader.Type, ack.ReasonCode)
		}
		answer := c.read(t)
		if answer.TopicName != wire.EnrollAnswerTopic(string(id)) || !strings.Contains(string(answer.Payload), `"code":"invalid"`) {
			t.Fatalf("answer on %q: %s", answer.TopicName, answer.Payload)
		}
		if dis := c.read(t); dis.FixedHeader.Type != packets.Disconnect {
			t.Fatalf("got type %d, want DISCONNECT", dis.FixedHeader.Type)
		}
		c.wantClosed(t)
	})
	t.Run("bad CSR, then enrolled", func(t *testing.T) {
		a, err := enroll(en.token, enrollBody(id, en.token, "junk"))
		if err != nil || !strings.Contains(string(a), `"code":"invalid"`) {
			t.Fatalf("answer %s, %v", a, err)
		}
		a, err = enroll(en.token, enrollBody(id, en.token, "CSR-1"))
		if err != nil {
			t.Fatal(err)
		}
		var got registry.Enrollment
		if err := json.Unmarshal(a, &got); err != nil || got.Device != id || got.Certificate != "CSR-1" {
			t.Fatalf("answer %s: %v", a, err)
		}
		// The token is used: refused at CONNECT.
		_, err = enroll(en.token, enrollBody(id, en.token, "CSR-2"))
		wantCode(t, err, iotpay.EUNAUTHORIZED)
	})
	t.Run("oversized request", func(t *testing.T) {
		en.mu.Lock()
		en.used = false
		en.mu.Unlock()
		_, err := enroll(en.token, enrollBody(id, en.token, "CSR"+strings.Repeat("x", PayloadBytesMax)))
		wantCode(t, err, iotpay.EUNAVAILABLE)
	})
	if en.enrols != 1 {
		t.Fatalf("%d enrollments, want 1", en.enrols)
	}
	e.handler.none(t)
}

// TestEnrollmentNeedsAnEnroller: without one, a client without a
// certificate fails in the TLS handshake.
func TestEnrollmentNeedsAnEnroller(t *testing.T) {
	e := startBroker(t, newHandler())
	conn, err := tls.Dial("tcp", e.broker.Addr(), &tls.Config{RootCAs: e.ca.Pool()})
	if err == nil {
		_, err = conn.Read(make([]byte, 1)) // TLS 1.3: the alert comes after the client's Finished
		conn.Close()
	}
	if err == nil {
		t.Fatal("connection without a certificate accepted")
	}
}

func TestParseEnrollRequest(t *testing.T) {
	for body, ok := range map[string]bool{
		`{"device":"dev_1","token":"t","csr":"c"}`:                     true,
		`{"device":"dev_1","token":"t","csr":"c","transport_csr":"x"}`: true,
		` {"csr":"c","token":"t","device":"dev_1"} `:                   true,
		`{"device":"dev_1","token":"t"}`:                               false,
		`{"device":"dev_1","token":"t","csr":"c","csr":"d"}`:           false,
		`{"device":"dev_1","token":"t","csr":"c","other":"x"}`:         false,
		`{"device":"dev_1","token":"t","csr":1}`:                       false,
		`{"device":"dev_1","token":"t","csr":"c"} {}`:                  false,
		`{"device":"dev_1","token":"t","csr":"c"`:                      false,
		`["device"]`: false, ``: false, `null`: false,
	} {
		_, err := parseEnrollRequest([]byte(body))
		if (err == nil) != ok {
			t.Errorf("parseEnrollRequest(%s): %v", body, err)
		}
		if err != nil && iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("parseEnrollRequest(%s): code %s", body, iotpay.ErrorCode(err))
		}
	}
}

func FuzzParseEnrollRequest(f *testing.F) {
	f.Add([]byte(`{"device":"dev_1","token":"t","csr":"-----BEGIN CERTIFICATE REQUEST-----\n"}`))
	f.Add([]byte(`{"device":"dev_1","token":"t","csr":"c","transport_csr":"x"}`))
	f.Add([]byte(`{"device":"dev_1","device":"dev_2"}`))
	f.Add([]byte(`{"a":{"b":[1,2]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseEnrollRequest(b)
		if err == nil && (r.Device == "" || r.Token == "" || r.CSR == "") {
			t.Fatalf("accepted %q without a required member", b)
		}
		if err != nil && iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Fatalf("error %v is not invalid", err)
		}
	})
}

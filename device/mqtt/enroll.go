package mqtt

import (
	"context"
	"crypto/tls"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

// EnrollAnswerBytesMax bounds the platform's enrollment answer.
const EnrollAnswerBytesMax = 64 << 10

// EnrollConfig configures an enrollment over MQTT.
type EnrollConfig struct {
	Addr string // host:port of the broker
	// TLS has RootCAs, the platform CA the device learnt out of band, and
	// no client certificate: the device has none yet.
	TLS      *tls.Config
	DeviceID iotpay.DeviceID
	Token    string        // the one-time enrollment token
	Timeout  time.Duration // for connecting, and then for the answer; default DefaultTimeout
}

// Enroll connects to the broker without a client certificate, with the
// device id as client id and user name and its one-time token as password,
// publishes request (the body of POST /v1/enroll: device.EnrollRequest) on
// the device's enroll topic and returns the platform's answer, the
// enrollment or an error object (device.ParseEnrollment reads both). The
// broker then ends the connection; the device reconnects with its new
// certificate. A refused token is EUNAUTHORIZED.
func Enroll(ctx context.Context, cfg EnrollConfig, request []byte) ([]byte, error) {
	switch {
	case cfg.Addr == "":
		return nil, iotpay.Errorf(iotpay.EINVALID, "mqtt: no broker address")
	case cfg.TLS == nil:
		return nil, iotpay.Errorf(iotpay.EINVALID, "mqtt: no TLS configuration")
	case !iotpay.ValidID(iotpay.PrefixDevice, string(cfg.DeviceID)):
		return nil, iotpay.Errorf(iotpay.EINVALID, "mqtt: invalid device id %q", cfg.DeviceID)
	case cfg.Token == "":
		return nil, iotpay.Errorf(iotpay.EINVALID, "mqtt: no enrollment token")
	case cfg.Timeout < 0:
		return nil, iotpay.Errorf(iotpay.EINVALID, "mqtt: timeout must not be negative")
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	tc := cfg.TLS.Clone()
	tc.MinVersion = tls.VersionTLS13
	tc.Certificates, tc.GetClientCertificate = nil, nil

	answers := make(chan []byte, 1)
	lost := make(chan error, 1)
	opts := paho.NewClientOptions().
		AddBroker("tls://" + cfg.Addr).
		SetClientID(string(cfg.DeviceID)).
		SetUsername(string(cfg.DeviceID)).
		SetPassword(cfg.Token).
		SetTLSConfig(tc).
		SetProtocolVersion(protocolMQTT311).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(timeout).
		SetWriteTimeout(timeout).
		SetKeepAlive(keepalive).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	client := paho.NewClient(opts)
	tok := client.Connect()
	if err := wait(ctx, tok); err != nil {
		go func() {
			<-tok.Done()
			client.Disconnect(0)
		}()
		return nil, err
	}
	if err := connectError(tok); err != nil {
		return nil, err
	}
	defer client.Disconnect(quiesceMs)

	sub := client.Subscribe(wire.EnrollAnswerTopic(string(cfg.DeviceID)), qos1, func(_ paho.Client, m paho.Message) {
		select {
		case answers <- append([]byte(nil), m.Payload()...):
		default: // one answer is all there is
		}
	})
	err := wait(ctx, sub)
	if err == nil {
		err = subscribeError(sub)
	}
	if err != nil {
		return nil, err
	}
	// The answer may come before the PUBACK's token completes; either way
	// it is the answer that counts.
	client.Publish(wire.EnrollTopic(string(cfg.DeviceID)), qos1, false, request)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case a := <-answers:
		if len(a) > EnrollAnswerBytesMax {
			return nil, iotpay.Errorf(iotpay.EINVALID, "mqtt: enrollment answer over %d bytes", EnrollAnswerBytesMax)
		}
		return a, nil
	case err := <-lost:
		// The broker ends the connection after its answer, or at once when
		// it refuses the request itself (too large: DISCONNECT 0x95).
		select {
		case a := <-answers:
			return a, nil
		case <-time.After(quiesceMs * time.Millisecond):
		}
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "mqtt: connection lost before the enrollment answer", err)
	case <-ctx.Done():
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "mqtt: enrollment abandoned", ctx.Err())
	case <-timer.C:
		return nil, iotpay.Errorf(iotpay.EUNAVAILABLE, "mqtt: no enrollment answer within %v", timeout)
	}
}

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"

	"github.com/iotpay/iotpay"
	devmqtt "github.com/iotpay/iotpay/device/mqtt"
)

// mqttEnrollment returns the exchange that sends an enrollment request to
// the broker at addr, over TLS 1.3 to a server certificate of the CA in
// caFile, authenticated by the one-time token.
func mqttEnrollment(addr, caFile string, id iotpay.DeviceID, token string) (func(context.Context, []byte) ([]byte, error), error) {
	if caFile == "" {
		return nil, fmt.Errorf("--mqtt needs --ca: the platform CA, to trust the broker with before the device has a certificate")
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca %s: no PEM certificate", caFile)
	}
	cfg := devmqtt.EnrollConfig{Addr: addr, DeviceID: id, Token: token,
		TLS: &tls.Config{RootCAs: roots, ServerName: (&url.URL{Host: addr}).Hostname(), MinVersion: tls.VersionTLS13}}
	return func(ctx context.Context, req []byte) ([]byte, error) { return devmqtt.Enroll(ctx, cfg, req) }, nil
}

package daemon_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/wire"
)

// TestDeviceHTTPSRefusals: what is not a device's well-formed request is
// refused with a clear status, and no money moves.
func TestDeviceHTTPSRefusals(t *testing.T) {
	f := setup(t, "")
	ctx := context.Background()
	e := f.enrollEST(newP256(t))
	before := f.balance(f.payer)
	url := f.deviceURL()
	dev := mtlsClient(e.id)
	anon := f.trustingClient()

	// A certificate for the same device id from another CA.
	otherCA, err := pki.NewCA("other", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	key := newP256(t)
	csr, err := pki.NewCSR(key, string(e.id.ID))
	if err != nil {
		t.Fatal(err)
	}
	forged, err := otherCA.SignDeviceCSR(csr, e.id.ID, "ten_x")
	if err != nil {
		t.Fatal(err)
	}
	stranger := presenting(f, forged.Raw, key)
	// A certificate of the platform CA for the device, expired.
	past := *f.d.CA
	past.Now = func() time.Time { return time.Now().Add(-pki.DeviceLifetime - time.Hour) }
	expired, err := past.SignDeviceCSR(csr, e.id.ID, "ten_x")
	if err != nil {
		t.Fatal(err)
	}
	lapsed := presenting(f, expired.Raw, key)
	csrB64 := base64.StdEncoding.EncodeToString(csr)
	otherCSR, _ := pki.NewCSR(key, "dev_01JAAAAAAAAAAAAAAAAAAAAAAA")

	for _, c := range []struct {
		name     string
		client   *http.Client
		method   string
		path     string
		ctype    string
		body     []byte
		auth     [2]string
		want     int
		tlsError bool
	}{
		{name: "pay without client certificate", client: anon, method: "POST", path: "/device/v1/pay", ctype: "application/cose", body: []byte{0xd2}, want: 403},
		{name: "pay with an expired certificate", client: lapsed, method: "POST", path: "/device/v1/pay", ctype: "application/cose", body: []byte{0xd2}, tlsError: true},
		{name: "pay with another CA's certificate", client: stranger, method: "POST", path: "/device/v1/pay", ctype: "application/cose", body: []byte{0xd2}, tlsError: true},
		{name: "pay as JSON", client: dev, method: "POST", path: "/device/v1/pay", ctype: "application/json", body: []byte("{}"), want: 415},
		{name: "pay oversized", client: dev, method: "POST", path: "/device/v1/pay", ctype: "application/cose", body: make([]byte, wire.EnvelopeBytesMax+1), want: 413},
		{name: "pay empty", client: dev, method: "POST", path: "/device/v1/pay", ctype: "application/octet-stream", want: 400},
		{name: "pay with GET", client: dev, method: "GET", path: "/device/v1/pay", want: 405},
		{name: "enroll without credentials", client: anon, method: "POST", path: "/.well-known/est/simpleenroll", ctype: "application/pkcs10", body: []byte(csrB64), want: 401},
		{name: "enroll with a wrong token", client: anon, method: "POST", path: "/.well-known/est/simpleenroll", ctype: "application/pkcs10", body: []byte(csrB64), auth: [2]string{string(e.id.ID), "nope"}, want: 403},
		{name: "enroll garbage", client: anon, method: "POST", path: "/.well-known/est/simpleenroll", ctype: "application/pkcs10", body: []byte("!!!"), auth: [2]string{string(e.id.ID), "nope"}, want: 400},
		{name: "reenroll without client certificate", client: anon, method: "POST", path: "/.well-known/est/simplereenroll", ctype: "application/pkcs10", body: []byte(csrB64), want: 403},
		{name: "reenroll garbage", client: dev, method: "POST", path: "/.well-known/est/simplereenroll", ctype: "application/pkcs10", body: []byte(base64.StdEncoding.EncodeToString([]byte("not a csr"))), want: 400},
		{name: "reenroll for another device", client: dev, method: "POST", path: "/.well-known/est/simplereenroll", ctype: "application/pkcs10", body: []byte(base64.StdEncoding.EncodeToString(otherCSR)), want: 400},
		{name: "reenroll oversized", client: dev, method: "POST", path: "/.well-known/est/simplereenroll", ctype: "application/pkcs10", body: bytes.Repeat([]byte("A"), 64<<10), want: 413},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(ctx, c.method, url+c.path, bytes.NewReader(c.body))
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			if c.auth[0] != "" {
				req.SetBasicAuth(c.auth[0], c.auth[1])
			}
			resp, err := c.client.Do(req)
			if c.tlsError {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("status %d, want the TLS handshake refused", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.want {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, strings.TrimSpace(string(b)), c.want)
			}
		})
	}

	// Garbage in the right place is answered with a signed refusal, as on
	// MQTT.
	tr := e.transport(t, url)
	var rc *wire.Receipt
	answer, err := tr.Exchange(ctx, []byte("garbage"), func(b []byte) bool {
		rc, err = wire.OpenReceipt(wire.Intl, e.id.PlatformKey, b)
		return err == nil
	})
	if err != nil || rc.Outcome != wire.Rejected || rc.Code != string(iotpay.EINVALID) || len(answer) == 0 {
		t.Fatalf("garbage request: %+v, %v; want a signed rejected invalid", rc, err)
	}
	// A request signed by another key in the device's name.
	other, err := device.New(device.Identity{ID: e.id.ID, Suite: wire.Intl, Signer: key, Cert: e.id.Cert, CA: e.id.CA,
		PlatformKey: e.id.PlatformKey}, stateWith(nil))
	if err != nil {
		t.Fatal(err)
	}
	if rc, err := other.Pay(ctx, tr, dispense()); err != nil || rc.Outcome != wire.Rejected || rc.Code != string(iotpay.EUNAUTHORIZED) {
		t.Fatalf("forged request: %+v, %v; want rejected unauthorized", rc, err)
	}
	if got := f.balance(f.payer); got != before {
		t.Errorf("payer balance moved: %d, want %d", got, before)
	}
	f.assertBalanced()
}

// presenting is a client that presents the certificate cert of key
// whatever CAs the server names (Go's client would otherwise keep a
// certificate the server cannot accept to itself).
func presenting(f *fixture, cert []byte, key crypto.Signer) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: f.d.CA.Pool(), MinVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &tls.Certificate{Certificate: [][]byte{cert}, PrivateKey: key}, nil
		}}}}
}

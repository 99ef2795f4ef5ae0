package devicehttp_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/devicehttp"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/platform/registry"
)

var fuzzDevice = iotpay.DeviceID(iotpay.NewID(iotpay.PrefixDevice, time.UnixMilli(1_750_000_000_000), bytes.NewReader(make([]byte, 10))))

// fakeRegistry certifies what pki.ParseCSR accepts, as the registry does,
// for one device and token.
type fakeRegistry struct{ ca *pki.CA }

func (r fakeRegistry) CheckDevice(context.Context, iotpay.DeviceID) error { return nil }

func (r fakeRegistry) Enroll(_ context.Context, id iotpay.DeviceID, token string, csr, _ []byte) (*registry.Enrollment, error) {
	if id != fuzzDevice || token != "token" {
		return nil, iotpay.Errorf(iotpay.EUNAUTHORIZED, "enrollment refused")
	}
	cert, err := r.Reenroll(context.Background(), id, csr)
	if err != nil {
		return nil, err
	}
	return &registry.Enrollment{Device: id, Certificate: string(pki.EncodeCertPEM(cert))}, nil
}

func (r fakeRegistry) Reenroll(_ context.Context, id iotpay.DeviceID, csr []byte) (*x509.Certificate, error) {
	req, err := pki.ParseCSR(csr)
	if err != nil {
		return nil, err
	}
	return r.ca.SignDeviceCSR(req.Raw, id, "ten_fuzz")
}

// echo answers a payment with its own bytes.
type echo struct{}

func (echo) HandlePay(_ context.Context, _ iotpay.DeviceID, b []byte) []byte { return b }

// FuzzDeviceEndpoint drives the HTTPS device endpoint's routes with
// fuzzed bodies, content types and Basic credentials — the EST request
// body (base64 PKCS#10 with line breaks), the enrollment credentials and
// the payment body — as a device with a verified certificate and as one
// without: every answer is a status the endpoint documents, never a panic
// nor a 5xx.
func FuzzDeviceEndpoint(f *testing.F) {
	ca, err := pki.NewCA("fuzz", time.Unix(1_750_000_000, 0), nil)
	if err != nil {
		f.Fatal(err)
	}
	key, err := pki.GenerateKey(pki.SuiteIntl, nil)
	if err != nil {
		f.Fatal(err)
	}
	csr, err := pki.NewCSR(key, string(fuzzDevice))
	if err != nil {
		f.Fatal(err)
	}
	cert, err := ca.SignDeviceCSR(csr, fuzzDevice, "ten_fuzz")
	if err != nil {
		f.Fatal(err)
	}
	srv, err := devicehttp.New(devicehttp.Config{Addr: "127.0.0.1:0", TLS: &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}, ClientCAs: ca.Pool()}, CA: ca.Cert},
		fakeRegistry{ca}, echo{})
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	b64 := base64.StdEncoding.EncodeToString(csr)
	lines := b64[:40] + "\r\n" + b64[40:] + "\n"
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(string(fuzzDevice)+":token"))
	for _, s := range []struct {
		route           uint8
		ctype, auth     string
		body            []byte
		withCertificate bool
	}{
		{0, "application/pkcs10", basic, []byte(b64), false},
		{0, "application/pkcs10", basic, []byte(lines), false},
		{0, "application/pkcs10", "Basic !!", []byte(b64), false},
		{1, "application/pkcs10; charset=x", "", []byte(b64), true},
		{1, "application/pkcs10", "", []byte("MAA="), true},
		{2, "application/cose", "", []byte{0xd2, 0x84}, true},
		{2, "application/octet-stream", "", nil, false},
		{3, "", "", nil, false},
	} {
		f.Add(s.route, s.ctype, s.auth, s.body, s.withCertificate)
	}
	paths := []string{devicehttp.SimpleEnrollPath, devicehttp.SimpleReenrollPath, devicehttp.PayPath, devicehttp.CACertsPath}
	documented := map[int]bool{200: true, 400: true, 401: true, 403: true, 405: true, 413: true, 415: true}
	f.Fuzz(func(t *testing.T, route uint8, ctype, auth string, body []byte, withCertificate bool) {
		path := paths[int(route)%len(paths)]
		method := "POST"
		if path == devicehttp.CACertsPath {
			method = "GET"
		}
		req := httptest.NewRequest(method, "https://device.example"+path, bytes.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		req.TLS = &tls.ConnectionState{Version: tls.VersionTLS13}
		if withCertificate {
			req.TLS.VerifiedChains = [][]*x509.Certificate{{cert, ca.Cert}}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if !documented[w.Code] {
			t.Fatalf("%s %s (%q, %q, %d bytes): status %d: %s", method, path, ctype, auth, len(body), w.Code, w.Body)
		}
		if w.Code == http.StatusOK && path != devicehttp.PayPath && w.Header().Get("Content-Type") == "" {
			t.Fatal("an EST answer without a content type")
		}
	})
}

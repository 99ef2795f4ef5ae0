package https

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/wire"
)

// server is a TLS 1.3 server of the platform CA that asks for client
// certificates and answers with answer.
func server(t *testing.T, answer http.HandlerFunc) (*httptest.Server, *tls.Config) {
	t.Helper()
	ca, err := pki.NewCA("test", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.IssueServerCert([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(answer)
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS13, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert,
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	dk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := pki.NewCSR(dk, "dev")
	dc, err := ca.SignDeviceCSR(csr, "dev_01JAAAAAAAAAAAAAAAAAAAAAAA", "ten_1")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return srv, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{{Certificate: [][]byte{dc.Raw}, PrivateKey: dk}}}
}

func anyAnswer([]byte) bool { return true }

func TestExchangeRetriesUnavailable(t *testing.T) {
	var calls atomic.Int32
	srv, tc := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != PayPath || r.Header.Get("Content-Type") != contentType {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		if calls.Add(1) < 3 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("receipt"))
	})
	tr, err := New(Config{URL: srv.URL, TLS: tc})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	got, err := tr.Exchange(context.Background(), []byte("request"), anyAnswer)
	if err != nil || !bytes.Equal(got, []byte("receipt")) || calls.Load() != 3 {
		t.Fatalf("Exchange = %q, %v after %d calls", got, err, calls.Load())
	}
}

func TestExchangeRefusals(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		body   []byte
		match  bool
		want   iotpay.Code
	}{
		{"forbidden", http.StatusForbidden, nil, true, iotpay.EUNAUTHORIZED},
		{"too large", http.StatusRequestEntityTooLarge, nil, true, iotpay.EINVALID},
		{"still unavailable", http.StatusServiceUnavailable, nil, true, iotpay.EUNAVAILABLE},
		{"answer too large", http.StatusOK, make([]byte, wire.EnvelopeBytesMax+1), true, iotpay.EINVALID},
		{"answer for another request", http.StatusOK, []byte("x"), false, iotpay.EUNAUTHORIZED},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, tc := server(t, func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(c.status)
				w.Write(c.body)
			})
			tr, err := New(Config{URL: srv.URL, TLS: tc, Attempts: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			_, err = tr.Exchange(context.Background(), []byte("request"), func([]byte) bool { return c.match })
			if iotpay.ErrorCode(err) != c.want {
				t.Fatalf("Exchange: %v, want %s", err, c.want)
			}
		})
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	_, tc := server(t, func(http.ResponseWriter, *http.Request) {})
	for _, cfg := range []Config{
		{URL: "http://127.0.0.1:8443", TLS: tc},
		{URL: "https://127.0.0.1:8443"},
		{URL: "https://127.0.0.1:8443", TLS: &tls.Config{}},
		{URL: "https://127.0.0.1:8443", TLS: tc, Attempts: attemptsMax + 1},
	} {
		if _, err := New(cfg); iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("New(%+v): %v, want invalid", cfg, err)
		}
	}
}

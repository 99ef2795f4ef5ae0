package edge

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
)

// The exchanges themselves are tested against a real gateway in
// edge/gateway (round trips, lossy links, FCnt across reboots, busy).

func TestFileCounter(t *testing.T) {
	c := FileCounter{Path: filepath.Join(t.TempDir(), "fcnt")}
	if n, err := c.Load(); n != 0 || err != nil {
		t.Fatalf("new counter: %d, %v", n, err)
	}
	if err := c.Save(41); err != nil {
		t.Fatal(err)
	}
	if n, err := (FileCounter{Path: c.Path}).Load(); n != 41 || err != nil {
		t.Fatalf("reloaded counter: %d, %v", n, err)
	}
	os.WriteFile(c.Path, []byte{1, 2}, 0o600)
	if _, err := c.Load(); iotpay.ErrorCode(err) != iotpay.EINTERNAL {
		t.Errorf("damaged counter: %v", err)
	}
}

func TestDialChecks(t *testing.T) {
	fc := FileCounter{Path: filepath.Join(t.TempDir(), "fcnt")}
	id := iotpay.DeviceID(iotpay.NewID(iotpay.PrefixDevice, time.Now(), nil))
	for name, cfg := range map[string]Config{
		"no address":  {DeviceID: id, FCnt: fc},
		"no counter":  {Addr: "127.0.0.1:5683", DeviceID: id},
		"bad device":  {Addr: "127.0.0.1:5683", DeviceID: "x", FCnt: fc},
		"bad block":   {Addr: "127.0.0.1:5683", DeviceID: id, FCnt: fc, BlockSize: 100},
		"attempts":    {Addr: "127.0.0.1:5683", DeviceID: id, FCnt: fc, Attempts: 99},
		"neg timeout": {Addr: "127.0.0.1:5683", DeviceID: id, FCnt: fc, Timeout: -1},
		"psk and tls": {Addr: "127.0.0.1:5684", DeviceID: id, FCnt: fc, PSK: []byte("k"), TLS: certTLS(t, id)},
		"no cert":     {Addr: "127.0.0.1:5684", DeviceID: id, FCnt: fc, TLS: &tls.Config{}},
		"other cert":  {Addr: "127.0.0.1:5684", DeviceID: id, FCnt: fc, TLS: certTLS(t, "dev_other")},
		"pin no tls":  {Addr: "127.0.0.1:5684", DeviceID: id, FCnt: fc, PSK: []byte("k"), GatewayCertSHA256: make([]byte, 32)},
		"short pin":   {Addr: "127.0.0.1:5684", DeviceID: id, FCnt: fc, TLS: certTLS(t, id), GatewayCertSHA256: make([]byte, 20)},
	} {
		if _, err := Dial(context.Background(), cfg); iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
	}
}

// certTLS is a self-signed device certificate naming id.
func certTLS(t *testing.T, id iotpay.DeviceID) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		URIs: []*url.URL{{Scheme: "urn", Opaque: "iotpay:device:" + string(id)}}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

func TestBusyError(t *testing.T) {
	var err error = &BusyError{Wait: 10 * time.Second}
	if !errors.Is(err, ErrBusy) || iotpay.ErrorCode(err) != iotpay.EUNAVAILABLE {
		t.Fatalf("%v: not ErrBusy or not EUNAVAILABLE", err)
	}
}

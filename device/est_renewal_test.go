package device

import (
	"crypto/x509"
	"testing"
	"time"
)

func TestRenewalDue(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cert := &x509.Certificate{NotBefore: start, NotAfter: start.Add(300 * 24 * time.Hour)}
	if got, want := RenewalDue(cert), start.Add(200*24*time.Hour); !got.Equal(want) {
		t.Fatalf("RenewalDue = %s, want %s", got, want)
	}
	id := &Identity{Cert: cert}
	if id.TLSCert() != cert {
		t.Fatal("intl identity: TLSCert is not its certificate")
	}
	transport := &x509.Certificate{NotBefore: start, NotAfter: start.Add(time.Hour)}
	id.TransportCert = transport
	if id.TLSCert() != transport {
		t.Fatal("gm identity: TLSCert is not its transport certificate")
	}
}

package daemon_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/pem"
	"net/http"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	devhttps "github.com/iotpay/iotpay/device/https"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/wire"
)

// estDevice is a device enrolled over EST and paying over HTTPS.
type estDevice struct {
	en  *device.Enrollment
	id  *device.Identity
	dev *device.Device
	dir string
}

// deviceURL is the HTTPS device endpoint.
func (p *platform) deviceURL() string { return "https://" + p.d.DeviceHTTPAddr() }

// trustingClient trusts the platform CA (known out of band) and presents
// no client certificate.
func (p *platform) trustingClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: p.d.CA.Pool(), MinVersion: tls.VersionTLS13}}}
}

// mtlsClient presents id's certificate.
func mtlsClient(id *device.Identity) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: id.TLSConfig("127.0.0.1")}}
}

// newDevice registers a device of product and returns its id and token.
func (f *fixture) newDevice(product iotpay.ProductID) (iotpay.DeviceID, string) {
	var created struct {
		Device struct{ ID iotpay.DeviceID }
		Token  string `json:"enrollment_token"`
	}
	f.must("POST", "/v1/devices", map[string]any{"product": product, "name": "kiosk"}, &created)
	return created.Device.ID, created.Token
}

// enrollEST enrolls a new device of the fixture's product over EST and
// gives it a mandate on the fixture's payer.
func (f *fixture) enrollEST(key crypto.Signer) *estDevice {
	t := f.t
	ctx := context.Background()
	var dev struct{ Product iotpay.ProductID }
	f.must("GET", "/v1/devices/"+string(f.dev.ID()), nil, &dev)
	id, token := f.newDevice(dev.Product)

	cas, err := device.ESTCACerts(ctx, f.trustingClient(), f.deviceURL())
	if err != nil || len(cas) != 1 || !cas[0].Equal(f.d.CA.Cert) {
		t.Fatalf("cacerts: %v, %d certificates", err, len(cas))
	}
	cert, err := device.ESTEnroll(ctx, f.trustingClient(), f.deviceURL(), id, token, key)
	if err != nil {
		t.Fatal(err)
	}
	// A device that lost the answer asks again: the same certificate for
	// the same key (a new CSR), nothing for another key.
	again, err := device.ESTEnroll(ctx, f.trustingClient(), f.deviceURL(), id, token, key)
	if err != nil || !again.Equal(cert) {
		t.Fatalf("retry of the enrollment: %v, want the same certificate", err)
	}
	if _, err := device.ESTEnroll(ctx, f.trustingClient(), f.deviceURL(), id, token, newP256(t)); iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
		t.Fatalf("the token again for another key: %v, want unauthorized", err)
	}
	en, ident, d := f.estIdentity(id, string(pki.EncodeCertPEM(cert)), key)
	f.must("POST", "/v1/mandates", map[string]any{"device": id, "payer": f.payer, "per_payment_limit": 500,
		"daily_limit": 1000, "monthly_limit": 10000}, nil)
	return &estDevice{en: en, id: ident, dev: d, dir: t.TempDir()}
}

// estIdentity is the device around a certificate EST issued for key. EST
// gives the certificate only; the receipt key is provisioned with the CA
// (here: known out of band), and the first challenge is learnt from the
// platform's first answer.
func (f *fixture) estIdentity(id iotpay.DeviceID, certPEM string, key crypto.Signer) (*device.Enrollment, *device.Identity, *device.Device) {
	f.t.Helper()
	pk, _ := pki.MarshalPublicKey(f.d.ReceiptKey())
	en := &device.Enrollment{Device: id, Suite: wire.SuiteIntl, Certificate: certPEM,
		CA: string(pki.EncodeCertPEM(f.d.CA.Cert)), PlatformKey: pemPublicKey(pk)}
	ident, err := en.Identity(key)
	if err != nil {
		f.t.Fatal(err)
	}
	d, err := device.New(*ident, stateWith(nil))
	if err != nil {
		f.t.Fatal(err)
	}
	return en, ident, d
}

func (e *estDevice) transport(t *testing.T, url string) *devhttps.Transport {
	tr, err := devhttps.New(devhttps.Config{URL: url, TLS: e.id.TLSConfig("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func pemPublicKey(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func newP256(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestDeviceHTTPS(t *testing.T) { onEachStore(t, testDeviceHTTPS) }

// testDeviceHTTPS: enroll over EST, pay over HTTPS, rotate the
// certificate, pay with the new one and the old one, revoke: refused.
func testDeviceHTTPS(t *testing.T, store string) {
	f := setup(t, store)
	ctx := context.Background()
	e := f.enrollEST(newP256(t))
	tr := e.transport(t, f.deviceURL())

	// The first request carries no challenge: refused as a replay, with
	// the current challenge, which the device takes.
	rc, err := e.dev.Pay(ctx, tr, dispense())
	if err != nil || rc.Outcome != wire.Rejected || rc.Code != string(iotpay.EREPLAY) {
		t.Fatalf("first payment: %+v, %v; want rejected replay", rc, err)
	}
	rc, err = e.dev.Pay(ctx, tr, dispense())
	if err != nil || rc.Outcome != wire.Approved || rc.AmountMinor != 250 {
		t.Fatalf("payment: %+v, %v", rc, err)
	}

	en2, id2, err := device.Rotate(ctx, mtlsClient(e.id), f.deviceURL(), e.dir, e.en, e.id)
	if err != nil {
		t.Fatal(err)
	}
	if id2.Cert.SerialNumber.Cmp(e.id.Cert.SerialNumber) == 0 || en2.Certificate == e.en.Certificate {
		t.Fatal("rotation kept the old certificate")
	}
	saved, err := device.LoadEnrollment(e.dir)
	if err != nil || saved.Certificate != en2.Certificate {
		t.Fatalf("rotated enrollment not saved: %v", err)
	}
	rotated := &estDevice{en: en2, id: id2, dev: e.dev, dir: e.dir}
	if rc, err = e.dev.Pay(ctx, rotated.transport(t, f.deviceURL()), dispense()); err != nil || rc.Outcome != wire.Approved {
		t.Fatalf("payment with the new certificate: %+v, %v", rc, err)
	}
	// The old certificate stays valid until it expires: no downtime.
	if rc, err = e.dev.Pay(ctx, e.transport(t, f.deviceURL()), dispense()); err != nil || rc.Outcome != wire.Approved {
		t.Fatalf("payment with the old certificate: %+v, %v", rc, err)
	}
	if got := f.balance(f.payer); got != 2000-3*250 {
		t.Errorf("payer balance = %d, want %d", got, 2000-3*250)
	}

	f.must("POST", "/v1/devices/"+string(e.dev.ID())+"/revoke", nil, nil)
	if _, err := e.dev.Pay(ctx, tr, dispense()); iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
		t.Fatalf("revoked device: %v, want unauthorized", err)
	}
	if _, _, err := device.Rotate(ctx, mtlsClient(id2), f.deviceURL(), "", en2, id2); iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
		t.Fatalf("revoked device re-enrolling: %v, want unauthorized", err)
	}
	if got := f.balance(f.payer); got != 2000-3*250 {
		t.Errorf("payer balance after refusals = %d", got)
	}
	f.assertBalanced()
}

// TestDeviceHTTPSNewKey: re-enrolling with a new key moves the device's
// request key to it; the old certificate still opens a channel, but
// requests signed with the old key are refused.
func TestDeviceHTTPSNewKey(t *testing.T) {
	f := setup(t, "")
	ctx := context.Background()
	e := f.enrollEST(newP256(t))
	key := newP256(t)
	dir := t.TempDir()
	en2, id2, err := device.RotateTo(ctx, mtlsClient(e.id), f.deviceURL(), dir, e.en, e.id, key)
	if err != nil {
		t.Fatal(err)
	}
	if saved, err := device.LoadEnrollment(dir); err != nil || saved.Certificate != en2.Certificate {
		t.Fatalf("rotated enrollment not saved: %v", err)
	}
	d2, err := device.New(*id2, stateWith(nil))
	if err != nil {
		t.Fatal(err)
	}
	tr2 := (&estDevice{id: id2}).transport(t, f.deviceURL())
	if rc, err := d2.Pay(ctx, tr2, dispense()); err != nil || rc.Code != string(iotpay.EREPLAY) {
		t.Fatalf("first payment (no challenge yet): %+v, %v", rc, err)
	}
	if rc, err := d2.Pay(ctx, tr2, dispense()); err != nil || rc.Outcome != wire.Approved {
		t.Fatalf("payment with the new key: %+v, %v", rc, err)
	}
	rc, err := e.dev.Pay(ctx, e.transport(t, f.deviceURL()), dispense())
	if err != nil || rc.Outcome != wire.Rejected || rc.Code != string(iotpay.EUNAUTHORIZED) {
		t.Fatalf("payment signed with the old key: %+v, %v; want rejected unauthorized", rc, err)
	}
	if got := f.balance(f.payer); got != 2000-250 {
		t.Errorf("payer balance = %d, want %d", got, 2000-250)
	}
}

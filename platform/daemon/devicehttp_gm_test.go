package daemon_test

import (
	"context"
	"testing"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	"github.com/iotpay/iotpay/wire"
)

// TestDeviceHTTPSGM: a gm device pays over HTTPS (TLS with its P-256
// transport certificate, the payment all SM2) and rotates its transport
// certificate over EST; EST enrollment is for intl devices only.
func TestDeviceHTTPSGM(t *testing.T) {
	f := setup(t, "")
	ctx := context.Background()
	var dev struct{ Product iotpay.ProductID }
	f.must("GET", "/v1/devices/"+string(f.dev.ID()), nil, &dev)
	var created struct {
		Device struct{ ID iotpay.DeviceID }
		Token  string `json:"enrollment_token"`
	}
	f.must("POST", "/v1/devices", map[string]any{"product": dev.Product, "name": "meter", "suite": "gm"}, &created)
	id := created.Device.ID

	dir := t.TempDir()
	keys, err := device.CreateKeys(dir, wire.SuiteGM, []byte("passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Close()
	if _, err := device.ESTEnroll(ctx, f.trustingClient(), f.deviceURL(), id, created.Token, keys.Transport.Signer()); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Fatalf("EST enrollment of a gm device: %v, want invalid", err)
	}
	en, err := keys.Enroll(ctx, nil, f.url, id, created.Token)
	if err != nil {
		t.Fatal(err)
	}
	if err := device.SaveEnrollment(dir, en); err != nil {
		t.Fatal(err)
	}
	ident, err := keys.Identity(en)
	if err != nil {
		t.Fatal(err)
	}
	d, err := device.New(*ident, stateWith(en.Challenge))
	if err != nil {
		t.Fatal(err)
	}
	f.must("POST", "/v1/mandates", map[string]any{"device": id, "payer": f.payer, "per_payment_limit": 500,
		"daily_limit": 1000, "monthly_limit": 10000}, nil)
	e := &estDevice{en: en, id: ident, dev: d, dir: dir}
	if rc, err := d.Pay(ctx, e.transport(t, f.deviceURL()), dispense()); err != nil || rc.Outcome != wire.Approved {
		t.Fatalf("gm payment over HTTPS: %+v, %v", rc, err)
	}

	en2, id2, err := device.Rotate(ctx, mtlsClient(ident), f.deviceURL(), dir, en, ident)
	if err != nil {
		t.Fatal(err)
	}
	if en2.TransportCertificate == en.TransportCertificate || en2.Certificate != en.Certificate {
		t.Fatal("rotation of a gm device must renew the transport certificate only")
	}
	rotated := &estDevice{en: en2, id: id2, dev: d, dir: dir}
	if rc, err := d.Pay(ctx, rotated.transport(t, f.deviceURL()), dispense()); err != nil || rc.Outcome != wire.Approved {
		t.Fatalf("gm payment with the rotated transport certificate: %+v, %v", rc, err)
	}
	if got := f.balance(f.payer); got != 2000-2*250 {
		t.Errorf("payer balance = %d, want %d", got, 2000-2*250)
	}
}

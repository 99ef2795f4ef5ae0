package daemon

import (
	"crypto/tls"
	"fmt"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/coap"
)

// DefaultCoAPAddr is where devices pay over CoAP/DTLS (UDP).
const DefaultCoAPAddr = ":5684"

// CoAPPSKSecretFile holds the secret devices' DTLS pre-shared keys are
// derived from (coap.DerivePSK), created on first start, mode 0600.
const CoAPPSKSecretFile = "coap-psk-secret"

// startCoAP starts the CoAP/DTLS access point with the broker's server
// certificate, the platform CA for device certificates, and PSKs.
func (d *Daemon) startCoAP(cert tls.Certificate) error {
	addr := d.cfg.CoAPAddr
	if addr == "" {
		addr = DefaultCoAPAddr
	}
	var err error
	d.CoAP, err = coap.New(coap.Config{Addr: addr, Certificate: cert, ClientCAs: d.CA.Pool(), PSKSecret: d.pskSecret,
		Logger: d.log}, d.Registry, d.Processor)
	if err != nil {
		return err
	}
	if err := d.CoAP.Start(); err != nil {
		return fmt.Errorf("coap listener on %s: %w", addr, err)
	}
	return nil
}

// closeCoAP stops the CoAP/DTLS access point, if started.
func (d *Daemon) closeCoAP() error {
	if d.CoAP == nil {
		return nil
	}
	return d.CoAP.Close()
}

// disconnect drops a revoked device's live MQTT and CoAP sessions, and
// its end-to-end sessions.
func (d *Daemon) disconnect(id iotpay.DeviceID) {
	d.Processor.EndSessions(id)
	d.Broker.Disconnect(id)
	if d.CoAP != nil {
		d.CoAP.Disconnect(id)
	}
}

// CoAPAddr is the bound CoAP/DTLS (UDP) address.
func (d *Daemon) CoAPAddr() string { return d.CoAP.Addr() }

// DevicePSK returns the DTLS pre-shared key of device id, to provision a
// constrained device with (its PSK identity is its id). The secret it
// derives from is loaded (or made) by Open; the operator API's
// POST /v1/devices/{id}/psk answers it for an active device.
func (d *Daemon) DevicePSK(id iotpay.DeviceID) ([]byte, error) {
	return coap.DerivePSK(d.pskSecret, id)
}

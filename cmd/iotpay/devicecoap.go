package main

import (
	"context"
	"io"
	"net"

	"github.com/iotpay/iotpay/device"
	devcoap "github.com/iotpay/iotpay/device/coap"
)

// coapTransport dials the platform's CoAP/DTLS endpoint with the device's
// (transport) certificate.
func coapTransport(ctx context.Context, id *device.Identity, addr string) (device.Transport, io.Closer, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	t, err := devcoap.Dial(ctx, devcoap.Config{Addr: addr, TLS: id.TLSConfig(host), DeviceID: id.ID})
	return t, t, err
}

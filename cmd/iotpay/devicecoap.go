package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	devcoap "github.com/iotpay/iotpay/device/coap"
	"github.com/iotpay/iotpay/internal/atomicfile"
)

// PSKFile is where 'device psk --dir' keeps a device's CoAP/DTLS
// pre-shared key in its directory (mode 0600), for 'device pay --psk-file'.
const PSKFile = "coap-psk"

// coapTransport dials the platform's CoAP/DTLS endpoint with the device's
// (transport) certificate, or with psk when not nil (the PSK identity is
// the device id).
func coapTransport(ctx context.Context, id *device.Identity, addr string, psk []byte) (device.Transport, io.Closer, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	cfg := devcoap.Config{Addr: addr, TLS: id.TLSConfig(host), DeviceID: id.ID}
	if psk != nil {
		cfg.TLS, cfg.PSK = nil, psk
	}
	t, err := devcoap.Dial(ctx, cfg)
	return t, t, err
}

// pskOf returns the PSK --psk gives, or the one in --psk-file, or nil.
func pskOf(key, file string) ([]byte, error) {
	switch {
	case key != "" && file != "":
		return nil, fmt.Errorf("give --psk or --psk-file, not both")
	case key != "":
		return []byte(key), nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		if b = bytes.TrimSpace(b); len(b) == 0 {
			return nil, fmt.Errorf("%s: empty PSK", file)
		}
		return b, nil
	}
	return nil, nil
}

// devicePSK asks the platform for a device's CoAP/DTLS pre-shared key: it
// prints it, or with --dir saves it in the device directory for
// 'device pay --psk-file' and prints only where.
func devicePSK(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := operatorFlags("device psk", stderr)
	dev := fs.String("device", "", "device id (required); it must be active (enrolled, not revoked)")
	dir := fs.String("dir", "", "save the key in this device directory (file "+PSKFile+", mode 0600) instead of printing it")
	if err := fs.parse(args, "device"); err != nil {
		return err
	}
	c, err := fs.client()
	if err != nil {
		return err
	}
	var psk struct {
		Identity iotpay.DeviceID `json:"identity"`
		Key      string          `json:"key"`
		Hint     string          `json:"hint"`
	}
	if err := c.do(ctx, "POST", "/v1/devices/"+*dev+"/psk", nil, &psk); err != nil {
		return err
	}
	if *dir == "" {
		return printJSON(stdout, psk)
	}
	path := filepath.Join(*dir, PSKFile)
	if err := atomicfile.Write(path, []byte(psk.Key+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "PSK of %s (identity %s, hint %q) saved in %s\n", psk.Identity, psk.Identity, psk.Hint, path)
	return nil
}

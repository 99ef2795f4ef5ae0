package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	deviceedge "github.com/iotpay/iotpay/device/edge"
	"github.com/iotpay/iotpay/edge/gateway"
	"github.com/iotpay/iotpay/internal/syncbuf"
	"github.com/iotpay/iotpay/platform/pki"
)

// writeCert writes a self-signed CA and a gateway certificate for id.
func writeCert(t *testing.T, dir string, id iotpay.DeviceID) (cert, key, ca string) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gw"},
		URIs:      []*url.URL{{Scheme: "urn", Opaque: "iotpay:device:" + string(id)}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(k)
	cert, key, ca = filepath.Join(dir, "gw.pem"), filepath.Join(dir, "gw.key"), filepath.Join(dir, "ca.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600)
	return cert, key, ca
}

func TestRunAndPSK(t *testing.T) {
	dir := t.TempDir()
	gw := iotpay.DeviceID(iotpay.NewID(iotpay.PrefixDevice, time.Now(), nil))
	cert, key, ca := writeCert(t, dir, gw)
	ctx, cancel := context.WithCancel(context.Background())
	gotGW := make(chan *gateway.Gateway, 1)
	done := make(chan error, 1)
	var logs syncbuf.Buffer
	go func() {
		// The uplink is a closed port: messages are stored, devices told so.
		done <- runGateway(ctx, []string{"--data", filepath.Join(dir, "data"), "--coap", "127.0.0.1:0", "--dtls", "127.0.0.1:0",
			"--uplink", "127.0.0.1:1", "--cert", cert, "--key", key, "--ca", ca, "--budget", "51", "--answer-wait", "50ms"},
			&logs, func(g *gateway.Gateway) { gotGW <- g })
	}()
	var g *gateway.Gateway
	select {
	case g = <-gotGW:
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), string(gw)) {
		t.Errorf("the gateway id from the certificate is not in the log:\n%s", logs.String())
	}
	// The psk command derives the key the DTLS port expects.
	dev := iotpay.DeviceID(iotpay.NewID(iotpay.PrefixDevice, time.Now(), nil))
	var out bytes.Buffer
	if err := run(context.Background(), []string{"psk", "--secret-file", filepath.Join(dir, "data", "coap-psk-secret"), "--device", string(dev)}, &out, &logs); err != nil {
		t.Fatal(err)
	}
	psk := []byte(strings.TrimSpace(out.String()))
	tr, err := deviceedge.Dial(ctx, deviceedge.Config{Addr: g.DTLSAddr(), PSK: psk, DeviceID: dev, BlockSize: gateway.BlockSize(51),
		Attempts: 1, FCnt: deviceedge.FileCounter{Path: filepath.Join(dir, "fcnt")}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	req := append([]byte{0xd2}, bytes.Repeat([]byte{1}, 100)...)
	ectx, ecancel := context.WithTimeout(ctx, time.Second)
	_, err = tr.Exchange(ectx, req, func([]byte) bool { return true })
	ecancel()
	if !errors.Is(err, deviceedge.ErrQueued) {
		t.Fatalf("exchange with the uplink down: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after the signal: %v", err)
	}
	if err := run(context.Background(), []string{"run", "--help"}, &out, &logs); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
	if !strings.Contains(logs.String(), "-budget") {
		t.Errorf("--help does not document --budget")
	}
}

// TestRunWithCertificate: 'run' accepts device certificates of its --ca by
// default and logs its DTLS certificate's SHA-256; 'cert' prints the same;
// a device pinning it posts through the DTLS port.
func TestRunWithCertificate(t *testing.T) {
	dir := t.TempDir()
	gw := iotpay.DeviceID(iotpay.NewID(iotpay.PrefixDevice, time.Now(), nil))
	cert, key, _ := writeCert(t, dir, gw)
	ca, err := pki.NewCA("test platform CA", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "platform-ca.pem")
	if err := os.WriteFile(caFile, pki.EncodeCertPEM(ca.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	var out, logs syncbuf.Buffer
	// 'cert' before the first start makes the certificate 'run' serves.
	if err := run(context.Background(), []string{"cert", "--data", data}, &out, &logs); err != nil {
		t.Fatal(err)
	}
	sum := strings.TrimSpace(out.String())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gotGW := make(chan *gateway.Gateway, 1)
	done := make(chan error, 1)
	go func() {
		done <- runGateway(ctx, []string{"--data", data, "--coap", "", "--dtls", "127.0.0.1:0",
			"--uplink", "127.0.0.1:1", "--cert", cert, "--key", key, "--ca", caFile, "--answer-wait", "50ms"},
			&logs, func(g *gateway.Gateway) { gotGW <- g })
	}()
	var g *gateway.Gateway
	select {
	case g = <-gotGW:
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, logs.String())
	}
	if hex.EncodeToString(g.CertSHA256()) != sum || !strings.Contains(logs.String(), "sha256="+sum) {
		t.Fatalf("cert printed %s, the gateway serves %x; log:\n%s", sum, g.CertSHA256(), logs.String())
	}
	dev := iotpay.DeviceID(iotpay.NewID(iotpay.PrefixDevice, time.Now(), nil))
	dkey, _ := pki.GenerateKey(pki.SuiteIntl, nil)
	csr, _ := pki.NewCSR(dkey, string(dev))
	dcert, err := ca.SignDeviceCSR(csr, dev, "ten_test")
	if err != nil {
		t.Fatal(err)
	}
	pin, _ := hex.DecodeString(sum)
	id := device.Identity{ID: dev, Cert: dcert, Signer: dkey, CA: ca.Cert}
	tr, err := deviceedge.Dial(ctx, deviceedge.Config{Addr: g.DTLSAddr(), TLS: id.TLSConfig("gateway"), GatewayCertSHA256: pin,
		DeviceID: dev, Attempts: 1, FCnt: deviceedge.FileCounter{Path: filepath.Join(dir, "fcnt")}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ectx, ecancel := context.WithTimeout(ctx, time.Second)
	_, err = tr.Exchange(ectx, append([]byte{0xd2}, bytes.Repeat([]byte{1}, 100)...), func([]byte) bool { return true })
	ecancel()
	if !errors.Is(err, deviceedge.ErrQueued) {
		t.Fatalf("exchange with the uplink down: %v", err)
	}
	var pemOut bytes.Buffer
	if err := run(context.Background(), []string{"cert", "--data", data, "--pem"}, &pemOut, &logs); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pemOut.String(), sum+"\n-----BEGIN CERTIFICATE-----") {
		t.Errorf("cert --pem printed:\n%s", pemOut.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after the signal: %v", err)
	}
}

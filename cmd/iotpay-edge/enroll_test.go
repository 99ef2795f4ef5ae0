package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	deviceedge "github.com/iotpay/iotpay/device/edge"
	"github.com/iotpay/iotpay/edge/gateway"
	"github.com/iotpay/iotpay/internal/opapi"
	"github.com/iotpay/iotpay/internal/syncbuf"
	"github.com/iotpay/iotpay/platform/daemon"
	"github.com/iotpay/iotpay/wire"
)

// TestEnrollAndRelay: the operator's path end to end. A gateway device is
// created on a running iotpayd, 'iotpay-edge enroll' makes its identity,
// 'iotpay-edge run' serves with it, and a device pays through it over
// plain UDP: the platform answers with the device's receipt.
func TestEnrollAndRelay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := daemon.Open(ctx, daemon.Config{DataDir: filepath.Join(t.TempDir(), "data"), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
		DeviceHTTPAddr: "127.0.0.1:0", CoAPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	api := opapi.New("http://"+d.HTTPAddr(), d.APIKey, 4)
	must := func(method, path string, in, out any) {
		t.Helper()
		if err := api.Do(ctx, method, path, "", in, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	var acc, prod, gwProd struct{ ID string }
	must("POST", "/v1/accounts", map[string]any{"name": "m", "kind": "merchant", "currency": "EUR"}, &acc)
	must("POST", "/v1/products", map[string]any{"name": "meter", "merchant_account": acc.ID, "pricing": map[string]any{"mode": "amount", "currency": "EUR"}}, &prod)
	must("POST", "/v1/products", map[string]any{"name": "gw", "kind": "gateway", "merchant_account": acc.ID, "pricing": map[string]any{"mode": "amount", "currency": "EUR"}}, &gwProd)
	type created struct {
		Device struct{ ID iotpay.DeviceID }
		Token  string `json:"enrollment_token"`
	}
	var gw, dv created
	must("POST", "/v1/devices", map[string]any{"product": gwProd.ID, "name": "gateway"}, &gw)
	must("POST", "/v1/devices", map[string]any{"product": prod.ID, "name": "meter"}, &dv)

	dir := t.TempDir()
	var out, logs bytes.Buffer
	if err := run(ctx, []string{"enroll", "--api", api.Base, "--device", string(gw.Device.ID), "--token", gw.Token, "--dir", dir}, &out, &logs); err != nil {
		t.Fatalf("enroll: %v\n%s", err, logs.String())
	}
	if fi, err := os.Stat(filepath.Join(dir, "gw.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("gw.key: %v %v", fi, err)
	}

	var runLogs syncbuf.Buffer
	gotGW := make(chan *gateway.Gateway, 1)
	done := make(chan error, 1)
	rctx, rcancel := context.WithCancel(ctx)
	go func() {
		done <- runGateway(rctx, []string{"--data", filepath.Join(dir, "data"), "--coap", "127.0.0.1:0", "--dtls", "127.0.0.1:0",
			"--uplink", d.MQTTAddr(), "--cert", filepath.Join(dir, "gw.pem"), "--key", filepath.Join(dir, "gw.key"),
			"--ca", filepath.Join(dir, "ca.pem")}, &runLogs, func(g *gateway.Gateway) { gotGW <- g })
	}()
	var g *gateway.Gateway
	select {
	case g = <-gotGW:
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, runLogs.String())
	}

	// A device, its wallet and mandate; it pays through the gateway.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	en, err := device.Enroll(ctx, nil, api.Base, dv.Device.ID, dv.Token, key)
	if err != nil {
		t.Fatal(err)
	}
	id, err := en.Identity(key)
	if err != nil {
		t.Fatal(err)
	}
	st := &device.MemState{}
	st.Save(device.State{Challenge: en.Challenge})
	dev, _ := device.New(*id, st)
	var payer struct{ ID string }
	must("POST", "/v1/accounts", map[string]any{"name": "p", "kind": "payer", "currency": "EUR"}, &payer)
	must("POST", "/v1/accounts/"+payer.ID+"/fund", map[string]any{"amount": 1000}, nil)
	must("POST", "/v1/mandates", map[string]any{"device": dev.ID(), "payer": payer.ID, "per_payment_limit": 500,
		"daily_limit": 1000, "monthly_limit": 1000}, nil)
	tr, err := deviceedge.Dial(ctx, deviceedge.Config{Addr: g.Addr(), DeviceID: dev.ID(), FCnt: deviceedge.FileCounter{Path: filepath.Join(dir, "fcnt")}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	rc, err := dev.Pay(ctx, tr, device.Payment{Amount: &iotpay.Money{Amount: 250, Currency: "EUR"}})
	if err != nil || rc.Outcome != wire.Approved {
		t.Fatalf("payment through the gateway: %+v %v\n%s", rc, err, runLogs.String())
	}
	var bal struct{ Balance int64 }
	must("GET", "/v1/accounts/"+payer.ID, nil, &bal)
	if bal.Balance != 750 {
		t.Fatalf("payer balance %d", bal.Balance)
	}
	rcancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

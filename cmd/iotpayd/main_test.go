package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	devmqtt "github.com/iotpay/iotpay/device/mqtt"
	"github.com/iotpay/iotpay/store/postgres/pgtest"
	"github.com/iotpay/iotpay/wire"
)

func TestHelp(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"--help"}, &out, &errOut)
	if err == nil {
		t.Fatal("--help returned nil, want flag.ErrHelp")
	}
	for _, want := range []string{"-data", "IOTPAY_DATA", "-http", "IOTPAY_HTTP_ADDR", "-mqtt", "IOTPAY_MQTT_ADDR", "-device-http", "IOTPAY_DEVICE_HTTP_ADDR", "-coap", "IOTPAY_COAP_ADDR", "-store", "IOTPAY_STORE", "postgres://"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestUnknownStoreIsRefused(t *testing.T) {
	var out, errOut bytes.Buffer
	data := filepath.Join(t.TempDir(), "data")
	err := run(context.Background(), []string{"-data", data, "-store", "mysql://u:secret@db/x"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "postgres://") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("unknown store: %v, want refused naming what is accepted, without the URL", err)
	}
}

func TestEthereumAnchorNeedsContractAndKey(t *testing.T) {
	var out, errOut bytes.Buffer
	data := filepath.Join(t.TempDir(), "data")
	err := run(context.Background(), []string{"-data", data, "-eth-rpc", "http://127.0.0.1:1"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "--eth-contract") {
		t.Fatalf("--eth-rpc alone: %v", err)
	}
	if _, err := os.Stat(data); err == nil {
		t.Fatal("the data directory was made before the flags were checked")
	}
}

var listening = regexp.MustCompile(`HTTP API on (http://\S+), MQTT/TLS on (\S+),`)

// daemonProc is iotpayd running as a child process.
type daemonProc struct {
	cmd       *exec.Cmd
	url, mqtt string
	apiKey    string
}

// startProc runs bin on data, and on store, passed in IOTPAY_STORE, when
// it is not empty.
func startProc(t *testing.T, bin, data, store string) *daemonProc {
	t.Helper()
	cmd := exec.Command(bin, "-data", data, "-http", "127.0.0.1:0", "-mqtt", "127.0.0.1:0", "-device-http", "127.0.0.1:0", "-coap", "127.0.0.1:0")
	if store != "" {
		cmd.Env = append(os.Environ(), "IOTPAY_STORE="+store)
	}
	cmd.Stderr = io.Discard
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &daemonProc{cmd: cmd}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		line := sc.Text()
		if k, ok := strings.CutPrefix(line, "export IOTPAY_API_KEY="); ok {
			p.apiKey = k
		}
		if m := listening.FindStringSubmatch(line); m != nil {
			p.url, p.mqtt = m[1], m[2]
			go io.Copy(io.Discard, stdout)
			return p
		}
	}
	t.Fatal("iotpayd never said it was listening")
	return nil
}

func (p *daemonProc) api(t *testing.T, key, method, path string, in, out any) {
	t.Helper()
	b, _ := json.Marshal(in)
	req, _ := http.NewRequest(method, p.url+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %s %s", method, path, resp.Status, body)
	}
	if out != nil {
		json.Unmarshal(body, out)
	}
}

// TestProcessLifecycle builds iotpayd, runs it, pays, stops it with
// SIGTERM and starts it again on the same data: the acknowledged payment is
// there, the key files are private, and no new API key is printed. It does
// so on SQLite and, through IOTPAY_STORE, on PostgreSQL.
func TestProcessLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "iotpayd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Run("sqlite", func(t *testing.T) { lifecycle(t, bin, "") })
	t.Run("postgres", func(t *testing.T) { lifecycle(t, bin, pgtest.New(t)) })
}

func lifecycle(t *testing.T, bin, store string) {
	data := filepath.Join(t.TempDir(), "data")
	p := startProc(t, bin, data, store)
	if p.apiKey == "" {
		t.Fatal("first start printed no API key")
	}
	for _, f := range []string{"ca-key.pem", "receipt-key.pem"} {
		fi, err := os.Stat(filepath.Join(data, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	key := p.apiKey
	var acc, payer struct{ ID iotpay.AccountID }
	p.api(t, key, "POST", "/v1/accounts", map[string]any{"name": "m", "kind": "merchant", "currency": "EUR"}, &acc)
	var prod struct{ ID iotpay.ProductID }
	p.api(t, key, "POST", "/v1/products", map[string]any{"name": "parking", "merchant_account": acc.ID,
		"pricing": map[string]any{"mode": "amount", "currency": "EUR"}}, &prod)
	var created struct {
		Device struct{ ID iotpay.DeviceID }
		Token  string `json:"enrollment_token"`
	}
	p.api(t, key, "POST", "/v1/devices", map[string]any{"product": prod.ID, "name": "barrier"}, &created)
	p.api(t, key, "POST", "/v1/accounts", map[string]any{"name": "p", "kind": "payer", "currency": "EUR"}, &payer)
	p.api(t, key, "POST", "/v1/accounts/"+string(payer.ID)+"/fund", map[string]any{"amount": 1000}, nil)
	p.api(t, key, "POST", "/v1/mandates", map[string]any{"device": created.Device.ID, "payer": payer.ID, "per_payment_limit": 500, "daily_limit": 1000, "monthly_limit": 10000}, nil)

	ctx := context.Background()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	en, err := device.Enroll(ctx, nil, p.url, created.Device.ID, created.Token, k)
	if err != nil {
		t.Fatal(err)
	}
	id, err := en.Identity(k)
	if err != nil {
		t.Fatal(err)
	}
	st := &device.MemState{}
	st.Save(device.State{Challenge: en.Challenge})
	dev, _ := device.New(*id, st)
	tr, err := devmqtt.Dial(ctx, devmqtt.Config{Addr: p.mqtt, TLS: id.TLSConfig("127.0.0.1"), DeviceID: id.ID})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := dev.Pay(ctx, tr, device.Payment{Amount: &iotpay.Money{Amount: 300, Currency: "EUR"}})
	tr.Close()
	if err != nil || rc.Outcome != wire.Approved {
		t.Fatalf("pay: %v %+v", err, rc)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("iotpayd did not exit cleanly on SIGTERM: %v", err)
	}

	p2 := startProc(t, bin, data, store)
	if p2.apiKey != "" {
		t.Error("second start printed a new API key")
	}
	var pay struct{ Status string }
	p2.api(t, key, "GET", "/v1/payments/"+rc.PaymentID, nil, &pay)
	if pay.Status != "captured" {
		t.Fatalf("payment after restart = %+v", pay)
	}
	var a struct{ Balance int64 }
	p2.api(t, key, "GET", "/v1/accounts/"+string(payer.ID), nil, &a)
	if a.Balance != 700 {
		t.Fatalf("payer balance after restart = %d, want 700", a.Balance)
	}
	p2.cmd.Process.Signal(syscall.SIGINT)
	if err := p2.cmd.Wait(); err != nil {
		t.Fatalf("iotpayd did not exit cleanly on SIGINT: %v", err)
	}
}

package daemon_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	devmqtt "github.com/iotpay/iotpay/device/mqtt"
	"github.com/iotpay/iotpay/platform/daemon"
	"github.com/iotpay/iotpay/store/postgres/pgtest"
	"github.com/iotpay/iotpay/wire"
)

// platform is a running iotpayd and an operator API client for it.
type platform struct {
	t   testing.TB
	d   *daemon.Daemon
	url string
}

// stores are what every end-to-end scenario runs on: SQLite in the data
// directory, and a fresh PostgreSQL database.
var stores = []struct {
	name string
	url  func(testing.TB) string // Config.Store
}{
	{"sqlite", func(testing.TB) string { return "" }},
	{"postgres", pgtest.New},
}

// onEachStore runs scenario once a store, as subtests.
func onEachStore(t *testing.T, scenario func(t *testing.T, store string)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) { scenario(t, s.url(t)) })
	}
}

func start(t testing.TB, store string) *platform {
	t.Helper()
	ctx := context.Background()
	d, err := daemon.Open(ctx, daemon.Config{DataDir: filepath.Join(t.TempDir(), "data"), Store: store, HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", DeviceHTTPAddr: "127.0.0.1:0", CoAPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if d.APIKey == "" {
		t.Fatal("first start printed no API key")
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return &platform{t: t, d: d, url: "http://" + d.HTTPAddr()}
}

// api calls the operator API and decodes into out; it returns the status.
func (p *platform) api(method, path string, in, out any) int {
	p.t.Helper()
	return p.apiKey(method, path, in, out, "")
}

// apiKey is api with an Idempotency-Key (none when empty).
func (p *platform) apiKey(method, path string, in, out any, key string) int {
	p.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, p.url+path, body)
	req.Header.Set("Authorization", "Bearer "+p.d.APIKey)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			p.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

func (p *platform) must(method, path string, in, out any) {
	p.t.Helper()
	if st := p.api(method, path, in, out); st >= 300 {
		p.t.Fatalf("%s %s: status %d", method, path, st)
	}
}

func (p *platform) balance(id iotpay.AccountID) int64 {
	var a struct{ Balance int64 }
	p.must("GET", "/v1/accounts/"+string(id), nil, &a)
	return a.Balance
}

func (p *platform) assertBalanced() {
	p.t.Helper()
	rep, err := p.d.Payments.Check(context.Background())
	if err != nil {
		p.t.Fatal(err)
	}
	if !rep.Balanced {
		p.t.Fatalf("ledger does not balance: %+v", rep)
	}
}

type fixture struct {
	*platform
	// attempts is how many times the attack suite's and the benchmarks'
	// transports send a request; 0 is once (a refusal is an answer, not
	// a silence, so nothing needs resending).
	attempts        int
	merchant, payer iotpay.AccountID
	dev             *device.Device
	tr              *devmqtt.Transport
}

// setup starts the platform on store and creates a vending product (2.50 EUR per unit dispensed), one device
// enrolled over the API with a key it generated, a wallet of 20.00 EUR and
// a mandate of 5.00 per payment, 10.00 a day.
func setup(t testing.TB, store string) *fixture {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return setupWith(t, store, key)
}

// setupWith is setup with the device's key in key, which may be in a
// keystore.
func setupWith(t testing.TB, store string, key crypto.Signer) *fixture {
	return setupOn(t, start(t, store), key)
}

// setupOn is setupWith on a platform already started.
func setupOn(t testing.TB, p *platform, key crypto.Signer) *fixture {
	f := &fixture{platform: p}
	var acc struct{ ID iotpay.AccountID }
	p.must("POST", "/v1/accounts", map[string]any{"name": "merchant", "kind": "merchant", "currency": "EUR"}, &acc)
	f.merchant = acc.ID
	var prod struct{ ID iotpay.ProductID }
	p.must("POST", "/v1/products", map[string]any{"name": "vending", "merchant_account": f.merchant,
		"pricing": map[string]any{"mode": "metered", "event": "dispense", "unit": "units", "per_units": 1, "price_minor": 250, "currency": "EUR"}}, &prod)
	f.dev, f.tr = f.enroll(prod.ID, key)
	p.must("POST", "/v1/accounts", map[string]any{"name": "payer", "kind": "payer", "currency": "EUR"}, &acc)
	f.payer = acc.ID
	p.must("POST", "/v1/accounts/"+string(f.payer)+"/fund", map[string]any{"amount": 2000}, nil)
	p.must("POST", "/v1/mandates", map[string]any{"device": f.dev.ID(), "payer": f.payer, "per_payment_limit": 500,
		"daily_limit": 1000, "monthly_limit": 10000}, nil)
	return f
}

func (f *fixture) enroll(product iotpay.ProductID, key crypto.Signer) (*device.Device, *devmqtt.Transport) {
	t := f.t
	var created struct {
		Device struct{ ID iotpay.DeviceID }
		Token  string `json:"enrollment_token"`
	}
	f.must("POST", "/v1/devices", map[string]any{"product": product, "name": "machine"}, &created)
	ctx := context.Background()
	en, err := device.Enroll(ctx, nil, f.url, created.Device.ID, created.Token, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := device.Enroll(ctx, nil, f.url, created.Device.ID, created.Token, key); iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
		t.Fatalf("second use of an enrollment token: %v, want unauthorized", err)
	}
	id, err := en.Identity(key)
	if err != nil {
		t.Fatal(err)
	}
	// The enrollment's first challenge is the device's initial state.
	dev, err := device.New(*id, stateWith(en.Challenge))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := devmqtt.Dial(ctx, devmqtt.Config{Addr: f.d.MQTTAddr(), TLS: id.TLSConfig("127.0.0.1"), DeviceID: id.ID, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return dev, tr
}

func stateWith(challenge []byte) *device.MemState {
	m := &device.MemState{}
	m.Save(device.State{Challenge: challenge})
	return m
}

func dispense() device.Payment { return dispenseN(1) }

func dispenseN(n int64) device.Payment {
	return device.Payment{Event: &wire.Event{Type: "dispense", Num: map[string]int64{"units": n}, Str: map[string]string{"sku": "A3"}}}
}

func TestEndToEndPayment(t *testing.T) { onEachStore(t, testEndToEndPayment) }

func testEndToEndPayment(t *testing.T, store string) {
	f := setup(t, store)
	ctx := context.Background()
	rc, err := f.dev.Pay(ctx, f.tr, dispense())
	if err != nil {
		t.Fatal(err)
	}
	if rc.Outcome != wire.Approved || rc.AmountMinor != 250 || rc.Currency != "EUR" || rc.LogIndex == nil || len(rc.Transfers) != 2 {
		// A sale is a hold and its capture (no fees configured).
		t.Fatalf("receipt = %+v", rc)
	}
	if got := f.balance(f.payer); got != 1750 {
		t.Errorf("payer balance = %d, want 1750", got)
	}
	if got := f.balance(f.merchant); got != 250 {
		t.Errorf("merchant balance = %d, want 250", got)
	}
	var pay struct {
		Status   string
		LogIndex uint64 `json:"log_index"`
	}
	f.must("GET", "/v1/payments/"+rc.PaymentID, nil, &pay)
	if pay.Status != "captured" || pay.LogIndex != *rc.LogIndex {
		t.Errorf("payment = %+v", pay)
	}
	f.assertBalanced()
}

func TestRedeliveryIsIdempotent(t *testing.T) { onEachStore(t, testRedeliveryIsIdempotent) }

func testRedeliveryIsIdempotent(t *testing.T, store string) {
	f := setup(t, store)
	ctx := context.Background()
	s, err := f.dev.Sign(dispense())
	if err != nil {
		t.Fatal(err)
	}
	first, err := f.dev.Send(ctx, f.tr, s)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		again, err := f.dev.Send(ctx, f.tr, s)
		if err != nil {
			t.Fatal(err)
		}
		if again.PaymentID != first.PaymentID || again.TimeMs != first.TimeMs || *again.LogIndex != *first.LogIndex {
			t.Fatalf("redelivery %d got a different receipt: %+v vs %+v", i, again, first)
		}
	}
	if got := f.balance(f.payer); got != 1750 {
		t.Errorf("payer balance = %d after redeliveries, want 1750 (charged once)", got)
	}
	f.assertBalanced()
}

// TestBadInput sends each kind of bad request over MQTT and checks it gets
// a signed error receipt, and that no money moves.
func TestBadInput(t *testing.T) { onEachStore(t, testBadInput) }

func testBadInput(t *testing.T, store string) {
	f := setup(t, store)
	ctx := context.Background()
	// One good payment first, so the device has state to replay against.
	old, err := f.dev.Sign(dispense())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.dev.Send(ctx, f.tr, old); err != nil {
		t.Fatal(err)
	}
	payer, merchant := f.balance(f.payer), f.balance(f.merchant)
	id := f.dev.Identity()

	send := func(raw []byte) *wire.Receipt {
		t.Helper()
		rc, err := exchange(ctx, f.tr, id, raw)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		return rc
	}
	signed := func(mut func(*wire.Request)) []byte {
		s, err := f.dev.Sign(dispense())
		if err != nil {
			t.Fatal(err)
		}
		r := s.Request
		mut(&r)
		raw, err := wire.SignRequest(id.Suite, id.Signer, rand.Reader, &r)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	good, _ := f.dev.Sign(dispense())
	badSig := bytes.Clone(good.Raw)
	badSig[len(badSig)-3] ^= 0x40
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	r := good.Request
	r.RequestID = "rq_other_key"
	otherKey, _ := wire.SignRequest(id.Suite, other, rand.Reader, &r)
	unknown := signed(func(r *wire.Request) { r.Device = iotpay.NewID(iotpay.PrefixDevice, time.Now(), nil) })

	cases := []struct {
		name    string
		raw     []byte
		outcome wire.Outcome
		code    iotpay.Code
	}{
		{"malformed CBOR", []byte{0xd2, 0x84, 0x41, 0xff}, wire.Rejected, iotpay.EINVALID},
		{"not CBOR at all", []byte("pay me"), wire.Rejected, iotpay.EINVALID},
		{"bad signature", badSig, wire.Rejected, iotpay.EUNAUTHORIZED},
		{"signed by another key", otherKey, wire.Rejected, iotpay.EUNAUTHORIZED},
		{"unknown device", unknown, wire.Rejected, iotpay.EUNAUTHORIZED},
		{"stale counter", signed(func(r *wire.Request) { r.Counter = 1; r.RequestID = "rq_stale" }), wire.Rejected, iotpay.EREPLAY},
		{"request id reused", signed(func(r *wire.Request) { r.RequestID = old.Request.RequestID }), wire.Rejected, iotpay.EREPLAY},
		{"clock far off", signed(func(r *wire.Request) { r.TimeMs -= int64(time.Hour / time.Millisecond) }), wire.Rejected, iotpay.EINVALID},
		{"wrong challenge", signed(func(r *wire.Request) { r.Challenge = make([]byte, wire.ChallengeBytes) }), wire.Rejected, iotpay.EREPLAY},
		{"amount for an event-priced product", signed(func(r *wire.Request) { r.Event = nil; r.AmountMinor = 1; r.Currency = "EUR" }), wire.Rejected, iotpay.EINVALID},
		{"over the per-payment limit", nil, wire.Declined, iotpay.EDECLINED},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := c.raw
			if raw == nil { // a real request the binding refuses: 7.50 EUR
				s, err := f.dev.Sign(dispenseN(3))
				if err != nil {
					t.Fatal(err)
				}
				raw = s.Raw
			}
			rc := send(raw)
			if rc.Outcome != c.outcome || rc.Code != string(c.code) {
				t.Errorf("got %s %s (%s), want %s %s", rc.Outcome, rc.Code, rc.Reason, c.outcome, c.code)
			}
			f.assertUnmoved(t, payer, merchant)
		})
	}
}

func TestOpenRefusesAnUnknownStoreBeforeCreatingAnything(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	_, err := daemon.Open(context.Background(), daemon.Config{DataDir: data, Store: "mysql://root:secret@db/iotpay"})
	if iotpay.ErrorCode(err) != iotpay.EINVALID || strings.Contains(err.Error(), "secret") {
		t.Fatalf("unknown store: %v, want invalid without the URL", err)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("data directory created for a refused store: %v", err)
	}
}

func TestSecondDaemonOnOneDatabaseIsRefused(t *testing.T) {
	url := pgtest.New(t)
	p := start(t, url)
	_, err := daemon.Open(context.Background(), daemon.Config{DataDir: filepath.Join(t.TempDir(), "other"), Store: url})
	if err == nil || !strings.Contains(err.Error(), "database is in use by another iotpayd") {
		t.Fatalf("second iotpayd on the database: %v, want in use", err)
	}
	p.assertBalanced() // the first goes on
}

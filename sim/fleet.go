package sim

import (
	"container/list"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	devcoap "github.com/iotpay/iotpay/device/coap"
	devmqtt "github.com/iotpay/iotpay/device/mqtt"
	"github.com/iotpay/iotpay/internal/opapi"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/platform/rules"
	"github.com/iotpay/iotpay/wire"
)

// What every simulated device's payer is funded with and what its
// mandate allows, in EUR cents: far above what a run spends, so the
// declines a run sees are the platform's own, not the fleet running dry.
const (
	fundMinor       = 10_000_000_000 // 100 M EUR
	perPaymentMinor = 100_000        // 1,000 EUR: an EV session's hold and top-ups
	dailyMinor      = 100_000_000
	monthlyMinor    = 31 * dailyMinor
	currency        = "EUR"
)

// Exchange bounds of the devices' transports: a loaded platform may take
// seconds to answer, and a resend costs it the request again.
const (
	exchangeTimeout  = 10 * time.Second
	exchangeAttempts = 3
)

// supplierURL is where the vending rules would send refill orders; the
// simulator sends no stock events, so nothing is ever sent there.
const supplierURL = "https://supplier.invalid/orders"

// simDevice is one device of the fleet.
type simDevice struct {
	i         int
	product   Product
	transport string // TransportMQTT or TransportCoAP
	dev       *device.Device
	rng       *mrand.Rand
	sc        scenario
	// conn and elem belong to the pool: the device's transport, and its
	// place in the pool's idle list while connected and not in flight.
	conn conn
	elem *list.Element
}

// fleet is the devices of a run and the platform they pay.
type fleet struct {
	cfg      *Config
	target   Target
	api      *opapi.Client
	run      string // this run's id: names and idempotency keys
	products map[Product]iotpay.ProductID
	devices  []*simDevice
	// enrolled and connected count the setup's progress.
	enrolled, connected atomic.Int64
}

// newFleet assigns the devices' products and transports.
func newFleet(cfg *Config, target Target) *fleet {
	b := make([]byte, 4)
	rand.Read(b)
	f := &fleet{cfg: cfg, target: target, api: opapi.New(target.APIURL, target.APIKey, cfg.SetupWorkers+4), run: hex.EncodeToString(b)}
	r := mrand.New(mrand.NewPCG(cfg.Seed, 0))
	for i, p := range cfg.Mix.assign(cfg.Devices, r) {
		tr := cfg.Transport
		if tr == TransportMix {
			tr = [2]string{TransportMQTT, TransportCoAP}[i%2]
		}
		f.devices = append(f.devices, &simDevice{i: i, product: p, transport: tr, sc: scenario{product: p},
			rng: mrand.New(mrand.NewPCG(cfg.Seed, uint64(i)+1))})
	}
	return f
}

func (f *fleet) idem(what string, i int) string {
	return "sim-" + f.run + "-" + what + "-" + strconv.Itoa(i)
}

// setupProducts puts the reference tariffs the platform lacks (a remote
// platform's own are left alone), a merchant per product and the four
// reference products with their rules.
func (f *fleet) setupProducts(ctx context.Context) error {
	var have struct {
		Data []rules.Tariff `json:"data"`
	}
	if err := f.api.Do(ctx, "GET", "/v1/tariffs", "", nil, &have); err != nil {
		return err
	}
	known := map[string]bool{}
	for _, t := range have.Data {
		known[t.Name] = true
	}
	for _, t := range rules.ReferenceTariffs() {
		if !known[t.Name] {
			if err := f.api.Do(ctx, "PUT", "/v1/tariffs/"+t.Name, "", t, nil); err != nil {
				return err
			}
		}
	}
	type product struct {
		name, category, merchant string
		rules                    rules.Ruleset
	}
	all := map[Product]product{
		Vending: {"vending machine", "5814", "Snack Co", rules.VendingRules(supplierURL)},
		EV:      {"EV charger", "5552", "ChargeNet", rules.EVChargerRules()},
		Meter:   {"smart meter", "4900", "GridCo", rules.SmartMeterRules()},
		Parking: {"parking barrier", "7523", "ParkWell", rules.ParkingRules()},
	}
	f.products = map[Product]iotpay.ProductID{}
	for _, p := range Products {
		if f.cfg.Mix[p] == 0 {
			continue
		}
		d := all[p]
		var acc struct{ ID iotpay.AccountID }
		if err := f.api.Do(ctx, "POST", "/v1/accounts", f.idem("merchant-"+string(p), 0),
			map[string]any{"name": "sim " + d.merchant, "kind": "merchant", "currency": currency}, &acc); err != nil {
			return err
		}
		var prod struct{ ID iotpay.ProductID }
		if err := f.api.Do(ctx, "POST", "/v1/products", f.idem("product-"+string(p), 0), map[string]any{"name": "sim " + d.name,
			"merchant_account": acc.ID, "category": d.category, "pricing": map[string]any{"mode": "amount", "currency": currency}}, &prod); err != nil {
			return err
		}
		if err := f.api.Do(ctx, "PUT", "/v1/products/"+string(prod.ID)+"/profile", "", map[string]any{"rules": d.rules.Rules}, nil); err != nil {
			return fmt.Errorf("sim: %s: %w", d.name, err)
		}
		f.products[p] = prod.ID
	}
	return nil
}

// enrollAll enrolls every device, SetupWorkers at a time; the first error
// stops the others.
func (f *fleet) enrollAll(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var once sync.Once
	var first error
	each(len(f.devices), f.cfg.SetupWorkers, func(i int) {
		if ctx.Err() != nil {
			return
		}
		if err := f.enroll(ctx, f.devices[i]); err != nil {
			once.Do(func() { first = fmt.Errorf("sim: device %d: %w", i, err); cancel() })
			return
		}
		f.enrolled.Add(1)
	})
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

// keys makes a device's keys in memory: an ECDSA P-256 key (intl), or
// an SM2 signing key and a P-256 transport key for TLS (gm).
func keys(suite string) (signer, transport crypto.Signer, err error) {
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil || suite != wire.SuiteGM {
		return p256, nil, err
	}
	sm2, err := pki.GenerateKey(pki.SuiteGM, rand.Reader)
	return sm2, p256, err
}

// enroll registers d, enrolls its fresh keys over the API, opens and
// funds its payer account and gives it a mandate on it.
func (f *fleet) enroll(ctx context.Context, d *simDevice) error {
	signer, transport, err := keys(f.cfg.Suite)
	if err != nil {
		return err
	}
	var created struct {
		Device struct{ ID iotpay.DeviceID } `json:"device"`
		Token  string                       `json:"enrollment_token"`
	}
	name := "sim-" + f.run + "-" + strconv.Itoa(d.i)
	if err := f.api.Do(ctx, "POST", "/v1/devices", f.idem("device", d.i),
		map[string]any{"product": f.products[d.product], "name": name, "suite": f.cfg.Suite}, &created); err != nil {
		return err
	}
	en, err := device.EnrollWith(ctx, f.api.HTTP, f.api.Base, created.Device.ID, created.Token, signer, transport)
	if err != nil {
		return err
	}
	id, err := en.IdentityWith(signer, transport)
	if err != nil {
		return err
	}
	st := &device.MemState{}
	st.Save(device.State{Challenge: en.Challenge})
	if d.dev, err = device.New(*id, st); err != nil {
		return err
	}
	var payer struct{ ID iotpay.AccountID }
	if err := f.api.Do(ctx, "POST", "/v1/accounts", f.idem("payer", d.i),
		map[string]any{"name": name + " owner", "kind": "payer", "currency": currency}, &payer); err != nil {
		return err
	}
	if err := f.api.Do(ctx, "POST", "/v1/accounts/"+string(payer.ID)+"/fund", f.idem("fund", d.i),
		map[string]any{"amount": fundMinor}, nil); err != nil {
		return err
	}
	return f.api.Do(ctx, "POST", "/v1/mandates", f.idem("mandate", d.i), map[string]any{"device": id.ID, "payer": payer.ID,
		"per_payment_limit": perPaymentMinor, "daily_limit": dailyMinor, "monthly_limit": monthlyMinor}, nil)
}

// dial opens d's transport to the platform.
func (f *fleet) dial(ctx context.Context, d *simDevice) (conn, error) {
	id := d.dev.Identity()
	addr := f.target.MQTTAddr
	if d.transport == TransportCoAP {
		addr = f.target.CoAPAddr
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "sim: bad "+d.transport+" address", err)
	}
	if d.transport == TransportCoAP {
		t, err := devcoap.Dial(ctx, devcoap.Config{Addr: addr, TLS: id.TLSConfig(host), DeviceID: id.ID,
			Timeout: exchangeTimeout, Attempts: exchangeAttempts})
		if err != nil {
			return nil, err
		}
		return t, nil
	}
	t, err := devmqtt.Dial(ctx, devmqtt.Config{Addr: addr, TLS: id.TLSConfig(host), DeviceID: id.ID,
		Timeout: exchangeTimeout, Attempts: exchangeAttempts})
	if err != nil {
		return nil, err
	}
	return t, nil
}

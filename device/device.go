// Package device is the device SDK: a device's identity (a key held in a
// keystore, its certificate, the platform's keys it trusts), its request
// counter and challenge state, signed payment requests, and verification of
// the platform's signed receipts.
//
// Transports (device/mqtt) carry the bytes; this package decides what they
// mean. Every receipt is checked: signed by the platform key learned at
// enrollment, and bound to the exact request the device sent.
package device

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

// Identity is what a device holds after enrollment.
type Identity struct {
	ID          iotpay.DeviceID
	Suite       wire.Suite
	Signer      crypto.Signer // in a keystore; never exported
	Cert        *x509.Certificate
	CA          *x509.Certificate // the platform CA: the broker's certificate chains to it
	PlatformKey crypto.PublicKey  // signs receipts
	// Transport and TransportCert (P-256, from CA) authenticate a gm
	// device's TLS channel; TLS does not speak SM2. Nil for intl devices,
	// whose Signer does both.
	Transport     crypto.Signer
	TransportCert *x509.Certificate
}

// TLSConfig returns a mutual-TLS client configuration for this identity.
func (id *Identity) TLSConfig(serverName string) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(id.CA)
	key, cert := id.Signer, id.Cert
	if id.Transport != nil {
		key, cert = id.Transport, id.TransportCert
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      pool,
		ServerName:   serverName,
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}},
	}
}

// State is the device's replay-protection state. It must survive reboots:
// a counter that goes backwards is refused by the platform.
type State struct {
	Counter   uint64 `json:"counter"`
	Challenge []byte `json:"challenge"`
	// Checkpoint is the audit log's latest checkpoint the device verified
	// (VerifyLogged): a later one must extend it.
	Checkpoint []byte `json:"checkpoint,omitempty"`
	// OfflineCount and OfflineAmount are what the device paid offline
	// (SignOffline) since its last online request.
	OfflineCount  int   `json:"offline_count,omitempty"`
	OfflineAmount int64 `json:"offline_amount,omitempty"`
}

// OfflineLimits bound what a device pays while the platform is out of
// reach: its product's (registry.OfflineLimits), as its maker set it up.
type OfflineLimits struct {
	MaxAmount int64
	MaxCount  int
}

// StateStore persists State.
type StateStore interface {
	Load() (State, error)
	Save(State) error
}

// Transport carries a signed request to the platform and returns the first
// answer for which match is true.
type Transport interface {
	Exchange(ctx context.Context, request []byte, match func(answer []byte) bool) ([]byte, error)
}

// Device signs requests and checks receipts. Its methods are safe for
// concurrent use; requests are numbered in the order they are signed.
type Device struct {
	id    Identity
	store StateStore
	Now   func() time.Time
	Rand  io.Reader

	mu    sync.Mutex
	state State

	secure secure // the end-to-end session, if any (session.go)
}

// New returns a device with the state store's last state.
func New(id Identity, store StateStore) (*Device, error) {
	st, err := store.Load()
	if err != nil {
		return nil, err
	}
	return &Device{id: id, store: store, state: st}, nil
}

// ID is the device's id.
func (d *Device) ID() iotpay.DeviceID { return d.id.ID }

// Identity returns the device's identity.
func (d *Device) Identity() *Identity { return &d.id }

func (d *Device) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Device) rand() io.Reader {
	if d.Rand != nil {
		return d.Rand
	}
	return rand.Reader
}

// Payment is what a device asks to pay: an amount it states, or an event
// its product prices.
type Payment struct {
	RequestID string // idempotency key; generated when empty
	Amount    *iotpay.Money
	Event     *wire.Event
	// Report is the device's state, signed with the request: firmware
	// and its measurement (an attestation), tamper, battery, location,
	// reported fields. A report alone is an Event of type wire.EventState.
	Report *wire.Report
}

// Signed is a request ready to send, kept so it can be sent again
// unchanged: the platform answers a redelivery with the same receipt.
type Signed struct {
	Raw     []byte
	Hash    []byte
	Request wire.Request
}

// Sign numbers and signs a payment request. The new counter is saved before
// the request exists, so no counter is ever used twice.
func (d *Device) Sign(p Payment) (*Signed, error) { return d.sign(p, nil) }

// SignOffline signs a payment the device makes without the platform, as a
// chip card approves offline: only with a stated Amount, and only while
// what it paid offline since it was last online stays within lim; past
// them it is an EDECLINED error and nothing is signed. The request is
// marked offline; sent through a gateway it waits in the gateway's store
// until the platform is back, which settles it then (checking the
// product's limits and risk policy after the fact).
func (d *Device) SignOffline(p Payment, lim OfflineLimits) (*Signed, error) {
	if p.Amount == nil || p.Amount.Amount <= 0 {
		return nil, iotpay.Errorf(iotpay.EINVALID, "an offline payment states its amount")
	}
	return d.sign(p, &lim)
}

// ErrOfflineLimit is SignOffline's refusal past the offline limits: the
// device must reach the platform first.
var ErrOfflineLimit = iotpay.Errorf(iotpay.EDECLINED, "offline limit reached: the platform must be reached first")

func (d *Device) sign(p Payment, offline *OfflineLimits) (*Signed, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	r := wire.Request{
		V: wire.Version, Device: string(d.id.ID), Counter: d.state.Counter + 1, Nonce: make([]byte, wire.NonceBytes),
		TimeMs: now.UnixMilli(), RequestID: p.RequestID, Challenge: d.state.Challenge, Event: p.Event, Report: p.Report,
		Offline: offline != nil,
	}
	next := d.state
	if offline != nil {
		next.OfflineCount++
		next.OfflineAmount += p.Amount.Amount
		if next.OfflineCount > offline.MaxCount || next.OfflineAmount > offline.MaxAmount {
			return nil, ErrOfflineLimit
		}
	}
	if _, err := io.ReadFull(d.rand(), r.Nonce); err != nil {
		return nil, err
	}
	if r.RequestID == "" {
		r.RequestID = "rq_" + strconv.FormatUint(r.Counter, 10) + "_" + iotpay.NewID("", now, d.rand())[1:]
	}
	if p.Amount != nil {
		r.AmountMinor, r.Currency = p.Amount.Amount, string(p.Amount.Currency)
	}
	raw, err := wire.SignRequest(d.id.Suite, d.id.Signer, d.rand(), &r)
	if err != nil {
		return nil, err
	}
	next.Counter = r.Counter
	if err := d.store.Save(next); err != nil {
		return nil, err
	}
	d.state = next
	return &Signed{Raw: raw, Hash: d.id.Suite.Hash(raw), Request: r}, nil
}

// Open checks that answer is a receipt signed by the platform for s, and
// takes the challenge it carries for the next request.
func (d *Device) Open(s *Signed, answer []byte) (*wire.Receipt, error) {
	rc, err := wire.OpenReceipt(d.id.Suite, d.id.PlatformKey, answer)
	if err != nil {
		return nil, err
	}
	return d.accept(s, rc)
}

// accept takes a receipt whose signature was checked: it must be for s,
// and its challenge is the next request's.
func (d *Device) accept(s *Signed, rc *wire.Receipt) (*wire.Receipt, error) {
	if !rc.For(s.Hash, string(d.id.ID)) || (rc.RequestID != "" && rc.RequestID != s.Request.RequestID) {
		return nil, iotpay.Errorf(iotpay.EUNAUTHORIZED, "receipt is for another request")
	}
	// An online request's receipt starts the offline count again, as the
	// platform does when it takes an online request.
	d.mu.Lock()
	defer d.mu.Unlock()
	next := d.state
	if len(rc.Challenge) == wire.ChallengeBytes {
		next.Challenge = rc.Challenge
	}
	if !s.Request.Offline {
		next.OfflineCount, next.OfflineAmount = 0, 0
	}
	if !bytes.Equal(next.Challenge, d.state.Challenge) || next.OfflineCount != d.state.OfflineCount || next.OfflineAmount != d.state.OfflineAmount {
		if err := d.store.Save(next); err != nil {
			return nil, err
		}
		d.state = next
	}
	return rc, nil
}

// OpenDesired checks that b is a desired state the platform signed for
// this device (sent on its desired topic, or in a receipt's Desired) and
// decodes it. The device applies it and says so with Report.Applied.
func (d *Device) OpenDesired(b []byte) (*wire.Desired, error) {
	ds, err := wire.OpenDesired(d.id.Suite, d.id.PlatformKey, b)
	if err != nil {
		return nil, err
	}
	if ds.Device != string(d.id.ID) {
		return nil, iotpay.Errorf(iotpay.EUNAUTHORIZED, "desired state for another device")
	}
	return ds, nil
}

// matcher returns a Transport match function accepting only a receipt
// that verifies for s.
func (d *Device) matcher(s *Signed, out **wire.Receipt, matched *[]byte) func([]byte) bool {
	return func(answer []byte) bool {
		rc, err := wire.OpenReceipt(d.id.Suite, d.id.PlatformKey, answer)
		if err != nil || !rc.For(s.Hash, string(d.id.ID)) {
			return false
		}
		*out, *matched = rc, answer
		return true
	}
}

// Send sends a signed request over t and returns its verified receipt.
// Sending the same Signed again is safe: the platform is idempotent.
func (d *Device) Send(ctx context.Context, t Transport, s *Signed) (*wire.Receipt, error) {
	var rc *wire.Receipt
	var matched []byte
	answer, err := t.Exchange(ctx, s.Raw, d.matcher(s, &rc, &matched))
	if err != nil {
		return nil, err
	}
	if rc == nil || !bytes.Equal(answer, matched) {
		// A transport that answers without asking the matcher.
		return d.Open(s, answer)
	}
	return d.accept(s, rc) // its signature checked once, by the matcher
}

// Pay signs p and sends it over t. A receipt that verifies is returned with
// a nil error whatever its outcome: approved, declined or rejected.
func (d *Device) Pay(ctx context.Context, t Transport, p Payment) (*wire.Receipt, error) {
	s, err := d.Sign(p)
	if err != nil {
		return nil, err
	}
	return d.Send(ctx, t, s)
}

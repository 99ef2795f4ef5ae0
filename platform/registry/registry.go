// Package registry keeps who exists on the platform: tenants, their operator
// API keys, products (device types and their pricing), and devices with the
// identity they enrolled and the state admission checks against.
package registry

import (
	"context"
	"crypto"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/pki"
)

// DeviceStatus is where a device is in its life.
type DeviceStatus string

// Device statuses.
const (
	DevicePending DeviceStatus = "pending" // created, waiting for enrollment
	DeviceActive  DeviceStatus = "active"  // enrolled, may pay
	DeviceRevoked DeviceStatus = "revoked" // refused from its next message on
)

// Tenant is an operator: a fleet owner or merchant whose data is isolated.
type Tenant struct {
	ID      iotpay.TenantID `json:"id"`
	Name    string          `json:"name"`
	Created time.Time       `json:"created"`
}

// PricingMode says how a product turns a device request into an amount.
type PricingMode string

// Pricing modes.
const (
	PriceFixed   PricingMode = "fixed"   // a fixed price per event (vending: per dispense)
	PriceMetered PricingMode = "metered" // price per block of a metered quantity (EV: per kWh)
	PriceAmount  PricingMode = "amount"  // the device states the amount (within its mandate)
)

// Pricing is how a product prices events. Metered pricing charges
// ceil(quantity × PriceMinor / PerUnits) for the event field Unit, e.g.
// unit "wh", per_units 1000: a price per kWh applied to watt-hours.
type Pricing struct {
	Mode       PricingMode     `json:"mode"`
	Event      string          `json:"event,omitempty"` // the event type that is priced
	PriceMinor int64           `json:"price_minor,omitempty"`
	Currency   iotpay.Currency `json:"currency"`
	Unit       string          `json:"unit,omitempty"`
	PerUnits   int64           `json:"per_units,omitempty"`
}

// Product is a device type of a tenant: what it sells and who is paid.
type Product struct {
	ID       iotpay.ProductID `json:"id"`
	Tenant   iotpay.TenantID  `json:"tenant"`
	Name     string           `json:"name"`
	Pricing  Pricing          `json:"pricing"`
	Merchant iotpay.AccountID `json:"merchant_account"` // credited by the product's payments
	// Category is the merchant category (ISO 18245, 4 digits) of what the
	// product sells, which mandates may restrict; empty when unset.
	Category string `json:"category,omitempty"`
	// Kind is what the product's devices are: devices that pay (the
	// default) or gateways that relay other devices' messages (edge).
	Kind ProductKind `json:"kind,omitempty"`
	// Offline, when set, lets the product's devices pay while the
	// platform is out of reach, up to these limits, as chip cards do; the
	// platform settles those payments when their requests arrive.
	Offline *OfflineLimits `json:"offline,omitempty"`
	Created time.Time      `json:"created"`
	// ProfileVersion is the version of the product's current profile
	// (0: none, or not read), as Product reads it: a compiled profile of
	// that version can be used without reading the profile again.
	ProfileVersion int `json:"-"`
}

// ProductKind is what a product's devices are.
type ProductKind string

// Product kinds.
const (
	ProductDevice  ProductKind = "device"  // devices that pay
	ProductGateway ProductKind = "gateway" // gateways (iotpay-edge) that relay devices' messages
)

// OfflineLimits bound what a device may pay while the platform is out of
// reach: at most MaxCount payments and MaxAmount in all (minor units of
// the product's currency) since its last payment the platform answered.
type OfflineLimits struct {
	MaxAmount int64 `json:"max_amount"`
	MaxCount  int   `json:"max_count"`
}

// Device is one enrolled (or enrolling) device and the state admission
// checks each request against.
type Device struct {
	ID      iotpay.DeviceID  `json:"id"`
	Tenant  iotpay.TenantID  `json:"tenant"`
	Product iotpay.ProductID `json:"product"`
	Name    string           `json:"name"`
	Status  DeviceStatus     `json:"status"`
	Suite   string           `json:"suite"`
	// PublicKey is the PKIX DER of the key certified at enrollment.
	PublicKey    []byte    `json:"-"`
	CertSerial   string    `json:"cert_serial,omitempty"`
	CertNotAfter time.Time `json:"cert_not_after,omitzero"`
	// Counter is the highest request counter accepted; Challenge is what the
	// next request must echo.
	Counter   uint64    `json:"counter"`
	Challenge []byte    `json:"-"`
	Created   time.Time `json:"created"`
	LastSeen  time.Time `json:"last_seen,omitzero"`
	// enrollment
	TokenHash    []byte    `json:"-"`
	TokenExpires time.Time `json:"-"`
}

// Key returns the device's certified public key.
func (d *Device) Key() (crypto.PublicKey, error) {
	if len(d.PublicKey) == 0 {
		return nil, iotpay.Errorf(iotpay.EUNAUTHORIZED, "device not enrolled")
	}
	return pki.ParsePublicKey(d.PublicKey)
}

// APIKey is an operator credential. Only its hash is stored.
type APIKey struct {
	ID      iotpay.APIKeyID `json:"id"`
	Tenant  iotpay.TenantID `json:"tenant"`
	Hash    []byte          `json:"-"`
	Created time.Time       `json:"created"`
}

// Tx is what the registry needs from a store inside one transaction.
// Lookups scoped by tenant return ENOTFOUND for another tenant's objects.
type Tx interface {
	CreateTenant(ctx context.Context, t *Tenant) error
	CreateAPIKey(ctx context.Context, k *APIKey) error
	APIKey(ctx context.Context, id iotpay.APIKeyID) (*APIKey, error)
	CreateProduct(ctx context.Context, p *Product) error
	Product(ctx context.Context, tenant iotpay.TenantID, id iotpay.ProductID) (*Product, error)
	CreateDevice(ctx context.Context, d *Device) error
	// Device looks a device up by id alone: devices authenticate themselves.
	Device(ctx context.Context, id iotpay.DeviceID) (*Device, error)
	Devices(ctx context.Context, tenant iotpay.TenantID, after iotpay.DeviceID, limit int) ([]*Device, error)
	UpdateDevice(ctx context.Context, d *Device) error
	// Presence returns a device's presence (ENOTFOUND if none is recorded);
	// PutPresence records it; ResetPresence marks every device online over
	// transport offline, for reason, and says how many.
	Presence(ctx context.Context, id iotpay.DeviceID) (*Presence, error)
	PutPresence(ctx context.Context, p *Presence) error
	ResetPresence(ctx context.Context, transport string, at time.Time, reason string) (int, error)
	StateTx
}

// Store runs functions in transactions.
type Store interface {
	Update(ctx context.Context, fn func(Tx) error) error
	View(ctx context.Context, fn func(Tx) error) error
}

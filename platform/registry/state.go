package registry

import (
	"context"
	"encoding/json"
	"time"

	"github.com/iotpay/iotpay"
)

// State is a device's shadow — what it reports and what the platform
// desires of it, versioned for optimistic concurrency — and what it last
// said of itself in a signed report: its firmware (attested when its
// measurement is on the product's allowed list), tamper flag, battery and
// location.
type State struct {
	Device iotpay.DeviceID `json:"device"`
	// Version goes up by one at every change, reported or desired; a
	// change made against another version is a conflict.
	Version        uint64         `json:"version"`
	Reported       map[string]any `json:"reported"`
	Desired        map[string]any `json:"desired"`
	DesiredVersion uint64         `json:"desired_version"`
	// Applied is the desired version the device says it has applied.
	Applied     uint64    `json:"applied"`
	Firmware    string    `json:"firmware,omitempty"`
	Measurement []byte    `json:"measurement,omitempty"`
	Attested    bool      `json:"attested"`
	Tamper      bool      `json:"tamper"`
	Battery     *int64    `json:"battery,omitempty"`
	Location    *Location `json:"location,omitempty"`
	// LastReading is the meter reading last billed (bill rules).
	LastReading int64 `json:"last_reading,omitempty"`
	// History is the device's amount statistics for risk's anomaly score,
	// as JSON.
	History json.RawMessage `json:"-"`
	// Inactive is when the device was reported inactive, zero once it is
	// heard from again.
	Inactive   time.Time `json:"inactive_since,omitzero"`
	ReportedAt time.Time `json:"reported_at,omitzero"`
	Updated    time.Time `json:"updated,omitzero"`
}

// Location is a point in degrees × 10^7 (WGS 84).
type Location struct {
	LatE7 int64 `json:"lat_e7"`
	LonE7 int64 `json:"lon_e7"`
}

// NewState is the state of a device that has reported nothing.
func NewState(id iotpay.DeviceID) *State {
	return &State{Device: id, Reported: map[string]any{}, Desired: map[string]any{}}
}

// Profile is one version of what a product does with its devices'
// events: its rules (CEL), its risk policy, the firmware it allows and
// how long its devices may stay silent. Rules and risk are kept as the
// JSON the operator gave, checked by the platform before they are stored.
type Profile struct {
	Product  iotpay.ProductID `json:"product"`
	Version  int              `json:"version"`
	Rules    json.RawMessage  `json:"rules"`
	Risk     json.RawMessage  `json:"risk,omitempty"`
	Firmware []Firmware       `json:"firmware,omitempty"`
	// InactivitySeconds: a device silent this long raises
	// device.inactive (0: never).
	InactivitySeconds int64     `json:"inactivity_timeout_s,omitempty"`
	Created           time.Time `json:"created"`
}

// Firmware is an allowed firmware: its version and the digest of its
// image (hex), which devices attest in their signed reports.
type Firmware struct {
	Version     string `json:"version"`
	Measurement string `json:"measurement"`
}

// StateTx is what device state, product profiles and tariffs need from a
// store inside one transaction.
type StateTx interface {
	// State returns a device's state, ENOTFOUND when it has none yet.
	State(ctx context.Context, id iotpay.DeviceID) (*State, error)
	PutState(ctx context.Context, s *State) error
	// PutProfile stores a new version of a product's profile and makes
	// it the product's current one.
	PutProfile(ctx context.Context, p *Profile) error
	// Profile returns a version of a product's profile (0: the current
	// one), ENOTFOUND when there is none.
	Profile(ctx context.Context, product iotpay.ProductID, version int) (*Profile, error)
	// PutTariff stores a tenant's tariff under its name, replacing one of
	// that name; Tariffs returns them all, as the JSON given.
	PutTariff(ctx context.Context, tenant iotpay.TenantID, name string, body json.RawMessage, at time.Time) error
	Tariffs(ctx context.Context, tenant iotpay.TenantID) ([]json.RawMessage, error)
	// InactiveDevices lists active devices of products with an inactivity
	// timeout whose last activity is older than it at now, and that have
	// not been reported inactive since.
	InactiveDevices(ctx context.Context, now time.Time, limit int) ([]*Device, error)
}

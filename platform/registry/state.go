package registry

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"maps"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
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
	Inactive time.Time `json:"inactive_since,omitzero"`
	// OfflineCount and OfflineAmount are what the device paid offline
	// since its last online request (wire.Request.Offline), against its
	// product's offline limits.
	OfflineCount  int       `json:"offline_count,omitempty"`
	OfflineAmount int64     `json:"offline_amount,omitempty"`
	ReportedAt    time.Time `json:"reported_at,omitzero"`
	Updated       time.Time `json:"updated,omitzero"`
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

// Bounds on a device's shadow.
const (
	ShadowFieldsMax   = 64 // fields in reported or desired
	ShadowKeyLenMax   = 64
	ShadowValueLenMax = 256 // bytes of a string value
)

// LoadState returns a device's state in tx, a new one when it has none.
func LoadState(ctx context.Context, tx Tx, id iotpay.DeviceID) (*State, error) {
	s, err := tx.State(ctx, id)
	if iotpay.ErrorCode(err) == iotpay.ENOTFOUND {
		return NewState(id), nil
	}
	return s, err
}

// DeviceState returns a tenant's device's state.
func (s *Service) DeviceState(ctx context.Context, tenant iotpay.TenantID, id iotpay.DeviceID) (*State, error) {
	var st *State
	err := s.Store.View(ctx, func(tx Tx) error {
		if _, err := s.tenantDevice(ctx, tx, tenant, id); err != nil {
			return err
		}
		var err error
		st, err = LoadState(ctx, tx, id)
		return err
	})
	return st, err
}

// StateChange is an operator's change to a device's state.
type StateChange struct {
	// IfVersion, when not zero, must be the state's current version, or
	// the change is a conflict (optimistic concurrency).
	IfVersion uint64 `json:"if_version,omitempty"`
	// Desired is merged into the desired state: a null value removes a
	// field (JSON merge patch, one level).
	Desired map[string]any `json:"desired,omitempty"`
	// ClearTamper clears the tamper flag, once the device was inspected.
	ClearTamper bool `json:"clear_tamper,omitempty"`
}

// ChangeState applies an operator's change; a desired change makes a new
// desired version, which the device is sent.
func (s *Service) ChangeState(ctx context.Context, tenant iotpay.TenantID, id iotpay.DeviceID, c *StateChange) (*State, error) {
	var st *State
	err := s.Store.Update(ctx, func(tx Tx) error {
		if _, err := s.tenantDevice(ctx, tx, tenant, id); err != nil {
			return err
		}
		if len(c.Desired) == 0 && !c.ClearTamper {
			return iotpay.Errorf(iotpay.EINVALID, "nothing to change: give desired or clear_tamper")
		}
		var err error
		if st, err = LoadState(ctx, tx, id); err != nil {
			return err
		}
		if c.IfVersion != 0 && c.IfVersion != st.Version {
			return iotpay.Errorf(iotpay.ECONFLICT, "state is at version %d, not %d", st.Version, c.IfVersion)
		}
		if len(c.Desired) > 0 {
			desired := maps.Clone(st.Desired)
			if desired == nil {
				desired = map[string]any{}
			}
			for k, v := range c.Desired {
				if v == nil {
					delete(desired, k)
				} else {
					desired[k] = v
				}
			}
			if err := checkShadow("desired", desired); err != nil {
				return err
			}
			st.Desired = desired
			st.DesiredVersion++
		}
		if c.ClearTamper {
			st.Tamper = false
		}
		st.Version++
		st.Updated = s.now()
		return tx.PutState(ctx, st)
	})
	return st, err
}

// checkShadow checks a shadow's fields: bounded, and each a number, a
// string or a boolean (what a device can report in CBOR and be sent).
func checkShadow(what string, m map[string]any) error {
	if len(m) > ShadowFieldsMax {
		return iotpay.Errorf(iotpay.EINVALID, "%s: more than %d fields", what, ShadowFieldsMax)
	}
	for k, v := range m {
		if k == "" || len(k) > ShadowKeyLenMax || !utf8.ValidString(k) {
			return iotpay.Errorf(iotpay.EINVALID, "%s: bad field name %q", what, k)
		}
		switch v := v.(type) {
		case bool:
		case float64:
			if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
				return iotpay.Errorf(iotpay.EINVALID, "%s: field %q must be an integer", what, k)
			}
		case string:
			if len(v) > ShadowValueLenMax || !utf8.ValidString(v) {
				return iotpay.Errorf(iotpay.EINVALID, "%s: field %q is too long", what, k)
			}
		default:
			return iotpay.Errorf(iotpay.EINVALID, "%s: field %q must be an integer, a string or a boolean", what, k)
		}
	}
	return nil
}

// ApplyReport records what a device reported of itself in a signed
// request; allowed is the firmware its product allows. It returns whether
// the tamper flag or the firmware's attestation changed for the worse, so
// the caller can raise an event.
func ApplyReport(st *State, r *wire.Report, allowed []Firmware, now time.Time) (tampered, unattested bool) {
	if r.Firmware != "" {
		was := st.Attested || st.Firmware == ""
		st.Firmware, st.Measurement = r.Firmware, r.Measurement
		st.Attested = Attests(allowed, r.Firmware, r.Measurement)
		unattested = was && !st.Attested
	}
	if r.Tamper && !st.Tamper {
		st.Tamper, tampered = true, true
	}
	if r.Battery != nil {
		b := *r.Battery
		st.Battery = &b
	}
	if r.LatE7 != nil {
		st.Location = &Location{LatE7: *r.LatE7, LonE7: *r.LonE7}
	}
	if len(r.Num)+len(r.Str) > 0 {
		rep := maps.Clone(st.Reported)
		if rep == nil {
			rep = map[string]any{}
		}
		for k, v := range r.Num {
			rep[k] = float64(v) // as JSON holds it
		}
		for k, v := range r.Str {
			rep[k] = v
		}
		if len(rep) <= ShadowFieldsMax {
			st.Reported = rep
		}
	}
	if r.Applied > st.Applied && r.Applied <= st.DesiredVersion {
		st.Applied = r.Applied
	}
	st.Version++
	st.ReportedAt, st.Updated = now, now
	return tampered, unattested
}

// Attests reports whether a firmware version and the measurement a device
// signed are on a product's allowed list.
func Attests(allowed []Firmware, version string, measurement []byte) bool {
	if len(measurement) == 0 {
		return false
	}
	m := hex.EncodeToString(measurement)
	for _, f := range allowed {
		if f.Version == version && subtle.ConstantTimeCompare([]byte(strings.ToLower(f.Measurement)), []byte(m)) == 1 {
			return true
		}
	}
	return false
}

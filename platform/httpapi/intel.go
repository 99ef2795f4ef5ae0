package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/payment/ledger"
	"github.com/iotpay/iotpay/platform"
	"github.com/iotpay/iotpay/platform/decision"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/platform/risk"
	"github.com/iotpay/iotpay/platform/rules"
)

// Bounds on products' profiles.
const (
	FirmwareAllowedMax   = 64
	InactivitySecondsMax = 366 * 24 * 3600
)

var (
	firmwareVersion = regexp.MustCompile(`^[\x21-\x7e]{1,64}$`)
	measurementHex  = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
)

// getState answers a device's state: its shadow, firmware, tamper flag,
// battery, location.
func (s *Server) getState(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	id, err := pathID[iotpay.DeviceID](r, iotpay.PrefixDevice)
	if err != nil {
		return err
	}
	st, err := s.Registry.DeviceState(r.Context(), tenant, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// changeState changes a device's desired state (merge patch) or clears
// its tamper flag, against the version the caller read; the device is
// sent its new desired state.
func (s *Server) changeState(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	id, err := pathID[iotpay.DeviceID](r, iotpay.PrefixDevice)
	if err != nil {
		return err
	}
	var in registry.StateChange
	var st *registry.State
	err = s.write(w, r, tenant, &in, func(ctx context.Context, _ *ledger.Batch[platform.Tx]) (int, any, error) {
		var err error
		st, err = s.Registry.ChangeState(ctx, tenant, id, &in)
		return http.StatusOK, st, err
	})
	if err == nil && st != nil && len(in.Desired) > 0 && s.OnDesired != nil {
		s.OnDesired(st) // once committed
	}
	return err
}

// profileIn is a product profile as an operator writes it.
type profileIn struct {
	Rules             []rules.Rule        `json:"rules"`
	Risk              *risk.Policy        `json:"risk"`
	Firmware          []registry.Firmware `json:"firmware"`
	InactivitySeconds int64               `json:"inactivity_timeout_s"`
}

// putProfile stores a new version of a product's profile, once its rules
// compile against the tenant's tariffs and its risk policy is valid.
func (s *Server) putProfile(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	id, err := pathID[iotpay.ProductID](r, iotpay.PrefixProduct)
	if err != nil {
		return err
	}
	var in profileIn
	return s.write(w, r, tenant, &in, func(ctx context.Context, b *ledger.Batch[platform.Tx]) (int, any, error) {
		tx := b.Tx
		prod, err := tx.Product(ctx, tenant, id)
		if err != nil {
			return 0, nil, err
		}
		if err := checkProfile(&in); err != nil {
			return 0, nil, err
		}
		version := 1
		if cur, err := tx.Profile(ctx, id, 0); err == nil {
			version = cur.Version + 1
		} else if iotpay.ErrorCode(err) != iotpay.ENOTFOUND {
			return 0, nil, err
		}
		pf := &registry.Profile{Product: id, Version: version, Firmware: in.Firmware, InactivitySeconds: in.InactivitySeconds, Created: b.Now}
		if pf.Rules, err = json.Marshal(orEmpty(in.Rules)); err != nil {
			return 0, nil, err
		}
		if in.Risk != nil {
			if pf.Risk, err = json.Marshal(in.Risk); err != nil {
				return 0, nil, err
			}
		}
		if _, err := platform.CompileProfile(ctx, tx, prod, pf); err != nil {
			return 0, nil, err
		}
		return http.StatusOK, pf, tx.PutProfile(ctx, pf)
	})
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func checkProfile(in *profileIn) error {
	if len(in.Firmware) > FirmwareAllowedMax {
		return iotpay.Errorf(iotpay.EINVALID, "firmware: at most %d allowed", FirmwareAllowedMax)
	}
	for i, f := range in.Firmware {
		if !firmwareVersion.MatchString(f.Version) || !measurementHex.MatchString(f.Measurement) {
			return iotpay.Errorf(iotpay.EINVALID, "firmware %d: a version (1 to 64 visible characters) and a measurement (64 hex digits)", i)
		}
	}
	if in.InactivitySeconds < 0 || in.InactivitySeconds > InactivitySecondsMax {
		return iotpay.Errorf(iotpay.EINVALID, "inactivity_timeout_s must be from 0 to %d", InactivitySecondsMax)
	}
	if in.Risk != nil {
		return in.Risk.Validate()
	}
	return nil
}

// getProfile answers a product's current profile, or ?version=N.
func (s *Server) getProfile(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	id, err := pathID[iotpay.ProductID](r, iotpay.PrefixProduct)
	if err != nil {
		return err
	}
	version := 0
	if v := r.URL.Query().Get("version"); v != "" {
		if version, err = strconv.Atoi(v); err != nil || version < 1 {
			return iotpay.Errorf(iotpay.EINVALID, "version must be a positive integer")
		}
	}
	var pf *registry.Profile
	err = s.Processor.Store.View(r.Context(), func(tx platform.Tx) error {
		if _, err := tx.Product(r.Context(), tenant, id); err != nil {
			return err
		}
		var err error
		pf, err = tx.Profile(r.Context(), id, version)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pf)
	return nil
}

// putTariff stores one of the tenant's tariffs under the path's name.
func (s *Server) putTariff(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	name := r.PathValue("name")
	var in rules.Tariff
	err := s.write(w, r, tenant, &in, func(ctx context.Context, b *ledger.Batch[platform.Tx]) (int, any, error) {
		if in.Name == "" {
			in.Name = name
		}
		if in.Name != name {
			return 0, nil, iotpay.Errorf(iotpay.EINVALID, "the tariff's name must be the path's")
		}
		if err := rules.ValidateTariff(in); err != nil {
			return 0, nil, err
		}
		body, err := json.Marshal(in)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, in, b.Tx.PutTariff(ctx, tenant, name, body, b.Now)
	})
	if err == nil {
		s.Processor.Profiles.Forget() // rules compiled against the old tariff
	}
	return err
}

// listTariffs answers the tenant's tariffs.
func (s *Server) listTariffs(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	var ts []rules.Tariff
	err := s.Processor.Store.View(r.Context(), func(tx platform.Tx) (err error) {
		ts, err = platform.LoadTariffs(r.Context(), tx, tenant)
		return
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": orEmpty(ts)})
	return nil
}

// dryRunIn is a sample event to evaluate a product's rules on.
type dryRunIn struct {
	Event struct {
		Type string            `json:"type"`
		Num  map[string]int64  `json:"num"`
		Str  map[string]string `json:"str"`
	} `json:"event"`
	// Device, when set, lends its state (firmware, tamper, battery,
	// reported, last meter reading); State overrides parts of it.
	Device iotpay.DeviceID `json:"device"`
	State  *struct {
		Firmware    string         `json:"firmware"`
		Attested    bool           `json:"attested"`
		Tamper      bool           `json:"tamper"`
		Battery     *int64         `json:"battery"`
		Reported    map[string]any `json:"reported"`
		LastReading int64          `json:"last_reading"`
	} `json:"state"`
	Session *rules.Session `json:"session"`
	Time    time.Time      `json:"time"`
	// Version, when set, evaluates that version of the profile.
	Version int `json:"version"`
}

// dryRun evaluates a product's rules on a sample event and, for an action
// that pays, its risk policy on the amount (velocity counted as empty):
// nothing is written, no money moves.
func (s *Server) dryRun(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	id, err := pathID[iotpay.ProductID](r, iotpay.PrefixProduct)
	if err != nil {
		return err
	}
	var in dryRunIn
	if _, err := readBody(r, &in); err != nil {
		return err
	}
	now := in.Time
	if now.IsZero() {
		now = time.Now()
	}
	var out map[string]any
	err = s.Processor.Store.View(r.Context(), func(tx platform.Tx) error {
		ctx := r.Context()
		prod, err := tx.Product(ctx, tenant, id)
		if err != nil {
			return err
		}
		pf, err := tx.Profile(ctx, id, in.Version)
		if err != nil {
			return err
		}
		c, err := platform.CompileProfile(ctx, tx, prod, pf)
		if err != nil {
			return err
		}
		if c.Program == nil {
			return iotpay.Errorf(iotpay.EINVALID, "profile version %d has no rules", pf.Version)
		}
		st := registry.NewState("")
		if in.Device != "" {
			d, err := tx.Device(ctx, in.Device)
			if err != nil || d.Tenant != tenant {
				return iotpay.Errorf(iotpay.ENOTFOUND, "device %s not found", in.Device)
			}
			if st, err = registry.LoadState(ctx, tx, in.Device); err != nil {
				return err
			}
		}
		ri := &rules.Input{Event: rules.Event{Type: in.Event.Type, Num: in.Event.Num, Str: in.Event.Str},
			Device: rules.Device{ID: string(in.Device), Firmware: st.Firmware, Attested: st.Attested, Tamper: st.Tamper,
				Battery: -1, Reported: st.Reported}, LastReading: st.LastReading, Now: now}
		if st.Battery != nil {
			ri.Device.Battery = *st.Battery
		}
		if in.State != nil {
			ri.Device.Firmware, ri.Device.Attested, ri.Device.Tamper = in.State.Firmware, in.State.Attested, in.State.Tamper
			if in.State.Battery != nil {
				ri.Device.Battery = *in.State.Battery
			}
			if in.State.Reported != nil {
				ri.Device.Reported = in.State.Reported
			}
			ri.LastReading = in.State.LastReading
		}
		if in.Session != nil {
			ri.Session = *in.Session
		}
		a, err := c.Program.Eval(ri)
		if err != nil {
			return err
		}
		if a.Currency == "" {
			a.Currency = prod.Pricing.Currency
		}
		out = map[string]any{"profile_version": pf.Version, "action": a}
		if c.Risk != nil && a.Amount > 0 && (a.Kind == rules.Charge || a.Kind == rules.Hold || a.Kind == rules.Bill) {
			d := risk.Decide(c.Risk, &risk.Input{Now: now, Amount: a.Amount, Currency: a.Currency, DeviceTime: now,
				Firmware: risk.Firmware{Version: ri.Device.Firmware, Attested: ri.Device.Attested, Reported: ri.Device.Firmware != ""},
				Tamper:   ri.Device.Tamper, Velocity: make([]risk.Counted, len(c.Risk.Windows()))})
			out["risk"] = d
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// listReviews answers the tenant's reviews (?status=pending|approved|declined).
func (s *Server) listReviews(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	status := decision.ReviewStatus(r.URL.Query().Get("status"))
	switch status {
	case "", decision.ReviewPending, decision.ReviewApproved, decision.ReviewDeclined:
	default:
		return iotpay.Errorf(iotpay.EINVALID, "status must be pending, approved or declined")
	}
	after, err := queryID[iotpay.PaymentID](r, "starting_after", iotpay.PrefixPayment)
	if err != nil {
		return err
	}
	rs, err := s.Processor.Reviews(r.Context(), tenant, status, after, limit+1)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, paginate(rs, limit, func(r *decision.Review) string { return string(r.Payment) }))
	return nil
}

// decideReview approves or declines a payment held for review.
func (s *Server) decideReview(approve bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
		id, err := pathID[iotpay.PaymentID](r, iotpay.PrefixPayment)
		if err != nil {
			return err
		}
		var in struct {
			Note string `json:"note"`
		}
		if r.ContentLength == 0 {
			r.Body = io.NopCloser(strings.NewReader("{}")) // the note is optional, and so the body
		}
		// A payment an external payment system holds is captured or
		// released there first.
		if rv, err := s.Processor.Review(r.Context(), tenant, id); err == nil && rv.Status == decision.ReviewPending {
			op := payment.OpVoid
			if approve {
				op = payment.OpCapture
			}
			if err := s.Payments.Forward(r.Context(), tenant, id, op, 0, true, "review"); err != nil {
				return err
			}
		}
		return s.write(w, r, tenant, &in, func(_ context.Context, b *ledger.Batch[platform.Tx]) (int, any, error) {
			rv, pay, err := s.Processor.DecideReview(b, tenant, id, approve, in.Note)
			return http.StatusOK, map[string]any{"review": rv, "payment": pay}, err
		})
	}
}

// listByDevice serves a listing of the tenant's objects, newest first
// (of one device with ?device=): device events, supply orders.
func listByDevice[T any](list func(context.Context, iotpay.TenantID, iotpay.DeviceID, int) ([]T, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, tenant iotpay.TenantID) error {
		limit, err := pageLimit(r)
		if err != nil {
			return err
		}
		dev, err := queryID[iotpay.DeviceID](r, "device", iotpay.PrefixDevice)
		if err != nil {
			return err
		}
		items, err := list(r.Context(), tenant, dev, limit)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": orEmpty(items)})
		return nil
	}
}

// supplySecret answers the key the tenant's suppliers check its signed
// refill orders with.
func (s *Server) supplySecret(w http.ResponseWriter, _ *http.Request, tenant iotpay.TenantID) error {
	if s.SupplySecret == nil {
		return iotpay.Errorf(iotpay.EINTERNAL, "no supply secret configured")
	}
	k, err := s.SupplySecret(tenant)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"secret": k, "header": "Iotpay-Signature",
		"scheme": "t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">"})
	return nil
}

func (s *Server) review(ctx context.Context, tenant iotpay.TenantID, id iotpay.PaymentID) (*decision.Review, error) {
	return s.Processor.Review(ctx, tenant, id)
}

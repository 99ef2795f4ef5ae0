package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/decision"
	"github.com/iotpay/iotpay/platform/registry"
)

// schemaIntel (version 6) is the platform's intelligence: device state
// (shadow, firmware, tamper, battery, location), product profiles (rules,
// risk policy, allowed firmware, inactivity timeout) by version, tariffs,
// and what the processor decided beyond payments: requests that made no
// payment, sessions, reviews, supply orders and device events.
const schemaIntel = `
ALTER TABLE products ADD COLUMN profile_version INT64 NOT NULL DEFAULT 0;
CREATE TABLE product_profiles (
	product TEXT NOT NULL REFERENCES products(id), version INT64 NOT NULL,
	body TEXT NOT NULL, inactivity_ms INT64 NOT NULL, created_ms INT64 NOT NULL,
	PRIMARY KEY (product, version)
);
CREATE TABLE tariffs (
	tenant TEXT NOT NULL REFERENCES tenants(id), name TEXT NOT NULL, body TEXT NOT NULL, updated_ms INT64 NOT NULL,
	PRIMARY KEY (tenant, name)
);
CREATE TABLE device_state (
	device TEXT PRIMARY KEY REFERENCES devices(id), version INT64 NOT NULL,
	reported TEXT NOT NULL, desired TEXT NOT NULL, desired_version INT64 NOT NULL, applied INT64 NOT NULL,
	firmware TEXT NOT NULL, measurement BYTES, attested INT64 NOT NULL, tamper INT64 NOT NULL,
	battery INT64 NOT NULL, has_location INT64 NOT NULL, lat_e7 INT64 NOT NULL, lon_e7 INT64 NOT NULL,
	last_reading INT64 NOT NULL, history TEXT NOT NULL, reported_ms INT64 NOT NULL, inactive_ms INT64 NOT NULL,
	updated_ms INT64 NOT NULL
);
CREATE TABLE decision_requests (
	device TEXT NOT NULL, request_id TEXT NOT NULL, request_hash BYTES NOT NULL, action TEXT NOT NULL,
	outcome TEXT NOT NULL, payment TEXT NOT NULL, receipt BYTES NOT NULL, created_ms INT64 NOT NULL,
	PRIMARY KEY (device, request_id)
);
CREATE TABLE device_sessions (
	device TEXT NOT NULL, session_key TEXT NOT NULL, payment TEXT NOT NULL,
	created_ms INT64 NOT NULL, closed_ms INT64 NOT NULL,
	PRIMARY KEY (device, session_key)
);
CREATE TABLE reviews (
	payment TEXT PRIMARY KEY, tenant TEXT NOT NULL, device TEXT NOT NULL,
	status TEXT NOT NULL CHECK (status IN ('pending','approved','declined')),
	decision TEXT NOT NULL, note TEXT NOT NULL, created_ms INT64 NOT NULL, decided_ms INT64 NOT NULL
);
CREATE INDEX reviews_tenant ON reviews(tenant, status, payment);
CREATE TABLE supply_orders (
	id TEXT PRIMARY KEY, tenant TEXT NOT NULL, device TEXT NOT NULL, product TEXT NOT NULL, rule TEXT NOT NULL,
	item TEXT NOT NULL, quantity INT64 NOT NULL, supplier TEXT NOT NULL,
	status TEXT NOT NULL CHECK (status IN ('pending','delivered','failed')),
	attempts INT64 NOT NULL, last_error TEXT NOT NULL, next_ms INT64 NOT NULL,
	created_ms INT64 NOT NULL, delivered_ms INT64 NOT NULL
);
CREATE INDEX supply_orders_due ON supply_orders(status, next_ms);
CREATE INDEX supply_orders_device ON supply_orders(tenant, device, id);
CREATE TABLE device_events (
	id TEXT PRIMARY KEY, tenant TEXT NOT NULL, device TEXT NOT NULL, kind TEXT NOT NULL,
	detail TEXT NOT NULL, created_ms INT64 NOT NULL
);
CREATE INDEX device_events_tenant ON device_events(tenant, id);
CREATE INDEX device_events_device ON device_events(device, id);
CREATE INDEX payments_payer ON payments(payer, id);
`

// State implements registry.StateTx.
func (tx *Tx) State(ctx context.Context, id iotpay.DeviceID) (*registry.State, error) {
	s := &registry.State{Device: id}
	var reported, desired, history string
	var version, dver, applied, attested, tamper, battery, hasLoc, lat, lon, repMs, inactive, updated, offCount int64
	err := tx.row(ctx, `SELECT version, reported, desired, desired_version, applied, firmware, measurement, attested, tamper,
		battery, has_location, lat_e7, lon_e7, last_reading, history, reported_ms, inactive_ms, updated_ms, offline_count, offline_amount
		FROM device_state WHERE device = ?`, id).
		Scan(&version, &reported, &desired, &dver, &applied, &s.Firmware, &s.Measurement, &attested, &tamper,
			&battery, &hasLoc, &lat, &lon, &s.LastReading, &history, &repMs, &inactive, &updated, &offCount, &s.OfflineAmount)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("state of device", id)
	}
	if err != nil {
		return nil, err
	}
	s.Version, s.DesiredVersion, s.Applied = uint64(version), uint64(dver), uint64(applied)
	s.OfflineCount = int(offCount)
	s.Attested, s.Tamper = attested == 1, tamper == 1
	if battery >= 0 {
		s.Battery = &battery
	}
	if hasLoc == 1 {
		s.Location = &registry.Location{LatE7: lat, LonE7: lon}
	}
	s.History = json.RawMessage(history)
	s.ReportedAt, s.Inactive, s.Updated = fromMs(repMs), fromMs(inactive), fromMs(updated)
	if err := json.Unmarshal([]byte(reported), &s.Reported); err != nil {
		return nil, err
	}
	return s, json.Unmarshal([]byte(desired), &s.Desired)
}

// PutState implements registry.StateTx: an upsert.
func (tx *Tx) PutState(ctx context.Context, s *registry.State) error {
	reported, err := json.Marshal(orEmpty(s.Reported))
	if err != nil {
		return err
	}
	desired, err := json.Marshal(orEmpty(s.Desired))
	if err != nil {
		return err
	}
	battery, hasLoc, lat, lon := int64(-1), int64(0), int64(0), int64(0)
	if s.Battery != nil {
		battery = *s.Battery
	}
	if s.Location != nil {
		hasLoc, lat, lon = 1, s.Location.LatE7, s.Location.LonE7
	}
	history := string(s.History)
	if history == "" {
		history = "{}"
	}
	_, err = tx.exec(ctx, `INSERT INTO device_state (device, version, reported, desired, desired_version, applied, firmware,
		measurement, attested, tamper, battery, has_location, lat_e7, lon_e7, last_reading, history, reported_ms, inactive_ms, updated_ms,
		offline_count, offline_amount)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (device) DO UPDATE SET version = excluded.version, reported = excluded.reported, desired = excluded.desired,
		desired_version = excluded.desired_version, applied = excluded.applied, firmware = excluded.firmware,
		measurement = excluded.measurement, attested = excluded.attested, tamper = excluded.tamper, battery = excluded.battery,
		has_location = excluded.has_location, lat_e7 = excluded.lat_e7, lon_e7 = excluded.lon_e7,
		last_reading = excluded.last_reading, history = excluded.history, reported_ms = excluded.reported_ms,
		inactive_ms = excluded.inactive_ms, updated_ms = excluded.updated_ms, offline_count = excluded.offline_count,
		offline_amount = excluded.offline_amount`,
		s.Device, int64(s.Version), string(reported), string(desired), int64(s.DesiredVersion), int64(s.Applied), s.Firmware,
		s.Measurement, flag(s.Attested), flag(s.Tamper), battery, hasLoc, lat, lon, s.LastReading, history,
		ms(s.ReportedAt), ms(s.Inactive), ms(s.Updated), s.OfflineCount, s.OfflineAmount)
	return tx.mapErr(err)
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func flag(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// PutProfile implements registry.StateTx.
func (tx *Tx) PutProfile(ctx context.Context, p *registry.Profile) error {
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if _, err := tx.exec(ctx, `INSERT INTO product_profiles (product, version, body, inactivity_ms, created_ms) VALUES (?, ?, ?, ?, ?)`,
		p.Product, p.Version, string(body), p.InactivitySeconds*1000, ms(p.Created)); err != nil {
		return tx.mapErr(err)
	}
	_, err = tx.exec(ctx, `UPDATE products SET profile_version = ? WHERE id = ?`, p.Version, p.Product)
	return tx.mapErr(err)
}

// Profile implements registry.StateTx.
func (tx *Tx) Profile(ctx context.Context, product iotpay.ProductID, version int) (*registry.Profile, error) {
	var body string
	var err error
	if version == 0 {
		err = tx.row(ctx, `SELECT pp.body FROM product_profiles pp JOIN products p ON p.id = pp.product AND p.profile_version = pp.version
			WHERE pp.product = ?`, product).Scan(&body)
	} else {
		err = tx.row(ctx, `SELECT body FROM product_profiles WHERE product = ? AND version = ?`, product, version).Scan(&body)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("profile of product", product)
	}
	if err != nil {
		return nil, err
	}
	p := &registry.Profile{}
	return p, json.Unmarshal([]byte(body), p)
}

// PutTariff implements registry.StateTx.
func (tx *Tx) PutTariff(ctx context.Context, tenant iotpay.TenantID, name string, body json.RawMessage, at time.Time) error {
	_, err := tx.exec(ctx, `INSERT INTO tariffs (tenant, name, body, updated_ms) VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant, name) DO UPDATE SET body = excluded.body, updated_ms = excluded.updated_ms`,
		tenant, name, string(body), ms(at))
	return tx.mapErr(err)
}

// Tariffs implements registry.StateTx.
func (tx *Tx) Tariffs(ctx context.Context, tenant iotpay.TenantID) ([]json.RawMessage, error) {
	rows, err := tx.query(ctx, `SELECT body FROM tariffs WHERE tenant = ? ORDER BY name`, tenant)
	return collect(rows, err, func(r interface{ Scan(...any) error }) (json.RawMessage, error) {
		var b string
		err := r.Scan(&b)
		return json.RawMessage(b), err
	})
}

// InactiveDevices implements registry.StateTx. A device's last activity
// is the later of its last admitted request and its last MQTT activity,
// or its creation when it has neither.
func (tx *Tx) InactiveDevices(ctx context.Context, now time.Time, limit int) ([]*registry.Device, error) {
	rows, err := tx.query(ctx, `SELECT `+prefixed("d.", deviceCols)+` FROM devices d
		JOIN products p ON p.id = d.product
		JOIN product_profiles pp ON pp.product = p.id AND pp.version = p.profile_version
		LEFT JOIN device_state s ON s.device = d.id
		LEFT JOIN device_presence pr ON pr.device = d.id
		WHERE d.status = 'active' AND pp.inactivity_ms > 0 AND COALESCE(s.inactive_ms, 0) = 0
		AND (CASE WHEN d.last_seen_ms > COALESCE(pr.last_activity_ms, 0) THEN d.last_seen_ms
			WHEN COALESCE(pr.last_activity_ms, 0) > 0 THEN pr.last_activity_ms ELSE d.created_ms END) + pp.inactivity_ms <= ?
		ORDER BY d.id LIMIT ?`, ms(now), limit)
	return collect(rows, err, scanDevice)
}

// DecisionRequest implements decision.Tx.
func (tx *Tx) DecisionRequest(ctx context.Context, device iotpay.DeviceID, requestID string) (*decision.Request, error) {
	r := &decision.Request{Device: device, RequestID: requestID}
	var created int64
	err := tx.row(ctx, `SELECT request_hash, action, outcome, payment, receipt, created_ms FROM decision_requests
		WHERE device = ? AND request_id = ?`, device, requestID).
		Scan(&r.RequestHash, &r.Action, &r.Outcome, &r.Payment, &r.Receipt, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("request", requestID)
	}
	r.Created = fromMs(created)
	return r, err
}

// CreateDecisionRequest implements decision.Tx.
func (tx *Tx) CreateDecisionRequest(ctx context.Context, r *decision.Request) error {
	_, err := tx.exec(ctx, `INSERT INTO decision_requests (device, request_id, request_hash, action, outcome, payment, receipt, created_ms)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, r.Device, r.RequestID, r.RequestHash, r.Action, r.Outcome, r.Payment, r.Receipt, ms(r.Created))
	return tx.mapErr(err)
}

// Session implements decision.Tx.
func (tx *Tx) Session(ctx context.Context, device iotpay.DeviceID, key string) (*decision.Session, error) {
	s := &decision.Session{Device: device, Key: key}
	var created, closed int64
	err := tx.row(ctx, `SELECT payment, created_ms, closed_ms FROM device_sessions WHERE device = ? AND session_key = ?`, device, key).
		Scan(&s.Payment, &created, &closed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("session", key)
	}
	s.Created, s.Closed = fromMs(created), fromMs(closed)
	return s, err
}

// PutSession implements decision.Tx: an upsert.
func (tx *Tx) PutSession(ctx context.Context, s *decision.Session) error {
	_, err := tx.exec(ctx, `INSERT INTO device_sessions (device, session_key, payment, created_ms, closed_ms) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (device, session_key) DO UPDATE SET payment = excluded.payment, created_ms = excluded.created_ms,
		closed_ms = excluded.closed_ms`, s.Device, s.Key, s.Payment, ms(s.Created), ms(s.Closed))
	return tx.mapErr(err)
}

const reviewCols = `payment, tenant, device, status, decision, note, created_ms, decided_ms`

func scanReview(row interface{ Scan(...any) error }) (*decision.Review, error) {
	r := &decision.Review{}
	var d string
	var created, decided int64
	if err := row.Scan(&r.Payment, &r.Tenant, &r.Device, &r.Status, &d, &r.Note, &created, &decided); err != nil {
		return nil, err
	}
	r.Decision, r.Created, r.Decided = json.RawMessage(d), fromMs(created), fromMs(decided)
	return r, nil
}

// CreateReview implements decision.Tx.
func (tx *Tx) CreateReview(ctx context.Context, r *decision.Review) error {
	_, err := tx.exec(ctx, `INSERT INTO reviews (`+reviewCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Payment, r.Tenant, r.Device, r.Status, string(r.Decision), r.Note, ms(r.Created), ms(r.Decided))
	return tx.mapErr(err)
}

// Review implements decision.Tx.
func (tx *Tx) Review(ctx context.Context, tenant iotpay.TenantID, payment iotpay.PaymentID) (*decision.Review, error) {
	r, err := scanReview(tx.row(ctx, `SELECT `+reviewCols+` FROM reviews WHERE payment = ? AND tenant = ?`, payment, tenant))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("review of payment", payment)
	}
	return r, err
}

// UpdateReview implements decision.Tx.
func (tx *Tx) UpdateReview(ctx context.Context, r *decision.Review) error {
	_, err := tx.exec(ctx, `UPDATE reviews SET status = ?, note = ?, decided_ms = ? WHERE payment = ?`,
		r.Status, r.Note, ms(r.Decided), r.Payment)
	return tx.mapErr(err)
}

// Reviews implements decision.Tx.
func (tx *Tx) Reviews(ctx context.Context, tenant iotpay.TenantID, status decision.ReviewStatus, after iotpay.PaymentID, limit int) ([]*decision.Review, error) {
	rows, err := tx.query(ctx, `SELECT `+reviewCols+` FROM reviews WHERE tenant = ? AND (? = '' OR status = ?) AND payment > ?
		ORDER BY payment LIMIT ?`, tenant, status, status, after, limit)
	return collect(rows, err, scanReview)
}

const orderCols = `id, tenant, device, product, rule, item, quantity, supplier, status, attempts, last_error, next_ms, created_ms, delivered_ms`

func scanOrder(row interface{ Scan(...any) error }) (*decision.Order, error) {
	o := &decision.Order{}
	var attempts, next, created, delivered int64
	if err := row.Scan(&o.ID, &o.Tenant, &o.Device, &o.Product, &o.Rule, &o.Item, &o.Quantity, &o.Supplier, &o.Status,
		&attempts, &o.LastError, &next, &created, &delivered); err != nil {
		return nil, err
	}
	o.Attempts = int(attempts)
	o.Next, o.Created, o.Delivered = fromMs(next), fromMs(created), fromMs(delivered)
	return o, nil
}

// CreateOrder implements decision.Tx.
func (tx *Tx) CreateOrder(ctx context.Context, o *decision.Order) error {
	_, err := tx.exec(ctx, `INSERT INTO supply_orders (`+orderCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		o.ID, o.Tenant, o.Device, o.Product, o.Rule, o.Item, o.Quantity, o.Supplier, o.Status, o.Attempts, o.LastError,
		ms(o.Next), ms(o.Created), ms(o.Delivered))
	return tx.mapErr(err)
}

// UpdateOrder implements decision.Tx.
func (tx *Tx) UpdateOrder(ctx context.Context, o *decision.Order) error {
	_, err := tx.exec(ctx, `UPDATE supply_orders SET status = ?, attempts = ?, last_error = ?, next_ms = ?, delivered_ms = ? WHERE id = ?`,
		o.Status, o.Attempts, o.LastError, ms(o.Next), ms(o.Delivered), o.ID)
	return tx.mapErr(err)
}

// Order implements decision.Tx.
func (tx *Tx) Order(ctx context.Context, tenant iotpay.TenantID, id string) (*decision.Order, error) {
	o, err := scanOrder(tx.row(ctx, `SELECT `+orderCols+` FROM supply_orders WHERE id = ? AND tenant = ?`, id, tenant))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("order", id)
	}
	return o, err
}

// DueOrders implements decision.Tx.
func (tx *Tx) DueOrders(ctx context.Context, now time.Time, limit int) ([]*decision.Order, error) {
	return tx.orders(ctx, `SELECT `+orderCols+` FROM supply_orders WHERE status = 'pending' AND next_ms <= ? ORDER BY next_ms, id LIMIT ?`,
		ms(now), limit)
}

// Orders implements decision.Tx.
func (tx *Tx) Orders(ctx context.Context, tenant iotpay.TenantID, device iotpay.DeviceID, limit int) ([]*decision.Order, error) {
	return tx.orders(ctx, `SELECT `+orderCols+` FROM supply_orders WHERE tenant = ? AND (? = '' OR device = ?) ORDER BY id DESC LIMIT ?`,
		tenant, device, device, limit)
}

func (tx *Tx) orders(ctx context.Context, q string, args ...any) ([]*decision.Order, error) {
	rows, err := tx.query(ctx, q, args...)
	return collect(rows, err, scanOrder)
}

// CreateEvent implements decision.Tx.
func (tx *Tx) CreateEvent(ctx context.Context, e *decision.Event) error {
	_, err := tx.exec(ctx, `INSERT INTO device_events (id, tenant, device, kind, detail, created_ms) VALUES (?, ?, ?, ?, ?, ?)`,
		e.ID, e.Tenant, e.Device, e.Kind, e.Detail, ms(e.Created))
	return tx.mapErr(err)
}

// Events implements decision.Tx.
func (tx *Tx) Events(ctx context.Context, tenant iotpay.TenantID, device iotpay.DeviceID, limit int) ([]*decision.Event, error) {
	rows, err := tx.query(ctx, `SELECT id, tenant, device, kind, detail, created_ms FROM device_events
		WHERE tenant = ? AND (? = '' OR device = ?) ORDER BY id DESC LIMIT ?`, tenant, device, device, limit)
	return collect(rows, err, func(r interface{ Scan(...any) error }) (*decision.Event, error) {
		e := &decision.Event{}
		var created int64
		err := r.Scan(&e.ID, &e.Tenant, &e.Device, &e.Kind, &e.Detail, &created)
		e.Created = fromMs(created)
		return e, err
	})
}

// Velocity implements decision.Tx. Payment ids are time-ordered, so the
// window is a range of the (device, id) or (payer, id) index.
func (tx *Tx) Velocity(ctx context.Context, device iotpay.DeviceID, payer iotpay.AccountID, since time.Time) (count, amount int64, err error) {
	from := iotpay.NewID(iotpay.PrefixPayment, since, zeroReader{})
	if device != "" {
		err = tx.row(ctx, `SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM payments WHERE device = ? AND id >= ? AND status <> 'declined'`,
			device, from).Scan(&count, &amount)
	} else {
		err = tx.row(ctx, `SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM payments WHERE payer = ? AND id >= ? AND status <> 'declined'`,
			payer, from).Scan(&count, &amount)
	}
	return count, amount, err
}

// zeroReader reads zeros: the smallest id of an instant.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/platform/decision"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/store/sqlstore"
)

// testDeviceState: a device's state is absent until put, then upserted
// with every field; product profiles are versioned, the latest current;
// tariffs are replaced by name; inactive devices are found by their
// product's timeout and reported once.
func testDeviceState(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	ten := newTenant(t, db)
	prod, devs := fleet(t, db, ten, 3)
	view(t, db, func(tx *sqlstore.Tx) error {
		_, err := tx.State(ctx, devs[0])
		wantCode(t, "state never put", err, iotpay.ENOTFOUND)
		_, err = tx.Profile(ctx, prod, 0)
		wantCode(t, "profile never put", err, iotpay.ENOTFOUND)
		return nil
	})
	now := ms(time.Now())
	bat := int64(40)
	st := &registry.State{Device: devs[0], Version: 3, Reported: map[string]any{"mode": "eco", "stock": 4.0},
		Desired: map[string]any{"mode": "fast"}, DesiredVersion: 2, Applied: 1, Firmware: "1.2.0",
		Measurement: make([]byte, 32), Attested: true, Tamper: true, Battery: &bat,
		Location: &registry.Location{LatE7: 488_566_000, LonE7: -23_522_000}, LastReading: 12_345,
		History: json.RawMessage(`{"n":2,"mean":5.5,"m2":0.1}`), ReportedAt: now, Updated: now}
	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.PutState(ctx, st) })
	get := func(id iotpay.DeviceID) *registry.State {
		t.Helper()
		var s *registry.State
		view(t, db, func(tx *sqlstore.Tx) (err error) { s, err = tx.State(ctx, id); return })
		return s
	}
	same(t, "state after put", st, get(devs[0]))
	st2 := *st
	st2.Version, st2.Battery, st2.Location, st2.Tamper, st2.Inactive = 4, nil, nil, false, now
	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.PutState(ctx, &st2) })
	same(t, "state after update", &st2, get(devs[0]))

	p1 := &registry.Profile{Product: prod, Version: 1, Rules: json.RawMessage(`[{"name":"a","action":"none"}]`), Created: now}
	p2 := &registry.Profile{Product: prod, Version: 2, Rules: json.RawMessage(`[]`), Risk: json.RawMessage(`{"decline_tamper":true}`),
		Firmware: []registry.Firmware{{Version: "1.2.0", Measurement: "00"}}, InactivitySeconds: 60, Created: now}
	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.PutProfile(ctx, p1) })
	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.PutProfile(ctx, p2) })
	wantCode(t, "a version again", update(db, func(tx *sqlstore.Tx) error { return tx.PutProfile(ctx, p1) }), iotpay.ECONFLICT)
	view(t, db, func(tx *sqlstore.Tx) error {
		cur, err := tx.Profile(ctx, prod, 0)
		same(t, "current profile", p2, cur)
		old, _ := tx.Profile(ctx, prod, 1)
		same(t, "profile version 1", p1, old)
		return err
	})

	mustUpdate(t, db, func(tx *sqlstore.Tx) error {
		if err := tx.PutTariff(ctx, ten, "ev", json.RawMessage(`{"name":"ev","v":1}`), now); err != nil {
			return err
		}
		if err := tx.PutTariff(ctx, ten, "grid", json.RawMessage(`{"name":"grid"}`), now); err != nil {
			return err
		}
		return tx.PutTariff(ctx, ten, "ev", json.RawMessage(`{"name":"ev","v":2}`), now)
	})
	view(t, db, func(tx *sqlstore.Tx) error {
		ts, err := tx.Tariffs(ctx, ten)
		if len(ts) != 2 || string(ts[0]) != `{"name":"ev","v":2}` {
			t.Errorf("tariffs: %s", ts)
		}
		other, _ := tx.Tariffs(ctx, newTenantID())
		if len(other) != 0 {
			t.Errorf("another tenant's tariffs: %s", other)
		}
		return err
	})

	// Inactivity: the product's timeout is 60 s; devs[0] is already
	// reported inactive; devs[1] was seen a second ago; devs[2] is silent.
	mustUpdate(t, db, func(tx *sqlstore.Tx) error {
		d, err := tx.Device(ctx, devs[1])
		if err != nil {
			return err
		}
		d.LastSeen = now.Add(90 * time.Second)
		return tx.UpdateDevice(ctx, d)
	})
	view(t, db, func(tx *sqlstore.Tx) error {
		ds, err := tx.InactiveDevices(ctx, now.Add(2*time.Minute), 10)
		if len(ds) != 1 || ds[0].ID != devs[2] {
			t.Errorf("inactive devices: %v", ds)
		}
		ds, _ = tx.InactiveDevices(ctx, now.Add(-time.Minute), 10)
		if len(ds) != 0 {
			t.Errorf("inactive before their timeout: %v", ds)
		}
		return err
	})
}

// testDecisions: requests, sessions, reviews, orders, events and velocity.
func testDecisions(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	ten := newTenant(t, db)
	_, devs := fleet(t, db, ten, 2)
	now := ms(time.Now())
	req := &decision.Request{Device: devs[0], RequestID: "r1", RequestHash: []byte{1, 2}, Action: "capture",
		Outcome: "approved", Payment: "pay_x", Receipt: []byte{9}, Created: now}
	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.CreateDecisionRequest(ctx, req) })
	wantCode(t, "a request id twice", update(db, func(tx *sqlstore.Tx) error { return tx.CreateDecisionRequest(ctx, req) }), iotpay.ECONFLICT)

	sess := &decision.Session{Device: devs[0], Key: "s-1", Payment: "pay_1", Created: now}
	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.PutSession(ctx, sess) })
	closed := *sess
	closed.Closed = now.Add(time.Minute)
	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.PutSession(ctx, &closed) })

	rv := &decision.Review{Payment: iotpay.PaymentID(idAt(iotpay.PrefixPayment, now, 0)), Tenant: ten, Device: devs[0],
		Status: decision.ReviewPending, Decision: json.RawMessage(`{"outcome":"review","score":60}`), Created: now}
	rv2 := *rv
	rv2.Payment = iotpay.PaymentID(idAt(iotpay.PrefixPayment, now, 1))
	mustUpdate(t, db, func(tx *sqlstore.Tx) error {
		if err := tx.CreateReview(ctx, rv); err != nil {
			return err
		}
		return tx.CreateReview(ctx, &rv2)
	})
	decided := *rv
	decided.Status, decided.Note, decided.Decided = decision.ReviewApproved, "checked by phone", now.Add(time.Hour)
	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.UpdateReview(ctx, &decided) })

	o := &decision.Order{ID: "ord_1", Tenant: ten, Device: devs[1], Product: "prd_x", Rule: "refill", Item: "A1", Quantity: 7,
		Supplier: "http://127.0.0.1:1/orders", Status: decision.OrderPending, Next: now, Created: now}
	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.CreateOrder(ctx, o) })
	ev := &decision.Event{ID: "evt_1", Tenant: ten, Device: devs[1], Kind: decision.EventInactive, Detail: "silent 1m", Created: now}
	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.CreateEvent(ctx, ev) })

	view(t, db, func(tx *sqlstore.Tx) error {
		got, err := tx.DecisionRequest(ctx, devs[0], "r1")
		same(t, "request", req, got)
		_, e := tx.DecisionRequest(ctx, devs[1], "r1")
		wantCode(t, "another device's request id", e, iotpay.ENOTFOUND)
		s, _ := tx.Session(ctx, devs[0], "s-1")
		same(t, "session", &closed, s)
		r, _ := tx.Review(ctx, ten, rv.Payment)
		same(t, "review", &decided, r)
		_, e = tx.Review(ctx, newTenantID(), rv.Payment)
		wantCode(t, "another tenant's review", e, iotpay.ENOTFOUND)
		pending, _ := tx.Reviews(ctx, ten, decision.ReviewPending, "", 10)
		if len(pending) != 1 || pending[0].Payment != rv2.Payment {
			t.Errorf("pending reviews: %v", pending)
		}
		all, _ := tx.Reviews(ctx, ten, "", rv.Payment, 10)
		if len(all) != 1 || all[0].Payment != rv2.Payment {
			t.Errorf("reviews after the first: %v", all)
		}
		due, _ := tx.DueOrders(ctx, now, 10)
		same(t, "due orders", []*decision.Order{o}, due)
		if due, _ := tx.DueOrders(ctx, now.Add(-time.Second), 10); len(due) != 0 {
			t.Errorf("orders due early: %v", due)
		}
		evs, _ := tx.Events(ctx, ten, devs[1], 10)
		same(t, "events", []*decision.Event{ev}, evs)
		return err
	})
	delivered := *o
	delivered.Status, delivered.Attempts, delivered.Delivered = decision.OrderDelivered, 1, now.Add(time.Second)
	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.UpdateOrder(ctx, &delivered) })
	view(t, db, func(tx *sqlstore.Tx) error {
		got, err := tx.Order(ctx, ten, "ord_1")
		same(t, "delivered order", &delivered, got)
		if due, _ := tx.DueOrders(ctx, now.Add(time.Hour), 10); len(due) != 0 {
			t.Errorf("a delivered order is due: %v", due)
		}
		return err
	})

	// Velocity: payments of a device and of a payer within a window,
	// declined ones aside.
	mdt := iotpay.MandateID(newID(iotpay.PrefixMandate))
	mustUpdate(t, db, func(tx *sqlstore.Tx) error {
		for i, amount := range []int64{100, 200, 400, 800} {
			p := newPayment(ten, devs[0], mdt, iotpay.PaymentID(idAt(iotpay.PrefixPayment, now, i*1000)), now.Add(time.Duration(i)*time.Second))
			p.Amount, p.Captured, p.Held, p.Status, p.Payer = amount, amount, 0, payment.StatusCaptured, "acc_payer"
			if i == 3 {
				p.Status, p.Captured = payment.StatusDeclined, 0
			}
			if err := tx.CreatePayment(ctx, p); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, db, func(tx *sqlstore.Tx) error {
		n, sum, err := tx.Velocity(ctx, devs[0], "", now.Add(time.Second))
		if n != 2 || sum != 600 {
			t.Errorf("device velocity: %d payments, %d", n, sum)
		}
		n, sum, _ = tx.Velocity(ctx, "", "acc_payer", now)
		if n != 3 || sum != 700 {
			t.Errorf("payer velocity: %d payments, %d", n, sum)
		}
		n, _, _ = tx.Velocity(ctx, devs[1], "", now)
		if n != 0 {
			t.Errorf("another device's velocity: %d", n)
		}
		return err
	})
}

func newTenantID() iotpay.TenantID { return iotpay.TenantID(newID(iotpay.PrefixTenant)) }

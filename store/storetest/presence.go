package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/store/sqlstore"
)

// testPresence: a device's presence is absent until put, then upserted;
// ResetPresence marks only the online devices of one transport offline;
// presence of an unknown device is refused.
func testPresence(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	ten := newTenant(t, db)
	_, devs := fleet(t, db, ten, 2)
	view(t, db, func(tx *sqlstore.Tx) error {
		_, err := tx.Presence(ctx, devs[0])
		wantCode(t, "presence never put", err, iotpay.ENOTFOUND)
		return nil
	})
	now := ms(time.Now())
	on := &registry.Presence{Device: devs[0], Online: true, Transport: "mqtt", Since: now, Remote: "127.0.0.1:5555",
		LastActivity: now, Generation: now.UnixNano()}
	other := &registry.Presence{Device: devs[1], Online: true, Transport: "coap", Since: now, Generation: 1}
	mustUpdate(t, db, func(tx *sqlstore.Tx) error {
		if err := tx.PutPresence(ctx, on); err != nil {
			return err
		}
		return tx.PutPresence(ctx, other)
	})
	get := func(id iotpay.DeviceID) *registry.Presence {
		t.Helper()
		var p *registry.Presence
		view(t, db, func(tx *sqlstore.Tx) (err error) { p, err = tx.Presence(ctx, id); return })
		return p
	}
	same(t, "presence after put", on, get(devs[0]))

	off := *on
	off.Online, off.Since, off.Reason, off.Status = false, now.Add(time.Second), "keepalive timeout", `{"battery":3}`
	off.LastActivity = now.Add(500 * time.Millisecond)
	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.PutPresence(ctx, &off) })
	same(t, "presence after update", &off, get(devs[0]))

	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.PutPresence(ctx, on) })
	later := now.Add(time.Minute)
	mustUpdate(t, db, func(tx *sqlstore.Tx) error {
		n, err := tx.ResetPresence(ctx, "mqtt", later, "platform restarted")
		if n != 1 {
			t.Errorf("ResetPresence reset %d devices, want 1", n)
		}
		return err
	})
	reset := *on
	reset.Online, reset.Since, reset.Reason = false, later, "platform restarted"
	same(t, "presence after reset", &reset, get(devs[0]))
	same(t, "other transport's presence after reset", other, get(devs[1]))

	err := update(db, func(tx *sqlstore.Tx) error {
		return tx.PutPresence(ctx, &registry.Presence{Device: iotpay.DeviceID(newID(iotpay.PrefixDevice)), Transport: "mqtt", Since: now})
	})
	wantCode(t, "presence of an unknown device", err, iotpay.EINVALID)
}

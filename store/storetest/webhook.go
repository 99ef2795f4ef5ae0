package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/platform/webhook"
	"github.com/iotpay/iotpay/store/sqlstore"
)

// testWebhooks: endpoints per tenant, deliveries queued, due, updated,
// listed; deleting an endpoint fails its pending deliveries.
func testWebhooks(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	ten, other := newTenant(t, db), newTenant(t, db)
	now := ms(time.Now())
	e, err := webhook.NewEndpoint(ten, "https://ops.example/h", []string{"payment.*"}, now)
	if err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.CreateEndpoint(ctx, e) })
	// Two events queued for it; none for the other tenant.
	mustUpdate(t, db, func(tx *sqlstore.Tx) error {
		if err := webhook.Enqueue(ctx, tx, ten, webhook.PaymentSucceeded, map[string]any{"id": "pay_1"}, now, nil); err != nil {
			return err
		}
		if err := webhook.Enqueue(ctx, tx, ten, "device.tamper", map[string]any{"id": "evt_x"}, now, nil); err != nil { // not subscribed
			return err
		}
		return webhook.Enqueue(ctx, tx, other, webhook.PaymentSucceeded, map[string]any{"id": "pay_2"}, now, nil)
	})
	var due []*webhook.Delivery
	view(t, db, func(tx *sqlstore.Tx) (err error) {
		es, err := tx.Endpoints(ctx, ten)
		same(t, "endpoints", []*webhook.Endpoint{e}, es)
		if es, _ := tx.Endpoints(ctx, other); len(es) != 0 {
			t.Errorf("another tenant's endpoints: %v", es)
		}
		due, err = tx.DueDeliveries(ctx, now, 10)
		return err
	})
	if len(due) != 1 || due[0].Type != webhook.PaymentSucceeded || due[0].Endpoint != e.ID {
		t.Fatalf("due deliveries %+v", due)
	}
	var ev struct{ ID, Type string }
	if err := json.Unmarshal(due[0].Payload, &ev); err != nil || ev.ID != due[0].EventID || ev.Type != webhook.PaymentSucceeded {
		t.Fatalf("payload %s: %v", due[0].Payload, err)
	}
	d := due[0]
	d.Attempts, d.LastStatus, d.LastError, d.Next = 1, 503, "endpoint answered 503", now.Add(time.Second)
	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.UpdateDelivery(ctx, d) })
	view(t, db, func(tx *sqlstore.Tx) error {
		got, err := tx.Delivery(ctx, ten, d.ID)
		same(t, "delivery after a failed attempt", d, got)
		if due, _ := tx.DueDeliveries(ctx, now, 10); len(due) != 0 {
			t.Errorf("due before its next attempt: %v", due)
		}
		_, e2 := tx.Delivery(ctx, other, d.ID)
		wantCode(t, "another tenant's delivery", e2, iotpay.ENOTFOUND)
		ds, _ := tx.Deliveries(ctx, ten, e.ID, webhook.Pending, 10)
		if len(ds) != 1 {
			t.Errorf("pending deliveries: %v", ds)
		}
		return err
	})
	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.DeleteEndpoint(ctx, ten, e.ID) })
	wantCode(t, "delete twice", update(db, func(tx *sqlstore.Tx) error { return tx.DeleteEndpoint(ctx, ten, e.ID) }), iotpay.ENOTFOUND)
	view(t, db, func(tx *sqlstore.Tx) error {
		got, err := tx.Delivery(ctx, ten, d.ID)
		if got.Status != webhook.Failed || got.LastError != "endpoint deleted" {
			t.Errorf("a deleted endpoint's delivery: %+v", got)
		}
		return err
	})
}

// testRouting: payments keep their connector and its reference; payer
// accounts' instruments by connector; a tenant's routing table.
func testRouting(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	ten := newTenant(t, db)
	_, devs := fleet(t, db, ten, 1)
	now := ms(time.Now())
	p := newPayment(ten, devs[0], iotpay.MandateID(newID(iotpay.PrefixMandate)), iotpay.PaymentID(newID(iotpay.PrefixPayment)), now)
	p.Connector, p.ConnectorRef = "acquirer", "123456789012"
	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.CreatePayment(ctx, p) })
	acc := iotpay.AccountID(newID(iotpay.PrefixAccount))
	mustUpdate(t, db, func(tx *sqlstore.Tx) error {
		if err := tx.PutAccountSource(ctx, ten, acc, "acquirer", "4111111111111111"); err != nil {
			return err
		}
		if err := tx.PutAccountSource(ctx, ten, acc, "stripe", "pm_card_visa"); err != nil {
			return err
		}
		return tx.PutRoutingTable(ctx, ten, []byte(`{"default":["acquirer","stripe"]}`), now)
	})
	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.PutAccountSource(ctx, ten, acc, "stripe", "pm_card_mastercard") })
	view(t, db, func(tx *sqlstore.Tx) error {
		got, err := tx.Payment(ctx, ten, p.ID)
		same(t, "payment with its connector", p, got)
		srcs, _ := tx.AccountSources(ctx, acc)
		same(t, "account sources", map[string]string{"acquirer": "4111111111111111", "stripe": "pm_card_mastercard"}, srcs)
		if none, _ := tx.AccountSources(ctx, "acc_none"); none != nil {
			t.Errorf("a wallet's sources: %v", none)
		}
		body, _ := tx.RoutingTable(ctx, ten)
		if string(body) != `{"default":["acquirer","stripe"]}` {
			t.Errorf("routing table %s", body)
		}
		_, e := tx.RoutingTable(ctx, newTenantID())
		wantCode(t, "no routing table", e, iotpay.ENOTFOUND)
		return err
	})
}

func testFollowUps(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	ten := newTenant(t, db)
	now := ms(time.Now())
	capture := &payment.FollowUp{ID: newID(iotpay.PrefixFollowUp), Tenant: ten, Payment: iotpay.PaymentID(newID(iotpay.PrefixPayment)),
		Connector: "acquirer", Ref: "123456789012", Op: payment.OpCapture, Amount: 250, Final: true, Key: "pay_x:capture:sale",
		Status: payment.FollowUpPending, Next: now, Created: now}
	release := &payment.FollowUp{ID: newID(iotpay.PrefixFollowUp), Tenant: ten, Connector: "stripe", Op: payment.OpRelease,
		Key: "dev_x:req-1:authorize", Status: payment.FollowUpPending, Next: now.Add(time.Hour), Created: now.Add(time.Millisecond)}
	mustUpdate(t, db, func(tx *sqlstore.Tx) error {
		return each([]*payment.FollowUp{capture, release}, func(f *payment.FollowUp) error { return tx.PutFollowUp(ctx, f) })
	})
	view(t, db, func(tx *sqlstore.Tx) error {
		due, err := tx.DueFollowUps(ctx, now, 10)
		same(t, "due now", []*payment.FollowUp{capture}, due)
		due, _ = tx.DueFollowUps(ctx, now.Add(2*time.Hour), 10)
		same(t, "due later", []*payment.FollowUp{capture, release}, due)
		got, _ := tx.FollowUp(ctx, ten, release.ID)
		same(t, "one", release, got)
		_, e := tx.FollowUp(ctx, newTenantID(), release.ID)
		wantCode(t, "another tenant's follow-up", e, iotpay.ENOTFOUND)
		return err
	})
	// A retry recorded, then a refusal: failed ones are not due.
	capture.Attempts, capture.LastError, capture.Next = 1, "acquirer: no answer", now.Add(2*time.Second)
	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.PutFollowUp(ctx, capture) })
	release.Status, release.LastError = payment.FollowUpFailed, "declined"
	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.PutFollowUp(ctx, release) })
	view(t, db, func(tx *sqlstore.Tx) error {
		due, err := tx.DueFollowUps(ctx, now.Add(2*time.Hour), 10)
		same(t, "due after the updates", []*payment.FollowUp{capture}, due)
		failed, _ := tx.FollowUps(ctx, ten, payment.FollowUpFailed, 10)
		same(t, "failed", []*payment.FollowUp{release}, failed)
		pending, _ := tx.FollowUps(ctx, ten, payment.FollowUpPending, 10)
		same(t, "pending", []*payment.FollowUp{capture}, pending)
		return err
	})
	mustUpdate(t, db, func(tx *sqlstore.Tx) error {
		if err := tx.DeleteFollowUp(ctx, capture.ID); err != nil {
			return err
		}
		return tx.DeleteFollowUp(ctx, capture.ID) // gone already: not an error
	})
	view(t, db, func(tx *sqlstore.Tx) error {
		due, err := tx.DueFollowUps(ctx, now.Add(2*time.Hour), 10)
		if len(due) != 0 {
			t.Errorf("due after delete: %v", due)
		}
		return err
	})

	// Connector state: an upsert, read back byte for byte.
	mustUpdate(t, db, func(tx *sqlstore.Tx) error {
		return tx.PutConnectorState(ctx, "acquirer", "123456789012", []byte(`{"v":1}`), now)
	})
	mustUpdate(t, db, func(tx *sqlstore.Tx) error {
		return tx.PutConnectorState(ctx, "acquirer", "123456789012", []byte{0, 1, 2, 0xff}, now)
	})
	view(t, db, func(tx *sqlstore.Tx) error {
		st, err := tx.ConnectorState(ctx, "acquirer", "123456789012")
		same(t, "state", []byte{0, 1, 2, 0xff}, st)
		_, e := tx.ConnectorState(ctx, "stripe", "123456789012")
		wantCode(t, "another connector's state", e, iotpay.ENOTFOUND)
		return err
	})
}

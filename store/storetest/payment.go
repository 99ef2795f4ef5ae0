package storetest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/store/sqlstore"
)

// newMandate is an active mandate with every stored field set but the
// lists and usage.
func newMandate(ten iotpay.TenantID, dev iotpay.DeviceID, id iotpay.MandateID, now time.Time) *payment.Mandate {
	return &payment.Mandate{ID: id, Tenant: ten, Device: dev, Payer: iotpay.AccountID(newID(iotpay.PrefixAccount)),
		Currency: "EUR", PerPayment: 500, PerDay: 2000, PerMonth: 30_000, ValidFrom: now, ValidTo: now.Add(365 * 24 * time.Hour),
		Status: payment.MandateActive, Created: now, Updated: now}
}

// newPayment is an authorized payment holding its whole amount, with every
// stored field set.
func newPayment(ten iotpay.TenantID, dev iotpay.DeviceID, mdt iotpay.MandateID, id iotpay.PaymentID, now time.Time) *payment.Payment {
	hash := sha256.Sum256([]byte(id))
	return &payment.Payment{ID: id, Tenant: ten, Device: dev, Mandate: mdt, Product: iotpay.ProductID(newID(iotpay.PrefixProduct)),
		Category: "5814", Status: payment.StatusAuthorized, Currency: "EUR", Amount: 500, Held: 500,
		Payer: iotpay.AccountID(newID(iotpay.PrefixAccount)), Merchant: iotpay.AccountID(newID(iotpay.PrefixAccount)),
		Hold: newXfr(), HoldExpires: now.Add(payment.HoldTimeoutDefault), RequestID: "rq-" + string(id), RequestHash: hash[:],
		LogIndex: 1<<40 + 7, Receipt: append([]byte{0xd2, 0x84}, hash[:8]...), Created: now, Updated: now}
}

func testMandates(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	ten, other := newTenant(t, db), newTenant(t, db)
	prod, devs := fleet(t, db, ten, 3)
	_, otherDevs := fleet(t, db, other, 1)
	base := ms(time.Now())
	// The first device has a revoked mandate and a newer active one; the
	// second a suspended one; the third one limited to two products and
	// two merchant categories, with usage recorded.
	var mdts []*payment.Mandate
	for i, dev := range []iotpay.DeviceID{devs[0], devs[0], devs[1], devs[2]} {
		mdts = append(mdts, newMandate(ten, dev, iotpay.MandateID(idAt(iotpay.PrefixMandate, base, i)), base.Add(time.Duration(i)*time.Second)))
	}
	mdts[0].Status, mdts[0].ValidTo = payment.MandateRevoked, time.Time{}
	mdts[2].Status = payment.MandateSuspended
	mdts[3].Products = []iotpay.ProductID{prod, iotpay.ProductID(newID(iotpay.PrefixProduct))}
	mdts[3].Categories = []string{"5814", "5499"}
	mdts[3].Day, mdts[3].DayUsed, mdts[3].Month, mdts[3].MonthUsed = "2026-11-25", 250, "2026-11", 1250
	theirs := newMandate(other, otherDevs[0], iotpay.MandateID(idAt(iotpay.PrefixMandate, base, 9)), base)
	mustUpdate(t, db, func(tx *sqlstore.Tx) error {
		return each(append(slices.Clone(mdts), theirs), func(m *payment.Mandate) error { return tx.CreateMandate(ctx, m) })
	})

	// Usage and a suspension are what an update changes.
	up := mdts[1]
	up.Status, up.Day, up.DayUsed, up.Month, up.MonthUsed, up.Updated = payment.MandateSuspended, "2026-11-26", 700, "2026-11", 2100, base.Add(time.Hour)
	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.UpdateMandate(ctx, up) })

	view(t, db, func(tx *sqlstore.Tx) error {
		for i, want := range mdts {
			got, err := tx.Mandate(ctx, ten, want.ID)
			if err != nil {
				return err
			}
			same(t, fmt.Sprintf("mandate %d", i), want, got)
		}
		for i, want := range []*payment.Mandate{mdts[1], mdts[2], mdts[3]} {
			got, err := tx.DeviceMandate(ctx, devs[i])
			if err != nil {
				return err
			}
			same(t, fmt.Sprintf("the latest mandate of device %d", i), want, got)
		}
		_, err := tx.Mandate(ctx, other, mdts[0].ID)
		wantCode(t, "a mandate read as another tenant", err, iotpay.ENOTFOUND)
		_, err = tx.Mandate(ctx, ten, theirs.ID)
		wantCode(t, "another tenant's mandate", err, iotpay.ENOTFOUND)
		return nil
	})

	for _, c := range []struct {
		name   string
		tenant iotpay.TenantID
		f      payment.MandateFilter
		want   []*payment.Mandate
	}{
		{"all", ten, payment.MandateFilter{}, mdts},
		{"of a device", ten, payment.MandateFilter{Device: devs[0]}, mdts[:2]},
		{"active", ten, payment.MandateFilter{Status: payment.MandateActive}, mdts[3:]},
		{"suspended", ten, payment.MandateFilter{Status: payment.MandateSuspended}, mdts[1:3]},
		{"revoked of a device", ten, payment.MandateFilter{Device: devs[0], Status: payment.MandateRevoked}, mdts[:1]},
		{"none of a device", ten, payment.MandateFilter{Device: devs[1], Status: payment.MandateRevoked}, nil},
		{"after the second", ten, payment.MandateFilter{After: mdts[1].ID}, mdts[2:]},
		{"first page", ten, payment.MandateFilter{Limit: 2}, mdts[:2]},
		{"page after the first", ten, payment.MandateFilter{After: mdts[0].ID, Limit: 2}, mdts[1:3]},
		{"another tenant's", other, payment.MandateFilter{}, []*payment.Mandate{theirs}},
		{"another tenant's device", other, payment.MandateFilter{Device: devs[0]}, nil},
	} {
		view(t, db, func(tx *sqlstore.Tx) error {
			got, err := tx.Mandates(ctx, c.tenant, c.f)
			same(t, "mandates "+c.name, c.want, got)
			return err
		})
	}
}

// paymentShapes are the amounts of a payment in each status.
var paymentShapes = []struct {
	status                   payment.Status
	captured, refunded, held int64
	feeOperator, feePlatform int64
	decline                  payment.Reason
}{
	{payment.StatusAuthorized, 0, 0, 500, 0, 0, ""},
	{payment.StatusCaptured, 500, 0, 0, 10, 5, ""},
	{payment.StatusDeclined, 0, 0, 0, 0, 0, payment.DeclineOverDailyLimit},
	{payment.StatusPartiallyCaptured, 200, 0, 300, 4, 2, ""},
	{payment.StatusRefunded, 500, 500, 0, 0, 0, ""},
	{payment.StatusVoided, 0, 0, 0, 0, 0, ""},
}

// payments records one payment of each shape in ten, alternating between
// two devices and their mandates, each made a millisecond (its id) and a
// second (its creation) after the one before; the last two have no
// request id.
func payments(t *testing.T, db *sqlstore.DB, ten iotpay.TenantID, devs []iotpay.DeviceID, base time.Time) ([]*payment.Payment, []*payment.Mandate) {
	t.Helper()
	ctx := context.Background()
	mdts := []*payment.Mandate{
		newMandate(ten, devs[0], iotpay.MandateID(newID(iotpay.PrefixMandate)), base),
		newMandate(ten, devs[1], iotpay.MandateID(newID(iotpay.PrefixMandate)), base),
	}
	var ps []*payment.Payment
	for i, s := range paymentShapes {
		p := newPayment(ten, devs[i%2], mdts[i%2].ID, iotpay.PaymentID(idAt(iotpay.PrefixPayment, base, i)), base.Add(time.Duration(i)*time.Second))
		p.Status, p.Captured, p.Refunded, p.Held, p.FeeOperator, p.FeePlatform = s.status, s.captured, s.refunded, s.held, s.feeOperator, s.feePlatform
		p.Decline, p.Reason = s.decline, s.decline.Message()
		if !p.Status.Open() {
			p.Hold, p.HoldExpires = "", time.Time{}
		}
		p.RequestID = fmt.Sprintf("rq-%d", i)
		if i >= 4 {
			p.RequestID = ""
		}
		ps = append(ps, p)
	}
	mustUpdate(t, db, func(tx *sqlstore.Tx) error {
		if err := each(mdts, func(m *payment.Mandate) error { return tx.CreateMandate(ctx, m) }); err != nil {
			return err
		}
		return each(ps, func(p *payment.Payment) error { return tx.CreatePayment(ctx, p) })
	})
	return ps, mdts
}

func testPayments(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	ten, other := newTenant(t, db), newTenant(t, db)
	_, devs := fleet(t, db, ten, 2)
	base := ms(time.Now())
	ps, mdts := payments(t, db, ten, devs, base)

	// The first payment gets an increment and a partial capture: a new
	// hold for what is left.
	up := ps[0]
	oldHold := up.Hold
	up.Status, up.Amount, up.Captured, up.Held, up.FeeOperator, up.FeePlatform = payment.StatusPartiallyCaptured, 600, 100, 500, 2, 1
	up.Hold, up.HoldExpires, up.Updated = newXfr(), base.Add(8*24*time.Hour), base.Add(time.Hour)
	mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.UpdatePayment(ctx, up) })

	view(t, db, func(tx *sqlstore.Tx) error {
		for i, want := range ps {
			got, err := tx.Payment(ctx, ten, want.ID)
			if err != nil {
				return err
			}
			same(t, fmt.Sprintf("payment %d", i), want, got)
		}
		for _, c := range []struct {
			name string
			get  func() (*payment.Payment, error)
			want *payment.Payment // nil: not found
		}{
			{"by request", func() (*payment.Payment, error) { return tx.PaymentByRequest(ctx, devs[1], "rq-3") }, ps[3]},
			{"by request, updated", func() (*payment.Payment, error) { return tx.PaymentByRequest(ctx, devs[0], "rq-0") }, ps[0]},
			{"by another device's request", func() (*payment.Payment, error) { return tx.PaymentByRequest(ctx, devs[1], "rq-0") }, nil},
			{"by an empty request id", func() (*payment.Payment, error) { return tx.PaymentByRequest(ctx, devs[0], "") }, nil},
			{"by hold", func() (*payment.Payment, error) { return tx.PaymentByHold(ctx, ps[3].Hold) }, ps[3]},
			{"by the new hold", func() (*payment.Payment, error) { return tx.PaymentByHold(ctx, up.Hold) }, up},
			{"by the replaced hold", func() (*payment.Payment, error) { return tx.PaymentByHold(ctx, oldHold) }, nil},
			{"by no hold", func() (*payment.Payment, error) { return tx.PaymentByHold(ctx, "") }, nil},
			{"of another tenant", func() (*payment.Payment, error) { return tx.Payment(ctx, other, ps[1].ID) }, nil},
		} {
			got, err := c.get()
			if c.want == nil {
				wantCode(t, "payment "+c.name, err, iotpay.ENOTFOUND)
				continue
			}
			if err != nil {
				return err
			}
			same(t, fmt.Sprintf("payment %s", c.name), c.want, got)
		}
		return nil
	})
	testPaymentListing(t, db, ten, other, ps, devs, mdts)
	testPaymentConstraints(t, db, ten, ps, devs)
}

// testPaymentListing lists payments newest first, by every filter.
func testPaymentListing(t *testing.T, db *sqlstore.DB, ten, other iotpay.TenantID, ps []*payment.Payment, devs []iotpay.DeviceID, mdts []*payment.Mandate) {
	ctx := context.Background()
	newest := slices.Clone(ps)
	slices.Reverse(newest)
	pick := func(is ...int) []*payment.Payment {
		var out []*payment.Payment
		for _, i := range is {
			out = append(out, ps[i])
		}
		return out
	}
	for _, c := range []struct {
		name   string
		tenant iotpay.TenantID
		f      payment.Filter
		want   []*payment.Payment
	}{
		{"all", ten, payment.Filter{}, newest},
		{"of a device", ten, payment.Filter{Device: devs[0]}, pick(4, 2, 0)},
		{"of a mandate", ten, payment.Filter{Mandate: mdts[1].ID}, pick(5, 3, 1)},
		{"captured", ten, payment.Filter{Status: payment.StatusCaptured}, pick(1)},
		{"partially captured", ten, payment.Filter{Status: payment.StatusPartiallyCaptured}, pick(3, 0)},
		{"partially captured on a device", ten, payment.Filter{Device: devs[1], Status: payment.StatusPartiallyCaptured}, pick(3)},
		{"since the third", ten, payment.Filter{Since: ps[2].Created}, pick(5, 4, 3, 2)},
		{"until the third", ten, payment.Filter{Until: ps[2].Created}, pick(1, 0)},
		{"from the second until the fifth", ten, payment.Filter{Since: ps[1].Created, Until: ps[4].Created}, pick(3, 2, 1)},
		{"before the fourth", ten, payment.Filter{Before: ps[3].ID}, pick(2, 1, 0)},
		{"the newest two", ten, payment.Filter{Limit: 2}, pick(5, 4)},
		{"a device's, before the fifth, one", ten, payment.Filter{Device: devs[0], Before: ps[4].ID, Limit: 1}, pick(2)},
		{"expired", ten, payment.Filter{Status: payment.StatusExpired}, nil},
		{"another tenant's", other, payment.Filter{}, nil},
	} {
		view(t, db, func(tx *sqlstore.Tx) error {
			got, err := tx.Payments(ctx, c.tenant, c.f)
			same(t, "payments "+c.name, c.want, got)
			return err
		})
	}
	// Page by page with the cursor: every payment once, newest first.
	var paged []iotpay.PaymentID
	f := payment.Filter{Limit: 4}
	for range len(ps) {
		var page []*payment.Payment
		view(t, db, func(tx *sqlstore.Tx) (err error) { page, err = tx.Payments(ctx, ten, f); return })
		if len(page) == 0 {
			break
		}
		for _, p := range page {
			paged = append(paged, p.ID)
		}
		f.Before = page[len(page)-1].ID
	}
	var want []iotpay.PaymentID
	for _, p := range newest {
		want = append(want, p.ID)
	}
	same(t, "payments page by page", want, paged)
}

// testPaymentConstraints: a device's request id names one payment (an
// empty one none); the amounts' CHECK refuses a payment that cannot be.
func testPaymentConstraints(t *testing.T, db *sqlstore.DB, ten iotpay.TenantID, ps []*payment.Payment, devs []iotpay.DeviceID) {
	ctx := context.Background()
	now := ms(time.Now())
	create := func(dev iotpay.DeviceID, requestID string, f func(p *payment.Payment)) (*payment.Payment, error) {
		p := newPayment(ten, dev, "", iotpay.PaymentID(newID(iotpay.PrefixPayment)), now)
		p.RequestID = requestID
		if f != nil {
			f(p)
		}
		return p, update(db, func(tx *sqlstore.Tx) error { return tx.CreatePayment(ctx, p) })
	}
	_, err := create(devs[0], "rq-0", nil)
	wantCode(t, "a device's request id again", err, iotpay.ECONFLICT)
	if _, err := create(devs[1], "rq-0", nil); err != nil {
		t.Errorf("another device's request id: %v", err)
	}
	for i := range 2 {
		if _, err := create(devs[0], "", nil); err != nil {
			t.Errorf("payment %d without a request id on a device that has one: %v", i, err)
		}
	}

	for _, c := range []struct {
		name string
		f    func(p *payment.Payment)
	}{
		{"captured more than authorized", func(p *payment.Payment) { p.Captured, p.Held = 600, 0 }},
		{"refunded more than captured", func(p *payment.Payment) { p.Captured, p.Refunded, p.Held = 100, 200, 0 }},
		{"holding more than is left", func(p *payment.Payment) { p.Captured, p.Held = 200, 400 }},
		{"an unknown status", func(p *payment.Payment) { p.Status = "approved" }},
	} {
		p, err := create(devs[1], "", c.f)
		if err == nil {
			t.Errorf("a payment %s was stored", c.name)
			continue
		}
		view(t, db, func(tx *sqlstore.Tx) error {
			_, err := tx.Payment(ctx, ten, p.ID)
			wantCode(t, "the refused payment "+c.name, err, iotpay.ENOTFOUND)
			return nil
		})
	}
	over := *ps[1]
	over.Refunded = over.Captured + 1
	if err := update(db, func(tx *sqlstore.Tx) error { return tx.UpdatePayment(ctx, &over) }); err == nil {
		t.Error("an update refunding more than was captured was stored")
	}
	view(t, db, func(tx *sqlstore.Tx) error {
		got, err := tx.Payment(ctx, ten, ps[1].ID)
		same(t, "payment after a refused update", ps[1], got)
		return err
	})
}

func testIdempotency(t *testing.T, db *sqlstore.DB) {
	ctx := context.Background()
	now := ms(time.Now())
	ten, other := iotpay.TenantID(newID(iotpay.PrefixTenant)), iotpay.TenantID(newID(iotpay.PrefixTenant))
	record := func(ten iotpay.TenantID, key string, n int, at time.Time) *payment.IdempotencyRecord {
		h := sha256.Sum256(fmt.Appendf(nil, "POST /v1/payments\n%d", n))
		return &payment.IdempotencyRecord{Tenant: ten, Key: key, RequestHash: h[:], Status: 200 + n,
			Body: fmt.Appendf(nil, `{"n":%d}`, n), Created: at}
	}
	put := func(r *payment.IdempotencyRecord) {
		t.Helper()
		mustUpdate(t, db, func(tx *sqlstore.Tx) error { return tx.PutIdempotency(ctx, r) })
	}
	want := func(what string, ten iotpay.TenantID, key string, want *payment.IdempotencyRecord) {
		t.Helper()
		view(t, db, func(tx *sqlstore.Tx) error {
			got, err := tx.Idempotency(ctx, ten, key)
			if want == nil {
				wantCode(t, what, err, iotpay.ENOTFOUND)
				return nil
			}
			same(t, what, want, got)
			return err
		})
	}
	first := record(ten, "k1", 1, now)
	put(first)
	want("a recorded key", ten, "k1", first)
	want("another key", ten, "k2", nil)
	want("the key of another tenant", other, "k1", nil)
	// A key whose record expired is recorded again: the new record
	// replaces the old.
	again := record(ten, "k1", 2, now.Add(25*time.Hour))
	put(again)
	want("a key recorded again", ten, "k1", again)
	theirs := record(other, "k1", 3, now)
	put(theirs)
	want("another tenant's record under the same key", other, "k1", theirs)
	want("a key after another tenant used it", ten, "k1", again)
	// Purging forgets the records made before an instant, and only them.
	var purged int64
	mustUpdate(t, db, func(tx *sqlstore.Tx) (err error) { purged, err = tx.PurgeIdempotency(ctx, now.Add(time.Hour)); return })
	if purged != 1 {
		t.Errorf("purged %d records, want 1", purged)
	}
	want("a purged key", other, "k1", nil)
	want("a key kept", ten, "k1", again)
}

package httpapi_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/iotpay/iotpay/platform/daemon"
)

// TestIdempotencyKey: the same key and request get the kept answer; the
// same key with another request is refused; a failed request keeps
// nothing, so its repeat runs again; keys belong to their tenant.
func TestIdempotencyKey(t *testing.T) {
	a := newAPI(t, daemon.Config{})
	w := a.newWorld(t, 0)
	fund := map[string]any{"amount": 700}
	path := "/v1/accounts/" + w.payer + "/fund"

	first := a.must(t, 201, "POST", path, fund, "Idempotency-Key", "fund-1")
	if first.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("first request marked replayed")
	}
	again := a.must(t, 201, "POST", path, fund, "Idempotency-Key", "fund-1")
	if again.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.raw, first.raw) {
		t.Errorf("replay: %s %v, want the first answer %s", again, again.header, first)
	}
	expect(t, "funded once", a.must(t, 200, "GET", "/v1/accounts/"+w.payer, nil), map[string]any{"balance": int64(700)})

	if r := a.call(t, a.key, "POST", path, map[string]any{"amount": 701}, "Idempotency-Key", "fund-1"); r.status != 400 {
		t.Errorf("same key, other body: %s, want 400", r)
	}
	if r := a.call(t, a.key, "POST", "/v1/accounts", map[string]any{"name": "x", "kind": "payer", "currency": "EUR"},
		"Idempotency-Key", "fund-1"); r.status != 400 {
		t.Errorf("same key, other route: %s, want 400", r)
	}
	// Another tenant's key space is its own.
	other := a.otherTenant(t)
	if r := a.call(t, other, "POST", "/v1/accounts", map[string]any{"name": "x", "kind": "payer", "currency": "EUR"},
		"Idempotency-Key", "fund-1"); r.status != 201 || r.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("other tenant, same key: %s", r)
	}
	// A request without a key is never a replay.
	a.must(t, 201, "POST", path, fund)
	a.must(t, 201, "POST", path, fund)
	expect(t, "funded three times", a.must(t, 200, "GET", "/v1/accounts/"+w.payer, nil), map[string]any{"balance": int64(2100)})

	// A failed request keeps nothing: once its cause is gone, the same
	// request with the same key runs again, and succeeds.
	dev, mdt := a.device(t, w, []int64{100, 200, 300}, nil)
	second := map[string]any{"device": dev, "payer": w.payer, "per_payment_limit": 500, "daily_limit": 500, "monthly_limit": 500}
	if r := a.call(t, a.key, "POST", "/v1/mandates", second, "Idempotency-Key", "mandate-2"); r.status != 409 {
		t.Fatalf("second mandate while the first is active: %s, want 409", r)
	}
	if r := a.call(t, a.key, "POST", "/v1/mandates", second, "Idempotency-Key", "mandate-2"); r.status != 409 ||
		r.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("repeat of a failed request: %s %v, want it run again (409)", r, r.header)
	}
	a.must(t, 200, "POST", "/v1/mandates/"+mdt+"/revoke", nil)
	created := a.must(t, 201, "POST", "/v1/mandates", second, "Idempotency-Key", "mandate-2")
	if created.header.Get("Idempotent-Replayed") != "" || created.str("id") == mdt {
		t.Errorf("after the cause is gone: %s", created)
	}
	// A declined authorization is a created payment: kept and replayed.
	pay := map[string]any{"device": dev, "amount": 501, "currency": "EUR"}
	d1 := a.must(t, 201, "POST", "/v1/payments", pay, "Idempotency-Key", "pay-1")
	d2 := a.must(t, 201, "POST", "/v1/payments", pay, "Idempotency-Key", "pay-1")
	if d1.str("decline_code") != "over_payment_limit" || !bytes.Equal(d1.raw, d2.raw) || d2.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("declined payment replay: %s then %s", d1, d2)
	}
	// An operation that takes no body replays too.
	id := a.authorize(t, dev, 100, false).str("id")
	v1 := a.must(t, 200, "POST", "/v1/payments/"+id+"/void", nil, "Idempotency-Key", "void-1")
	v2 := a.must(t, 200, "POST", "/v1/payments/"+id+"/void", nil, "Idempotency-Key", "void-1")
	if !bytes.Equal(v1.raw, v2.raw) || v2.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("void replay: %s then %s", v1, v2)
	}
	if r := a.call(t, a.key, "POST", "/v1/payments/"+id+"/void", nil, "Idempotency-Key", "void-2"); r.status != 409 {
		t.Errorf("void again under a new key: %s, want 409", r)
	}
}

// TestIdempotencyKeyConcurrent sends the same request with the same key
// from many clients at once: exactly one effect, every answer the same.
func TestIdempotencyKeyConcurrent(t *testing.T) {
	a := newAPI(t, daemon.Config{})
	w := a.newWorld(t, 0)
	dev, _ := a.device(t, w, []int64{1000, 1000, 1000}, nil)
	a.must(t, 201, "POST", "/v1/accounts/"+w.payer+"/fund", map[string]any{"amount": 5000})
	const clients = 24
	for round, req := range []struct {
		path string
		body map[string]any
	}{
		{"/v1/accounts/" + w.payer + "/fund", map[string]any{"amount": 300}},
		{"/v1/payments", map[string]any{"device": dev, "amount": 400, "currency": "EUR", "capture": true}},
	} {
		key := fmt.Sprint("concurrent-", round)
		replies := make([]reply, clients)
		var wg sync.WaitGroup
		for i := range clients {
			wg.Go(func() { replies[i] = a.call(t, a.key, "POST", req.path, req.body, "Idempotency-Key", key) })
		}
		wg.Wait()
		fresh := 0
		for _, r := range replies {
			if r.status != 201 || !bytes.Equal(r.raw, replies[0].raw) {
				t.Errorf("%s: %s, want %s", req.path, r, replies[0])
			}
			if r.header.Get("Idempotent-Replayed") == "" {
				fresh++
			}
		}
		if fresh != 1 {
			t.Errorf("%s: %d answers not replayed, want 1", req.path, fresh)
		}
	}
	// One funding of 300 and one payment of 400, once each.
	expect(t, "payer", a.must(t, 200, "GET", "/v1/accounts/"+w.payer, nil), map[string]any{"balance": int64(5000 + 300 - 400)})
	if n := len(a.walk(t, a.key, "/v1/payments?device="+dev, 50)); n != 1 {
		t.Errorf("%d payments, want 1", n)
	}
}

package httpapi_test

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/platform/daemon"
)

// feePlan is the operator's 2% and the platform's 1% of every capture.
var feePlan = payment.FeePlan{OperatorBps: 200, PlatformBps: 100}

// expect checks fields of a body: numbers as int64, the rest as strings.
func expect(t *testing.T, what string, r reply, want map[string]any) {
	t.Helper()
	for k, v := range want {
		var got any = r.str(k)
		if _, ok := v.(int64); ok {
			got = r.num(k)
		}
		if got != v {
			t.Errorf("%s: %s = %v, want %v (%s)", what, k, got, v, r)
		}
	}
}

// TestPaymentLifecycle authorizes, captures in two parts, refunds in
// parts and refuses what the payment's state does not allow.
func TestPaymentLifecycle(t *testing.T) {
	a := newAPI(t, daemon.Config{})
	w := a.newWorld(t, 5000)
	dev, mdt := a.device(t, w, []int64{2000, 4000, 10000}, nil)

	p := a.authorize(t, dev, 1000, false)
	id := p.str("id")
	expect(t, "authorized", p, map[string]any{"status": "authorized", "amount": int64(1000), "held": int64(1000),
		"captured": int64(0), "mandate": mdt, "payer": w.payer, "merchant": w.merchant, "product": w.product, "category": "5552"})
	if p.str("hold_expires") == "" {
		t.Errorf("no hold_expires: %s", p)
	}
	payer := a.must(t, 200, "GET", "/v1/accounts/"+w.payer, nil)
	expect(t, "payer with a hold", payer, map[string]any{"balance": int64(5000), "available": int64(4000)})

	p = a.must(t, 200, "POST", "/v1/payments/"+id+"/capture", map[string]any{"amount": 300, "final": false})
	expect(t, "first capture", p, map[string]any{"status": "partially_captured", "captured": int64(300), "held": int64(700)})
	p = a.must(t, 200, "POST", "/v1/payments/"+id+"/capture", map[string]any{"amount": 200})
	expect(t, "second capture", p, map[string]any{"status": "captured", "captured": int64(500), "held": int64(0)})
	expect(t, "merchant", a.must(t, 200, "GET", "/v1/accounts/"+w.merchant, nil), map[string]any{"balance": int64(500)})
	expect(t, "payer after the captures", a.must(t, 200, "GET", "/v1/accounts/"+w.payer, nil),
		map[string]any{"balance": int64(4500), "available": int64(4500)})

	if r := a.call(t, a.key, "POST", "/v1/payments/"+id+"/capture", map[string]any{"amount": 1}); r.status != 409 {
		t.Errorf("capture of a captured payment: %s, want 409", r)
	}
	if r := a.call(t, a.key, "POST", "/v1/payments/"+id+"/void", nil); r.status != 409 || r.str("code") != "conflict" {
		t.Errorf("void of a captured payment: %s, want 409 conflict", r)
	}
	if r := a.call(t, a.key, "POST", "/v1/payments/"+id+"/increment", map[string]any{"amount": 1}); r.status != 409 {
		t.Errorf("increment of a captured payment: %s, want 409", r)
	}

	p = a.must(t, 200, "POST", "/v1/payments/"+id+"/refund", map[string]any{"amount": 100})
	expect(t, "first refund", p, map[string]any{"status": "captured", "refunded": int64(100)})
	p = a.must(t, 200, "POST", "/v1/payments/"+id+"/refund", map[string]any{"amount": 150})
	expect(t, "second refund", p, map[string]any{"status": "captured", "refunded": int64(250)})
	if r := a.call(t, a.key, "POST", "/v1/payments/"+id+"/refund", map[string]any{"amount": 251}); r.status != 400 || r.str("code") != "invalid" {
		t.Errorf("refund beyond what is left: %s, want 400", r)
	}
	p = a.must(t, 200, "POST", "/v1/payments/"+id+"/refund", map[string]any{})
	expect(t, "refund of the rest", p, map[string]any{"status": "refunded", "refunded": int64(500)})
	if r := a.call(t, a.key, "POST", "/v1/payments/"+id+"/refund", map[string]any{"amount": 1}); r.status != 409 {
		t.Errorf("refund of a refunded payment: %s, want 409", r)
	}
	expect(t, "payer refunded", a.must(t, 200, "GET", "/v1/accounts/"+w.payer, nil), map[string]any{"balance": int64(5000)})
	expect(t, "merchant refunded", a.must(t, 200, "GET", "/v1/accounts/"+w.merchant, nil), map[string]any{"balance": int64(0)})

	// The payment's ledger history, and the payer's balance back in time.
	kinds := map[string]int{}
	var toPayer int64
	for _, tr := range a.walk(t, a.key, "/v1/payments/"+id+"/transfers", 2) {
		kinds[tr["kind"].(string)]++
		if tr["kind"] == "refund" && tr["credit_account"] == w.payer {
			toPayer += int64(tr["amount"].(float64))
		}
	}
	if kinds["authorize"] != 2 || kinds["capture"] != 2 || toPayer != 500 {
		t.Errorf("transfers by kind: %v, refunded to the payer %d", kinds, toPayer)
	}
	ts := a.walk(t, a.key, "/v1/accounts/"+w.payer+"/transfers", 3)
	fund := strconv.FormatInt(int64(ts[0]["seq"].(float64)), 10)
	expect(t, "balance just after funding", a.must(t, 200, "GET", "/v1/accounts/"+w.payer+"/balance?as_of_seq="+fund, nil),
		map[string]any{"balance": int64(5000), "available": int64(5000)})
	hold := strconv.FormatInt(int64(ts[1]["seq"].(float64)), 10)
	expect(t, "balance just after the hold", a.must(t, 200, "GET", "/v1/accounts/"+w.payer+"/balance?as_of_seq="+hold, nil),
		map[string]any{"balance": int64(5000), "available": int64(4000)})
	expect(t, "balance before anything", a.must(t, 200, "GET", "/v1/accounts/"+w.payer+"/balance?as_of=2000-01-01T00:00:00Z", nil),
		map[string]any{"balance": int64(0)})
	expect(t, "balance now", a.must(t, 200, "GET", "/v1/accounts/"+w.payer+"/balance", nil), map[string]any{"balance": int64(5000)})

	// A void releases a hold that nothing captured.
	v := a.authorize(t, dev, 700, false).str("id")
	expect(t, "void", a.must(t, 200, "POST", "/v1/payments/"+v+"/void", nil), map[string]any{"status": "voided", "held": int64(0)})
	expect(t, "payer after the void", a.must(t, 200, "GET", "/v1/accounts/"+w.payer, nil), map[string]any{"available": int64(5000)})
	if r := a.call(t, a.key, "POST", "/v1/payments/"+v+"/capture", map[string]any{}); r.status != 409 {
		t.Errorf("capture of a voided payment: %s, want 409", r)
	}
	// A capture over what is held is refused and changes nothing.
	c := a.authorize(t, dev, 400, false).str("id")
	if r := a.call(t, a.key, "POST", "/v1/payments/"+c+"/capture", map[string]any{"amount": 401}); r.status != 400 {
		t.Errorf("capture over the hold: %s, want 400", r)
	}
	expect(t, "after a refused capture", a.must(t, 200, "GET", "/v1/payments/"+c, nil), map[string]any{"status": "authorized", "held": int64(400)})
	// A sale captures at once.
	expect(t, "sale", a.authorize(t, dev, 250, true), map[string]any{"status": "captured", "captured": int64(250)})
}

// TestIncrement raises an authorization within the mandate's limit and is
// declined, with its reason, over it.
func TestIncrement(t *testing.T) {
	a := newAPI(t, daemon.Config{})
	w := a.newWorld(t, 1500)
	dev, _ := a.device(t, w, []int64{1500, 3000, 10000}, nil)
	id := a.authorize(t, dev, 1000, false).str("id")
	p := a.must(t, 200, "POST", "/v1/payments/"+id+"/increment", map[string]any{"amount": 400})
	expect(t, "increment", p, map[string]any{"status": "authorized", "amount": int64(1400), "held": int64(1400)})
	r := a.call(t, a.key, "POST", "/v1/payments/"+id+"/increment", map[string]any{"amount": 200})
	expect(t, "increment over the per-payment limit", r, map[string]any{"code": "declined",
		"decline_code": "over_payment_limit"})
	if r.status != 402 {
		t.Errorf("increment over the limit: %s, want 402", r)
	}
	expect(t, "after the decline", a.must(t, 200, "GET", "/v1/payments/"+id, nil), map[string]any{"amount": int64(1400), "held": int64(1400)})
	// Within the limit but over the payer's funds.
	dev2, _ := a.device(t, a.newWorld(t, 100), []int64{1500, 3000, 10000}, nil)
	id2 := a.authorize(t, dev2, 100, false).str("id")
	r = a.call(t, a.key, "POST", "/v1/payments/"+id2+"/increment", map[string]any{"amount": 1})
	if r.status != 402 || r.str("decline_code") != "insufficient_funds" {
		t.Errorf("increment over the funds: %s, want 402 insufficient_funds", r)
	}
	// The increment is captured like the rest.
	expect(t, "capture after increment", a.must(t, 200, "POST", "/v1/payments/"+id+"/capture", map[string]any{}),
		map[string]any{"status": "captured", "captured": int64(1400)})
}

// TestDeclines shows each mandate rule's decline reason on the payment it
// declined, and that a declined payment moves no money.
func TestDeclines(t *testing.T) {
	a := newAPI(t, daemon.Config{})
	w := a.newWorld(t, 100000)
	other := a.must(t, 201, "POST", "/v1/products", map[string]any{"name": "other", "merchant_account": w.merchant,
		"pricing": map[string]any{"mode": "amount", "currency": "EUR"}}).str("id")
	now := time.Now().UTC()
	limits := []int64{500, 1000, 10000}
	cases := []struct {
		name    string
		extra   map[string]any
		before  func(dev, mdt string)
		amount  int64
		reason  string
		mandate bool
	}{
		{name: "no mandate", amount: 100, reason: "no_mandate"},
		{name: "suspended", mandate: true, amount: 100, reason: "mandate_suspended",
			before: func(_, mdt string) { a.must(t, 200, "POST", "/v1/mandates/"+mdt+"/suspend", nil) }},
		{name: "revoked", mandate: true, amount: 100, reason: "mandate_revoked",
			before: func(_, mdt string) { a.must(t, 200, "POST", "/v1/mandates/"+mdt+"/revoke", nil) }},
		{name: "expired", mandate: true, amount: 100, reason: "mandate_expired",
			extra: map[string]any{"valid_from": now.Add(-2 * time.Hour), "valid_to": now.Add(-time.Hour)}},
		{name: "not yet valid", mandate: true, amount: 100, reason: "mandate_not_yet_valid",
			extra: map[string]any{"valid_from": now.Add(time.Hour)}},
		{name: "product not allowed", mandate: true, amount: 100, reason: "product_not_allowed",
			extra: map[string]any{"products": []string{other}}},
		{name: "category not allowed", mandate: true, amount: 100, reason: "category_not_allowed",
			extra: map[string]any{"categories": []string{"5814"}}},
		{name: "over the per-payment limit", mandate: true, amount: 501, reason: "over_payment_limit"},
		{name: "daily limit", mandate: true, amount: 300, reason: "over_daily_limit",
			before: func(dev, _ string) {
				for range 3 {
					a.authorize(t, dev, 300, true)
				}
			}},
		{name: "insufficient funds", mandate: true, amount: 500, reason: "insufficient_funds"},
		{name: "currency", mandate: true, amount: 100, reason: "currency_not_allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ww := w
			if c.reason == "insufficient_funds" {
				ww = a.newWorld(t, 499)
			}
			var lim []int64
			if c.mandate {
				lim = limits
			}
			dev, mdt := a.device(t, ww, lim, c.extra)
			if c.before != nil {
				c.before(dev, mdt)
			}
			before := a.must(t, 200, "GET", "/v1/accounts/"+ww.payer, nil)
			cur := "EUR"
			if c.reason == "currency_not_allowed" {
				cur = "USD"
			}
			p := a.must(t, 201, "POST", "/v1/payments", map[string]any{"device": dev, "amount": c.amount, "currency": cur})
			expect(t, c.name, p, map[string]any{"status": "declined", "decline_code": c.reason, "held": int64(0), "captured": int64(0)})
			if p.str("reason") == "" {
				t.Errorf("declined without a reason in words: %s", p)
			}
			got := a.must(t, 200, "GET", "/v1/payments/"+p.str("id"), nil)
			expect(t, "stored", got, map[string]any{"status": "declined", "decline_code": c.reason})
			if n := len(a.walk(t, a.key, "/v1/payments/"+p.str("id")+"/transfers", 10)); n != 0 {
				t.Errorf("a declined payment has %d transfers", n)
			}
			after := a.must(t, 200, "GET", "/v1/accounts/"+ww.payer, nil)
			if before.num("available") != after.num("available") || before.num("balance") != after.num("balance") {
				t.Errorf("a decline moved money: %s then %s", before, after)
			}
			declined := a.walk(t, a.key, "/v1/payments?status=declined&device="+dev, 10)
			if len(declined) == 0 || declined[0]["id"] != p.str("id") {
				t.Errorf("declined payments of the device: %v", declined)
			}
		})
	}
	// Mandate transitions: resume after suspend works, a revoked mandate stays revoked.
	dev, mdt := a.device(t, w, limits, nil)
	a.must(t, 200, "POST", "/v1/mandates/"+mdt+"/suspend", nil)
	expect(t, "resumed", a.must(t, 200, "POST", "/v1/mandates/"+mdt+"/resume", nil), map[string]any{"status": "active"})
	expect(t, "after resume", a.authorize(t, dev, 100, true), map[string]any{"status": "captured"})
	if r := a.call(t, a.key, "POST", "/v1/mandates", map[string]any{"device": dev, "payer": w.payer, "per_payment_limit": 1,
		"daily_limit": 1, "monthly_limit": 1}); r.status != 409 {
		t.Errorf("second mandate of a device: %s, want 409", r)
	}
	a.must(t, 200, "POST", "/v1/mandates/"+mdt+"/revoke", nil)
	if r := a.call(t, a.key, "POST", "/v1/mandates/"+mdt+"/resume", nil); r.status != 409 {
		t.Errorf("resume of a revoked mandate: %s, want 409", r)
	}
	if r := a.call(t, a.key, "POST", "/v1/mandates", map[string]any{"device": dev, "payer": w.payer, "per_payment_limit": 600,
		"daily_limit": 500, "monthly_limit": 1000}); r.status != 400 {
		t.Errorf("per payment over daily: %s, want 400", r)
	}
	a.must(t, 201, "POST", "/v1/mandates", map[string]any{"device": dev, "payer": w.payer, "per_payment_limit": 1,
		"daily_limit": 1, "monthly_limit": 1})
}

// TestFees captures under a fee plan: the payment's transfers show the
// merchant's, operator's and platform's legs, which sum to each capture.
func TestFees(t *testing.T) {
	a := newAPI(t, daemon.Config{Fees: feePlan})
	w := a.newWorld(t, 10000)
	dev, _ := a.device(t, w, []int64{5000, 10000, 100000}, nil)
	id := a.authorize(t, dev, 3000, false).str("id")
	a.must(t, 200, "POST", "/v1/payments/"+id+"/capture", map[string]any{"amount": 1000, "final": false})
	p := a.must(t, 200, "POST", "/v1/payments/"+id+"/capture", map[string]any{"amount": 999})
	// 2% and 1%, rounded down: 20 + 10 of 1000, 19 + 9 of 999.
	expect(t, "fees", p, map[string]any{"status": "captured", "captured": int64(1999), "fee_operator": int64(39), "fee_platform": int64(19)})
	legs := map[string]int64{}
	var captured int64
	for _, tr := range a.walk(t, a.key, "/v1/payments/"+id+"/transfers", 3) {
		amount := int64(tr["amount"].(float64))
		switch kind := tr["kind"].(string); kind {
		case "capture":
			captured += amount
		case "fee operator", "fee platform":
			legs[kind] += amount
		}
	}
	// The captures pay the merchant, which pays the fees: what the merchant
	// keeps and the fees add up to what was captured.
	if captured != 1999 || legs["fee operator"] != 39 || legs["fee platform"] != 19 {
		t.Errorf("captured %d, legs %v", captured, legs)
	}
	expect(t, "merchant", a.must(t, 200, "GET", "/v1/accounts/"+w.merchant, nil), map[string]any{"balance": int64(1999 - 39 - 19)})
	fees := func() map[string]int64 {
		fees := map[string]int64{}
		for _, kind := range []string{"operator", "platform"} {
			for _, acc := range a.walk(t, a.key, "/v1/accounts?kind="+kind, 10) {
				fees[kind] += int64(acc["balance"].(float64))
			}
		}
		return fees
	}
	if f := fees(); f["operator"] != 39 || f["platform"] != 19 {
		t.Errorf("fee accounts: %v", f)
	}
	// Refunds give the fees back in proportion: all of them, in the end.
	a.must(t, 200, "POST", "/v1/payments/"+id+"/refund", map[string]any{"amount": 1000})
	if f := fees(); f["operator"] != 39-19 || f["platform"] != 19-9 {
		t.Errorf("fee accounts after refunding 1000 of 1999: %v", f)
	}
	expect(t, "refunded", a.must(t, 200, "POST", "/v1/payments/"+id+"/refund", map[string]any{}),
		map[string]any{"status": "refunded", "refunded": int64(1999)})
	if f := fees(); f["operator"] != 0 || f["platform"] != 0 {
		t.Errorf("fee accounts after refunding everything: %v", f)
	}
	expect(t, "merchant refunded", a.must(t, 200, "GET", "/v1/accounts/"+w.merchant, nil), map[string]any{"balance": int64(0)})
	expect(t, "payer refunded", a.must(t, 200, "GET", "/v1/accounts/"+w.payer, nil), map[string]any{"balance": int64(10000)})
}

// TestPagination walks every listing in small pages: each item exactly
// once, in order, and the filters hold on every page.
func TestPagination(t *testing.T) {
	a := newAPI(t, daemon.Config{})
	w := a.newWorld(t, 100000)
	dev, mdt := a.device(t, w, []int64{1000, 50000, 100000}, nil)
	dev2, _ := a.device(t, w, []int64{1000, 50000, 100000}, nil)
	var mine []string
	for i := range 13 {
		mine = append(mine, a.authorize(t, dev, int64(10+i), i%2 == 0).str("id"))
		a.authorize(t, dev2, 5, true)
	}
	for i := range 7 {
		a.must(t, 201, "POST", "/v1/accounts", map[string]any{"name": fmt.Sprint("m", i), "kind": "merchant", "currency": "EUR"})
	}
	ids := func(items []map[string]any) []string {
		var out []string
		seen := map[string]bool{}
		for _, it := range items {
			id := it["id"].(string)
			if seen[id] {
				t.Errorf("%s listed twice", id)
			}
			seen[id] = true
			out = append(out, id)
		}
		return out
	}
	sorted := func(what string, xs []string, desc bool) {
		for i := 1; i < len(xs); i++ {
			if (xs[i-1] < xs[i]) == desc {
				t.Errorf("%s out of order: %v", what, xs)
				return
			}
		}
	}
	for _, limit := range []int{1, 4, 13, 200} {
		got := ids(a.walk(t, a.key, "/v1/payments?device="+dev, limit))
		if fmt.Sprint(got) != fmt.Sprint(reversed(mine)) {
			t.Errorf("limit %d: payments %v, want %v", limit, got, reversed(mine))
		}
		if n := len(a.walk(t, a.key, "/v1/payments?mandate="+mdt+"&status=captured", limit)); n != 7 {
			t.Errorf("limit %d: %d captured payments of the mandate, want 7", limit, n)
		}
		all := ids(a.walk(t, a.key, "/v1/payments", limit))
		sorted("payments", all, true)
		if len(all) != 26 {
			t.Errorf("limit %d: %d payments, want 26", limit, len(all))
		}
		accounts := ids(a.walk(t, a.key, "/v1/accounts", limit))
		sorted("accounts", accounts, false)
		if n := len(ids(a.walk(t, a.key, "/v1/accounts?kind=merchant", limit))); n != 8 {
			t.Errorf("limit %d: %d merchants, want 8", limit, n)
		}
		sorted("devices", ids(a.walk(t, a.key, "/v1/devices", limit)), false)
		sorted("mandates", ids(a.walk(t, a.key, "/v1/mandates", limit)), false)
		var seqs []string
		for _, tr := range a.walk(t, a.key, "/v1/accounts/"+w.payer+"/transfers", limit) {
			seqs = append(seqs, fmt.Sprintf("%012d", int64(tr["seq"].(float64))))
		}
		sorted("transfers", seqs, false)
		if len(seqs) < 1+13+13 {
			t.Errorf("limit %d: %d transfers of the payer", limit, len(seqs))
		}
	}
	if n := len(a.walk(t, a.key, "/v1/devices", 1)); n != 2 {
		t.Errorf("%d devices, want 2", n)
	}
	// Time filters: everything was created in the last minute, nothing in the future.
	since := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	if n := len(a.walk(t, a.key, "/v1/payments?created_gte="+since, 5)); n != 26 {
		t.Errorf("%d payments since %s, want 26", n, since)
	}
	if n := len(a.walk(t, a.key, "/v1/payments?created_lt="+since, 5)); n != 0 {
		t.Errorf("%d payments before %s, want 0", n, since)
	}
}

func reversed(xs []string) []string {
	out := slices.Clone(xs)
	slices.Reverse(out)
	return out
}

package route

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector"
)

// fake is a connector for the router's logic: it answers, declines or
// fails as told, and counts authorizations by key.
type fake struct {
	name    string
	fail    error // returned by every call when set
	decline bool
	keys    map[string]int
}

func (f *fake) Name() string { return f.name }
func (f *fake) Authorize(_ context.Context, a *connector.Authorization) (*connector.Result, error) {
	if f.fail != nil {
		return nil, f.fail
	}
	if f.keys == nil {
		f.keys = map[string]int{}
	}
	f.keys[a.Key]++
	if f.decline {
		return &connector.Result{Status: connector.Declined, Code: "51"}, nil
	}
	return &connector.Result{Ref: f.name + "-" + a.Key, Status: connector.Authorized, Amount: a.Amount.Amount}, nil
}
func (f *fake) Capture(context.Context, string, int64, bool, string) (*connector.Result, error) {
	return nil, connector.ErrUnsupported
}
func (f *fake) Void(context.Context, string, string) (*connector.Result, error) {
	return nil, connector.ErrUnsupported
}
func (f *fake) Refund(context.Context, string, int64, string) (*connector.Result, error) {
	return nil, connector.ErrUnsupported
}
func (f *fake) Status(context.Context, string) (*connector.Result, error) {
	return nil, connector.ErrUnsupported
}

var down = connector.Unavailable("x", "timed out", errors.New("i/o timeout"))

func TestChoose(t *testing.T) {
	tb := &Table{Rules: []Rule{
		{Name: "big-eur", Currencies: []iotpay.Currency{"EUR"}, AmountMin: 10_000, Connectors: []string{"acquirer", "stripe"}},
		{Name: "fleet", Accounts: []iotpay.AccountID{"acc_fleet"}, Connectors: []string{"wallet"}},
		{Name: "usd", Currencies: []iotpay.Currency{"USD"}, AmountMax: 500, Connectors: []string{"stripe"}},
	}, Default: []string{"wallet"}}
	known := func(n string) bool { return n == "wallet" || n == "stripe" || n == "acquirer" }
	if err := tb.Validate(known); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p    Payment
		want string
	}{
		{Payment{Amount: iotpay.Money{Amount: 10_000, Currency: "EUR"}}, "big-eur"},
		{Payment{Amount: iotpay.Money{Amount: 9_999, Currency: "EUR"}, Account: "acc_fleet"}, "fleet"},
		{Payment{Amount: iotpay.Money{Amount: 500, Currency: "USD"}}, "usd"},
		{Payment{Amount: iotpay.Money{Amount: 501, Currency: "USD"}}, ""},
	} {
		if _, rule := tb.Choose(tc.p); rule != tc.want {
			t.Errorf("%+v: rule %q, want %q", tc.p, rule, tc.want)
		}
	}
	for name, bad := range map[string]*Table{
		"unknown connector": {Default: []string{"paypal"}},
		"no default":        {},
		"twice":             {Default: []string{"wallet", "wallet"}},
		"bounds":            {Rules: []Rule{{Name: "x", AmountMin: 5, AmountMax: 4, Connectors: []string{"wallet"}}}, Default: []string{"wallet"}},
		"currency":          {Rules: []Rule{{Name: "x", Currencies: []iotpay.Currency{"XXX"}, Connectors: []string{"wallet"}}}, Default: []string{"wallet"}},
		"no name":           {Rules: []Rule{{Connectors: []string{"wallet"}}}, Default: []string{"wallet"}},
	} {
		if err := bad.Validate(known); err == nil || iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestFailover: a retryable failure moves to the next connector with the
// same key; a decline does not; nothing answering is unavailable.
func TestFailover(t *testing.T) {
	a, b := &fake{name: "a", fail: down}, &fake{name: "b"}
	r := &Router{Connectors: map[string]connector.Connector{"a": a, "b": b}}
	auth := &connector.Authorization{Payment: "pay_1", Key: "pay_1:authorize", Amount: iotpay.Money{Amount: 100, Currency: "EUR"}}
	res, name, attempts, err := r.Authorize(context.Background(), []string{"a", "b"}, auth)
	if err != nil || name != "b" || res.Ref != "b-pay_1:authorize" || len(attempts) != 2 || attempts[0].Error == "" {
		t.Fatalf("failover: %v %s %+v %v", res, name, attempts, err)
	}
	if b.keys["pay_1:authorize"] != 1 {
		t.Fatalf("b authorized %v", b.keys)
	}
	// A decline is an answer: no failover.
	a.fail, a.decline = nil, true
	res, name, _, err = r.Authorize(context.Background(), []string{"a", "b"}, auth)
	if err != nil || name != "a" || res.Status != connector.Declined || b.keys["pay_1:authorize"] != 1 {
		t.Fatalf("decline: %v %s %v", res, name, err)
	}
	// A non-retryable error stops there.
	a.fail = iotpay.Errorf(iotpay.EINVALID, "bad card number")
	if _, name, _, err = r.Authorize(context.Background(), []string{"a", "b"}, auth); name != "a" || iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Fatalf("invalid: %s %v", name, err)
	}
	// Nothing answers.
	a.fail, b.fail = down, down
	if _, _, _, err = r.Authorize(context.Background(), []string{"a", "b"}, auth); !connector.Retryable(err) {
		t.Fatalf("all down: %v", err)
	}
}

// TestBreaker: consecutive failures open a connector's breaker, which is
// then skipped; after the cool-down one probe goes through, and its
// success closes it.
func TestBreaker(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	a, b := &fake{name: "a", fail: down}, &fake{name: "b"}
	r := &Router{Connectors: map[string]connector.Connector{"a": a, "b": b}, Failures: 3, Cooldown: 10 * time.Second,
		Now: func() time.Time { return now }}
	auth := func(k string) *connector.Authorization {
		return &connector.Authorization{Key: k, Amount: iotpay.Money{Amount: 1, Currency: "EUR"}}
	}
	for i := range 3 {
		if _, name, _, err := r.Authorize(context.Background(), []string{"a", "b"}, auth(strings.Repeat("k", i+1))); err != nil || name != "b" {
			t.Fatalf("try %d: %s %v", i, name, err)
		}
	}
	if h := r.Health()[0]; h.Name != "a" || h.State != Open || h.Failures != 3 {
		t.Fatalf("health after 3 failures: %+v", h)
	}
	a.fail = nil // a is back, but its breaker is open: skipped
	_, name, attempts, _ := r.Authorize(context.Background(), []string{"a", "b"}, auth("x"))
	if name != "b" || !attempts[0].Skipped {
		t.Fatalf("open breaker not skipped: %s %+v", name, attempts)
	}
	now = now.Add(11 * time.Second)
	if h := r.Health()[0]; h.State != HalfOpen {
		t.Fatalf("after the cool-down: %+v", h)
	}
	if _, name, _, _ = r.Authorize(context.Background(), []string{"a", "b"}, auth("y")); name != "a" {
		t.Fatalf("probe went to %s", name)
	}
	if h := r.Health()[0]; h.State != Closed || h.Failures != 0 || h.Successes != 1 {
		t.Fatalf("after a good probe: %+v", h)
	}
}

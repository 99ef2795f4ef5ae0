package stripe_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/payment/connector/stripe"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		cfg  stripe.Config
		ok   bool
	}{
		{name: "secret key, Stripe's URL", cfg: stripe.Config{Key: "sk_test_1"}, ok: true},
		{name: "restricted key", cfg: stripe.Config{Key: "rk_live_1"}, ok: true},
		{name: "https URL", cfg: stripe.Config{Key: "sk_test_1", BaseURL: "https://stripe.internal.example/"}, ok: true},
		{name: "http to loopback", cfg: stripe.Config{Key: "sk_test_1", BaseURL: "http://127.0.0.1:12111"}, ok: true},
		{name: "http to localhost", cfg: stripe.Config{Key: "sk_test_1", BaseURL: "http://localhost:12111"}, ok: true},
		{name: "http to IPv6 loopback", cfg: stripe.Config{Key: "sk_test_1", BaseURL: "http://[::1]:12111"}, ok: true},
		{name: "no key", cfg: stripe.Config{}},
		{name: "publishable key", cfg: stripe.Config{Key: "pk_test_1"}},
		{name: "key with a newline", cfg: stripe.Config{Key: "sk_test_1\n"}},
		{name: "http off loopback", cfg: stripe.Config{Key: "sk_test_1", BaseURL: "http://api.stripe.com"}},
		{name: "no scheme", cfg: stripe.Config{Key: "sk_test_1", BaseURL: "127.0.0.1:12111"}},
		{name: "credentials in URL", cfg: stripe.Config{Key: "sk_test_1", BaseURL: "https://u:p@api.stripe.com"}},
		{name: "negative timeout", cfg: stripe.Config{Key: "sk_test_1", Timeout: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := stripe.New(tt.cfg)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				if c.Name() != stripe.DefaultName {
					t.Errorf("Name = %q", c.Name())
				}
				return
			}
			if code(err) != iotpay.EINVALID {
				t.Errorf("New = %v, want EINVALID", err)
			}
			if err != nil && strings.Contains(err.Error(), "sk_test_1") {
				t.Errorf("error shows the key: %v", err)
			}
		})
	}
}

// TestNewKeepsClient: the caller's HTTP client is used, not changed.
func TestNewKeepsClient(t *testing.T) {
	rec := &recorder{next: http.DefaultTransport}
	hc := &http.Client{Transport: rec}
	if _, err := stripe.New(stripe.Config{Key: "sk_test_1", HTTPClient: hc}); err != nil {
		t.Fatal(err)
	}
	if hc.Transport != rec {
		t.Error("New changed the caller's client")
	}
}

// TestRefusedBeforeSending: what Stripe would refuse, or what would lose
// idempotency, is refused without a request.
func TestRefusedBeforeSending(t *testing.T) {
	ctx := context.Background()
	auth := func(edit func(a *connector.Authorization)) func(c *stripe.Connector) error {
		return func(c *stripe.Connector) error {
			a := authorization(t, "k")
			edit(a)
			_, err := c.Authorize(ctx, a)
			return err
		}
	}
	tests := []struct {
		name string
		call func(c *stripe.Connector) error
	}{
		{"nil authorization", func(c *stripe.Connector) error { _, err := c.Authorize(ctx, nil); return err }},
		{"no key", auth(func(a *connector.Authorization) { a.Key = "" })},
		{"key too long", auth(func(a *connector.Authorization) { a.Key = strings.Repeat("k", 256) })},
		{"key with a line break", auth(func(a *connector.Authorization) { a.Key = "k\r\nX-Evil: 1" })},
		{"key with surrounding space", auth(func(a *connector.Authorization) { a.Key = " k" })},
		{"zero amount", auth(func(a *connector.Authorization) { a.Amount.Amount = 0 })},
		{"negative amount", auth(func(a *connector.Authorization) { a.Amount.Amount = -5 })},
		{"unknown currency", auth(func(a *connector.Authorization) { a.Amount.Currency = "XXX" })},
		{"no payment method", auth(func(a *connector.Authorization) { a.Source = "" })},
		{"bad merchant", auth(func(a *connector.Authorization) { a.Merchant = "merchant-7" })},
		{"capture, bad ref", func(c *stripe.Connector) error { _, err := c.Capture(ctx, "ch_1", 0, true, "k"); return err }},
		{"capture, ref with a path", func(c *stripe.Connector) error {
			_, err := c.Capture(ctx, "pi_1/../../v1/refunds", 0, true, "k")
			return err
		}},
		{"capture, bad account in ref", func(c *stripe.Connector) error { _, err := c.Capture(ctx, "acct-1/pi_1", 0, true, "k"); return err }},
		{"capture, negative", func(c *stripe.Connector) error { _, err := c.Capture(ctx, "pi_1", -1, true, "k"); return err }},
		{"capture, no key", func(c *stripe.Connector) error { _, err := c.Capture(ctx, "pi_1", 0, true, ""); return err }},
		{"void, no key", func(c *stripe.Connector) error { _, err := c.Void(ctx, "pi_1", ""); return err }},
		{"void, empty ref", func(c *stripe.Connector) error { _, err := c.Void(ctx, "", "k"); return err }},
		{"refund, negative", func(c *stripe.Connector) error { _, err := c.Refund(ctx, "pi_1", -1, "k"); return err }},
		{"refund, no key", func(c *stripe.Connector) error { _, err := c.Refund(ctx, "pi_1", 0, ""); return err }},
		{"status, bad ref", func(c *stripe.Connector) error { _, err := c.Status(ctx, "pi_"); return err }},
		{"increment, zero", func(c *stripe.Connector) error { _, err := c.Increment(ctx, "pi_1", 0, "k"); return err }},
		{"increment, no key", func(c *stripe.Connector) error { _, err := c.Increment(ctx, "pi_1", 5, ""); return err }},
		{"release, no key", func(c *stripe.Connector) error { _, err := c.Release(ctx, ""); return err }},
		{"release, key too long", func(c *stripe.Connector) error { _, err := c.Release(ctx, strings.Repeat("k", 256)); return err }},
		{"release, key with a line break", func(c *stripe.Connector) error { _, err := c.Release(ctx, "k\n' OR status:'succeeded"); return err }},
		{"release, key with surrounding space", func(c *stripe.Connector) error { _, err := c.Release(ctx, "k "); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, hits := fake(t, jsonAnswer(500, apiErrBody))
			c, _ := newConnector(t, base, stripe.Config{})
			if err := tt.call(c); code(err) != iotpay.EINVALID {
				t.Errorf("got %v, want EINVALID", err)
			}
			if n := hits.Load(); n != 0 {
				t.Errorf("%d requests sent", n)
			}
		})
	}
}

package stripe_test

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/payment/connector/stripe"
	"github.com/iotpay/iotpay/payment/connector/stripe/stripetest"
)

// FuzzParseWebhook: no payload or header panics ParseWebhook; one that
// is not signed with the secret never parses; one signed with it parses
// into a consistent event or is refused as invalid.
func FuzzParseWebhook(f *testing.F) {
	now := time.Now()
	for _, p := range [][]byte{evCapturable, evSucceeded, evFailed, evCanceled, evRefunded, evConnect, evOther, evOldVersion, evLegacyRefund,
		[]byte(`{}`), []byte(`{"id":"evt_1","type":"payment_intent.succeeded","data":null}`),
		[]byte(`{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":"pi_1"}}`),
		[]byte(`{"id":"evt_1","type":"charge.refunded","data":{"object":{"payment_intent":{"id":7}}}}`), nil} {
		f.Add(p, sign(p, whSecret, now))
		f.Add(p, "")
		f.Add(p, sign(p, "whsec_other", now))
		f.Add(p, "t=1,v1=00,v0=zz")
	}
	c := webhookConnector(f, whSecret)
	f.Fuzz(func(t *testing.T, payload []byte, header string) {
		// As given: only a header that is a valid signature parses.
		ev, err := c.ParseWebhook(payload, header)
		valid := webhook.ValidatePayloadWithTolerance(payload, header, whSecret, stripe.WebhookTolerance) == nil
		if err == nil && !valid {
			t.Fatalf("parsed with a header that does not verify: %q", header)
		}
		check(t, ev, err)

		// Signed with another secret: never.
		if ev, err := c.ParseWebhook(payload, sign(payload, "whsec_other", time.Now())); err == nil || ev != nil {
			t.Fatalf("parsed a payload signed with another secret: %+v", ev)
		} else if c := iotpay.ErrorCode(err); c != iotpay.EUNAUTHORIZED && c != iotpay.EINVALID {
			t.Fatalf("wrong secret: code %q", c)
		}

		// Signed with the secret: an event or EINVALID, never a panic.
		ev, err = c.ParseWebhook(payload, sign(payload, whSecret, time.Now()))
		if err != nil && len(payload) <= stripe.MaxWebhookBody && iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Fatalf("signed payload: %v, want EINVALID or an event", err)
		}
		check(t, ev, err)
	})
}

// refPattern is what Authorize's refs look like.
var refPattern = regexp.MustCompile(`^(acct_[A-Za-z0-9_]+/)?pi_[A-Za-z0-9_]+$`)

// check asserts that an event ParseWebhook returned is consistent.
func check(t *testing.T, ev *stripe.Event, err error) {
	t.Helper()
	if err != nil {
		if ev != nil {
			t.Fatalf("an event and an error: %+v, %v", ev, err)
		}
		if iotpay.ErrorCode(err) == iotpay.EINTERNAL {
			t.Fatalf("internal error: %v", err)
		}
		return
	}
	if ev == nil || ev.ID == "" || ev.Type == "" {
		t.Fatalf("event without id or type: %+v", ev)
	}
	switch ev.Status {
	case "", connector.Authorized, connector.Captured, connector.Declined, connector.Voided, connector.Refunded:
	default:
		t.Fatalf("status %q", ev.Status)
	}
	if ev.Ref != "" && !refPattern.MatchString(ev.Ref) {
		t.Fatalf("Ref %q is no payment reference", ev.Ref)
	}
}

// BenchmarkAuthorize is one Authorize against stripe-mock over loopback
// HTTP: the connector's and stripe-go's cost plus stripe-mock's.
func BenchmarkAuthorize(b *testing.B) {
	base := stripetest.Start(b)
	c, err := stripe.New(stripe.Config{Key: stripetest.Key, BaseURL: base})
	if err != nil {
		b.Fatal(err)
	}
	a := authorization(b, "")
	keys := make([]string, 0, 1024)
	for i := range cap(keys) {
		keys = append(keys, fmt.Sprintf("bench-%d", i))
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		a.Key = keys[i%len(keys)]
		i++
		if _, err := c.Authorize(ctx, a); err != nil {
			b.Fatal(err)
		}
	}
}

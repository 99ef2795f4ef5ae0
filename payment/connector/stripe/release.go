package stripe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/iotpay/iotpay"
	stripego "github.com/stripe/stripe-go/v82"
)

const (
	// releaseMax bounds the PaymentIntents one Release looks at: one page
	// of search results, the most Stripe gives. A key makes one intent
	// per account while Stripe keeps it (24 hours), so more than a page
	// is something no automatic release should guess at.
	releaseMax = 100
	// releaseSep joins an operation's key and an intent's id into the
	// idempotency key of a release's cancel.
	releaseSep = ":release:"
	// releaseHashPfx starts that key when the joined one is too long.
	releaseHashPfx = "iotpay-release-"
)

// Release cancels the PaymentIntents an Authorize under key left held or
// unfinished (requires_capture, requires_confirmation,
// requires_payment_method, requires_action), with cancellation_reason
// abandoned, and answers how many it cancelled. It finds them with
// Stripe's Search API by their metadata (MetaKey); intents captured,
// processing or already cancelled are left as they are and not counted.
//
// Stripe's search lags behind its writes (under a minute, longer during
// an outage): finding none soon after the answer was lost is normal, and
// the caller should try again later. The search covers the platform
// account only: an intent made on a connected account's behalf
// (Authorization.Merchant) is not found, and Stripe releases its hold
// after seven days.
//
// Each cancel carries an idempotency key made of key and the intent's id,
// so Release may be retried: an intent it cancelled that the search still
// shows held is answered cancelled again (and counted), one cancelled or
// captured since by someone else is skipped. On an error the count is of
// the intents cancelled before it.
func (c *Connector) Release(ctx context.Context, key string) (int, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	ids, err := c.search(ctx, key)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		ok, err := c.abandon(ctx, id, key)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// search answers the ids of the PaymentIntents on the platform account
// made under key that a cancel may release.
func (c *Connector) search(ctx context.Context, key string) ([]string, error) {
	p := &stripego.PaymentIntentSearchParams{}
	p.Query = fmt.Sprintf("metadata['%s']:'%s'", MetaKey, searchQuote(key))
	p.Limit = stripego.Int64(releaseMax)
	p.Single = true // one page: releaseMax
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var ids []string
	seen := 0
	for pi, err := range c.api.V1PaymentIntents.Search(ctx, p) {
		if err != nil {
			return nil, classify("release", err)
		}
		if seen++; seen > releaseMax {
			break
		}
		// What matches is Stripe's to say: only the very key counts.
		if pi == nil || pi.Metadata[MetaKey] != key || !releasable(pi.Status) {
			continue
		}
		if !validID(pi.ID, "pi_") {
			return nil, iotpay.Errorf(iotpay.EINTERNAL, "stripe: release: search answered a payment intent %q", pi.ID)
		}
		ids = append(ids, pi.ID)
	}
	return ids, nil
}

// releasable reports whether an intent in status s may hold money, or
// come to, and Stripe lets it be cancelled.
func releasable(s stripego.PaymentIntentStatus) bool {
	switch s {
	case stripego.PaymentIntentStatusRequiresCapture,
		stripego.PaymentIntentStatusRequiresConfirmation,
		stripego.PaymentIntentStatusRequiresPaymentMethod,
		stripego.PaymentIntentStatusRequiresAction:
		return true
	}
	return false
}

// abandon cancels the PaymentIntent id found under key and reports
// whether it did; false when the intent can no longer be cancelled
// (cancelled or captured since the search's view of it).
func (c *Connector) abandon(ctx context.Context, id, key string) (bool, error) {
	p := &stripego.PaymentIntentCancelParams{
		CancellationReason: stripego.String(string(stripego.PaymentIntentCancellationReasonAbandoned)),
	}
	p.SetIdempotencyKey(releaseKey(key, id))
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	pi, err := c.api.V1PaymentIntents.Cancel(ctx, id, p)
	var se *stripego.Error
	switch {
	case errors.As(err, &se) && se.Code == stripego.ErrorCodePaymentIntentUnexpectedState:
		return false, nil
	case err != nil:
		return false, classify("release", err)
	case pi == nil || pi.Status != stripego.PaymentIntentStatusCanceled:
		return false, iotpay.Errorf(iotpay.EINTERNAL, "stripe: release: cancel of %s answered no cancelled intent", id)
	}
	return true, nil
}

// releaseKey is the idempotency key of the cancel of the intent id by a
// Release under key: both joined, or a digest of that when it is longer
// than Stripe takes.
func releaseKey(key, id string) string {
	k := key + releaseSep + id
	if len(k) <= maxKeyLen {
		return k
	}
	sum := sha256.Sum256([]byte(k))
	return releaseHashPfx + hex.EncodeToString(sum[:])
}

// searchQuote escapes s for a single-quoted string of Stripe's search
// query language: a quote, and the backslash that escapes it, behind a
// backslash. A key that matches more than it should is harmless: search
// keeps only the intents whose metadata is the very key.
func searchQuote(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
}

package stripe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector"
	stripego "github.com/stripe/stripe-go/v82"
)

// Codes for a decline or a failed refund that Stripe gave no code for.
const (
	codeDeclined     = "declined"
	codeAuthRequired = "authentication_required"
	codeRefundFailed = "refund_failed"
)

// intentResult maps a PaymentIntent to a Result.
func intentResult(acct string, pi *stripego.PaymentIntent) (*connector.Result, error) {
	if pi == nil || pi.ID == "" {
		return nil, iotpay.Errorf(iotpay.EINTERNAL, "stripe: answer without a payment intent")
	}
	r := &connector.Result{Ref: makeRef(acct, pi.ID), At: time.Now().UTC()}
	ch := pi.LatestCharge
	if ch != nil && ch.PaymentMethodDetails != nil && ch.PaymentMethodDetails.Card != nil {
		r.Approval = ch.PaymentMethodDetails.Card.AuthorizationCode
	}
	switch pi.Status {
	case stripego.PaymentIntentStatusRequiresCapture:
		// With multicapture, what a non-final capture took is received
		// while the rest is still held: the payment is partly captured.
		if pi.AmountReceived > 0 {
			r.Status, r.Amount = connector.Captured, pi.AmountReceived
		} else {
			r.Status, r.Amount = connector.Authorized, pi.AmountCapturable
		}
	case stripego.PaymentIntentStatusSucceeded:
		r.Status, r.Amount = connector.Captured, pi.AmountReceived
		if ch != nil && ch.AmountRefunded > 0 {
			r.Status, r.Amount = connector.Refunded, ch.AmountRefunded
		}
	case stripego.PaymentIntentStatusCanceled:
		r.Status = connector.Voided // nothing held: Amount 0
	case stripego.PaymentIntentStatusRequiresPaymentMethod, stripego.PaymentIntentStatusRequiresAction:
		switch e := pi.LastPaymentError; {
		case e != nil:
			r.Status, r.Code, r.Message = connector.Declined, declineCode(e), e.Msg
		case pi.Status == stripego.PaymentIntentStatusRequiresAction:
			// Only the payer could go on (3-D Secure), and no device
			// can take them there.
			r.Status, r.Code = connector.Declined, codeAuthRequired
		default:
			r.Status = connector.Pending // not confirmed yet
		}
	case stripego.PaymentIntentStatusRequiresConfirmation, stripego.PaymentIntentStatusProcessing:
		r.Status = connector.Pending
	default:
		return nil, iotpay.Errorf(iotpay.EINTERNAL, "stripe: payment intent %s in unknown status %q", pi.ID, pi.Status)
	}
	return r, nil
}

// refundResult maps a Refund of the payment ref to a Result whose Amount
// is all that is refunded so far (the charge's total, when Stripe sent it).
func refundResult(ref string, rf *stripego.Refund) (*connector.Result, error) {
	if rf == nil || rf.ID == "" {
		return nil, iotpay.Errorf(iotpay.EINTERNAL, "stripe: answer without a refund")
	}
	r := &connector.Result{Ref: ref, Amount: rf.Amount, At: time.Now().UTC()}
	if rf.Charge != nil && rf.Charge.AmountRefunded > r.Amount {
		r.Amount = rf.Charge.AmountRefunded
	}
	switch rf.Status {
	case stripego.RefundStatusSucceeded:
		r.Status = connector.Refunded
	case stripego.RefundStatusPending, stripego.RefundStatusRequiresAction:
		r.Status = connector.Pending
	case stripego.RefundStatusFailed, stripego.RefundStatusCanceled:
		r.Status, r.Code = connector.Declined, string(rf.FailureReason)
		if r.Code == "" {
			r.Code = codeRefundFailed
		}
	default:
		return nil, iotpay.Errorf(iotpay.EINTERNAL, "stripe: refund %s in unknown status %q", rf.ID, rf.Status)
	}
	return r, nil
}

// declineCode is the issuer's decline code, else Stripe's error code.
func declineCode(e *stripego.Error) string {
	switch {
	case e.DeclineCode != "":
		return string(e.DeclineCode)
	case e.Code != "":
		return string(e.Code)
	}
	return codeDeclined
}

// failed turns the error of a call about ref (empty for a new payment) on
// account acct into the connector's answer: a card error is a Declined
// result, anything else an error.
func (c *Connector) failed(op, acct, ref string, err error) (*connector.Result, error) {
	var se *stripego.Error
	if errors.As(err, &se) && se.Type == stripego.ErrorTypeCard {
		r := &connector.Result{Ref: ref, Status: connector.Declined, Code: declineCode(se), Message: se.Msg, At: time.Now().UTC()}
		if se.PaymentIntent != nil && se.PaymentIntent.ID != "" {
			r.Ref = makeRef(acct, se.PaymentIntent.ID)
		}
		return r, nil
	}
	return nil, classify(op, err)
}

// classify maps an error of stripe-go to an *iotpay.Error.
func classify(op string, err error) error {
	what := "stripe: " + op
	var se *stripego.Error
	if errors.As(err, &se) {
		st := se.HTTPStatusCode
		switch {
		case se.Code == stripego.ErrorCodeIdempotencyKeyInUse || se.Code == stripego.ErrorCodeLockTimeout:
			// A request with this key, or on this object, is still
			// running: a retry gets its result.
			return iotpay.Wrap(iotpay.EUNAVAILABLE, what+": busy", se)
		case se.Type == stripego.ErrorTypeIdempotency:
			return iotpay.Wrap(iotpay.EINVALID, what+": idempotency key reused with other parameters", se)
		case st == http.StatusConflict || st == http.StatusTooManyRequests || st >= 500 || se.Type == stripego.ErrorTypeAPI:
			return iotpay.Wrap(iotpay.EUNAVAILABLE, fmt.Sprintf("%s: unavailable (HTTP %d)", what, st), se)
		case st == http.StatusUnauthorized || st == http.StatusForbidden:
			return iotpay.Wrap(iotpay.EINTERNAL, what+": API key refused", se)
		case se.Type == stripego.ErrorTypeInvalidRequest || st == http.StatusBadRequest ||
			st == http.StatusPaymentRequired || st == http.StatusNotFound:
			return iotpay.Wrap(iotpay.EINVALID, what+": "+se.Msg, se)
		}
		return iotpay.Wrap(iotpay.EINTERNAL, what+": unexpected error", se)
	}
	var ue *url.Error
	var he *httpStatusError
	switch {
	case errors.As(err, &he):
		return iotpay.Wrap(iotpay.EUNAVAILABLE, fmt.Sprintf("%s: unavailable (HTTP %d)", what, he.status), err)
	case errors.Is(err, context.DeadlineExceeded):
		return iotpay.Wrap(iotpay.EUNAVAILABLE, what+": timed out", err)
	case errors.Is(err, context.Canceled):
		// The outcome is unknown: a retry with the same key settles it.
		return iotpay.Wrap(iotpay.EUNAVAILABLE, what+": cancelled", err)
	case errors.As(err, &ue):
		return iotpay.Wrap(iotpay.EUNAVAILABLE, what+": network failure", err)
	}
	// An answer stripe-go could not read (not JSON, no error in it).
	return iotpay.Wrap(iotpay.EINTERNAL, what+": bad answer", err)
}

// idempotencyReuse reports whether err is Stripe refusing a key that was
// used with other parameters.
func idempotencyReuse(err error) bool {
	var se *stripego.Error
	return errors.As(err, &se) && se.Type == stripego.ErrorTypeIdempotency
}

// maxErrorBody bounds the body of a 5xx or 429 read to tell a Stripe
// error from a proxy's page, in bytes.
const maxErrorBody = 64 << 10

// httpStatusError is a 5xx or 429 answer that is not a Stripe error (a
// load balancer's or proxy's page).
type httpStatusError struct{ status int }

func (e *httpStatusError) Error() string { return fmt.Sprintf("HTTP %d", e.status) }

// guard is the transport under stripe-go. It turns a 5xx or 429 answer
// that is not a Stripe error into an error, which classify makes
// retryable: stripe-go would report it as unreadable JSON, with no
// status to tell it from a broken answer.
type guard struct{ next http.RoundTripper }

func (g guard) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := g.next.RoundTrip(req)
	if err != nil || (res.StatusCode < 500 && res.StatusCode != http.StatusTooManyRequests) {
		return res, err
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxErrorBody+1))
	res.Body.Close()
	if err != nil || len(body) > maxErrorBody || !stripeError(res.Header.Get("Content-Type"), body) {
		return nil, &httpStatusError{status: res.StatusCode}
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	return res, nil
}

// stripeError reports whether body is a Stripe error object.
func stripeError(contentType string, body []byte) bool {
	if mt, _, err := mime.ParseMediaType(contentType); err != nil || mt != "application/json" {
		return false
	}
	var e struct {
		Error *struct {
			Type string `json:"type"`
		} `json:"error"`
	}
	return json.Unmarshal(body, &e) == nil && e.Error != nil && e.Error.Type != ""
}

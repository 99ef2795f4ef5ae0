// Package webhook tells operators what happened, as signed HTTP calls to
// the endpoints they registered: payments authorized, succeeded, declined,
// voided, expired, held for review; refunds; device events. An event is
// queued in the same transaction as what it reports (a delivery per
// subscribed endpoint), then sent by a worker with retries and
// exponential back-off; every attempt is recorded, and an operator can
// ask for a delivery again.
//
// Signatures are Stripe's scheme: the header Iotpay-Signature is
// "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the
// endpoint's secret>"; Verify is what a receiver runs.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/iotpay/iotpay"
)

// Bounds and timings.
const (
	SignatureHeader  = "Iotpay-Signature"
	EndpointsMax     = 16               // per tenant
	EventTypesMax    = 32               // an endpoint's subscriptions
	URLBytesMax      = 2048             // an endpoint's URL
	AttemptsMax      = 10               // deliveries of one event to one endpoint
	RetryMin         = time.Second      // the first retry's delay, doubled each time
	RetryMax         = time.Hour        // the longest delay between attempts
	SendTimeout      = 10 * time.Second // one attempt
	ToleranceDefault = 5 * time.Minute  // Verify's default clock tolerance
	secretBytes      = 24
)

// Event types.
const (
	PaymentAuthorized = "payment.authorized"
	PaymentSucceeded  = "payment.succeeded" // money captured
	PaymentDeclined   = "payment.declined"
	PaymentVoided     = "payment.voided"
	PaymentExpired    = "payment.expired"
	PaymentReview     = "payment.review" // held for an operator's review
	// PaymentOfflineBreach: an offline payment beyond its product's
	// limits, or one the risk policy or the ledger refused after the fact.
	PaymentOfflineBreach = "payment.offline_breach"
	RefundSucceeded      = "refund.succeeded"
)

// Types are the event types an endpoint may subscribe to; device.* are the
// platform's device events (decision.Event kinds).
var Types = []string{PaymentAuthorized, PaymentSucceeded, PaymentDeclined, PaymentVoided, PaymentExpired, PaymentReview,
	PaymentOfflineBreach, RefundSucceeded, "device.inactive", "device.tamper", "device.firmware_not_attested", "supply.order"}

// Endpoint is where a tenant wants to be told of events.
type Endpoint struct {
	ID      string          `json:"id"`
	Tenant  iotpay.TenantID `json:"tenant"`
	URL     string          `json:"url"`
	Secret  string          `json:"secret,omitempty"`
	Events  []string        `json:"events"` // types, "payment.*", "device.*", "refund.*" or "*"
	Created time.Time       `json:"created"`
}

// Wants reports whether the endpoint subscribed to events of type t.
func (e *Endpoint) Wants(t string) bool {
	for _, s := range e.Events {
		if s == "*" || s == t || strings.HasSuffix(s, ".*") && strings.HasPrefix(t, strings.TrimSuffix(s, "*")) {
			return true
		}
	}
	return false
}

// DeliveryStatus is where a delivery is.
type DeliveryStatus string

// Delivery statuses.
const (
	Pending   DeliveryStatus = "pending"
	Delivered DeliveryStatus = "delivered"
	Failed    DeliveryStatus = "failed" // AttemptsMax attempts failed; redeliver to try again
)

// Delivery is one event to one endpoint, and how sending it went.
type Delivery struct {
	ID         string          `json:"id"`
	Tenant     iotpay.TenantID `json:"tenant"`
	Endpoint   string          `json:"endpoint"`
	EventID    string          `json:"event_id"`
	Type       string          `json:"type"`
	Payload    json.RawMessage `json:"payload"`
	Status     DeliveryStatus  `json:"status"`
	Attempts   int             `json:"attempts"`
	LastStatus int             `json:"last_status,omitempty"` // the endpoint's last HTTP status
	LastError  string          `json:"last_error,omitempty"`
	Next       time.Time       `json:"next_attempt,omitzero"`
	Created    time.Time       `json:"created"`
	Delivered  time.Time       `json:"delivered,omitzero"`
}

// Tx is what webhooks need from a store inside one transaction.
type Tx interface {
	CreateEndpoint(ctx context.Context, e *Endpoint) error
	// Endpoints are a tenant's endpoints, oldest first.
	Endpoints(ctx context.Context, tenant iotpay.TenantID) ([]*Endpoint, error)
	DeleteEndpoint(ctx context.Context, tenant iotpay.TenantID, id string) error
	CreateDelivery(ctx context.Context, d *Delivery) error
	UpdateDelivery(ctx context.Context, d *Delivery) error
	Delivery(ctx context.Context, tenant iotpay.TenantID, id string) (*Delivery, error)
	// Deliveries are an endpoint's deliveries, newest first, in status
	// (all when "").
	Deliveries(ctx context.Context, tenant iotpay.TenantID, endpoint string, status DeliveryStatus, limit int) ([]*Delivery, error)
	// DueDeliveries are pending deliveries whose next attempt is due.
	DueDeliveries(ctx context.Context, now time.Time, limit int) ([]*Delivery, error)
}

// envelope is an event as an endpoint receives it.
type envelope struct {
	ID      string    `json:"id"`
	Type    string    `json:"type"`
	Created time.Time `json:"created"`
	Data    any       `json:"data"`
}

// Enqueue queues an event of type about object (a payment, a device
// event…) for every endpoint of tenant that wants it, in tx: the event is
// sent only if what it reports commits.
func Enqueue(ctx context.Context, tx Tx, tenant iotpay.TenantID, typ string, object any, now time.Time, rnd io.Reader) error {
	es, err := tx.Endpoints(ctx, tenant)
	if err != nil || len(es) == 0 {
		return err
	}
	var payload []byte
	var evID string
	for _, e := range es {
		if !e.Wants(typ) {
			continue
		}
		if payload == nil {
			evID = iotpay.NewID(iotpay.PrefixEvent, now, rnd)
			if payload, err = json.Marshal(envelope{ID: evID, Type: typ, Created: now.UTC(), Data: object}); err != nil {
				return err
			}
		}
		d := &Delivery{ID: iotpay.NewID(iotpay.PrefixDelivery, now, rnd), Tenant: tenant, Endpoint: e.ID, EventID: evID, Type: typ,
			Payload: payload, Status: Pending, Next: now, Created: now}
		if err := tx.CreateDelivery(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

// NewEndpoint checks an endpoint's URL and subscriptions and gives it an
// id and a secret.
func NewEndpoint(tenant iotpay.TenantID, rawURL string, events []string, now time.Time) (*Endpoint, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || len(rawURL) > URLBytesMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "url must be an absolute http(s) URL without credentials, at most %d bytes", URLBytesMax)
	}
	if len(events) == 0 {
		events = []string{"*"}
	}
	if len(events) > EventTypesMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "at most %d event types", EventTypesMax)
	}
	for _, e := range events {
		if !knownType(e) {
			return nil, iotpay.Errorf(iotpay.EINVALID, "unknown event type %q (one of %s, a prefix such as payment.*, or *)", e, strings.Join(Types, ", "))
		}
	}
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return &Endpoint{ID: iotpay.NewID(iotpay.PrefixWebhook, now, nil), Tenant: tenant, URL: rawURL, Secret: "whsec_" + hex.EncodeToString(b),
		Events: events, Created: now}, nil
}

func knownType(e string) bool {
	if e == "*" {
		return true
	}
	for _, t := range Types {
		if t == e || strings.HasSuffix(e, ".*") && strings.HasPrefix(t, strings.TrimSuffix(e, "*")) {
			return true
		}
	}
	return false
}

// Sign returns the signature header value of body sent at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature header against body with secret, and that it
// was made within tolerance of now: what a receiver runs. Any v1 of the
// header may match (a sender rolling its secret signs with both).
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return iotpay.Errorf(iotpay.EUNAUTHORIZED, "malformed signature header")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return iotpay.Errorf(iotpay.EUNAUTHORIZED, "signature timestamp outside the tolerance")
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal([]byte(want), []byte(s)) {
			return nil
		}
	}
	return iotpay.Errorf(iotpay.EUNAUTHORIZED, "signature does not match")
}

// Backoff is the delay before attempt n+1 after n failed attempts.
func Backoff(n int) time.Duration {
	if n < 1 {
		return 0
	}
	if n > 20 {
		return RetryMax
	}
	return min(RetryMin<<(n-1), RetryMax)
}

// Attempt makes one attempt to deliver d to e over client and records how
// it went on d: delivered on a 2xx, otherwise the next attempt after
// Backoff, or failed after AttemptsMax.
func Attempt(ctx context.Context, client *http.Client, e *Endpoint, d *Delivery, now time.Time) {
	d.Attempts++
	status, err := post(ctx, client, e.URL, e.Secret, d.EventID, d.Payload, now)
	d.LastStatus = status
	if err == nil {
		d.Status, d.Delivered, d.LastError, d.Next = Delivered, now, "", time.Time{}
		return
	}
	d.LastError = err.Error()
	if d.Attempts >= AttemptsMax {
		d.Status, d.Next = Failed, time.Time{}
		return
	}
	d.Next = now.Add(Backoff(d.Attempts))
}

// post sends body to url signed with secret; idempotencyKey lets the
// receiver drop a repeat.
func post(ctx context.Context, client *http.Client, url, secret, idempotencyKey string, body []byte, now time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, SendTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "iotpay-webhooks/1")
	req.Header.Set("Idempotency-Key", idempotencyKey)
	req.Header.Set(SignatureHeader, Sign(secret, now, body))
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("endpoint answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

// Post sends body to url signed with secret once (a supply order, which
// records its own attempts).
func Post(ctx context.Context, client *http.Client, url, secret, idempotencyKey string, body []byte, now time.Time) error {
	_, err := post(ctx, client, url, secret, idempotencyKey, body, now)
	return err
}

// Client returns the HTTP client events and orders are sent with. Unless
// allowPrivate, it refuses to connect to loopback, private, link-local
// and unspecified addresses, whatever a URL's name resolves to at the
// moment of the call, so an operator's endpoint cannot make the platform
// reach into its own network (server-side request forgery).
func Client(allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: SendTimeout}
	if !allowPrivate {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip, err := netip.ParseAddr(host)
			if err != nil {
				return err
			}
			ip = ip.Unmap()
			if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() ||
				ip.IsMulticast() || ip.IsInterfaceLocalMulticast() {
				return iotpay.Errorf(iotpay.EUNAUTHORIZED, "webhook: %s is a private address (the platform does not call its own network)", ip)
			}
			return nil
		}
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = d.DialContext
	t.Proxy = nil // a proxy would hide the destination from the check
	return &http.Client{Timeout: SendTimeout, Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Package stripe is the payment connector to Stripe: a PaymentIntent per
// payment, created and confirmed at once with the payer's saved
// PaymentMethod, held (manual capture) or captured at once, then captured,
// cancelled, incremented or refunded by its id. It talks to Stripe through
// the official client, stripe-go, one client instance per Connector (never
// stripe-go's global key), so connectors for several Stripe accounts live
// side by side.
//
// Every call that changes something at Stripe carries the engine's
// idempotency key as Stripe's Idempotency-Key: Stripe answers a repeated
// request with the first one's result, so a retry never charges twice.
// stripe-go's own retries are off: the engine retries, here or at the next
// connector, with the same key.
//
// Errors follow package connector: a time-out, a network failure, an HTTP
// 5xx, 429 or 409 (a request with the same key still running, a lock
// time-out) is a retryable *iotpay.Error with code EUNAVAILABLE; a card
// decline is a Result with Status Declined and Stripe's decline code; an
// invalid request is EINVALID; a key Stripe refuses or an answer that makes
// no sense is EINTERNAL.
//
// Stripe keeps the result of a request under its key (for 24 hours), so an
// Authorize that timed out is settled by trying it again here: the engine
// should retry at this connector before it fails over. A failover after an
// Authorize whose outcome stayed unknown may leave a hold at Stripe, which
// Stripe releases after seven days unless Release cancels it first: the
// PaymentIntent's metadata (iotpay_key) holds the operation's idempotency
// key, by which Release finds it.
//
// Webhooks (ParseWebhook, WebhookHandler) verify Stripe's signature and
// turn the payment events into an Event.
package stripe

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector"
	stripego "github.com/stripe/stripe-go/v82"
)

// Bounds and defaults.
const (
	// DefaultName is a connector's name when Config.Name is empty.
	DefaultName = "stripe"
	// DefaultTimeout bounds one call to Stripe when Config.Timeout is 0:
	// long enough for an issuer's answer, short enough for a device
	// waiting for it.
	DefaultTimeout = 20 * time.Second
	// maxKeyLen is the longest idempotency key Stripe accepts, in bytes.
	maxKeyLen = 255
	// maxDescriptorLen is the longest statement descriptor suffix Stripe
	// accepts, in characters.
	maxDescriptorLen = 22
)

// Metadata keys set on every PaymentIntent. MetaKey holds the idempotency
// key of the Authorize that made it, by which Release finds it;
// MetaPayment the payment's id, by which a settlement report (Stripe's
// export of balance transactions names charges, not intents) is matched.
// Stripe refuses a key sent again with other parameters, so the caller
// keeps one payment id for every try of an operation (the platform
// derives a device's payment id from its signed request).
const (
	MetaKey     = "iotpay_key"
	MetaPayment = "iotpay_payment"
	MetaDevice  = "iotpay_device"
)

// Config configures a Connector.
type Config struct {
	// Key is the secret (sk_...) or restricted (rk_...) API key.
	Key string
	// BaseURL is the API's address; empty is Stripe's. Plain http is
	// accepted for a loopback host only (stripe-mock in tests), so a key
	// never crosses a network in clear.
	BaseURL string
	// HTTPClient makes the requests; nil is a client on
	// http.DefaultTransport. It is not modified.
	HTTPClient *http.Client
	// Timeout bounds each call; 0 is DefaultTimeout.
	Timeout time.Duration
	// WebhookSecret is the endpoint's signing secret (whsec_...), needed
	// by ParseWebhook only.
	WebhookSecret string
	// Name is the connector's name; empty is DefaultName.
	Name string
}

// Connector is a connector.Connector, connector.Incrementer,
// connector.Pinger and connector.Releaser for one Stripe account. It is
// safe for concurrent use.
type Connector struct {
	name          string
	api           *stripego.Client
	timeout       time.Duration
	webhookSecret string
}

var (
	_ connector.Connector   = (*Connector)(nil)
	_ connector.Incrementer = (*Connector)(nil)
	_ connector.Pinger      = (*Connector)(nil)
	_ connector.Releaser    = (*Connector)(nil)
)

// New returns a Connector for cfg.
func New(cfg Config) (*Connector, error) {
	if !validAPIKey(cfg.Key) {
		return nil, iotpay.Errorf(iotpay.EINVALID, "stripe: the key must be a secret (sk_) or restricted (rk_) API key")
	}
	if cfg.Timeout < 0 {
		return nil, iotpay.Errorf(iotpay.EINVALID, "stripe: negative timeout")
	}
	bcfg := &stripego.BackendConfig{
		// The engine retries with the same key; retrying here too would
		// multiply the time a device waits.
		MaxNetworkRetries: stripego.Int64(0),
		LeveledLogger:     &stripego.LeveledLogger{Level: stripego.LevelNull},
		EnableTelemetry:   stripego.Bool(false),
	}
	if cfg.BaseURL != "" {
		u, err := checkBaseURL(cfg.BaseURL)
		if err != nil {
			return nil, err
		}
		bcfg.URL = stripego.String(u)
	}
	hc := &http.Client{}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient // a copy: the caller's client stays as it is
		hc = &c
	}
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	hc.Transport = guard{next: next}
	bcfg.HTTPClient = hc

	c := &Connector{
		name:          cfg.Name,
		timeout:       cfg.Timeout,
		webhookSecret: cfg.WebhookSecret,
	}
	if c.name == "" {
		c.name = DefaultName
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	c.api = stripego.NewClient(cfg.Key, stripego.WithBackends(stripego.NewBackendsWithConfig(bcfg)))
	return c, nil
}

// validAPIKey reports whether k looks like a secret or restricted key (a
// publishable pk_ key is a configuration mistake to catch early).
func validAPIKey(k string) bool {
	if !strings.HasPrefix(k, "sk_") && !strings.HasPrefix(k, "rk_") {
		return false
	}
	for _, r := range k {
		if r <= ' ' || r >= 0x7f {
			return false
		}
	}
	return true
}

// checkBaseURL returns u without a trailing slash if it is an absolute
// https URL, or http to a loopback host.
func checkBaseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", iotpay.Errorf(iotpay.EINVALID, "stripe: bad base URL %q", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		h := u.Hostname()
		if h != "localhost" && !strings.HasPrefix(h, "127.") && h != "::1" {
			return "", iotpay.Errorf(iotpay.EINVALID, "stripe: plain http base URL only for a loopback host")
		}
	default:
		return "", iotpay.Errorf(iotpay.EINVALID, "stripe: bad base URL scheme %q", u.Scheme)
	}
	return strings.TrimRight(raw, "/"), nil
}

// Name is the connector's name.
func (c *Connector) Name() string { return c.name }

// Authorize creates and confirms a PaymentIntent for a: held
// (capture_method=manual) or, with a.Capture, captured at once. a.Source
// is a PaymentMethod id, a.Merchant a connected account (acct_...) when
// the payment is made on its behalf (the Stripe-Account header); the
// result's Ref then names both. The payment is a card payment
// (payment_method_types=card, so no redirect method needs a return URL),
// and one that would need 3-D Secure is declined (error_on_requires_action)
// since no payer is there to go through it. Incremental authorization and
// multicapture are asked for where the card and the account allow them.
// The intent's metadata holds a.Key (MetaKey), a.Payment (MetaPayment)
// and a.Device (MetaDevice): every try of the operation must name the same
// payment.
func (c *Connector) Authorize(ctx context.Context, a *connector.Authorization) (*connector.Result, error) {
	if a == nil {
		return nil, iotpay.Errorf(iotpay.EINVALID, "stripe: no authorization")
	}
	if err := checkKey(a.Key); err != nil {
		return nil, err
	}
	if a.Amount.Amount <= 0 || !a.Amount.Currency.Valid() {
		return nil, iotpay.Errorf(iotpay.EINVALID, "stripe: bad amount %s", a.Amount)
	}
	if a.Source == "" || strings.ContainsAny(a.Source, " \t\r\n") {
		return nil, iotpay.Errorf(iotpay.EINVALID, "stripe: no payment method")
	}
	if a.Merchant != "" && !validID(a.Merchant, "acct_") {
		return nil, iotpay.Errorf(iotpay.EINVALID, "stripe: bad merchant account %q", a.Merchant)
	}
	capture := stripego.PaymentIntentCaptureMethodManual
	if a.Capture {
		capture = stripego.PaymentIntentCaptureMethodAutomatic
	}
	p := &stripego.PaymentIntentCreateParams{
		Amount:        stripego.Int64(a.Amount.Amount),
		Currency:      stripego.String(strings.ToLower(string(a.Amount.Currency))),
		PaymentMethod: stripego.String(a.Source),
		Confirm:       stripego.Bool(true),
		CaptureMethod: stripego.String(string(capture)),
		// A device cannot take the payer through 3-D Secure: fail the
		// payment (a decline) rather than leave it waiting for it.
		ErrorOnRequiresAction: stripego.Bool(true),
		PaymentMethodTypes:    []*string{stripego.String("card")},
		Metadata:              map[string]string{MetaKey: a.Key},
	}
	if a.Payment != "" {
		p.Metadata[MetaPayment] = string(a.Payment)
	}
	if a.Device != "" {
		p.Metadata[MetaDevice] = string(a.Device)
	}
	if !a.Capture {
		p.PaymentMethodOptions = &stripego.PaymentIntentCreatePaymentMethodOptionsParams{
			Card: &stripego.PaymentIntentCreatePaymentMethodOptionsCardParams{
				RequestIncrementalAuthorization: stripego.String("if_available"),
				RequestMulticapture:             stripego.String("if_available"),
			},
		}
	}
	if d := descriptor(a.Descriptor); d != "" {
		p.StatementDescriptorSuffix = stripego.String(d)
	}
	p.AddExpand("latest_charge")
	p.SetIdempotencyKey(a.Key)
	if a.Merchant != "" {
		p.SetStripeAccount(a.Merchant)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	pi, err := c.api.V1PaymentIntents.Create(ctx, p)
	if err != nil {
		return c.failed("authorize", a.Merchant, "", err)
	}
	return intentResult(a.Merchant, pi)
}

// Capture captures amount (all that is held when 0) of the PaymentIntent
// ref. With final false Stripe keeps the rest for further captures, which
// it allows only where multicapture is available for the payment; where
// it is not, Stripe refuses the capture (EINVALID).
func (c *Connector) Capture(ctx context.Context, ref string, amount int64, final bool, key string) (*connector.Result, error) {
	acct, id, err := refAndKey(ref, key)
	if err != nil {
		return nil, err
	}
	if amount < 0 {
		return nil, iotpay.Errorf(iotpay.EINVALID, "stripe: negative capture amount")
	}
	p := &stripego.PaymentIntentCaptureParams{}
	if amount > 0 {
		p.AmountToCapture = stripego.Int64(amount)
	}
	if !final {
		p.FinalCapture = stripego.Bool(false)
	}
	p.AddExpand("latest_charge")
	p.SetIdempotencyKey(key)
	setAccount(&p.Params, acct)
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	pi, err := c.api.V1PaymentIntents.Capture(ctx, id, p)
	if err != nil {
		return c.failed("capture", acct, ref, err)
	}
	return intentResult(acct, pi)
}

// Void cancels the PaymentIntent ref, releasing its hold.
func (c *Connector) Void(ctx context.Context, ref string, key string) (*connector.Result, error) {
	acct, id, err := refAndKey(ref, key)
	if err != nil {
		return nil, err
	}
	p := &stripego.PaymentIntentCancelParams{}
	p.SetIdempotencyKey(key)
	setAccount(&p.Params, acct)
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	pi, err := c.api.V1PaymentIntents.Cancel(ctx, id, p)
	if err != nil {
		return c.failed("void", acct, ref, err)
	}
	return intentResult(acct, pi)
}

// Refund refunds amount (all that is captured and not yet refunded when
// 0) of the PaymentIntent ref. The result's Amount is all that is
// refunded so far.
func (c *Connector) Refund(ctx context.Context, ref string, amount int64, key string) (*connector.Result, error) {
	acct, id, err := refAndKey(ref, key)
	if err != nil {
		return nil, err
	}
	if amount < 0 {
		return nil, iotpay.Errorf(iotpay.EINVALID, "stripe: negative refund amount")
	}
	p := &stripego.RefundCreateParams{PaymentIntent: stripego.String(id)}
	if amount > 0 {
		p.Amount = stripego.Int64(amount)
	}
	p.AddExpand("charge") // for the amount refunded so far
	p.SetIdempotencyKey(key)
	setAccount(&p.Params, acct)
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	r, err := c.api.V1Refunds.Create(ctx, p)
	if err != nil {
		return c.failed("refund", acct, ref, err)
	}
	return refundResult(ref, r)
}

// Status retrieves the PaymentIntent ref.
func (c *Connector) Status(ctx context.Context, ref string) (*connector.Result, error) {
	acct, pi, err := c.retrieve(ctx, "status", ref)
	if err != nil {
		return nil, err
	}
	return intentResult(acct, pi)
}

// retrieve gets the PaymentIntent ref for op, with its latest charge.
func (c *Connector) retrieve(ctx context.Context, op, ref string) (string, *stripego.PaymentIntent, error) {
	acct, id, err := parseRef(ref)
	if err != nil {
		return "", nil, err
	}
	p := &stripego.PaymentIntentRetrieveParams{}
	p.AddExpand("latest_charge")
	setAccount(&p.Params, acct)
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	pi, err := c.api.V1PaymentIntents.Retrieve(ctx, id, p)
	if err != nil {
		return "", nil, classify(op, err)
	}
	return acct, pi, nil
}

// Increment raises the authorization of the PaymentIntent ref by amount
// (minor units), as the engine's Increment does; Stripe is sent the new
// total. The payment must be held, and incremental authorization
// available for its card (Stripe says so on the charge): if it is not, the
// error is connector.ErrUnsupported, and the caller can authorize anew
// instead. A retry after an increment went through (Stripe refuses the
// same key with another total) answers the intent as it stands. Two
// increments of one payment must not run at once.
func (c *Connector) Increment(ctx context.Context, ref string, amount int64, key string) (*connector.Result, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if amount <= 0 {
		return nil, iotpay.Errorf(iotpay.EINVALID, "stripe: increment must be positive")
	}
	acct, pi, err := c.retrieve(ctx, "increment", ref)
	if err != nil {
		return nil, err
	}
	if pi.Status != stripego.PaymentIntentStatusRequiresCapture {
		return nil, iotpay.Errorf(iotpay.EINVALID, "stripe: cannot increment a payment in status %s", pi.Status)
	}
	if !incrementable(pi) {
		return nil, connector.ErrUnsupported
	}
	total, ok := iotpay.AddInt64(pi.Amount, amount)
	if !ok {
		return nil, iotpay.Errorf(iotpay.EINVALID, "stripe: increment overflows")
	}
	p := &stripego.PaymentIntentIncrementAuthorizationParams{Amount: stripego.Int64(total)}
	p.AddExpand("latest_charge")
	p.SetIdempotencyKey(key)
	setAccount(&p.Params, acct)
	ictx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	got, err := c.api.V1PaymentIntents.IncrementAuthorization(ictx, pi.ID, p)
	if err != nil {
		if idempotencyReuse(err) {
			// This key already raised the hold: an earlier try went
			// through, and the total computed now is larger. What
			// Stripe holds now is the answer.
			return c.Status(ctx, ref)
		}
		return c.failed("increment", acct, ref, err)
	}
	return intentResult(acct, got)
}

// incrementable reports whether Stripe says the intent's card allows an
// incremental authorization.
func incrementable(pi *stripego.PaymentIntent) bool {
	ch := pi.LatestCharge
	if ch == nil || ch.PaymentMethodDetails == nil || ch.PaymentMethodDetails.Card == nil ||
		ch.PaymentMethodDetails.Card.IncrementalAuthorization == nil {
		return false
	}
	return ch.PaymentMethodDetails.Card.IncrementalAuthorization.Status ==
		stripego.ChargePaymentMethodDetailsCardIncrementalAuthorizationStatusAvailable
}

// Ping retrieves the account's balance: a GET that costs nothing and
// proves the key and the network.
func (c *Connector) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if _, err := c.api.V1Balance.Retrieve(ctx, &stripego.BalanceRetrieveParams{}); err != nil {
		return classify("ping", err)
	}
	return nil
}

// checkKey refuses an idempotency key Stripe would refuse, and an empty
// one: stripe-go would make up a random key, and a retry would charge
// again.
func checkKey(k string) error {
	if k == "" || len(k) > maxKeyLen || strings.TrimSpace(k) != k {
		return iotpay.Errorf(iotpay.EINVALID, "stripe: idempotency key must be 1 to %d bytes without surrounding space", maxKeyLen)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < ' ' || k[i] == 0x7f {
			return iotpay.Errorf(iotpay.EINVALID, "stripe: control character in idempotency key")
		}
	}
	return nil
}

// descriptor makes d a statement descriptor suffix Stripe accepts: the
// characters it forbids dropped, cut to its length. A statement text is
// cosmetic and must never fail a payment.
func descriptor(d string) string {
	var b strings.Builder
	n := 0
	for _, r := range strings.TrimSpace(d) {
		if n == maxDescriptorLen {
			break
		}
		if r < ' ' || r > '~' || strings.ContainsRune(`<>\'"*`, r) {
			continue
		}
		b.WriteRune(r)
		n++
	}
	s := strings.TrimSpace(b.String())
	if !strings.ContainsFunc(s, func(r rune) bool { return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' }) {
		return "" // Stripe wants at least one letter
	}
	return s
}

// Refs: a PaymentIntent id, or "acct_.../pi_..." for one made on a
// connected account's behalf, so that later calls carry its Stripe-Account.
const refSep = "/"

func makeRef(acct, id string) string {
	if acct == "" {
		return id
	}
	return acct + refSep + id
}

// refAndKey is parseRef of a call that changes the payment, after its
// idempotency key is checked.
func refAndKey(ref, key string) (acct, id string, err error) {
	if acct, id, err = parseRef(ref); err != nil {
		return "", "", err
	}
	return acct, id, checkKey(key)
}

func parseRef(ref string) (acct, id string, err error) {
	id = ref
	if a, rest, ok := strings.Cut(ref, refSep); ok {
		acct, id = a, rest
		if !validID(acct, "acct_") {
			return "", "", iotpay.Errorf(iotpay.EINVALID, "stripe: bad payment reference %q", ref)
		}
	}
	if !validID(id, "pi_") {
		return "", "", iotpay.Errorf(iotpay.EINVALID, "stripe: bad payment reference %q", ref)
	}
	return acct, id, nil
}

// maxIDLen bounds a Stripe object id, in bytes (Stripe's are under 64).
const maxIDLen = 255

// validID reports whether s is prefix followed by letters, digits and
// underscores, as Stripe's ids are.
func validID(s, prefix string) bool {
	if len(s) <= len(prefix) || len(s) > maxIDLen || !strings.HasPrefix(s, prefix) {
		return false
	}
	for i := len(prefix); i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_') {
			return false
		}
	}
	return true
}

func setAccount(p *stripego.Params, acct string) {
	if acct != "" {
		p.SetStripeAccount(acct)
	}
}

package stripe_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/payment/connector/stripe"
	"github.com/iotpay/iotpay/payment/connector/stripe/stripetest"
)

// testTimeout bounds one call in the tests: stripe-mock answers in
// milliseconds.
const testTimeout = 5 * time.Second

// recorded is one request as it left the connector.
type recorded struct {
	Method, Path string
	Header       http.Header
	Form         url.Values // query of a GET, form body of a POST
}

// recorder is a transport that keeps every request it carries.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	reqs []recorded
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := recorded{Method: req.Method, Path: req.URL.Path, Header: req.Header.Clone(), Form: req.URL.Query()}
	if req.Body != nil {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		if f, err := url.ParseQuery(string(body)); err == nil && len(body) > 0 {
			rec.Form = f
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, rec)
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

// all returns the requests so far, and forgets them.
func (r *recorder) all() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reqs
	r.reqs = nil
	return out
}

// newConnector returns a connector to base whose requests are recorded.
func newConnector(tb testing.TB, base string, cfg stripe.Config) (*stripe.Connector, *recorder) {
	tb.Helper()
	rec := &recorder{next: http.DefaultTransport}
	if cfg.Key == "" {
		cfg.Key = stripetest.Key
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = testTimeout
	}
	cfg.BaseURL = base
	cfg.HTTPClient = &http.Client{Transport: rec}
	c, err := stripe.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return c, rec
}

func eur(tb testing.TB, amount int64) iotpay.Money {
	tb.Helper()
	m, err := iotpay.NewMoney(amount, "EUR")
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func authorization(tb testing.TB, key string) *connector.Authorization {
	return &connector.Authorization{
		Payment:    "pay_1",
		Key:        key,
		Amount:     eur(tb, 1250),
		Source:     "pm_card_visa",
		Descriptor: "EV 42",
		Device:     "dev_7",
	}
}

// code is err's code, or "" for nil.
func code(err error) iotpay.Code { return iotpay.ErrorCode(err) }

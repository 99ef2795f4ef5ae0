// Package https is the device's HTTPS transport: it posts each signed
// request to the platform's device endpoint over mutual TLS and reads the
// signed receipt from the answer.
//
// Refusals of the channel (no or a refused client certificate, a revoked
// device, a body too large) come back as HTTP statuses and are errors with
// their code; every refusal of the request itself is a signed receipt,
// which the device checks like any other.
package https

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	"github.com/iotpay/iotpay/wire"
)

// Defaults and bounds.
const (
	DefaultTimeout  = 5 * time.Second
	DefaultAttempts = 3
	attemptsMax     = 10
	// PayPath is the device endpoint's payment route.
	PayPath = "/device/v1/pay"
	// contentType is the request's and the receipt's type.
	contentType = "application/cose"
)

// Config configures a Transport.
type Config struct {
	URL      string        // the device endpoint, https://host:port
	TLS      *tls.Config   // client certificate and RootCAs (device.Identity.TLSConfig)
	Timeout  time.Duration // per attempt; default 5s
	Attempts int           // default 3: on a network failure or 503 the SAME bytes are sent again (the platform is idempotent)
}

// Transport pays over HTTPS. It is safe for concurrent use.
type Transport struct {
	client   *http.Client
	url      string
	attempts int
}

var _ device.Transport = (*Transport)(nil)

// New returns a transport; it connects on first use.
func New(cfg Config) (*Transport, error) {
	u, err := url.Parse(cfg.URL)
	switch {
	case err != nil || u.Scheme != "https" || u.Host == "":
		return nil, iotpay.Errorf(iotpay.EINVALID, "https: URL must be https://host:port")
	case cfg.TLS == nil || len(cfg.TLS.Certificates) == 0:
		return nil, iotpay.Errorf(iotpay.EINVALID, "https: no client certificate")
	case cfg.Timeout < 0 || cfg.Attempts < 0 || cfg.Attempts > attemptsMax:
		return nil, iotpay.Errorf(iotpay.EINVALID, "https: timeout must not be negative and attempts within 0..%d", attemptsMax)
	}
	t := &Transport{url: u.Scheme + "://" + u.Host + PayPath, attempts: cfg.Attempts}
	if t.attempts == 0 {
		t.attempts = DefaultAttempts
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	tc := cfg.TLS.Clone()
	if tc.MinVersion < tls.VersionTLS13 {
		tc.MinVersion = tls.VersionTLS13
	}
	t.client = &http.Client{Timeout: timeout, Transport: &http.Transport{
		TLSClientConfig: tc, ForceAttemptHTTP2: true, TLSHandshakeTimeout: timeout,
		MaxIdleConnsPerHost: 1, IdleConnTimeout: 90 * time.Second,
	}}
	return t, nil
}

// Exchange posts request and returns the answer if match accepts it. A
// network failure or a 503 is retried with the same bytes; any other
// status is an error with its code.
func (t *Transport) Exchange(ctx context.Context, request []byte, match func(answer []byte) bool) ([]byte, error) {
	if match == nil {
		return nil, iotpay.Errorf(iotpay.EINVALID, "https: no answer matcher")
	}
	var last error
	for attempt := 1; attempt <= t.attempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "https: exchange abandoned", err)
		}
		answer, err := t.post(ctx, request)
		if err == nil {
			if !match(answer) {
				return nil, iotpay.Errorf(iotpay.EUNAUTHORIZED, "https: the answer is not a receipt for this request")
			}
			return answer, nil
		}
		if iotpay.ErrorCode(err) != iotpay.EUNAVAILABLE {
			return nil, err
		}
		last = err
	}
	return nil, last
}

func (t *Transport) post(ctx context.Context, request []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(request))
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "https: bad request", err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, classify(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, wire.EnvelopeBytesMax+1))
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "https: answer cut short", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, iotpay.Errorf(device.StatusCode(resp.StatusCode), "https: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	if len(b) > wire.EnvelopeBytesMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "https: answer larger than %d bytes", wire.EnvelopeBytesMax)
	}
	return b, nil
}

// classify gives a failed round trip its code: a TLS alert from the server
// is a refused certificate, anything else may pass.
func classify(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return iotpay.Wrap(iotpay.EUNAUTHORIZED, "https: the platform refused the device certificate", err)
	}
	var alert tls.AlertError
	if errors.As(err, &alert) {
		return iotpay.Wrap(iotpay.EUNAUTHORIZED, "https: the platform refused the device certificate", err)
	}
	return iotpay.Wrap(iotpay.EUNAVAILABLE, "https: platform unreachable", err)
}

// Close releases idle connections.
func (t *Transport) Close() error {
	t.client.CloseIdleConnections()
	return nil
}

// Package opapi is a small client of iotpayd's operator HTTP API for the
// project's tooling (the fleet simulator, the benchmarks): JSON in and
// out, the API's typed errors, and retries of what is safe to repeat.
package opapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/iotpay/iotpay"
)

const (
	// apiResponseBytesMax bounds an answer of the operator API.
	apiResponseBytesMax = 1 << 20
	// apiAttempts is how many times a call is sent when the platform is
	// unreachable or unavailable; a POST carries its Idempotency-Key, so
	// a repeat is answered once.
	apiAttempts = 3
	// apiTimeout bounds one call.
	apiTimeout = 60 * time.Second
)

// Client calls the operator HTTP API at Base with an API key.
type Client struct {
	Base string
	key  string
	HTTP *http.Client
}

// New returns a client keeping up to conns connections to base open, so
// concurrent callers reuse theirs rather than spend descriptors.
func New(base, key string, conns int) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost, tr.MaxConnsPerHost = conns, conns, conns
	return &Client{Base: base, key: key, HTTP: &http.Client{Timeout: apiTimeout, Transport: tr}}
}

// Do sends in as JSON (when not nil) and decodes the answer into out
// (when not nil). idem, when not empty, is the POST's Idempotency-Key.
func (a *Client) Do(ctx context.Context, method, path, idem string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	var err error
	for attempt := range apiAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
		}
		err = a.once(ctx, method, path, idem, body, out)
		if iotpay.ErrorCode(err) != iotpay.EUNAVAILABLE || (method != http.MethodGet && idem == "") {
			return err
		}
	}
	return err
}

func (a *Client) once(ctx context.Context, method, path, idem string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.Base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	req.Header.Set("Authorization", "Bearer "+a.key)
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "platform unreachable at "+a.Base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, apiResponseBytesMax))
	if err != nil {
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "platform answer cut", err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Code    iotpay.Code `json:"code"`
			Message string      `json:"message"`
		}
		if json.Unmarshal(b, &e) != nil || e.Code == "" {
			return fmt.Errorf("%s %s: %s", method, path, resp.Status)
		}
		return iotpay.Errorf(e.Code, "%s %s: %s", method, path, e.Message)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// Close lets the client's idle connections go.
func (a *Client) Close() { a.HTTP.CloseIdleConnections() }

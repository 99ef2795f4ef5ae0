package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/iotpay/iotpay"
)

// responseBytesMax bounds an API answer.
const responseBytesMax = 8 << 20

// apiClient calls the operator HTTP API.
type apiClient struct {
	base string
	key  string
	http *http.Client
}

func newAPIClient(base, key, idempotencyKey string) *apiClient {
	return &apiClient{base: base, key: key, http: &http.Client{Timeout: 30 * time.Second,
		Transport: idempotent{key: idempotencyKey, next: http.DefaultTransport}}}
}

// idempotent gives every POST, PUT and PATCH that has none an Idempotency-Key: key when
// set, otherwise a fresh random one. A request retried with the same
// key and body is answered once.
type idempotent struct {
	key  string
	next http.RoundTripper
}

func (t idempotent) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet && req.Header.Get("Idempotency-Key") == "" {
		key := t.key
		if key == "" {
			key = newIdempotencyKey()
		}
		req = req.Clone(req.Context())
		req.Header.Set("Idempotency-Key", key)
	}
	return t.next.RoundTrip(req)
}

func newIdempotencyKey() string {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		panic("iotpay: randomness source failed: " + err.Error())
	}
	return "cli_" + base64.RawURLEncoding.EncodeToString(b)
}

// do sends in as JSON (when not nil) and decodes the answer into out.
func (c *apiClient) do(ctx context.Context, method, path string, in, out any) error {
	if in == nil {
		return c.send(ctx, method, path, nil, "", out)
	}
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.send(ctx, method, path, bytes.NewReader(b), "application/json", out)
}

// send sends body of contentType (none when body is nil) and decodes the
// answer into out.
func (c *apiClient) send(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "platform unreachable at "+c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, responseBytesMax))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Code        iotpay.Code `json:"code"`
			Message     string      `json:"message"`
			DeclineCode string      `json:"decline_code"`
		}
		if json.Unmarshal(b, &e) != nil || e.Code == "" {
			return fmt.Errorf("%s %s: %s", method, path, resp.Status)
		}
		if e.DeclineCode != "" {
			return iotpay.Errorf(e.Code, "%s (%s)", e.Message, e.DeclineCode)
		}
		return iotpay.Errorf(e.Code, "%s", e.Message)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

package httpapi_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/coap"
	"github.com/iotpay/iotpay/platform/daemon"
	"github.com/iotpay/iotpay/platform/httpapi"
	"github.com/iotpay/iotpay/platform/pki"
)

// lockedBuffer is a log sink handlers write to concurrently.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDevicePSK: an active device's PSK is the derived key, the same at
// every call, not cached, never logged; refused for another tenant's
// device, a pending one and a revoked one.
func TestDevicePSK(t *testing.T) {
	d, err := daemon.Open(context.Background(), daemon.Config{DataDir: filepath.Join(t.TempDir(), "d")})
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	srv := httptest.NewServer((&httpapi.Server{Registry: d.Registry, Payments: d.Payments, PSK: d.DevicePSK,
		PSKHint: coap.PSKIdentityHint, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}).Handler())
	a := &api{srv: srv, d: d, key: d.APIKey}
	t.Cleanup(func() { srv.Close(); d.Close() })

	w := a.newWorld(t, 0)
	created := a.must(t, 201, "POST", "/v1/devices", map[string]any{"product": w.product, "name": "sensor"})
	dev := created.body["device"].(map[string]any)["id"].(string)
	path := "/v1/devices/" + dev + "/psk"
	if r := a.call(t, a.key, "POST", path, nil); r.status != 409 || !strings.Contains(r.str("message"), "pending") {
		t.Errorf("PSK of a pending device: %s", r)
	}
	a.call(t, "", "POST", "/v1/enroll", map[string]any{"device": dev, "token": created.str("enrollment_token"),
		"csr": csrPEM(t, pki.SuiteIntl, dev)})

	want, err := d.DevicePSK(iotpay.DeviceID(dev))
	if err != nil {
		t.Fatal(err)
	}
	first := a.must(t, 200, "POST", path, nil, "Idempotency-Key", "k1")
	again := a.must(t, 200, "POST", path, map[string]any{}, "Idempotency-Key", "k1")
	for _, r := range []reply{first, again} {
		if r.str("identity") != dev || r.str("key") != string(want) || r.str("hint") != coap.PSKIdentityHint ||
			r.header.Get("Cache-Control") != "no-store" || r.header.Get("Idempotent-Replayed") != "" {
			t.Errorf("PSK answer: %s %v", r, r.header)
		}
	}
	if r := a.call(t, a.otherTenant(t), "POST", path, nil); r.status != 404 {
		t.Errorf("another tenant's device's PSK: %s", r)
	}
	if r := a.call(t, "", "POST", path, nil); r.status != 401 {
		t.Errorf("PSK without an API key: %s", r)
	}
	a.must(t, 200, "POST", "/v1/devices/"+dev+"/revoke", nil)
	if r := a.call(t, a.key, "POST", path, nil); r.status != 409 || !strings.Contains(r.str("message"), "revoked") {
		t.Errorf("PSK of a revoked device: %s", r)
	}
	if !strings.Contains(logs.String(), "device PSK handed out") || strings.Contains(logs.String(), string(want)) {
		t.Errorf("the log should say a PSK was handed out, never the key:\n%s", logs.String())
	}
}

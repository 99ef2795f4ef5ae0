package stripetest

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStart(t *testing.T) {
	base := Start(t)
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("base = %q, want loopback", base)
	}
	if !answers(base) {
		t.Fatal("stripe-mock does not answer")
	}
	// Two at once: each on its own ports.
	if other := Start(t); other == base || !answers(other) {
		t.Fatalf("second stripe-mock at %q", other)
	}
}

// TestStartStops: stripe-mock is gone once the test that started it ends.
func TestStartStops(t *testing.T) {
	var base string
	t.Run("inner", func(t *testing.T) { base = Start(t) })
	if base == "" {
		t.Skip("inner test skipped")
	}
	c := &http.Client{Timeout: probeTimeout}
	if res, err := c.Get(base + "/v1/balance"); err == nil {
		res.Body.Close()
		t.Fatalf("stripe-mock at %s still answers", base)
	}
}

// fakeTB records how Start gives up.
type fakeTB struct {
	testing.TB
	how string
}

type stop struct{}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, a ...any) {
	f.how = "skip: " + fmt.Sprintf(format, a...)
	panic(stop{})
}
func (f *fakeTB) Fatalf(format string, a ...any) {
	f.how = "fatal: " + fmt.Sprintf(format, a...)
	panic(stop{})
}

func startWithout(t *testing.T) string {
	empty := t.TempDir()
	for _, k := range []string{"PATH", "GOBIN", "GOPATH", "HOME"} {
		t.Setenv(k, empty)
	}
	f := &fakeTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(stop); !ok {
					panic(r)
				}
			}
		}()
		Start(f)
	}()
	return f.how
}

func TestStartMissing(t *testing.T) {
	tests := []struct {
		ci, require string
		want        string
	}{
		{"", "", "skip: "},
		{"false", "", "skip: "},
		{"true", "", "fatal: "},
		{"1", "", "fatal: "},
		{"", "1", "fatal: "},
	}
	for _, tt := range tests {
		t.Run("CI="+tt.ci+",REQUIRE="+tt.require, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			t.Setenv("IOTPAY_REQUIRE_STRIPE_MOCK", tt.require)
			how := startWithout(t)
			if !strings.HasPrefix(how, tt.want) || !strings.Contains(how, InstallCommand) {
				t.Errorf("Start gave up with %q, want %q and the install command", how, tt.want)
			}
		})
	}
}

func TestBinaryInGOBIN(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, binary)
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", t.TempDir())
	t.Setenv("GOBIN", dir)
	if got, err := Binary(); err != nil || got != bin {
		t.Errorf("Binary = %q, %v; want %q", got, err, bin)
	}
}

func TestRewrite(t *testing.T) {
	base := Start(t)
	var seen *Request
	proxy := Rewrite(t, base, func(r *Request, obj map[string]any) {
		seen = r
		obj["status"] = "requires_capture"
	})
	req, _ := http.NewRequest(http.MethodPost, proxy+"/v1/payment_intents", strings.NewReader("amount=100&currency=eur"))
	req.Header.Set("Authorization", "Bearer "+Key)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"status":"requires_capture"`) {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
	if seen == nil || seen.Method != http.MethodPost || seen.Path != "/v1/payment_intents" || seen.Form.Get("amount") != "100" {
		t.Errorf("fn saw %+v", seen)
	}
	// stripe-mock still validates: no amount, refused, not rewritten.
	req, _ = http.NewRequest(http.MethodPost, proxy+"/v1/payment_intents", strings.NewReader("currency=eur"))
	req.Header.Set("Authorization", "Bearer "+Key)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d, want 400", res.StatusCode)
	}
}

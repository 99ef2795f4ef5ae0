package webhook

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	now := time.Unix(1_750_000_000, 0)
	body := []byte(`{"id":"evt_1","type":"payment.succeeded"}`)
	h := Sign("whsec_a", now, body)
	for name, tc := range map[string]struct {
		secret, header string
		body           []byte
		at             time.Time
		ok             bool
	}{
		"good":             {"whsec_a", h, body, now, true},
		"rolled secret":    {"whsec_a", Sign("whsec_b", now, body) + "," + strings.Split(h, ",")[1], body, now, true},
		"another secret":   {"whsec_b", h, body, now, false},
		"body changed":     {"whsec_a", h, append([]byte(" "), body...), now, false},
		"too old":          {"whsec_a", h, body, now.Add(6 * time.Minute), false},
		"from the future":  {"whsec_a", h, body, now.Add(-6 * time.Minute), false},
		"no timestamp":     {"whsec_a", strings.Split(h, ",")[1], body, now, false},
		"no signature":     {"whsec_a", strings.Split(h, ",")[0], body, now, false},
		"garbage":          {"whsec_a", "t=x,v1=y", body, now, false},
		"empty":            {"whsec_a", "", body, now, false},
		"timestamp edited": {"whsec_a", "t=1750000001," + strings.Split(h, ",")[1], body, now, false},
	} {
		err := Verify(tc.secret, tc.header, tc.body, tc.at, ToleranceDefault)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestEndpoints(t *testing.T) {
	now := time.Now()
	e, err := NewEndpoint("ten_x", "https://ops.example/hooks", []string{"payment.*", "device.tamper"}, now)
	if err != nil || !strings.HasPrefix(e.Secret, "whsec_") || len(e.Secret) != 6+2*secretBytes {
		t.Fatalf("endpoint %+v %v", e, err)
	}
	for typ, want := range map[string]bool{"payment.succeeded": true, "payment.declined": true, "device.tamper": true,
		"device.inactive": false, "refund.succeeded": false} {
		if e.Wants(typ) != want {
			t.Errorf("wants %s: %v", typ, !want)
		}
	}
	if all, _ := NewEndpoint("ten_x", "http://127.0.0.1:9/x", nil, now); !all.Wants("supply.order") {
		t.Error("an endpoint with no events listed wants every one")
	}
	for _, bad := range []struct {
		url    string
		events []string
	}{
		{"ftp://x/y", nil}, {"https://user:pw@x/y", nil}, {"/relative", nil}, {"https://x/" + strings.Repeat("a", URLBytesMax), nil},
		{"https://x/y", []string{"payment.nope"}}, {"https://x/y", []string{"nope.*"}},
	} {
		if _, err := NewEndpoint("ten_x", bad.url, bad.events, now); err == nil {
			t.Errorf("accepted %q %v", bad.url, bad.events)
		}
	}
}

func TestBackoff(t *testing.T) {
	want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second}
	for n, w := range want {
		if got := Backoff(n); got != w {
			t.Errorf("Backoff(%d) = %v, want %v", n, got, w)
		}
	}
	if Backoff(30) != RetryMax || Backoff(13) != RetryMax {
		t.Error("back-off not capped")
	}
}

func FuzzVerify(f *testing.F) {
	now := time.Unix(1_750_000_000, 0)
	body := []byte(`{"id":"evt_1"}`)
	f.Add(Sign("s", now, body), body)
	f.Add("t=1750000000,v1=00,v1=zz", body)
	f.Add(",,,=,t=,v1", []byte{})
	f.Fuzz(func(t *testing.T, header string, b []byte) {
		if err := Verify("s", header, b, now, time.Minute); err == nil {
			// Only a header carrying the secret's MAC of its own time verifies.
			var ts string
			for _, part := range strings.Split(header, ",") {
				if k, v, _ := strings.Cut(strings.TrimSpace(part), "="); k == "t" {
					ts = v
				}
			}
			if !strings.Contains(header, mac("s", ts, b)) {
				t.Fatalf("verified %q without its signature", header)
			}
		}
	})
}

// TestClientRefusesPrivateAddresses: without allowPrivate the client
// does not connect to loopback (nor any private address); with it, it
// does.
func TestClientRefusesPrivateAddresses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	if _, err := Client(false).Get(srv.URL); err == nil || !strings.Contains(err.Error(), "private address") {
		t.Fatalf("loopback reached: %v", err)
	}
	e := &Endpoint{URL: srv.URL, Secret: "s"}
	d := &Delivery{EventID: "evt_1", Payload: []byte("{}")}
	Attempt(context.Background(), Client(false), e, d, time.Now())
	if d.Status == Delivered || !strings.Contains(d.LastError, "private address") {
		t.Fatalf("delivery to loopback: %+v", d)
	}
	resp, err := Client(true).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

package daemon_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/iotpay/iotpay/platform/rules"
	"github.com/iotpay/iotpay/platform/webhook"
	"github.com/iotpay/iotpay/wire"
)

// receiver is an operator's webhook endpoint: it checks every signature,
// refuses the first delivery of each event once (so it is retried), and
// keeps what it accepted.
type receiver struct {
	mu       sync.Mutex
	secret   string
	srv      *httptest.Server
	seen     map[string]int // event id: deliveries received
	accepted []struct{ ID, Type string }
	bad      int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{seen: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := webhook.Verify(r.secret, req.Header.Get(webhook.SignatureHeader), body, time.Now(), time.Minute); err != nil {
			r.bad++
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var ev struct{ ID, Type string }
		if json.Unmarshal(body, &ev) != nil || req.Header.Get("Idempotency-Key") != ev.ID {
			r.bad++
			http.Error(w, "bad event", http.StatusBadRequest)
			return
		}
		r.seen[ev.ID]++
		if r.seen[ev.ID] == 1 {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		r.accepted = append(r.accepted, ev)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// waitFor waits until the receiver accepted events of every type in want.
func (r *receiver) waitFor(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r.mu.Lock()
		got := map[string]bool{}
		for _, e := range r.accepted {
			got[e.Type] = true
		}
		r.mu.Unlock()
		missing := ""
		for _, w := range want {
			if !got[w] {
				missing = w
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event delivered; got %v", missing, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWebhooks: an operator's endpoint is told, signed, of a device's
// payment, a decline, a tampered device and a refund; a failed delivery is
// retried; the delivery log shows the attempts, and a redelivery sends
// the same event again.
func TestWebhooks(t *testing.T) {
	s := newShop(t, "")
	r := newReceiver(t)
	var ep struct{ ID, Secret string }
	s.must("POST", "/v1/webhooks", map[string]any{"url": r.srv.URL + "/hooks", "events": []string{"payment.*", "refund.*", "device.*"}}, &ep)
	r.mu.Lock()
	r.secret = ep.Secret
	r.mu.Unlock()

	prod := s.product("vending", rules.VendingRules("http://127.0.0.1:1/unused"), map[string]any{"risk": map[string]any{"decline_tamper": true}})
	vm := s.device(prod, 300, 5000)
	paid := vm.event("dispense", nil, map[string]string{"sku": "B1"}, nil)
	vm.want(paid, wire.Approved, "charge", 300)
	vm.want(vm.event("dispense", nil, map[string]string{"sku": "A1"}, &wire.Report{Tamper: true}), wire.Declined, "charge", 150)
	s.must("POST", "/v1/payments/"+paid.PaymentID+"/refund", map[string]any{"amount": 100}, nil)
	r.waitFor(t, webhook.PaymentSucceeded, webhook.PaymentDeclined, "device.tamper", webhook.RefundSucceeded)

	var log struct {
		Data []struct {
			ID, Type, Status string
			Attempts         int
			LastStatus       int `json:"last_status"`
		}
	}
	s.must("GET", "/v1/webhooks/"+ep.ID+"/deliveries?status=delivered", nil, &log)
	if len(log.Data) < 4 {
		t.Fatalf("delivery log: %+v", log.Data)
	}
	for _, d := range log.Data {
		if d.Attempts != 2 || d.LastStatus != 200 {
			t.Fatalf("delivery %+v: want delivered at the second attempt", d)
		}
	}
	// Redelivered on request: the same event once more.
	first := log.Data[len(log.Data)-1]
	s.must("POST", "/v1/webhook-deliveries/"+first.ID+"/redeliver", nil, nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var d struct {
			Status   string
			Attempts int
		}
		s.must("GET", "/v1/webhooks/"+ep.ID+"/deliveries?limit=200", nil, &log)
		for _, x := range log.Data {
			if x.ID == first.ID {
				d.Status, d.Attempts = x.Status, x.Attempts
			}
		}
		if d.Status == "delivered" && d.Attempts == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redelivery: %+v", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bad != 0 {
		t.Fatalf("%d deliveries failed the receiver's signature check", r.bad)
	}
}

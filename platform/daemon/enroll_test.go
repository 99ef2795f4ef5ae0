package daemon_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
)

// losing delivers every request but loses the first answer, as a network
// that drops the response of a request the platform did serve.
type losing struct{ calls atomic.Int32 }

func (l *losing) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && l.calls.Add(1) == 1 {
		resp.Body.Close()
		return nil, errors.New("connection reset after the request was served")
	}
	return resp, err
}

// TestEnrollmentAnswerLost: the SDK's enrollment whose answer is lost is
// sent again, the same bytes with the same Idempotency-Key, and the
// platform answers the enrollment it made; the token is spent for any
// other request.
func TestEnrollmentAnswerLost(t *testing.T) {
	f := setup(t, "")
	var dev struct{ Product iotpay.ProductID }
	f.must("GET", "/v1/devices/"+string(f.dev.ID()), nil, &dev)
	id, token := f.newDevice(dev.Product)
	key := newP256(t)
	lossy := &losing{}
	en, err := device.Enroll(context.Background(), &http.Client{Transport: lossy}, f.url, id, token, key)
	if err != nil {
		t.Fatalf("enrollment with its first answer lost: %v", err)
	}
	if lossy.calls.Load() != 2 {
		t.Errorf("%d requests, want 2", lossy.calls.Load())
	}
	if _, err := en.Identity(key); err != nil {
		t.Fatal(err)
	}
	if _, err := device.Enroll(context.Background(), nil, f.url, id, token, key); iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
		t.Fatalf("a new enrollment with the spent token: %v, want unauthorized", err)
	}
}

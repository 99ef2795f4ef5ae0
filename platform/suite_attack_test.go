package platform_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"log/slog"
	"strings"
	"testing"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/wire"
)

// mislabeled signs with one suite's primitive but writes another alg in
// the protected header.
type mislabeled struct {
	wire.Suite
	alg int64
}

func (m mislabeled) Alg() int64 { return m.alg }

// TestSuiteAttacks sends a device requests signed under the wrong suite,
// with the wrong alg, with another device's key, or with a valid signature
// of the other suite (the gm device's own TLS key included): each is
// refused "verification failed", with the precise reason in the log, a
// receipt the device can verify, and no money moved. Then a real request
// is still approved.
func TestSuiteAttacks(t *testing.T) {
	otherSM2, _ := pki.GenerateKey(pki.SuiteGM, nil)
	otherP256, _ := pki.GenerateKey(pki.SuiteIntl, nil)
	type attack struct {
		name   string
		suite  wire.Suite
		key    func(w *world) crypto.Signer
		reason string // in the log
	}
	devKey := func(w *world) crypto.Signer { return w.dev.Identity().Signer }
	for _, tc := range []struct {
		suite   wire.Suite
		attacks []attack
	}{
		{wire.GM, []attack{
			{"valid ES256 signature by another P-256 key", wire.Intl, func(*world) crypto.Signer { return otherP256 }, "alg -7 is not suite gm's -65537"},
			{"valid ES256 signature by the device's own TLS key", wire.Intl, func(w *world) crypto.Signer { return w.transport },
				"alg -7 is not suite gm's -65537"},
			{"SM2 signature labelled ES256", mislabeled{wire.GM, wire.AlgES256}, devKey, "alg -7 is not suite gm's -65537"},
			{"ECDSA signature labelled SM2", mislabeled{wire.Intl, wire.AlgSM2SM3}, func(w *world) crypto.Signer { return w.transport },
				"signature does not verify under suite gm"},
			{"another device's SM2 key", wire.GM, func(*world) crypto.Signer { return otherSM2 }, "signature does not verify under suite gm"},
		}},
		{wire.Intl, []attack{
			{"valid SM2 signature", wire.GM, func(*world) crypto.Signer { return otherSM2 }, "alg -65537 is not suite intl's -7"},
			{"ECDSA signature labelled SM2", mislabeled{wire.Intl, wire.AlgSM2SM3}, devKey, "alg -65537 is not suite intl's -7"},
			{"another device's P-256 key", wire.Intl, func(*world) crypto.Signer { return otherP256 }, "signature does not verify under suite intl"},
		}},
	} {
		t.Run(tc.suite.Name(), func(t *testing.T) {
			// The processor logs on the goroutine that calls Process, so
			// a plain buffer will do.
			var log bytes.Buffer
			w := newSuiteWorld(t, tc.suite, slog.New(slog.NewTextHandler(&log, nil)))
			ctx := context.Background()
			for _, a := range tc.attacks {
				t.Run(a.name, func(t *testing.T) {
					s, err := w.dev.Sign(device.Payment{Amount: &iotpay.Money{Amount: 500, Currency: "EUR"}})
					if err != nil {
						t.Fatal(err)
					}
					forged, err := wire.SignRequest(a.suite, a.key(w), rand.Reader, &s.Request)
					if err != nil {
						t.Fatal(err)
					}
					res := w.proc.Process(ctx, w.dev.ID(), forged)
					if res.Outcome != wire.Rejected || res.Code != iotpay.EUNAUTHORIZED || res.Reason != "verification failed" {
						t.Fatalf("forgery answered %s %s %q", res.Outcome, res.Code, res.Reason)
					}
					rc, err := w.dev.Open(&device.Signed{Raw: forged, Hash: tc.suite.Hash(forged), Request: s.Request}, res.Receipt)
					if err != nil || rc.Outcome != wire.Rejected {
						t.Fatalf("the device cannot verify the refusal: %v %+v", err, rc)
					}
					if !strings.Contains(log.String(), a.reason) {
						t.Errorf("log lacks %q:\n%s", a.reason, log.String())
					}
					if p, m := w.balances(t); p != 10000 || m != 0 {
						t.Fatalf("money moved: payer %d, paid %d", p, m)
					}
				})
			}
			s, err := w.dev.Sign(device.Payment{Amount: &iotpay.Money{Amount: 500, Currency: "EUR"}})
			if err != nil {
				t.Fatal(err)
			}
			res := w.proc.Process(ctx, w.dev.ID(), s.Raw)
			if res.Outcome != wire.Approved {
				t.Fatalf("the real request: %s %s %s", res.Outcome, res.Code, res.Reason)
			}
			if rc, err := w.dev.Open(s, res.Receipt); err != nil || rc.Outcome != wire.Approved {
				t.Fatalf("receipt: %v %+v", err, rc)
			}
			if p, m := w.balances(t); p != 9500 || m != 500 {
				t.Fatalf("balances payer %d, paid %d", p, m)
			}
		})
	}
}

// TestGMDeviceRefusalsAreSM2 checks that a malformed request on a gm
// device's channel, which names no device the platform can trust, is still
// answered with a receipt the device can verify: signed in its suite.
func TestGMDeviceRefusalsAreSM2(t *testing.T) {
	w := newSuiteWorld(t, wire.GM, nil)
	s, err := w.dev.Sign(device.Payment{Amount: &iotpay.Money{Amount: 500, Currency: "EUR"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range [][]byte{s.Raw[:len(s.Raw)/2], []byte("garbage"), {}} {
		res := w.proc.Process(context.Background(), w.dev.ID(), raw)
		if res.Outcome != wire.Rejected || res.Code != iotpay.EINVALID {
			t.Fatalf("%x answered %s %s", raw, res.Outcome, res.Code)
		}
		rc, err := wire.OpenReceipt(wire.GM, w.dev.Identity().PlatformKey, res.Receipt)
		if err != nil || !bytes.Equal(rc.RequestHash, wire.GM.Hash(raw)) {
			t.Errorf("refusal of %x does not open as a gm receipt: %v", raw, err)
		}
	}
}

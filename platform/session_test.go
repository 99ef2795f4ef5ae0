package platform_test

import (
	"context"
	"testing"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/device"
	"github.com/iotpay/iotpay/platform"
	"github.com/iotpay/iotpay/wire"
)

// direct is a device.Transport that hands each message to a processor as
// a transport would, on the device's authenticated channel.
type direct struct {
	proc *platform.Processor
	dev  iotpay.DeviceID
	sent [][]byte
	// lose drops the answers to the next sealed message: the transport
	// then sends the same bytes again, as MQTT does on a timeout.
	lose bool
}

func (d *direct) Exchange(ctx context.Context, req []byte, match func([]byte) bool) ([]byte, error) {
	d.sent = append(d.sent, req)
	a := d.proc.HandlePay(ctx, d.dev, req)
	if d.lose && wire.IsEncrypt0(req) {
		d.lose = false
		d.sent = append(d.sent, req)
		a = d.proc.HandlePay(ctx, d.dev, req)
	}
	if a == nil || !match(a) {
		return nil, iotpay.Errorf(iotpay.EUNAUTHORIZED, "no matching answer")
	}
	return a, nil
}

// FuzzHandlePaySession feeds the processor's entry point what a session
// sends — hellos and sealed requests, whole and damaged — after a real
// session was set up: every input gets an answer, and no input pays (the
// seeds were sent already; nothing else is sealed under the session's key).
func FuzzHandlePaySession(f *testing.F) { fuzzHandlePaySession(f, wire.Intl) }

// FuzzHandlePaySessionGM is FuzzHandlePaySession with a gm device.
func FuzzHandlePaySessionGM(f *testing.F) { fuzzHandlePaySession(f, wire.GM) }

func fuzzHandlePaySession(f *testing.F, suite wire.Suite) {
	w := newSuiteWorld(f, suite, nil)
	tr := &direct{proc: w.proc, dev: w.dev.ID()}
	if rc, err := w.dev.PaySecure(context.Background(), tr, device.Payment{Amount: &iotpay.Money{Amount: 1, Currency: "EUR"}}); err != nil || rc.Outcome != wire.Approved {
		f.Fatalf("secure payment: %+v, %v", rc, err)
	}
	for _, b := range tr.sent {
		f.Add(b)
		f.Add(b[:len(b)-1])
		g := append([]byte(nil), b...)
		g[len(g)/2] ^= 0x10
		f.Add(g)
	}
	f.Add([]byte{0xd0, 0x83, 0x43, 0xa1, 0x01, 0x01, 0xa0, 0x40})
	payer, paid := w.balances(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if w.proc.HandlePay(context.Background(), w.dev.ID(), raw) == nil {
			t.Fatal("no answer for a message")
		}
		if p, m := w.balances(t); p != payer || m != paid {
			t.Fatalf("money moved: payer %d→%d, merchant %d→%d", payer, p, paid, m)
		}
	})
}

// TestSealedRedelivery: the answer to a sealed request is lost and the
// transport sends the same bytes again: the replay window refuses them
// (a signed refusal), the SDK handshakes again and resends the same
// signed request in the new session, and the platform answers it with the
// original receipt — one payment, in each suite.
func TestSealedRedelivery(t *testing.T) {
	for _, s := range []wire.Suite{wire.Intl, wire.GM} {
		t.Run(s.Name(), func(t *testing.T) {
			w := newSuiteWorld(t, s, nil)
			tr := &direct{proc: w.proc, dev: w.dev.ID(), lose: true}
			payer0, _ := w.balances(t)
			rc, err := w.dev.PaySecure(context.Background(), tr, device.Payment{Amount: &iotpay.Money{Amount: 100, Currency: "EUR"}})
			if err != nil || rc.Outcome != wire.Approved {
				t.Fatalf("payment: %+v, %v", rc, err)
			}
			if len(tr.sent) != 5 || !wire.IsHello(tr.sent[3]) {
				t.Fatalf("sent %d messages, want hello, sealed, the same again, hello, sealed", len(tr.sent))
			}
			if payer, _ := w.balances(t); payer != payer0-100 {
				t.Errorf("payer paid %d, want 100 once", payer0-payer)
			}
		})
	}
}

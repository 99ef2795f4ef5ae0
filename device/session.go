package device

import (
	"context"
	"sync"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

// secure is a device's end-to-end session with the platform. It lives in
// memory only: after a restart, or when the platform forgot it, the device
// handshakes again.
type secure struct {
	mu   sync.Mutex // one exchange at a time over the session
	sess *wire.Session
	seq  uint64 // the next request's sequence number
}

// Handshake sets up a new end-to-end session with the platform over t:
// a hello signed by the device key with a fresh ephemeral key, answered by
// a welcome the platform's receipt key signed over the hello's hash and
// its own ephemeral key (wire.Accept). The welcome carries the challenge
// the next request must echo, which the device takes. A refusal is an
// error with the platform's code and reason.
func (d *Device) Handshake(ctx context.Context, t Transport) error {
	d.secure.mu.Lock()
	defer d.secure.mu.Unlock()
	return d.handshake(ctx, t)
}

func (d *Device) handshake(ctx context.Context, t Transport) error {
	d.secure.sess = nil
	s := d.id.Suite
	x, err := wire.NewEphemeral(s, d.rand())
	if err != nil {
		return err
	}
	hello, err := wire.SignHello(s, d.id.Signer, d.rand(), &wire.Hello{
		V: wire.Version, Device: string(d.id.ID), Suite: s.Name(), Key: x.Public(), TimeMs: d.now().UnixMilli()})
	if err != nil {
		return err
	}
	var (
		w       *wire.Welcome
		sess    *wire.Session
		refusal *wire.Receipt
	)
	_, err = t.Exchange(ctx, hello, func(answer []byte) bool {
		if ww, ss, err := wire.Finish(s, d.id.PlatformKey, x, hello, answer); err == nil {
			w, sess = ww, ss
			return true
		}
		refusal = d.refusal(answer, hello)
		return refusal != nil
	})
	if err != nil {
		return err
	}
	if refusal != nil {
		return iotpay.Errorf(iotpay.Code(refusal.Code), "handshake refused: %s", refusal.Reason)
	}
	if err := d.takeChallenge(w.Challenge); err != nil {
		return err
	}
	d.secure.sess, d.secure.seq = sess, 0
	return nil
}

// refusal returns answer as the platform's signed rejection of the
// message sent, or nil.
func (d *Device) refusal(answer, sent []byte) *wire.Receipt {
	rc, err := wire.OpenReceipt(d.id.Suite, d.id.PlatformKey, answer)
	if err != nil || rc.Outcome != wire.Rejected || !rc.For(d.id.Suite.Hash(sent), string(d.id.ID)) {
		return nil
	}
	return rc
}

func (d *Device) takeChallenge(c []byte) error {
	if len(c) != wire.ChallengeBytes {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	next := d.state
	next.Challenge = c
	if err := d.store.Save(next); err != nil {
		return err
	}
	d.state = next
	return nil
}

// EndSession forgets the session; the next secure payment handshakes.
func (d *Device) EndSession() {
	d.secure.mu.Lock()
	defer d.secure.mu.Unlock()
	d.secure.sess = nil
}

// SessionID is the current session's id, nil when there is none.
func (d *Device) SessionID() []byte {
	d.secure.mu.Lock()
	defer d.secure.mu.Unlock()
	if d.secure.sess == nil {
		return nil
	}
	return d.secure.sess.ID
}

// PaySecure is Pay through the end-to-end session, set up first if there
// is none: the signed request goes sealed in a COSE_Encrypt0 and its
// receipt comes back sealed, bound to it. If the platform refuses the
// session (it expired, or the platform restarted), the device handshakes
// again once and resends the same signed request, which the platform
// answers idempotently.
func (d *Device) PaySecure(ctx context.Context, t Transport, p Payment) (*wire.Receipt, error) {
	d.secure.mu.Lock()
	defer d.secure.mu.Unlock()
	if d.secure.sess == nil {
		if err := d.handshake(ctx, t); err != nil {
			return nil, err
		}
	}
	s, err := d.Sign(p)
	if err != nil {
		return nil, err
	}
	return d.sendSealed(ctx, t, s)
}

// SendSecure sends a signed request through the session, set up first if
// there is none. Sending the same Signed again is safe.
func (d *Device) SendSecure(ctx context.Context, t Transport, s *Signed) (*wire.Receipt, error) {
	d.secure.mu.Lock()
	defer d.secure.mu.Unlock()
	if d.secure.sess == nil {
		if err := d.handshake(ctx, t); err != nil {
			return nil, err
		}
	}
	return d.sendSealed(ctx, t, s)
}

func (d *Device) sendSealed(ctx context.Context, t Transport, s *Signed) (*wire.Receipt, error) {
	for retried := false; ; retried = true {
		inner, refusal, err := d.exchangeSealed(ctx, t, s)
		if err != nil {
			return nil, err
		}
		if refusal == nil {
			return d.Open(s, inner)
		}
		d.secure.sess = nil
		if retried {
			return nil, iotpay.Errorf(iotpay.Code(refusal.Code), "session refused: %s", refusal.Reason)
		}
		if err := d.handshake(ctx, t); err != nil {
			return nil, err
		}
	}
}

// exchangeSealed sends s sealed as the session's next message and returns
// the receipt inside the platform's sealed answer, or the platform's
// signed refusal of the envelope.
func (d *Device) exchangeSealed(ctx context.Context, t Transport, s *Signed) ([]byte, *wire.Receipt, error) {
	sess, seq := d.secure.sess, d.secure.seq
	if seq > wire.SeqMax {
		if err := d.handshake(ctx, t); err != nil {
			return nil, nil, err
		}
		sess, seq = d.secure.sess, 0
	}
	d.secure.seq++ // a number is never used twice, even if this exchange fails
	sealed, err := sess.SealRequest(seq, s.Raw)
	if err != nil {
		return nil, nil, err
	}
	var (
		inner   []byte
		refusal *wire.Receipt
	)
	_, err = t.Exchange(ctx, sealed, func(answer []byte) bool {
		if pt, err := sess.OpenResponse(seq, answer); err == nil {
			rc, err := wire.OpenReceipt(d.id.Suite, d.id.PlatformKey, pt)
			if err == nil && rc.For(s.Hash, string(d.id.ID)) {
				inner = pt
				return true
			}
			return false
		}
		refusal = d.refusal(answer, sealed)
		return refusal != nil
	})
	if err != nil {
		return nil, nil, err
	}
	return inner, refusal, nil
}

package iso8583

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector"
)

// Bounds of what the client keeps of an authorization in its StateStore.
const (
	// RefundsMax bounds the refunds of one payment.
	RefundsMax = 1_000
	// StateBytesMax bounds an encoded state: an original with
	// RefundsMax refunds fits.
	StateBytesMax = 32 << 10
)

// stateVersion is the version of the encoding below; a state of another
// version is refused, not guessed at.
const stateVersion = 1

// state is the encoding of an original in a StateStore: JSON, fields in
// this order, as json.Marshal writes it. It holds the PAN (and expiry),
// which a completion, reversal and refund must send again, as the
// account's instrument already does: test cards only.
type state struct {
	V            int              `json:"v"`
	MTI          string           `json:"mti"`
	STAN         string           `json:"stan"`
	Transmission string           `json:"transmission"`
	RRN          string           `json:"rrn"`
	Approval     string           `json:"approval"`
	PAN          string           `json:"pan"`
	Expiry       string           `json:"expiry"`
	MID          string           `json:"mid"`
	TID          string           `json:"tid"`
	Currency     string           `json:"currency"`
	Amount       int64            `json:"amount"`
	Captured     int64            `json:"captured"`
	Refunded     int64            `json:"refunded"`
	Refunds      map[string]int64 `json:"refunds,omitempty"` // by refund RRN
	Voided       bool             `json:"voided"`
}

// encodeState encodes o. The caller holds c.mu, which guards o's fields.
func encodeState(o *original) ([]byte, error) {
	s := state{
		V: stateVersion, MTI: o.mti, STAN: o.stan, Transmission: o.transmission, RRN: o.rrn,
		Approval: o.approval, PAN: o.pan, Expiry: o.expiry, MID: o.mid, TID: o.tid,
		Currency: o.currency, Amount: o.amount, Captured: o.captured, Refunded: o.refunded,
		Refunds: o.refunds, Voided: o.voided,
	}
	b, err := json.Marshal(&s)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "iso8583: encoding a state", err)
	}
	return b, nil
}

// decodeState decodes a state that encodeState wrote, strictly: of
// stateVersion, within StateBytesMax, every field in range and the bytes
// exactly those encodeState writes for what they hold (so no unknown or
// repeated field, no other order, no trailing bytes). Any other input is
// an EINVALID error.
func decodeState(b []byte) (*original, error) {
	bad := func(format string, args ...any) (*original, error) {
		return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: state: "+format, args...)
	}
	if len(b) > StateBytesMax {
		return bad("%d bytes, more than %d", len(b), StateBytesMax)
	}
	var v struct {
		V *int `json:"v"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return bad("not JSON: %v", err)
	}
	if v.V == nil || *v.V != stateVersion {
		return bad("unknown version (want %d)", stateVersion)
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return bad("%v", err)
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	o := &original{
		mti: s.MTI, stan: s.STAN, transmission: s.Transmission, rrn: s.RRN,
		approval: s.Approval, pan: s.PAN, expiry: s.Expiry, mid: s.MID, tid: s.TID,
		currency: s.Currency, amount: s.Amount, captured: s.Captured, refunded: s.Refunded,
		refunds: s.Refunds, voided: s.Voided,
	}
	if c, err := encodeState(o); err != nil || !bytes.Equal(c, b) {
		return bad("not in canonical form")
	}
	return o, nil
}

// check checks s's fields one by one and against each other.
func (s *state) check() error {
	bad := func(format string, args ...any) error {
		return iotpay.Errorf(iotpay.EINVALID, "iso8583: state: "+format, args...)
	}
	source := s.PAN
	if s.Expiry != "" {
		source += "=" + s.Expiry
	}
	switch {
	case s.MTI != "0100" && s.MTI != "0200":
		return bad("mti %q is not 0100 or 0200", s.MTI)
	case len(s.STAN) != 6 || !allDigits(s.STAN):
		return bad("stan is not 6 digits")
	case len(s.Transmission) != 10 || !allDigits(s.Transmission):
		return bad("transmission is not 10 digits")
	case len(s.RRN) != 12 || !allDigits(s.RRN):
		return bad("rrn is not 12 digits")
	case len(s.Approval) > 6 || badChar(ContentANS, s.Approval) >= 0:
		return bad("approval is not up to 6 characters")
	case s.MID == "" || len(s.MID) > 15 || badChar(ContentANS, s.MID) >= 0:
		return bad("mid is not 1 to 15 characters")
	case s.TID == "" || len(s.TID) > 8 || badChar(ContentANS, s.TID) >= 0:
		return bad("tid is not 1 to 8 characters")
	case s.Amount <= 0 || s.Amount > AmountMax:
		return bad("amount %d out of 1..%d", s.Amount, int64(AmountMax))
	case s.Captured < 0 || s.Captured > s.Amount:
		return bad("captured %d out of 0..%d", s.Captured, s.Amount)
	case s.MTI == "0200" && s.Captured != s.Amount:
		return bad("a sale captured %d of %d", s.Captured, s.Amount)
	case s.Refunded < 0 || s.Refunded > s.Captured:
		return bad("refunded %d out of 0..%d", s.Refunded, s.Captured)
	case len(s.Refunds) > RefundsMax:
		return bad("%d refunds, more than %d", len(s.Refunds), RefundsMax)
	}
	if _, _, err := ParseSource(source); err != nil {
		return bad("pan or expiry: %v", iotpay.ErrorMessage(err))
	}
	if _, err := CurrencyAlpha(s.Currency); err != nil {
		return bad("currency %q unknown", s.Currency)
	}
	var sum int64
	for rrn, n := range s.Refunds {
		if len(rrn) != 12 || !allDigits(rrn) || n <= 0 || n > s.Refunded {
			return bad("refund %q of %d", rrn, n)
		}
		sum += n // each at most Refunded, so at most RefundsMax*AmountMax: no overflow
	}
	if sum != s.Refunded {
		return bad("refunds sum to %d, not %d refunded", sum, s.Refunded)
	}
	return nil
}

// KeepState makes the client keep what it remembers of its approvals in
// s (connector.Stateful), so that it can capture, void and refund them
// after a restart too. Give it before the first call; Config.State does
// the same.
func (c *Client) KeepState(s connector.StateStore) {
	c.mu.Lock()
	c.state = s
	c.mu.Unlock()
}

func (c *Client) stateStore() connector.StateStore {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// save writes o to the state store, when there is one. It runs to its
// end even when ctx is cancelled, within Timeout: what the acquirer did
// must be remembered though the caller gave up. Saves of one original
// take turns (o.saving) and each encodes o as it is then, so the last to
// land holds every change made before it, whatever the order in which
// concurrent callers made them.
func (c *Client) save(ctx context.Context, o *original) error {
	st := c.stateStore()
	if st == nil {
		return nil
	}
	o.saving.Lock()
	defer o.saving.Unlock()
	c.mu.Lock()
	b, err := encodeState(o)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Timeout)
	defer cancel()
	return st.SaveState(sctx, c.cfg.Name, o.rrn, b)
}

// saveDone saves o after what the acquirer has done with it (what): the
// caller gets its answer whether or not the save works, and a failure is
// logged — after a restart the client would not know what was done.
func (c *Client) saveDone(ctx context.Context, o *original, what string) {
	if err := c.save(ctx, o); err != nil {
		c.log.Error("iso8583: "+what+" done at the acquirer but not saved in the state store: a restart will not know it",
			"rrn", o.rrn, "err", err)
	}
}

// lookup returns the original ref, from memory or else from the state
// store (then remembered in memory too), nil when neither has it. A store
// that fails gives a retryable error; a state it holds that does not
// decode, an EINTERNAL one.
func (c *Client) lookup(ctx context.Context, ref string) (*original, error) {
	c.mu.Lock()
	o, st := c.origs[ref], c.state
	c.mu.Unlock()
	if o != nil || st == nil {
		return o, nil
	}
	lctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	b, err := st.LoadState(lctx, c.cfg.Name, ref)
	cancel()
	switch {
	case iotpay.ErrorCode(err) == iotpay.ENOTFOUND:
		return nil, nil
	case err != nil:
		return nil, connector.Unavailable(c.cfg.Name, fmt.Sprintf("cannot load what is kept of payment %q", ref), err)
	}
	o, err = decodeState(b)
	if err == nil && o.rrn != ref {
		err = iotpay.Errorf(iotpay.EINVALID, "iso8583: state: of rrn %s", o.rrn)
	}
	if err != nil {
		c.log.Error("iso8583: the state kept of a payment does not decode", "rrn", ref, "err", err)
		return nil, iotpay.Wrap(iotpay.EINTERNAL, fmt.Sprintf("iso8583: what is kept of payment %q is unreadable", ref), err)
	}
	return c.put(o, false), nil
}

// keep remembers o, an approval just answered, saving it to the state
// store first when there is one. When o repeats an authorization that
// stands and that the client remembers (in memory or in the store), that
// one is kept, with what was done with it. An error says o could not be
// remembered durably (the store could not be read or written).
func (c *Client) keep(ctx context.Context, o *original) error {
	old, err := c.lookup(context.WithoutCancel(ctx), o.rrn) // approved: the caller's giving up changes nothing
	if err != nil {
		return err
	}
	if old != nil {
		c.mu.Lock()
		voided := old.voided
		c.mu.Unlock()
		if !voided {
			return nil
		}
	}
	if err := c.save(ctx, o); err != nil {
		return err
	}
	if kept := c.put(o, true); kept != o {
		// A repeat answered meanwhile was remembered first, and o's
		// save may have landed over its state: write that again.
		c.saveDone(ctx, kept, "a repeated authorization")
	}
	return nil
}

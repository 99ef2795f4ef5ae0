package wire

import "github.com/iotpay/iotpay"

// ReplayWindowSize is how many sequence numbers below the highest seen a
// ReplayWindow still accepts once each (RFC 4303 §3.4.3, OSCORE's default).
const ReplayWindowSize = 64

// ReplayWindow is a receiver's sliding window over a sender's sequence
// numbers: each number is accepted once, and numbers more than
// ReplayWindowSize below the highest accepted are refused, so messages
// that overtake each other still pass. The zero value has seen nothing.
// It is not safe for concurrent use.
type ReplayWindow struct {
	top  uint64 // highest accepted
	bits uint64 // bit i set: top-i accepted
	seen bool
}

// Check reports whether seq would be accepted, without accepting it: the
// caller accepts only after the message proved authentic.
func (w *ReplayWindow) Check(seq uint64) error {
	switch {
	case seq > SeqMax:
		return iotpay.Errorf(iotpay.EINVALID, "sequence number over %d", SeqMax)
	case !w.seen || seq > w.top:
		return nil
	case w.top-seq >= ReplayWindowSize:
		return iotpay.Errorf(iotpay.EREPLAY, "message %d is older than the replay window", seq)
	case w.bits&(1<<(w.top-seq)) != 0:
		return iotpay.Errorf(iotpay.EREPLAY, "message %d replayed", seq)
	}
	return nil
}

// Accept records seq, which Check accepted.
func (w *ReplayWindow) Accept(seq uint64) {
	switch {
	case !w.seen:
		w.top, w.bits, w.seen = seq, 1, true
	case seq > w.top:
		if d := seq - w.top; d < ReplayWindowSize {
			w.bits = w.bits<<d | 1
		} else {
			w.bits = 1
		}
		w.top = seq
	default:
		w.bits |= 1 << (w.top - seq)
	}
}

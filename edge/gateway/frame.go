package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/edge/queue"
	"github.com/iotpay/iotpay/wire"
)

// reply is the gateway's answer to one POST /f: a CoAP code and, with
// 2.04, an encoded frame; maxAge (seconds) is set on a FrameBusy.
type reply struct {
	code   codes.Code
	frame  []byte
	maxAge uint32
}

// COSE tags (RFC 9052) of the envelopes the plain port carries: sealed
// (COSE_Encrypt0, tag 16) or signed by the device (COSE_Sign1, tag 18).
const (
	coseEncrypt0Head = 0xd0
	coseSign1Head    = 0xd2
)

// handleFrame answers one frame, in this order: form (4.00 if malformed,
// nothing stored), the session's device (DTLS), the envelope's kind
// (plain port), the frame counter; then the message is stored, or the
// poll answered. session is the DTLS session's device, "" on the plain
// port. Refusals after the form are 2.04 with a FrameRefused, so the
// device can read why.
func (g *Gateway) handleFrame(ctx context.Context, payload []byte, secure bool, session iotpay.DeviceID) reply {
	f, err := wire.ParseFrame(payload)
	if err != nil || (f.Kind != wire.FrameMessage && f.Kind != wire.FramePoll) {
		g.refused.Add(1)
		g.log.Debug("malformed frame", "secure", secure, "err", err)
		return reply{code: codes.BadRequest}
	}
	device := f.DeviceID()
	if !iotpay.ValidID(iotpay.PrefixDevice, string(device)) {
		g.refused.Add(1)
		return reply{code: codes.BadRequest}
	}
	if secure && device != session {
		return g.refuse(f, "device is not the session's", "session", session)
	}
	if !secure && f.Kind == wire.FrameMessage && f.Body[0] != coseEncrypt0Head && f.Body[0] != coseSign1Head {
		return g.refuse(f, "plain UDP carries signed or sealed envelopes only")
	}
	// The counter stays locked until the message is in the queue: one
	// device's messages enter it in the order their counters were taken.
	ctr := g.fcnt.lock(secure, device)
	err = g.fcnt.advance(secure, ctr, f.FCnt)
	var seq uint64
	var r reply
	switch {
	case errors.Is(err, errCounterStale):
		r = g.refuse(f, "frame counter replayed", "err", err)
	case iotpay.ErrorCode(err) == iotpay.EUNAVAILABLE:
		g.log.Error("frame counter", "device", device, "err", err)
		r = g.refuse(f, "gateway cannot take the device now")
	case err != nil:
		g.log.Error("frame counter", "device", device, "err", err)
		r = reply{code: codes.InternalServerError}
	case f.Kind == wire.FramePoll:
		r = g.poll(f, device)
	default:
		seq, r = g.store(f, device)
	}
	g.fcnt.unlock(ctr)
	if seq == 0 {
		return r
	}
	return g.await(ctx, f, device, seq)
}

// refuse answers a FrameRefused with reason; details go to the log only.
func (g *Gateway) refuse(f *wire.Frame, reason string, logArgs ...any) reply {
	g.refused.Add(1)
	g.log.Info("frame refused", append([]any{"device", f.DeviceID(), "fcnt", f.FCnt, "reason", reason}, logArgs...)...)
	return g.answer(&wire.Frame{Kind: wire.FrameRefused, Device: f.Device, FCnt: f.FCnt, Body: []byte(reason)})
}

// answer encodes a frame in a 2.04.
func (g *Gateway) answer(f *wire.Frame) reply {
	b, err := wire.EncodeFrame(f)
	if err != nil {
		g.log.Error("cannot encode a frame", "kind", f.Kind, "err", err)
		return reply{code: codes.InternalServerError}
	}
	return reply{code: codes.Changed, frame: b}
}

// poll answers a FramePoll with the device's oldest waiting answer.
func (g *Gateway) poll(f *wire.Frame, device iotpay.DeviceID) reply {
	body, more, ok := g.down.poll(device)
	if !ok {
		return g.answer(&wire.Frame{Kind: wire.FrameNone, Device: f.Device, FCnt: f.FCnt})
	}
	g.answered.Add(1)
	return g.answer(&wire.Frame{Kind: wire.FrameAnswer, Device: f.Device, Body: body, Wait: uint32(more)})
}

// store appends the message to the queue, durably, and returns its queue
// seq, or 0 and the refusal.
func (g *Gateway) store(f *wire.Frame, device iotpay.DeviceID) (uint64, reply) {
	rec, err := wire.EncodeRelay(&wire.Relay{Device: string(device), Body: f.Body, FCnt: f.FCnt,
		RxMs: g.cfg.Now().UnixMilli()})
	if err != nil { // the frame's checks imply the relay's
		g.log.Error("cannot encode a relay", "device", device, "err", err)
		return 0, reply{code: codes.InternalServerError}
	}
	seq, err := g.q.Append(rec)
	if err == nil {
		g.done.poke() // the forwarder may have room for it now
	}
	switch {
	case errors.Is(err, queue.ErrFull):
		g.busy.Add(1)
		g.log.Warn("queue full, device told to wait", "device", device, "fcnt", f.FCnt)
		r := g.answer(&wire.Frame{Kind: wire.FrameBusy, Device: f.Device, FCnt: f.FCnt, Wait: BusyWaitSeconds})
		r.maxAge = BusyWaitSeconds
		return 0, r
	case errors.Is(err, queue.ErrClosed):
		return 0, reply{code: codes.ServiceUnavailable}
	case err != nil:
		g.log.Error("cannot store a message", "device", device, "err", err)
		return 0, reply{code: codes.InternalServerError}
	}
	g.queued.Add(1)
	return seq, reply{}
}

// await waits AnswerWait for the platform's answer to the message of seq:
// FrameAnswer with it, or FrameQueued.
func (g *Gateway) await(ctx context.Context, f *wire.Frame, device iotpay.DeviceID, seq uint64) reply {
	w := g.down.wait(device, seq)
	timer := time.NewTimer(g.cfg.AnswerWait)
	defer timer.Stop()
	select {
	case body := <-w.ch:
		if len(body) > 0 {
			g.answered.Add(1)
			return g.answer(&wire.Frame{Kind: wire.FrameAnswer, Device: f.Device, FCnt: f.FCnt, Body: body,
				Wait: uint32(g.down.pending(device))})
		}
	case <-timer.C:
		g.down.cancel(seq, w)
	case <-ctx.Done():
		g.down.cancel(seq, w)
	}
	return g.answer(&wire.Frame{Kind: wire.FrameQueued, Device: f.Device, FCnt: f.FCnt})
}

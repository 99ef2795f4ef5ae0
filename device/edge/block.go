package edge

// Block-wise transfers by hand (RFC 7959). go-coap v3.8.0's client sends
// every block after the first from its response handler, as a message it
// never retransmits: on a lossy link a lost block stalls the exchange
// until its deadline, and only a new frame gets the message through. Here
// each block is a request of its own, which go-coap retransmits as any
// confirmable message, so a lost block costs a retransmission of that
// block, not the frame.
//
// All the requests of a frame carry one token and the same options (the
// Uri-Path and Content-Format of POST /f), so that go-coap's server-side
// block-wise layer (options.WithBlockwise) keeps the transfer under one
// key: it appends Block1 blocks to the request of that token and options,
// and serves the later Block2 blocks of its answer from the answer it
// kept under that key (RFC 7959 §2.4: POST's follow-ups repeat the
// request's options, with Block2 and without payload).

import (
	"bytes"
	"context"
	"errors"
	"io"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

const (
	// blockRoundsMax is how many times one request (one block) is sent,
	// each time with CoAP's retransmissions and the same message id,
	// before its frame is given up. With 30% loss each way, the
	// 1+MAX_RETRANSMIT transmissions of one round all fail for 3.5% of the
	// blocks: a frame of 40 blocks would fail 3 times in 4; with three
	// rounds, about once in 600.
	blockRoundsMax = 3
	// ackRandomFactor is CoAP's ACK_RANDOM_FACTOR (go-coap's default).
	ackRandomFactorNum, ackRandomFactorDen = 3, 2
)

// errStale marks an answer to an earlier request of the frame's exchange
// (same token): a late duplicate, as a link that repeats datagrams gives.
var errStale = errors.New("edge: answer to an earlier block")

// roundWait is how long one round of a request lasts: CoAP's
// MAX_TRANSMIT_WAIT (RFC 7252 §4.8.2), when go-coap has sent the last
// retransmission and waited for its answer, and at most timeout.
func roundWait(ackTimeout, timeout time.Duration) time.Duration {
	transmitWait := ackTimeout * (1<<(maxRetransmit+1) - 1) * ackRandomFactorNum / ackRandomFactorDen
	return min(timeout, transmitWait+ackTimeout/4)
}

// request is one CoAP request of a frame's exchange: POST /f with the
// frame's token, and a block option if the frame or its answer is sent
// block-wise.
type request struct {
	token message.Token
	block message.OptionID // message.Block1 or message.Block2, 0 for none
	value uint32           // the block option's value
	size1 int              // Size1: the frame's size, on its first block
	body  []byte
}

// post sends frame in POST /f, in blocks of BlockSize if it is larger
// (Block1), and returns the answer's code and body, fetching the later
// blocks of a block-wise answer (Block2).
func (t *Transport) post(ctx context.Context, frame []byte) (codes.Code, []byte, error) {
	token, err := message.GetToken()
	if err != nil {
		return 0, nil, iotpay.Wrap(iotpay.EINTERNAL, "edge: no random token", err)
	}
	resp, err := t.sendBlocks(ctx, token, frame)
	if err != nil {
		return 0, nil, err
	}
	return t.receiveBlocks(ctx, token, resp)
}

// sendBlocks sends frame and returns the gateway's answer to its last
// block (or to the first block the gateway refused). The gateway may ask
// for smaller blocks in its 2.31 (RFC 7959 §2.5): the next block is then
// numbered in the smaller size.
func (t *Transport) sendBlocks(ctx context.Context, token message.Token, frame []byte) (*pool.Message, error) {
	if len(frame) <= t.cfg.BlockSize {
		return t.do(ctx, request{token: token, body: frame}, checkWhole)
	}
	szx := t.szx
	for off := 0; ; {
		size := int(szx.Size())
		end := min(off+size, len(frame))
		more := end < len(frame)
		value, err := blockwise.EncodeBlockOption(szx, int64(off/size), more)
		if err != nil {
			return nil, iotpay.Wrap(iotpay.EINVALID, "edge: frame too large for its blocks", err)
		}
		r := request{token: token, block: message.Block1, value: value, body: frame[off:end]}
		if off == 0 {
			r.size1 = len(frame)
		}
		resp, err := t.do(ctx, r, func(m *pool.Message) error { return checkBlock1(m, off, more) })
		if err != nil || !more || resp.Code() != codes.Continue {
			return resp, err
		}
		if v, err := resp.GetOptionUint32(message.Block1); err == nil {
			if s, _, _, err := blockwise.DecodeBlockOption(v); err == nil && s < szx {
				szx = s
			}
		}
		t.conn.ReleaseMessage(resp)
		off = end
	}
}

// receiveBlocks reads the answer resp, and releases it; if it is the
// first block of a block-wise answer, it fetches the others.
func (t *Transport) receiveBlocks(ctx context.Context, token message.Token, resp *pool.Message) (codes.Code, []byte, error) {
	code := resp.Code()
	body, err := payload(resp)
	value, optErr := resp.GetOptionUint32(message.Block2)
	t.conn.ReleaseMessage(resp)
	if err != nil || optErr != nil {
		return code, body, err
	}
	szx, num, more, err := blockwise.DecodeBlockOption(value)
	if err != nil || num != 0 || szx > blockwise.SZX1024 {
		return 0, nil, iotpay.Errorf(iotpay.EINVALID, "edge: answer with a bad Block2 %#x", value)
	}
	for more {
		off := len(body)
		size := int(szx.Size())
		if off%size != 0 || off > wire.FrameBytesMax {
			return 0, nil, iotpay.Errorf(iotpay.EINVALID, "edge: answer with blocks of %d bytes after %d bytes", size, off)
		}
		value, err := blockwise.EncodeBlockOption(szx, int64(off/size), false)
		if err != nil {
			return 0, nil, iotpay.Wrap(iotpay.EINVALID, "edge: answer too large for its blocks", err)
		}
		m, err := t.do(ctx, request{token: token, block: message.Block2, value: value},
			func(m *pool.Message) error { return checkBlock2(m, off) })
		if err != nil {
			return 0, nil, err
		}
		b, err := payload(m)
		value, _ = m.GetOptionUint32(message.Block2) // checkBlock2 decoded it
		t.conn.ReleaseMessage(m)
		if err != nil {
			return 0, nil, err
		}
		body = append(body, b...)
		szx, _, more, _ = blockwise.DecodeBlockOption(value)
	}
	if len(body) > wire.FrameBytesMax {
		return 0, nil, iotpay.Errorf(iotpay.EINVALID, "edge: answer of %d bytes", len(body))
	}
	return code, body, nil
}

// payload reads a message's body, at most one frame's worth.
func payload(m *pool.Message) ([]byte, error) {
	if m.Body() == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(m.Body(), wire.FrameBytesMax+1))
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "edge: unreadable answer", err)
	}
	return b, nil
}

// checkWhole takes any answer to a frame sent whole: no earlier request
// shares its token.
func checkWhole(*pool.Message) error { return nil }

// checkBlock1 checks the answer to the Block1 block at off: a 2.31 or a
// final answer that acknowledges another block is errStale. A final
// answer without Block1 is taken (a refusal need not carry it).
func checkBlock1(m *pool.Message, off int, more bool) error {
	value, err := m.GetOptionUint32(message.Block1)
	if err != nil {
		if m.Code() == codes.Continue {
			return errStale
		}
		return nil
	}
	szx, num, _, err := blockwise.DecodeBlockOption(value)
	if err != nil || szx > blockwise.SZX1024 || num*szx.Size() != int64(off) || (m.Code() == codes.Continue && !more) {
		return errStale
	}
	return nil
}

// checkBlock2 checks the answer to a request for the Block2 block at off:
// a block elsewhere is errStale; an answer without Block2 that is not a
// success says the gateway lost the transfer (it keeps an answer's blocks
// for a while only).
func checkBlock2(m *pool.Message, off int) error {
	value, err := m.GetOptionUint32(message.Block2)
	if err != nil {
		if m.Code() >= codes.BadRequest {
			return iotpay.Errorf(iotpay.EUNAVAILABLE, "edge: the gateway lost the answer's blocks (%v)", m.Code())
		}
		return errStale
	}
	szx, num, _, err := blockwise.DecodeBlockOption(value)
	if err != nil || szx > blockwise.SZX1024 || num*szx.Size() != int64(off) {
		return errStale
	}
	return nil
}

// do sends r until its answer comes: in up to blockRoundsMax rounds of
// CoAP's retransmissions, all with the same message id, so that a gateway
// which already answered it answers again from its cache rather than
// taking the block twice. check tells the answer from a late answer to an
// earlier request of the exchange (errStale), which costs a round too.
// The caller releases the answer.
func (t *Transport) do(ctx context.Context, r request, check func(*pool.Message) error) (*pool.Message, error) {
	mid := t.conn.GetMessageID()
	var last error
	for range blockRoundsMax {
		resp, err := t.round(ctx, r, mid)
		if err == nil {
			if err = check(resp); err == nil {
				return resp, nil
			}
			t.conn.ReleaseMessage(resp)
			if !errors.Is(err, errStale) {
				return nil, err
			}
			t.staleAnswers.Add(1)
		} else {
			t.lostRounds.Add(1)
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "edge: no answer from the gateway", last)
}

// round sends r once, with go-coap's retransmissions, and waits for its
// answer for one round.
func (t *Transport) round(ctx context.Context, r request, mid int32) (*pool.Message, error) {
	rctx, cancel := context.WithTimeout(ctx, t.roundWait)
	defer cancel()
	req := t.conn.AcquireMessage(rctx)
	defer t.conn.ReleaseMessage(req)
	req.SetCode(codes.POST)
	req.SetType(message.Confirmable)
	req.SetMessageID(mid)
	req.SetToken(r.token)
	if err := req.SetPath(FramePath); err != nil {
		return nil, err
	}
	req.SetContentFormat(message.AppCBOR)
	if r.block != 0 {
		req.SetOptionUint32(r.block, r.value)
	}
	if r.size1 > 0 {
		req.SetOptionUint32(message.Size1, uint32(r.size1))
	}
	if r.body != nil {
		req.SetBody(bytes.NewReader(r.body))
	}
	return t.conn.Do(req)
}

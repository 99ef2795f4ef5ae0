package iso8583

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector"
)

// Client defaults and bounds.
const (
	// DefaultName is the connector's name when Config.Name is empty.
	DefaultName = "iso8583"
	// DefaultTimeout is how long a request waits for its answer.
	DefaultTimeout = 5 * time.Second
	// DefaultReversalAttempts is how often a reversal is sent before it
	// is left pending.
	DefaultReversalAttempts = 3
	// ReversalAttemptsMax bounds Config.ReversalAttempts.
	ReversalAttemptsMax = 10
	// OriginalsMax bounds the authorizations the client remembers for
	// their capture, void and refund; the oldest is forgotten first.
	OriginalsMax = 100_000
	// STANMax is the last STAN before the counter wraps to 000001.
	STANMax = 999_999
	// AmountMax is the largest amount field 4 holds, in minor units.
	AmountMax = 999_999_999_999
)

// Processing codes (field 3).
const (
	ProcPurchase = "000000" // goods and services
	ProcRefund   = "200000" // returns
)

// Network management information codes (field 70).
const (
	NetworkSignOn = "001"
	NetworkEcho   = "301"
)

// Point-of-service values (fields 22 and 25) of an unattended device that
// is given the card number: manual entry, no PIN capability; normal
// presentment.
const (
	posEntryManualNoPIN = "012"
	posConditionNormal  = "00"
)

// Config configures a Client.
type Config struct {
	// Name is the connector's name (DefaultName when empty).
	Name string
	// Addr is the acquirer's host:port.
	Addr string
	// Spec is the message layout (Spec87ASCII when nil). It must define
	// the fields the client sends.
	Spec *Spec
	// Framing is the TCP length header (FrameBinary2 by default).
	Framing Framing
	// MerchantID (field 42, up to 15 characters) and TerminalID (field
	// 41, up to 8) name the card acceptor; an Authorization's Merchant,
	// "MID" or "MID/TID", overrides them.
	MerchantID, TerminalID string
	// AcquirerID is the acquiring institution id (field 32, up to 11
	// digits).
	AcquirerID string
	// MCC is the merchant category code (field 18, 4 digits), sent when
	// set.
	MCC string
	// Timeout bounds each request: dial, write and answer
	// (DefaultTimeout when 0).
	Timeout time.Duration
	// ReversalAttempts is how often a reversal is sent before it is
	// left pending (DefaultReversalAttempts when 0).
	ReversalAttempts int
	// Dial opens the connection (a net.Dialer's when nil).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Now is the clock whose times go into messages (time.Now when nil).
	Now func() time.Time
	// Logger receives connection events (discarded when nil).
	Logger *slog.Logger
	// State, when set, keeps what the client remembers of its approvals
	// durably, as KeepState does. Each load and save is bounded by
	// Timeout; a save runs to its end though the caller gives up.
	State connector.StateStore
}

// Client is a connector.Connector to a card acquirer over ISO 8583. It is
// safe for concurrent use.
//
// What it sends: Authorize sends an 0100 authorization request, or with
// Capture an 0200 financial request (a sale); Capture an 0220 completion
// advice; Void an 0400 reversal; Refund an 0200 with processing code
// 200000; Ping an 0800 echo. Result.Ref is the RRN.
//
// The client remembers the authorizations it made — the data elements a
// completion, reversal or refund names them by, and what was captured,
// refunded or voided — to act on them later. In memory it keeps up to
// OriginalsMax. Given a connector.StateStore (KeepState, Config.State) it
// is connector.Stateful: it saves each approval there before answering
// it, and saves again after every capture, void and refund the acquirer
// approves, keyed by its name and the RRN, so after a restart it loads
// what memory lacks. The state is versioned JSON and holds the PAN and
// expiry, which completions and refunds send again, as the account's
// instrument already does: test cards only.
//
// An approval that cannot be saved (or whose earlier state cannot be
// read) is reversed, and Authorize returns a retryable EUNAVAILABLE
// error: an authorization the client might forget could neither be
// captured nor released after a restart, and a retry with the same key
// authorizes afresh. A capture, void or refund the acquirer approved but
// that cannot be saved is logged at Error and its result returned: it is
// done, and the client still knows it until it restarts.
//
// A ref it does not know — not in memory, nor in the store — is an
// EINVALID error; a store that cannot be read is a retryable EUNAVAILABLE
// one. Pending reversals (PendingReversals) are kept in memory only: they
// are retried by RetryReversals and before a new try of their operation,
// and a restart forgets them.
type Client struct {
	cfg     Config
	log     *slog.Logger
	dialSem chan struct{} // one dial at a time

	wg sync.WaitGroup // connection readers

	mu      sync.Mutex
	cur     *conn
	closed  bool
	stan    int
	origs   map[string]*original
	order   []string // RRNs of origs, oldest first
	pending []*PendingReversal
	state   connector.StateStore // nil: memory only
}

var (
	_ connector.Connector = (*Client)(nil)
	_ connector.Pinger    = (*Client)(nil)
	_ connector.Stateful  = (*Client)(nil)
)

// New checks cfg and returns a Client. It does not connect: the first
// request does.
func New(cfg Config) (*Client, error) {
	bad := func(format string, args ...any) (*Client, error) {
		return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: config: "+format, args...)
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.Spec == nil {
		cfg.Spec = Spec87ASCII
	}
	for _, n := range []int{ // the data elements the client sends or reads
		FieldPAN, FieldProcessingCode, FieldAmount, FieldTransmission, FieldSTAN,
		FieldLocalTime, FieldLocalDate, FieldExpiry, FieldMCC, FieldPOSEntryMode,
		FieldPOSCondition, FieldAcquirer, FieldRRN, FieldApproval, FieldResponseCode,
		FieldTerminal, FieldMerchant, FieldCardAcceptor, FieldCurrency,
		FieldNetworkManagement, FieldOriginalData,
	} {
		if _, ok := cfg.Spec.Field(n); !ok {
			return bad("spec %s lacks field %d", cfg.Spec.Name(), n)
		}
	}
	switch {
	case cfg.Addr == "":
		return bad("no Addr")
	case cfg.Framing > FrameASCII4:
		return bad("unknown framing %d", cfg.Framing)
	case cfg.MerchantID == "" || len(cfg.MerchantID) > 15 || badChar(ContentANS, cfg.MerchantID) >= 0:
		return bad("MerchantID must be 1 to 15 printable characters")
	case cfg.TerminalID == "" || len(cfg.TerminalID) > 8 || badChar(ContentANS, cfg.TerminalID) >= 0:
		return bad("TerminalID must be 1 to 8 printable characters")
	case cfg.AcquirerID == "" || len(cfg.AcquirerID) > 11 || !allDigits(cfg.AcquirerID):
		return bad("AcquirerID must be 1 to 11 digits")
	case cfg.MCC != "" && (len(cfg.MCC) != 4 || !allDigits(cfg.MCC)):
		return bad("MCC must be 4 digits")
	case cfg.Timeout < 0:
		return bad("negative Timeout")
	case cfg.ReversalAttempts < 0 || cfg.ReversalAttempts > ReversalAttemptsMax:
		return bad("ReversalAttempts out of 0..%d", ReversalAttemptsMax)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.ReversalAttempts == 0 {
		cfg.ReversalAttempts = DefaultReversalAttempts
	}
	if cfg.Dial == nil {
		cfg.Dial = (&net.Dialer{}).DialContext
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{
		cfg:     cfg,
		log:     log.With("connector", cfg.Name),
		dialSem: make(chan struct{}, 1),
		origs:   make(map[string]*original),
		state:   cfg.State,
	}, nil
}

// Name is the connector's name.
func (c *Client) Name() string { return c.cfg.Name }

// Close closes the connection. Requests in flight fail; an authorization
// among them whose reversal cannot be sent any more is left in
// PendingReversals.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	cc := c.cur
	c.cur = nil
	c.mu.Unlock()
	if cc != nil {
		cc.fail(iotpay.Errorf(iotpay.EUNAVAILABLE, "iso8583: client closed"))
	}
	c.wg.Wait()
	return nil
}

// original is what the client remembers of an approved authorization or
// sale: what a completion, reversal or refund names it by. c.mu guards
// the fields that change (captured, refunded, refunds, voided).
type original struct {
	saving sync.Mutex // held across a save to the state store

	mti, stan, transmission string // field 90's parts
	rrn, approval           string
	pan, expiry             string
	mid, tid                string
	currency                string
	amount                  int64
	captured                int64
	refunded                int64
	refunds                 map[string]int64 // by refund RRN, to answer a repeat
	voided                  bool
}

// conn is one TCP connection and the requests waiting on it, by STAN.
type conn struct {
	nc   net.Conn
	wmu  sync.Mutex
	done chan struct{} // closed when the connection is dead

	mu    sync.Mutex
	calls map[string]chan *Message
	err   error
}

func (cc *conn) fail(err error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.err != nil {
		return
	}
	cc.err = err
	cc.nc.Close()
	close(cc.done)
}

func (cc *conn) alive() bool {
	select {
	case <-cc.done:
		return false
	default:
		return true
	}
}

func (cc *conn) register(stan string) (chan *Message, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if _, busy := cc.calls[stan]; busy {
		return nil, false
	}
	ch := make(chan *Message, 1)
	cc.calls[stan] = ch
	return ch, true
}

func (cc *conn) unregister(stan string) {
	cc.mu.Lock()
	delete(cc.calls, stan)
	cc.mu.Unlock()
}

func (cc *conn) deliver(m *Message) bool {
	stan := m.Get(FieldSTAN)
	cc.mu.Lock()
	ch, ok := cc.calls[stan]
	delete(cc.calls, stan)
	cc.mu.Unlock()
	if ok {
		ch <- m // buffered, and delivered once: never blocks
	}
	return ok
}

func (c *Client) write(cc *conn, m *Message) error {
	b, err := Pack(c.cfg.Spec, m)
	if err != nil {
		return err
	}
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	if err := cc.nc.SetWriteDeadline(time.Now().Add(c.cfg.Timeout)); err != nil {
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "iso8583: write deadline", err)
	}
	return c.cfg.Framing.WriteFrame(cc.nc, b)
}

// connect returns the live connection, dialing one when there is none.
func (c *Client) connect(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, iotpay.Errorf(iotpay.EUNAVAILABLE, "iso8583: client closed")
		}
		if cc := c.cur; cc != nil && cc.alive() {
			c.mu.Unlock()
			return cc, nil
		}
		c.mu.Unlock()
		select {
		case c.dialSem <- struct{}{}:
		case <-ctx.Done():
			return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "iso8583: waiting to connect", ctx.Err())
		}
		c.mu.Lock()
		redo := c.closed || (c.cur != nil && c.cur.alive()) // another caller dialed meanwhile
		c.mu.Unlock()
		if redo {
			<-c.dialSem
			continue
		}
		cc, err := c.dial(ctx)
		<-c.dialSem
		return cc, err
	}
}

func (c *Client) dial(ctx context.Context) (*conn, error) {
	dctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	nc, err := c.cfg.Dial(dctx, "tcp", c.cfg.Addr)
	cancel()
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "iso8583: cannot connect to the acquirer", err)
	}
	cc := &conn{nc: nc, done: make(chan struct{}), calls: make(map[string]chan *Message)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		nc.Close()
		return nil, iotpay.Errorf(iotpay.EUNAVAILABLE, "iso8583: client closed")
	}
	c.cur = cc
	c.wg.Add(1)
	c.mu.Unlock()
	c.log.Debug("iso8583: connected", "addr", c.cfg.Addr)
	go c.readLoop(cc)
	return cc, nil
}

// readLoop hands each answer to the request waiting on its STAN, and
// answers the acquirer's own echo requests. An unreadable frame ends the
// connection: the stream can no longer be trusted to be in step.
func (c *Client) readLoop(cc *conn) {
	defer c.wg.Done()
	for {
		b, err := c.cfg.Framing.ReadFrame(cc.nc)
		if err != nil {
			cc.fail(err)
			c.log.Debug("iso8583: connection ended", "err", err)
			return
		}
		m, err := Unpack(c.cfg.Spec, b)
		if err != nil {
			c.log.Warn("iso8583: unreadable message from the acquirer; closing", "err", err)
			cc.fail(err)
			return
		}
		if m.MTI == "0800" {
			// Answered aside: a write blocked on a full socket must not
			// stop this loop from reading what would unblock it.
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.answerEcho(cc, m)
			}()
			continue
		}
		if !cc.deliver(m) {
			c.log.Info("iso8583: answer to no waiting request (late?)", "mti", m.MTI, "stan", m.Get(FieldSTAN))
		}
	}
}

func (c *Client) answerEcho(cc *conn, m *Message) {
	r := NewMessage("0810")
	for _, n := range []int{FieldTransmission, FieldSTAN, FieldNetworkManagement} {
		if v, ok := m.Lookup(n); ok {
			r.Set(n, v)
		}
	}
	r.Set(FieldResponseCode, CodeApproved)
	if err := c.write(cc, r); err != nil {
		c.log.Warn("iso8583: answering an echo", "err", err)
	}
}

// nextSTAN returns the next STAN, 000001 to 999999 then 000001 again.
func (c *Client) nextSTAN() string {
	c.mu.Lock()
	c.stan = c.stan%STANMax + 1
	s := c.stan
	c.mu.Unlock()
	return fmt.Sprintf("%06d", s)
}

// errNoAnswer and errLost tell why a written request got no answer.
func errNoAnswer(d time.Duration) *iotpay.Error {
	return iotpay.Errorf(iotpay.EUNAVAILABLE, "iso8583: no answer within %v", d)
}

// lostMessage is errLost's message, which reverseLost tells apart.
const lostMessage = "iso8583: connection lost before the answer"

func errLost(cause error) *iotpay.Error {
	return iotpay.Wrap(iotpay.EUNAVAILABLE, lostMessage, cause)
}

// exchange sends req (giving it a STAN when it has none) and waits for
// its answer. sent reports whether req may have reached the acquirer: an
// error with sent false means it certainly did not.
func (c *Client) exchange(ctx context.Context, req *Message) (resp *Message, sent bool, err error) {
	want, err := ResponseMTI(req.MTI)
	if err != nil {
		return nil, false, err
	}
	if err := ctx.Err(); err != nil {
		return nil, false, iotpay.Wrap(iotpay.EUNAVAILABLE, "iso8583: request not sent", err)
	}
	cc, err := c.connect(ctx)
	if err != nil {
		return nil, false, err
	}
	stan, fixed := req.Lookup(FieldSTAN)
	var ch chan *Message
	for ok := false; !ok; {
		if !fixed {
			stan = c.nextSTAN()
		}
		if ch, ok = cc.register(stan); !ok && fixed {
			return nil, false, iotpay.Errorf(iotpay.EUNAVAILABLE, "iso8583: STAN %s already in flight", stan)
		}
	}
	defer cc.unregister(stan)
	req.Set(FieldSTAN, stan)
	if err := c.write(cc, req); err != nil {
		if iotpay.ErrorCode(err) == iotpay.EINVALID {
			return nil, false, err // did not pack: nothing written
		}
		cc.fail(err)
		return nil, true, err // perhaps partly written: treat as sent
	}
	timer := time.NewTimer(c.cfg.Timeout)
	defer timer.Stop()
	select {
	case resp = <-ch:
	case <-cc.done:
		select {
		case resp = <-ch: // answered just before the connection ended
		default:
			return nil, true, errLost(cc.err)
		}
	case <-timer.C:
		return nil, true, errNoAnswer(c.cfg.Timeout)
	case <-ctx.Done():
		return nil, true, iotpay.Wrap(iotpay.EUNAVAILABLE, "iso8583: request cancelled before its answer", ctx.Err())
	}
	if resp.MTI != want {
		return nil, true, iotpay.Errorf(iotpay.EUNAVAILABLE, "iso8583: %s answered by %s, want %s", req.MTI, resp.MTI, want)
	}
	if code := resp.Get(FieldResponseCode); len(code) != 2 {
		return nil, true, iotpay.Errorf(iotpay.EUNAVAILABLE, "iso8583: %s answer without a response code", req.MTI)
	}
	return resp, true, nil
}

// baseRequest returns a request of type mti with the times and the card
// acceptor's ids.
func (c *Client) baseRequest(mti, mid, tid string) *Message {
	now := c.cfg.Now()
	m := NewMessage(mti)
	m.Set(FieldTransmission, now.UTC().Format("0102150405"))
	m.Set(FieldLocalTime, now.Format("150405"))
	m.Set(FieldLocalDate, now.Format("0102"))
	m.Set(FieldAcquirer, c.cfg.AcquirerID)
	m.Set(FieldTerminal, padRight(tid, 8))
	m.Set(FieldMerchant, padRight(mid, 15))
	return m
}

// financial exchanges an 0100 or 0200 request. When it may have reached
// the acquirer but no valid answer came back, it reverses the request
// before returning a retryable error: nothing is left authorized.
func (c *Client) financial(ctx context.Context, what string, req *Message) (*Message, error) {
	resp, sent, err := c.exchange(ctx, req)
	if err == nil && resp.Get(FieldRRN) != req.Get(FieldRRN) {
		err = iotpay.Errorf(iotpay.EUNAVAILABLE, "iso8583: answer carries RRN %q, want %q", resp.Get(FieldRRN), req.Get(FieldRRN))
	}
	if err == nil {
		return resp, nil
	}
	if !sent {
		return nil, connector.Unavailable(c.cfg.Name, what+" not sent", err)
	}
	return nil, c.reverseLost(ctx, what, req, err)
}

// reverseLost reverses req, which got no answer, and returns the error to
// give the caller. The reversal runs even when ctx is cancelled: a caller
// told "retry" must not find an authorization standing.
func (c *Client) reverseLost(ctx context.Context, what string, req *Message, cause error) error {
	why := what + " timed out"
	if e := (*iotpay.Error)(nil); errors.As(cause, &e) && e.Message == lostMessage {
		why = what + " lost its connection"
	}
	c.log.Warn("iso8583: reversing a request without answer", "mti", req.MTI, "rrn", req.Get(FieldRRN), "err", cause)
	rev, err := c.reversalOf(req, CodeLateResponse)
	if err != nil {
		return err
	}
	rctx := context.WithoutCancel(ctx)
	if err := c.sendReversal(rctx, rev); err != nil {
		p := &PendingReversal{RRN: rev.Get(FieldRRN), Reversal: rev, Since: c.cfg.Now(), Err: err.Error()}
		c.mu.Lock()
		c.pending = append(c.pending, p)
		c.mu.Unlock()
		return connector.Unavailable(c.cfg.Name, why+" and its reversal got no answer either: the reversal is pending", errors.Join(cause, err))
	}
	return connector.Unavailable(c.cfg.Name, why+" and was reversed", cause)
}

// reversalOf returns the 0400 that reverses req (an 0100 or 0200 as
// sent, with its STAN), with reason code reason in field 39.
func (c *Client) reversalOf(req *Message, reason string) (*Message, error) {
	od, err := OriginalData{
		MTI: req.MTI, STAN: req.Get(FieldSTAN), Transmission: req.Get(FieldTransmission),
		Acquirer: req.Get(FieldAcquirer),
	}.String()
	if err != nil {
		return nil, err
	}
	now := c.cfg.Now()
	rev := NewMessage("0400")
	for _, n := range []int{FieldPAN, FieldProcessingCode, FieldAmount, FieldExpiry, FieldAcquirer, FieldRRN, FieldTerminal, FieldMerchant, FieldCurrency} {
		if v, ok := req.Lookup(n); ok {
			rev.Set(n, v)
		}
	}
	rev.Set(FieldTransmission, now.UTC().Format("0102150405"))
	rev.Set(FieldLocalTime, now.Format("150405"))
	rev.Set(FieldLocalDate, now.Format("0102"))
	rev.Set(FieldSTAN, c.nextSTAN()) // kept by every repeat, so a late 0410 to one answers the next
	rev.Set(FieldResponseCode, reason)
	rev.Set(FieldOriginalData, od)
	return rev, nil
}

// sendReversal sends rev until an 0410 acknowledges it, up to
// ReversalAttempts times; repeats go as 0401. An answer of 00, or 25 (the
// acquirer never saw the original), means nothing is left to reverse.
func (c *Client) sendReversal(ctx context.Context, rev *Message) error {
	pause := c.cfg.Timeout / 4 // lets a dropped connection come back between tries
	var last error
	for i := 0; i < c.cfg.ReversalAttempts; i++ {
		m := rev.Clone()
		if i > 0 {
			m.MTI = "0401"
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return errors.Join(last, ctx.Err())
			}
		}
		resp, _, err := c.exchange(ctx, m)
		if err != nil {
			last = err
			continue
		}
		switch code := resp.Get(FieldResponseCode); code {
		case CodeApproved, CodeNoSuchRecord:
			return nil
		default:
			last = iotpay.Errorf(iotpay.EUNAVAILABLE, "iso8583: reversal answered %s (%s)", code, ResponseMessage(code))
		}
	}
	return last
}

// PendingReversal is a reversal that was sent ReversalAttempts times
// without an answer: the authorization it reverses may still stand at the
// acquirer until RetryReversals gets it through.
type PendingReversal struct {
	RRN      string
	Reversal *Message // the 0400 to repeat
	Since    time.Time
	Err      string // the last attempt's error
}

// PendingReversals returns a copy of the reversals still to be sent.
func (c *Client) PendingReversals() []PendingReversal {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]PendingReversal, len(c.pending))
	for i, p := range c.pending {
		out[i] = *p
		out[i].Reversal = p.Reversal.Clone()
	}
	return out
}

// RetryReversals sends each pending reversal again (ReversalAttempts
// times at most) and forgets those acknowledged. It returns an
// EUNAVAILABLE error when some remain.
func (c *Client) RetryReversals(ctx context.Context) error {
	c.mu.Lock()
	ps := append([]*PendingReversal(nil), c.pending...)
	c.mu.Unlock()
	left := 0
	for _, p := range ps {
		if err := c.retryPending(ctx, p); err != nil {
			left++
		}
	}
	if left > 0 {
		return iotpay.Errorf(iotpay.EUNAVAILABLE, "iso8583: %d reversals still pending", left)
	}
	return nil
}

func (c *Client) retryPending(ctx context.Context, p *PendingReversal) error {
	c.mu.Lock()
	rev := p.Reversal.Clone()
	c.mu.Unlock()
	rev.MTI = "0401" // the acquirer may have seen it already
	err := c.sendReversal(ctx, rev)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		p.Err = err.Error()
		return err
	}
	for i, q := range c.pending {
		if q == p {
			c.pending = append(c.pending[:i], c.pending[i+1:]...)
			break
		}
	}
	return nil
}

// settlePending gets a pending reversal of rrn through before a new try
// of the same operation: else the acquirer would answer the try as a
// repeat of the authorization the reversal then removes.
func (c *Client) settlePending(ctx context.Context, rrn string) error {
	c.mu.Lock()
	var ps []*PendingReversal
	for _, p := range c.pending {
		if p.RRN == rrn {
			ps = append(ps, p)
		}
	}
	c.mu.Unlock()
	for _, p := range ps {
		if err := c.retryPending(ctx, p); err != nil {
			return connector.Unavailable(c.cfg.Name, "the reversal of an earlier try is still pending", err)
		}
	}
	return nil
}

// Authorize sends an 0100 authorization request, or with a.Capture an
// 0200 sale. a.Source is the PAN, optionally "PAN=YYMM" with the expiry;
// a.Merchant, when set, is "MID" or "MID/TID". The RRN is derived from
// a.Key. Approval (00, 08, 11) gives Authorized or Captured; 91 and 96
// give a retryable EUNAVAILABLE error; any other code a Declined result.
// A request without answer is reversed before EUNAVAILABLE is returned,
// and so is an approval that cannot be saved in the state store.
func (c *Client) Authorize(ctx context.Context, a *connector.Authorization) (*connector.Result, error) {
	if a == nil {
		return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: no authorization")
	}
	if a.Key == "" {
		return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: authorization needs an idempotency key")
	}
	pan, expiry, err := ParseSource(a.Source)
	if err != nil {
		return nil, err
	}
	if a.Amount.Amount <= 0 || a.Amount.Amount > AmountMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: amount %d out of 1..%d", a.Amount.Amount, int64(AmountMax))
	}
	cur, err := CurrencyNumeric(a.Amount.Currency)
	if err != nil {
		return nil, err
	}
	mid, tid, err := c.merchant(a.Merchant)
	if err != nil {
		return nil, err
	}
	rrn := RRN(a.Key)
	if err := c.settlePending(ctx, rrn); err != nil {
		return nil, err
	}
	mti, what, status := "0100", "authorization", connector.Authorized
	if a.Capture {
		mti, what, status = "0200", "sale", connector.Captured
	}
	req := c.baseRequest(mti, mid, tid)
	req.Set(FieldPAN, pan)
	req.Set(FieldProcessingCode, ProcPurchase)
	_ = req.SetInt(FieldAmount, a.Amount.Amount, 12) // checked above
	if expiry != "" {
		req.Set(FieldExpiry, expiry)
	}
	if c.cfg.MCC != "" {
		req.Set(FieldMCC, c.cfg.MCC)
	}
	req.Set(FieldPOSEntryMode, posEntryManualNoPIN)
	req.Set(FieldPOSCondition, posConditionNormal)
	req.Set(FieldRRN, rrn)
	if a.Descriptor != "" {
		req.Set(FieldCardAcceptor, padRight(printable(a.Descriptor), 40))
	}
	req.Set(FieldCurrency, cur)

	resp, err := c.financial(ctx, what, req)
	if err != nil {
		return nil, err
	}
	code := resp.Get(FieldResponseCode)
	res := &connector.Result{Ref: rrn, Code: code, At: c.cfg.Now()}
	switch {
	case Approved(code):
		o := &original{
			mti: req.MTI, stan: req.Get(FieldSTAN), transmission: req.Get(FieldTransmission),
			rrn: rrn, approval: resp.Get(FieldApproval), pan: pan, expiry: expiry, mid: mid, tid: tid,
			currency: cur, amount: a.Amount.Amount,
		}
		if a.Capture {
			o.captured = o.amount
		}
		if err := c.keep(ctx, o); err != nil {
			// Forgotten, it could neither be captured nor released.
			c.log.Error("iso8583: an approval could not be remembered durably; reversing it", "rrn", rrn, "err", err)
			if rerr := c.giveBack(ctx, req, CodeSuspectedMalfunction); rerr != nil {
				return nil, connector.Unavailable(c.cfg.Name, what+" approved but not remembered durably, and its reversal got no answer: the reversal is pending", errors.Join(err, rerr))
			}
			return nil, connector.Unavailable(c.cfg.Name, what+" approved but not remembered durably, and was reversed", err)
		}
		res.Status, res.Amount, res.Approval, res.Code = status, a.Amount.Amount, o.approval, ""
		return res, nil
	case code == CodePartialApproval:
		// We never ask for a partial approval: give it back, then decline.
		if err := c.giveBack(ctx, req, CodeCustomerCancellation); err != nil {
			return nil, connector.Unavailable(c.cfg.Name, "partial approval could not be reversed: the reversal is pending", err)
		}
		res.Status, res.Message = connector.Declined, ResponseMessage(code)
		return res, nil
	case Unavailable(code):
		return nil, connector.Unavailable(c.cfg.Name, fmt.Sprintf("%s answered %s (%s): not authorized", what, code, ResponseMessage(code)), nil)
	}
	res.Status, res.Message = connector.Declined, ResponseMessage(code)
	return res, nil
}

// giveBack reverses req, which the acquirer approved, for reason (field
// 39), even when ctx is cancelled. A reversal that gets no answer is left
// pending, and its error returned.
func (c *Client) giveBack(ctx context.Context, req *Message, reason string) error {
	rev, err := c.reversalOf(req, reason)
	if err != nil {
		return err
	}
	if err := c.sendReversal(context.WithoutCancel(ctx), rev); err != nil {
		c.mu.Lock()
		c.pending = append(c.pending, &PendingReversal{RRN: req.Get(FieldRRN), Reversal: rev, Since: c.cfg.Now(), Err: err.Error()})
		c.mu.Unlock()
		return err
	}
	return nil
}

// Capture sends an 0220 completion advice of amount (all that is
// authorized when 0). A completion closes the authorization: what it does
// not capture is released, so a partial capture that keeps the rest held
// (final false) is not supported. An unanswered completion gives a
// retryable error: the acquirer takes a repeat of the same RRN once.
func (c *Client) Capture(ctx context.Context, ref string, amount int64, final bool, key string) (*connector.Result, error) {
	if key == "" {
		return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: capture needs an idempotency key")
	}
	o, err := c.original(ctx, ref)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	oamount, captured, voided, sale := o.amount, o.captured, o.voided, o.mti == "0200"
	c.mu.Unlock()
	switch {
	case voided:
		return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: payment %s was voided", ref)
	case amount < 0 || amount > oamount:
		return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: capture of %d out of 0..%d authorized", amount, oamount)
	case amount == 0:
		amount = oamount
	}
	if sale || captured == amount {
		if captured != amount {
			return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: payment %s is a sale, captured at once", ref)
		}
		return &connector.Result{Ref: ref, Status: connector.Captured, Amount: captured, Approval: o.approval, At: c.cfg.Now()}, nil
	}
	if captured != 0 {
		return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: payment %s is already completed with %d", ref, captured)
	}
	if !final && amount < oamount {
		return nil, iotpay.Wrap(iotpay.EINVALID, "iso8583: a completion releases what it does not capture; a partial capture keeping the rest is not supported", connector.ErrUnsupported)
	}
	req := c.baseRequest("0220", o.mid, o.tid)
	req.Set(FieldPAN, o.pan)
	req.Set(FieldProcessingCode, ProcPurchase)
	_ = req.SetInt(FieldAmount, amount, 12)
	if o.expiry != "" {
		req.Set(FieldExpiry, o.expiry)
	}
	req.Set(FieldRRN, ref)
	if o.approval != "" {
		req.Set(FieldApproval, o.approval)
	}
	req.Set(FieldCurrency, o.currency)
	od, err := OriginalData{MTI: o.mti, STAN: o.stan, Transmission: o.transmission, Acquirer: c.cfg.AcquirerID}.String()
	if err != nil {
		return nil, err
	}
	req.Set(FieldOriginalData, od)
	resp, _, err := c.exchange(ctx, req)
	if err != nil {
		return nil, connector.Unavailable(c.cfg.Name, "completion got no answer; repeating it is safe", err)
	}
	code := resp.Get(FieldResponseCode)
	switch {
	case Approved(code):
		c.mu.Lock()
		o.captured = amount
		c.mu.Unlock()
		c.saveDone(ctx, o, "a completion")
		return &connector.Result{Ref: ref, Status: connector.Captured, Amount: amount, Approval: o.approval, At: c.cfg.Now()}, nil
	case Unavailable(code):
		return nil, connector.Unavailable(c.cfg.Name, "completion answered "+code+" ("+ResponseMessage(code)+")", nil)
	}
	return &connector.Result{Ref: ref, Status: connector.Declined, Code: code, Message: ResponseMessage(code), At: c.cfg.Now()}, nil
}

// Void sends an 0400 reversal of the authorization ref (reason 17,
// customer cancellation), repeated as 0401 up to ReversalAttempts times.
// Without an acknowledgement it returns a retryable error: Void again.
func (c *Client) Void(ctx context.Context, ref string, key string) (*connector.Result, error) {
	if key == "" {
		return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: void needs an idempotency key")
	}
	o, err := c.original(ctx, ref)
	if err != nil {
		return nil, err
	}
	req := c.baseRequest(o.mti, o.mid, o.tid) // the original as sent, to reverse
	req.Set(FieldPAN, o.pan)
	req.Set(FieldProcessingCode, ProcPurchase)
	_ = req.SetInt(FieldAmount, o.amount, 12)
	if o.expiry != "" {
		req.Set(FieldExpiry, o.expiry)
	}
	req.Set(FieldRRN, ref)
	req.Set(FieldCurrency, o.currency)
	req.Set(FieldSTAN, o.stan)
	req.Set(FieldTransmission, o.transmission)
	rev, err := c.reversalOf(req, CodeCustomerCancellation)
	if err != nil {
		return nil, err
	}
	if err := c.sendReversal(ctx, rev); err != nil {
		return nil, connector.Unavailable(c.cfg.Name, "void (reversal) got no answer; void again", err)
	}
	c.mu.Lock()
	o.voided = true
	c.mu.Unlock()
	c.saveDone(ctx, o, "a void")
	return &connector.Result{Ref: ref, Status: connector.Voided, Amount: o.amount, At: c.cfg.Now()}, nil
}

// Refund sends an 0200 with processing code 200000 for amount (all that
// is captured and not yet refunded when 0), naming the original in field
// 90; its RRN comes from key. Like a sale, a refund without answer is
// reversed before a retryable error is returned. Result.Amount is what
// is refunded so far; a payment takes at most RefundsMax refunds.
func (c *Client) Refund(ctx context.Context, ref string, amount int64, key string) (*connector.Result, error) {
	if key == "" {
		return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: refund needs an idempotency key")
	}
	o, err := c.original(ctx, ref)
	if err != nil {
		return nil, err
	}
	rrn := RRN(key)
	c.mu.Lock()
	_, repeat := o.refunds[rrn]
	captured, refunded, refunds := o.captured, o.refunded, len(o.refunds)
	c.mu.Unlock()
	if repeat {
		return &connector.Result{Ref: ref, Status: connector.Refunded, Amount: refunded, At: c.cfg.Now()}, nil
	}
	if refunds >= RefundsMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: payment %s has %d refunds already, the most it may have", ref, refunds)
	}
	left := captured - refunded
	if amount == 0 {
		amount = left
	}
	if amount <= 0 || amount > left {
		return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: refund of %d out of 1..%d captured and not refunded", amount, left)
	}
	if err := c.settlePending(ctx, rrn); err != nil {
		return nil, err
	}
	req := c.baseRequest("0200", o.mid, o.tid)
	req.Set(FieldPAN, o.pan)
	req.Set(FieldProcessingCode, ProcRefund)
	_ = req.SetInt(FieldAmount, amount, 12)
	if o.expiry != "" {
		req.Set(FieldExpiry, o.expiry)
	}
	req.Set(FieldPOSEntryMode, posEntryManualNoPIN)
	req.Set(FieldPOSCondition, posConditionNormal)
	req.Set(FieldRRN, rrn)
	req.Set(FieldCurrency, o.currency)
	od, err := OriginalData{MTI: o.mti, STAN: o.stan, Transmission: o.transmission, Acquirer: c.cfg.AcquirerID}.String()
	if err != nil {
		return nil, err
	}
	req.Set(FieldOriginalData, od)
	resp, err := c.financial(ctx, "refund", req)
	if err != nil {
		return nil, err
	}
	code := resp.Get(FieldResponseCode)
	switch {
	case Approved(code):
		c.mu.Lock()
		if o.refunds == nil {
			o.refunds = make(map[string]int64)
		}
		o.refunds[rrn] = amount
		o.refunded += amount
		refunded = o.refunded
		c.mu.Unlock()
		c.saveDone(ctx, o, "a refund")
		return &connector.Result{Ref: ref, Status: connector.Refunded, Amount: refunded, Approval: resp.Get(FieldApproval), At: c.cfg.Now()}, nil
	case Unavailable(code):
		return nil, connector.Unavailable(c.cfg.Name, "refund answered "+code+" ("+ResponseMessage(code)+")", nil)
	}
	return &connector.Result{Ref: ref, Status: connector.Declined, Code: code, Message: ResponseMessage(code), At: c.cfg.Now()}, nil
}

// Status is not supported: acquirers offer no status query in this subset
// of ISO 8583.
func (c *Client) Status(ctx context.Context, ref string) (*connector.Result, error) {
	return nil, connector.ErrUnsupported
}

// Ping sends an 0800 echo test (field 70 = 301) and wants an 0810 with
// response code 00.
func (c *Client) Ping(ctx context.Context) error {
	now := c.cfg.Now()
	req := NewMessage("0800")
	req.Set(FieldTransmission, now.UTC().Format("0102150405"))
	req.Set(FieldNetworkManagement, NetworkEcho)
	resp, _, err := c.exchange(ctx, req)
	if err != nil {
		return connector.Unavailable(c.cfg.Name, "echo got no answer", err)
	}
	if code := resp.Get(FieldResponseCode); code != CodeApproved {
		return connector.Unavailable(c.cfg.Name, "echo answered "+code+" ("+ResponseMessage(code)+")", nil)
	}
	return nil
}

// put remembers o in memory, forgetting the oldest beyond OriginalsMax,
// and returns the original now remembered for its RRN: the one there
// already, unless it was voided and replaceVoided is set (o is a new
// approval of the same RRN). Every caller then works on that one.
func (c *Client) put(o *original, replaceVoided bool) *original {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.origs[o.rrn]
	if ok && !(replaceVoided && old.voided) {
		return old // a repeat answered by the same authorization: keep what was done with it
	}
	if !ok {
		c.order = append(c.order, o.rrn)
	}
	c.origs[o.rrn] = o
	for len(c.origs) > OriginalsMax {
		delete(c.origs, c.order[0])
		c.order = c.order[1:]
	}
	return o
}

// original returns the original ref, from memory or the state store.
func (c *Client) original(ctx context.Context, ref string) (*original, error) {
	o, err := c.lookup(ctx, ref)
	if err != nil {
		return nil, err
	}
	if o == nil {
		return nil, iotpay.Errorf(iotpay.EINVALID, "iso8583: payment %q is not one this client authorized (or it was forgotten)", ref)
	}
	return o, nil
}

// merchant returns the card acceptor ids: m ("MID" or "MID/TID") or the
// configured ones.
func (c *Client) merchant(m string) (mid, tid string, err error) {
	mid, tid = c.cfg.MerchantID, c.cfg.TerminalID
	if m == "" {
		return mid, tid, nil
	}
	mid, t, ok := strings.Cut(m, "/")
	if ok {
		tid = t
	}
	if mid == "" || len(mid) > 15 || badChar(ContentANS, mid) >= 0 || tid == "" || len(tid) > 8 || badChar(ContentANS, tid) >= 0 {
		return "", "", iotpay.Errorf(iotpay.EINVALID, "iso8583: merchant %q is not MID (1-15 characters) or MID/TID (TID 1-8)", m)
	}
	return mid, tid, nil
}

// Card number bounds (ISO/IEC 7812).
const (
	panDigitsMin = 12
	panDigitsMax = 19
)

// ParseSource splits an authorization's source, "PAN" or "PAN=YYMM",
// checking the PAN's length and Luhn digit and the expiry's month.
func ParseSource(s string) (pan, expiry string, err error) {
	pan, expiry, _ = strings.Cut(s, "=")
	if len(pan) < panDigitsMin || len(pan) > panDigitsMax || !allDigits(pan) || !luhn(pan) {
		return "", "", iotpay.Errorf(iotpay.EINVALID, "iso8583: source is not a card number (%d to %d digits, Luhn)", panDigitsMin, panDigitsMax)
	}
	if expiry != "" {
		if len(expiry) != 4 || !allDigits(expiry) {
			return "", "", iotpay.Errorf(iotpay.EINVALID, "iso8583: expiry %q is not YYMM", expiry)
		}
		if mm, _ := strconv.Atoi(expiry[2:]); mm < 1 || mm > 12 {
			return "", "", iotpay.Errorf(iotpay.EINVALID, "iso8583: expiry %q is not YYMM", expiry)
		}
	}
	return pan, expiry, nil
}

func luhn(pan string) bool {
	sum := 0
	for i := 0; i < len(pan); i++ {
		d := int(pan[len(pan)-1-i] - '0')
		if i%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// padRight pads s with spaces to n characters, or cuts it.
func padRight(s string, n int) string {
	if len(s) >= n {
		return s[:n]
	}
	return s + strings.Repeat(" ", n-len(s))
}

// printable replaces what ans does not allow with spaces.
func printable(s string) string {
	b := []byte(s)
	for i, x := range b {
		if x < 0x20 || x > 0x7e {
			b[i] = ' '
		}
	}
	return string(b)
}

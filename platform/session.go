package platform

import (
	"container/list"
	"context"
	"crypto"
	"io"
	"sync"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

// Bounds on end-to-end sessions.
const (
	// SessionsMax bounds the live sessions; the least recently used goes
	// first.
	SessionsMax = 10_000
	// SessionsPerDeviceMax bounds one device's live sessions; a new
	// handshake ends the device's oldest.
	SessionsPerDeviceMax = 4
	// SessionLifetime is how long a session lives after its handshake.
	SessionLifetime = time.Hour
	// SessionMessagesMax bounds the requests one session carries.
	SessionMessagesMax = 100_000
)

// Sessions is the platform's table of end-to-end sessions, in memory:
// keyed by session id, each bound to the device whose channel made it,
// bounded in number (in all and a device), in age and in messages (a zero
// bound is the default). A restart empties it; devices then handshake
// again. Safe for concurrent use.
type Sessions struct {
	Max, PerDeviceMax int           // live sessions in all, and a device's
	Lifetime          time.Duration // from the handshake
	MessagesMax       uint64        // requests a session carries

	mu       sync.Mutex
	byID     map[string]*session
	byKey    map[string]*session // by the device's ephemeral key: a hello is used once
	byDevice map[iotpay.DeviceID][]*session
	lru      list.List // of *session, most recently used first
}

// NewSessions returns an empty table with the default bounds.
func NewSessions() *Sessions {
	return &Sessions{Max: SessionsMax, PerDeviceMax: SessionsPerDeviceMax, Lifetime: SessionLifetime, MessagesMax: SessionMessagesMax}
}

// session is one live session.
type session struct {
	keys    *wire.Session
	device  iotpay.DeviceID
	gx      string
	expires time.Time
	elem    *list.Element

	mu       sync.Mutex // guards window and messages
	window   wire.ReplayWindow
	messages uint64
}

func (t *Sessions) init() {
	if t.byID == nil {
		t.byID, t.byKey, t.byDevice = map[string]*session{}, map[string]*session{}, map[iotpay.DeviceID][]*session{}
	}
}

// add records s, evicting the device's oldest sessions and the least
// recently used ones beyond the bounds. It refuses (false) a session whose
// hello key a live session already used: two copies of one hello racing.
func (t *Sessions) add(s *session) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.init()
	if t.byKey[s.gx] != nil {
		return false
	}
	perDevice, all := t.PerDeviceMax, t.Max
	if perDevice <= 0 {
		perDevice = SessionsPerDeviceMax
	}
	if all <= 0 {
		all = SessionsMax
	}
	for len(t.byDevice[s.device]) >= perDevice {
		t.remove(t.byDevice[s.device][0])
	}
	for len(t.byID) >= all {
		t.remove(t.lru.Back().Value.(*session))
	}
	t.byID[string(s.keys.ID)] = s
	t.byKey[s.gx] = s
	t.byDevice[s.device] = append(t.byDevice[s.device], s)
	s.elem = t.lru.PushFront(s)
	return true
}

// remove forgets s; t.mu is held.
func (t *Sessions) remove(s *session) {
	if t.byID[string(s.keys.ID)] != s {
		return
	}
	delete(t.byID, string(s.keys.ID))
	if t.byKey[s.gx] == s {
		delete(t.byKey, s.gx)
	}
	t.lru.Remove(s.elem)
	ds := t.byDevice[s.device]
	for i, x := range ds {
		if x == s {
			ds = append(ds[:i:i], ds[i+1:]...)
			break
		}
	}
	if len(ds) == 0 {
		delete(t.byDevice, s.device)
	} else {
		t.byDevice[s.device] = ds
	}
}

// get returns the live session of that id, nil if there is none or it
// expired (which ends it).
func (t *Sessions) get(id []byte, now time.Time) *session {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.byID[string(id)]
	if s == nil {
		return nil
	}
	if !now.Before(s.expires) {
		t.remove(s)
		return nil
	}
	t.lru.MoveToFront(s.elem)
	return s
}

// used reports whether a live session was made with that ephemeral key.
func (t *Sessions) used(gx []byte) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byKey[string(gx)] != nil
}

// end forgets s.
func (t *Sessions) end(s *session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.remove(s)
}

// Drop ends every session of device (when it is revoked, say).
func (t *Sessions) Drop(device iotpay.DeviceID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.byDevice[device]) > 0 {
		t.remove(t.byDevice[device][0])
	}
}

// Len is the number of live sessions.
func (t *Sessions) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byID)
}

// EndSessions ends every end-to-end session of device (it was revoked).
func (p *Processor) EndSessions(device iotpay.DeviceID) { p.sessions().Drop(device) }

func (p *Processor) sessions() *Sessions {
	p.sessionsOnce.Do(func() {
		if p.Sessions == nil {
			p.Sessions = NewSessions()
		}
	})
	return p.Sessions
}

// receiptKey is the platform's signing key of suite and its kid.
func (p *Processor) receiptKey(suite wire.Suite) (crypto.Signer, []byte, error) {
	if suite == wire.GM {
		if p.GMReceiptSigner == nil {
			return nil, nil, iotpay.Errorf(iotpay.EINTERNAL, "no gm receipt key")
		}
		return p.GMReceiptSigner, p.GMReceiptKid, nil
	}
	return p.ReceiptSigner, p.ReceiptKid, nil
}

// Handshake answers a device's hello, which arrived on the channel the
// transport authenticated as device, with a signed welcome that sets up a
// session. Checks run in order: form → the hello names the channel's
// device → the device is active → signature under the device's suite and
// key, the hello of that suite (no downgrade) → clock → the ephemeral key
// not already in a live session. A refusal is a signed rejection receipt
// for the hello's bytes; nothing is stored, no money moves.
func (p *Processor) Handshake(ctx context.Context, device iotpay.DeviceID, raw []byte) Result {
	env, h, err := wire.ParseHello(raw)
	if err == nil && iotpay.DeviceID(h.Device) != device {
		p.log().Warn("hello names another device than its channel", "device", device, "claimed", h.Device)
		err = iotpay.Errorf(iotpay.EUNAUTHORIZED, "verification failed")
	}
	if err != nil {
		suite := p.channelSuite(ctx, device)
		p.log().Info("hello refused", "device", device, "err", err)
		return p.reject(suite, device, suite.Hash(raw), nil, nil, err)
	}
	suite := wire.Intl
	dev, err := p.device(ctx, device)
	if err == nil {
		suite, err = wire.SuiteByName(dev.Suite)
	}
	if err != nil {
		return p.reject(suite, device, suite.Hash(raw), nil, nil, err)
	}
	key, err := dev.Key()
	if err == nil {
		err = env.Verify(suite, key)
	}
	if err == nil && h.Suite != suite.Name() {
		err = iotpay.Errorf(iotpay.EUNAUTHORIZED, "hello for suite %q, not the device's %s", h.Suite, suite.Name())
	}
	if err != nil {
		p.log().Warn("hello signature refused", "device", device, "suite", suite.Name(), "alg", env.Alg, "err", err)
		return p.reject(suite, device, suite.Hash(raw), nil, nil, iotpay.Errorf(iotpay.EUNAUTHORIZED, "verification failed"))
	}
	now := p.now()
	skew := p.ClockSkew
	if skew == 0 {
		skew = ClockSkewMax
	}
	if d := time.UnixMilli(h.TimeMs).Sub(now); d > skew || d < -skew {
		return p.reject(suite, device, suite.Hash(raw), nil, nil, iotpay.Errorf(iotpay.EINVALID, "device clock off by %v", d.Round(time.Second)))
	}
	table := p.sessions()
	if table.used(h.Key) {
		p.log().Warn("hello replayed", "device", device)
		return p.reject(suite, device, suite.Hash(raw), nil, nil, iotpay.Errorf(iotpay.EREPLAY, "hello replayed"))
	}
	welcome, sess, err := p.welcome(suite, dev.Challenge, raw, h, now)
	if err != nil {
		p.log().Error("cannot answer hello", "device", device, "err", err)
		return p.reject(suite, device, suite.Hash(raw), nil, nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "try again later", err))
	}
	lifetime := table.Lifetime
	if lifetime <= 0 {
		lifetime = SessionLifetime
	}
	if !table.add(&session{keys: sess, device: device, gx: string(h.Key), expires: now.Add(lifetime)}) {
		p.log().Warn("hello replayed", "device", device)
		return p.reject(suite, device, suite.Hash(raw), nil, nil, iotpay.Errorf(iotpay.EREPLAY, "hello replayed"))
	}
	p.log().Info("session established", "device", device, "suite", suite.Name())
	return Result{Receipt: welcome, Outcome: wire.Approved, Reason: "session established"}
}

// welcome draws the platform's ephemeral key and a session id and signs
// the welcome.
func (p *Processor) welcome(suite wire.Suite, challenge, raw []byte, h *wire.Hello, now time.Time) ([]byte, *wire.Session, error) {
	signer, kid, err := p.receiptKey(suite)
	if err != nil {
		return nil, nil, err
	}
	y, err := wire.NewEphemeral(suite, p.rand())
	if err != nil {
		return nil, nil, err
	}
	id := make([]byte, wire.SessionIDBytes)
	if _, err := io.ReadFull(p.rand(), id); err != nil {
		return nil, nil, err
	}
	if len(challenge) != wire.ChallengeBytes {
		challenge = nil
	}
	return wire.Accept(suite, signer, p.rand(), kid, y, raw, h, &wire.Welcome{Session: id, Challenge: challenge, TimeMs: now.UnixMilli()})
}

// ProcessSealed admits raw, a COSE_Encrypt0 that arrived on the channel
// the transport authenticated as device. Checks run in order: form → a
// live session → the session is the channel's device's → the sequence
// number within the session's replay window and message bound → the
// session's algorithm and key (AEAD) — then the window moves and the
// signed request inside goes through Process exactly as a plain one,
// and its signed receipt goes back sealed under the platform→device key
// with the request's number. A refusal of the envelope is a signed
// rejection receipt for raw (a device re-handshakes on it); nothing
// changes, no money moves.
func (p *Processor) ProcessSealed(ctx context.Context, device iotpay.DeviceID, raw []byte) Result {
	refuse := func(err error) Result {
		suite := p.channelSuite(ctx, device)
		p.log().Info("sealed message refused", "device", device, "err", err)
		return p.reject(suite, device, suite.Hash(raw), nil, nil, err)
	}
	m, err := wire.ParseEncrypt0(raw)
	if err == nil && !m.HasSeq {
		err = iotpay.Errorf(iotpay.EINVALID, "envelope names no session")
	}
	if err != nil {
		return refuse(err)
	}
	table := p.sessions()
	s := table.get(m.Kid, p.now())
	switch {
	case s == nil:
		return refuse(iotpay.Errorf(iotpay.EUNAUTHORIZED, "unknown or expired session"))
	case s.device != device:
		p.log().Warn("session used from another device's channel", "device", device, "session_device", s.device)
		return refuse(iotpay.Errorf(iotpay.EUNAUTHORIZED, "session is not this device's"))
	}
	pt, err := s.admit(m, table.MessagesMax)
	if iotpay.ErrorCode(err) == iotpay.ECONFLICT {
		table.end(s)
	}
	if err != nil {
		return refuse(err)
	}
	res := p.Process(ctx, device, pt)
	if res.Receipt == nil {
		return res
	}
	if res.Receipt, err = s.keys.SealResponse(m.Seq, res.Receipt); err != nil {
		p.log().Error("cannot seal receipt", "device", device, "err", err)
		return refuse(iotpay.Wrap(iotpay.EINTERNAL, "cannot seal receipt", err))
	}
	return res
}

// admit checks m against the replay window and the message bound,
// decrypts it, and only then moves the window (RFC 4303 §3.4.3: a forged
// message must not advance it). A session at its bound is ECONFLICT: the
// caller ends it.
func (s *session) admit(m *wire.Encrypt0, messagesMax uint64) ([]byte, error) {
	if messagesMax == 0 {
		messagesMax = SessionMessagesMax
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.messages >= messagesMax {
		return nil, iotpay.Errorf(iotpay.ECONFLICT, "session used up; handshake again")
	}
	if err := s.window.Check(m.Seq); err != nil {
		return nil, err
	}
	pt, err := s.keys.OpenRequest(m)
	if err != nil {
		return nil, err
	}
	s.window.Accept(m.Seq)
	s.messages++
	return pt, nil
}

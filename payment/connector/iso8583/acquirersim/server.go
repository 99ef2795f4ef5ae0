// Package acquirersim is a card acquirer for tests and demos: a TCP server
// that speaks ISO 8583 with the framing and spec of package iso8583 and
// answers by rules (approve, decline with a code, never answer, drop the
// connection, answer late).
//
// It keeps what it approved, so a test can check that exactly one
// authorization stands: authorizations by RRN with their amount, what was
// captured, refunded and whether they were reversed. A request that
// repeats the RRN of a standing authorization gets the same answer and
// makes no second authorization; once reversed, the RRN may authorize
// anew (a retry after a time-out). It honours 0100 and 0200 (sale, and
// refund with processing code 20), 0220 completions, 0400/0401 reversals
// and 0800 network management (echo, sign-on, sign-off).
package acquirersim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector/iso8583"
)

// Bounds of the server.
const (
	// ReceivedMax bounds the requests Received keeps; older ones are
	// forgotten.
	ReceivedMax = 10_000
	// WriteTimeout bounds writing one answer.
	WriteTimeout = 5 * time.Second
)

// Config configures a Server.
type Config struct {
	// Addr is where to listen ("127.0.0.1:0" in tests).
	Addr string
	// Spec is the message layout (iso8583.Spec87ASCII when nil).
	Spec *iso8583.Spec
	// Framing is the TCP length header (2-byte binary by default).
	Framing iso8583.Framing
	Rules   []Rule
	// Logger receives a line per request and answer (discarded when
	// nil).
	Logger *slog.Logger
	// Now stamps authorizations (time.Now when nil).
	Now func() time.Time
}

// Auth is an approved authorization (0100) or sale (0200).
type Auth struct {
	RRN      string
	MTI      string // 0100 or 0200
	PAN      string
	Currency string // ISO 4217 numeric
	Approval string
	Amount   int64 // authorized, minor units
	Captured int64 // by the sale or a completion
	Refunded int64
	Reversed bool
	// Requests counts the requests this authorization answered: the
	// first and every repeat of its RRN.
	Requests int
	At       time.Time
}

// Refund is an approved refund.
type Refund struct {
	RRN      string // the refund's own
	Original string // the RRN of what it refunds
	Amount   int64
	Reversed bool
}

// answer is a decline kept to be repeated for the same RRN.
type answer struct {
	pan    string
	amount string
	code   string
}

// Server is a running simulator.
type Server struct {
	cfg  Config
	ln   net.Listener
	log  *slog.Logger
	done chan struct{}
	wg   sync.WaitGroup

	mu         sync.Mutex
	closed     bool
	rules      []Rule
	hits       []int // matches per rule, for Times
	conns      map[*simConn]struct{}
	auths      map[string]*Auth // by RRN
	order      []string         // RRNs of auths, by first approval
	byOriginal map[string]string
	refunds    map[string]*Refund // by refund RRN
	declines   map[string]answer  // by MTI and RRN
	received   []*iso8583.Message // a ring of ReceivedMax, oldest at recvNext once full
	recvNext   int
	approvals  int
}

// Start listens on cfg.Addr and serves until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Spec == nil {
		cfg.Spec = iso8583.Spec87ASCII
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg: cfg, log: log, done: make(chan struct{}),
		conns: make(map[*simConn]struct{}), auths: make(map[string]*Auth),
		byOriginal: make(map[string]string), refunds: make(map[string]*Refund),
		declines: make(map[string]answer),
	}
	if err := s.SetRules(cfg.Rules); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "acquirersim: cannot listen on "+cfg.Addr, err)
	}
	s.ln = ln
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// SetRules replaces the rules (and forgets how often each matched).
func (s *Server) SetRules(rules []Rule) error {
	if len(rules) > RulesMax {
		return iotpay.Errorf(iotpay.EINVALID, "acquirersim: more than %d rules", RulesMax)
	}
	rs := make([]Rule, len(rules))
	for i, r := range rules {
		if err := r.check(); err != nil {
			return iotpay.Errorf(iotpay.EINVALID, "rule %d: %s", i+1, iotpay.ErrorMessage(err))
		}
		r.Match.MTI = append([]string(nil), r.Match.MTI...)
		rs[i] = r
	}
	s.mu.Lock()
	s.rules, s.hits = rs, make([]int, len(rs))
	s.mu.Unlock()
	return nil
}

// Close stops listening, closes every connection and waits for the
// server's goroutines. Answers still delayed are never sent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	for sc := range s.conns {
		sc.close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

// Authorizations returns every authorization and sale approved, reversed
// ones included, in the order they were first approved.
func (s *Server) Authorizations() []Auth {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Auth, 0, len(s.order))
	for _, rrn := range s.order {
		out = append(out, *s.auths[rrn])
	}
	return out
}

// Standing returns the authorizations and sales not reversed.
func (s *Server) Standing() []Auth {
	var out []Auth
	for _, a := range s.Authorizations() {
		if !a.Reversed {
			out = append(out, a)
		}
	}
	return out
}

// Auth returns the authorization of rrn.
func (s *Server) Auth(rrn string) (Auth, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.auths[rrn]
	if !ok {
		return Auth{}, false
	}
	return *a, true
}

// Refunds returns the refunds approved, reversed ones included.
func (s *Server) Refunds() []Refund {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Refund, 0, len(s.refunds))
	for _, r := range s.refunds {
		out = append(out, *r)
	}
	return out
}

// Received returns copies of the last ReceivedMax requests, oldest
// first.
func (s *Server) Received() []*iso8583.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*iso8583.Message, 0, len(s.received))
	for _, m := range s.received[s.recvNext:] {
		out = append(out, m.Clone())
	}
	for _, m := range s.received[:s.recvNext] {
		out = append(out, m.Clone())
	}
	return out
}

// Count returns how many of the requests Received keeps are of type mti.
func (s *Server) Count(mti string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.received {
		if m.MTI == mti {
			n++
		}
	}
	return n
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
			default:
				s.log.Error("acquirersim: accept", "err", err)
			}
			return
		}
		sc := &simConn{nc: nc, done: make(chan struct{})}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[sc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(sc)
	}
}

// simConn is one client connection.
type simConn struct {
	nc   net.Conn
	wmu  sync.Mutex
	once sync.Once
	done chan struct{}
}

func (sc *simConn) close() {
	sc.once.Do(func() {
		close(sc.done)
		sc.nc.Close()
	})
}

func (s *Server) write(sc *simConn, m *iso8583.Message) {
	b, err := iso8583.Pack(s.cfg.Spec, m)
	if err != nil {
		s.log.Error("acquirersim: packing an answer", "mti", m.MTI, "err", err)
		return
	}
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	_ = sc.nc.SetWriteDeadline(time.Now().Add(WriteTimeout))
	if err := s.cfg.Framing.WriteFrame(sc.nc, b); err != nil {
		s.log.Info("acquirersim: writing an answer", "err", err)
		sc.close()
	}
}

// serve reads the requests of one connection and handles them in order,
// so state changes follow arrival; only the answers may be late.
func (s *Server) serve(sc *simConn) {
	defer s.wg.Done()
	defer func() {
		sc.close()
		s.mu.Lock()
		delete(s.conns, sc)
		s.mu.Unlock()
	}()
	for {
		b, err := s.cfg.Framing.ReadFrame(sc.nc)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && iotpay.ErrorCode(err) != iotpay.EUNAVAILABLE {
				s.log.Info("acquirersim: bad frame; closing", "err", err)
			}
			return
		}
		m, err := iso8583.Unpack(s.cfg.Spec, b)
		if err != nil {
			s.log.Info("acquirersim: unreadable message; closing", "err", err)
			return
		}
		s.handle(sc, m)
	}
}

// handle decides m by the rules, applies it, and answers as the rule says.
func (s *Server) handle(sc *simConn, m *iso8583.Message) {
	respMTI, err := iso8583.ResponseMTI(m.MTI)
	if err != nil {
		s.log.Info("acquirersim: ignoring a message that is not a request", "mti", m.MTI)
		return
	}
	s.mu.Lock()
	if len(s.received) < ReceivedMax {
		s.received = append(s.received, m)
	} else {
		s.received[s.recvNext] = m
		s.recvNext = (s.recvNext + 1) % ReceivedMax
	}
	rule := s.match(m)
	forced := ""
	if rule != nil && rule.Action != Approve {
		forced = rule.Code
		if rule.Action == Decline && forced == "" {
			forced = iso8583.CodeDoNotHonour
		}
		if forced == iso8583.CodeApproved {
			forced = "" // processed normally
		}
	}
	resp := s.process(m, respMTI, forced)
	s.mu.Unlock()

	if s.log.Enabled(context.Background(), slog.LevelInfo) { // String costs: skip it when nothing logs
		s.log.Info("acquirersim: request", "msg", m.String(), "answer", resp.Get(iso8583.FieldResponseCode), "rule", describe(rule))
	}
	action := Approve
	if rule != nil {
		action = rule.Action
	}
	switch action {
	case Timeout:
	case Drop:
		sc.close()
	case Delay:
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			t := time.NewTimer(rule.Delay)
			defer t.Stop()
			select {
			case <-t.C:
				s.write(sc, resp)
			case <-sc.done:
			case <-s.done:
			}
		}()
	default:
		s.write(sc, resp)
	}
}

func describe(r *Rule) string {
	if r == nil {
		return "default"
	}
	return string(r.Action)
}

// match returns the first rule that matches m, counting it; nil for none.
func (s *Server) match(m *iso8583.Message) *Rule {
	for i := range s.rules {
		r := &s.rules[i]
		if r.Times > 0 && s.hits[i] >= r.Times {
			continue
		}
		if r.matches(m) {
			s.hits[i]++
			rc := *r
			return &rc
		}
	}
	return nil
}

// echoed are the fields an answer copies from its request.
func echoed() []int {
	return []int{
		iso8583.FieldPAN, iso8583.FieldProcessingCode, iso8583.FieldAmount,
		iso8583.FieldTransmission, iso8583.FieldSTAN, iso8583.FieldLocalTime,
		iso8583.FieldLocalDate, iso8583.FieldAcquirer, iso8583.FieldRRN,
		iso8583.FieldTerminal, iso8583.FieldMerchant, iso8583.FieldCurrency,
		iso8583.FieldNetworkManagement, iso8583.FieldOriginalData,
	}
}

// process applies m to the state and returns its answer. forced, when
// set, is a decline the rules impose. Called with s.mu held.
func (s *Server) process(m *iso8583.Message, respMTI, forced string) *iso8583.Message {
	resp := iso8583.NewMessage(respMTI)
	for _, n := range echoed() {
		if v, ok := m.Lookup(n); ok {
			resp.Set(n, v)
		}
	}
	code, approval := s.decide(m, forced)
	resp.Set(iso8583.FieldResponseCode, code)
	if approval != "" {
		resp.Set(iso8583.FieldApproval, approval)
	}
	return resp
}

func (s *Server) decide(m *iso8583.Message, forced string) (code, approval string) {
	has := func(ns ...int) bool {
		for _, n := range ns {
			if !m.Has(n) {
				return false
			}
		}
		return true
	}
	if !has(iso8583.FieldSTAN) {
		return iso8583.CodeFormatError, ""
	}
	proc := m.Get(iso8583.FieldProcessingCode)
	switch m.MTI {
	case "0100", "0200":
		if !has(iso8583.FieldPAN, iso8583.FieldProcessingCode, iso8583.FieldAmount, iso8583.FieldRRN, iso8583.FieldCurrency) {
			return iso8583.CodeFormatError, ""
		}
		if m.MTI == "0200" && strings.HasPrefix(proc, "20") {
			return s.refund(m, forced), ""
		}
		if !strings.HasPrefix(proc, "00") {
			return iso8583.CodeInvalidTransaction, ""
		}
		return s.authorize(m, forced)
	case "0220", "0221":
		if !has(iso8583.FieldAmount, iso8583.FieldRRN) {
			return iso8583.CodeFormatError, ""
		}
		if forced != "" {
			return forced, ""
		}
		return s.complete(m)
	case "0400", "0401":
		if !has(iso8583.FieldRRN) {
			return iso8583.CodeFormatError, ""
		}
		if forced != "" {
			return forced, ""
		}
		return s.reverse(m, strings.HasPrefix(proc, "20")), ""
	case "0800":
		if forced != "" {
			return forced, ""
		}
		switch m.Get(iso8583.FieldNetworkManagement) {
		case iso8583.NetworkEcho, iso8583.NetworkSignOn, "002":
			return iso8583.CodeApproved, ""
		}
	}
	return iso8583.CodeInvalidTransaction, ""
}

// originalKey is what field 90 names a request by: MTI, STAN,
// transmission time and acquirer (the forwarder is left out).
func originalKey(mti, stan, transmission, acquirer string) string {
	if len(acquirer) < 11 {
		acquirer = strings.Repeat("0", 11-len(acquirer)) + acquirer
	}
	return mti + stan + transmission + acquirer
}

func (s *Server) authorize(m *iso8583.Message, forced string) (code, approval string) {
	rrn, pan, amount := m.Get(iso8583.FieldRRN), m.Get(iso8583.FieldPAN), m.Get(iso8583.FieldAmount)
	key := originalKey(m.MTI, m.Get(iso8583.FieldSTAN), m.Get(iso8583.FieldTransmission), m.Get(iso8583.FieldAcquirer))
	n, err := m.Int(iso8583.FieldAmount)
	if err != nil || n <= 0 {
		return iso8583.CodeInvalidAmount, ""
	}
	if a := s.auths[rrn]; a != nil && !a.Reversed {
		if a.PAN != pan || a.Amount != n || a.MTI != m.MTI {
			return iso8583.CodeDuplicate, ""
		}
		a.Requests++
		s.byOriginal[key] = rrn
		return iso8583.CodeApproved, a.Approval
	}
	if d, ok := s.declines[m.MTI+rrn]; ok {
		if d.pan != pan || d.amount != amount {
			return iso8583.CodeDuplicate, ""
		}
		return d.code, ""
	}
	if forced != "" {
		if !iso8583.Unavailable(forced) { // "try again" is not an answer to repeat
			s.declines[m.MTI+rrn] = answer{pan: pan, amount: amount, code: forced}
		}
		return forced, ""
	}
	s.approvals++
	a := &Auth{
		RRN: rrn, MTI: m.MTI, PAN: pan, Currency: m.Get(iso8583.FieldCurrency),
		Approval: fmt.Sprintf("%06d", s.approvals%1_000_000), Amount: n, Requests: 1, At: s.cfg.Now(),
	}
	if m.MTI == "0200" {
		a.Captured = n
	}
	if _, seen := s.auths[rrn]; !seen {
		s.order = append(s.order, rrn)
	}
	s.auths[rrn] = a // a reversed one is replaced: this is a new try
	s.byOriginal[key] = rrn
	return iso8583.CodeApproved, a.Approval
}

func (s *Server) refund(m *iso8583.Message, forced string) string {
	rrn := m.Get(iso8583.FieldRRN)
	n, err := m.Int(iso8583.FieldAmount)
	if err != nil || n <= 0 {
		return iso8583.CodeInvalidAmount
	}
	if r := s.refunds[rrn]; r != nil && !r.Reversed {
		if r.Amount != n {
			return iso8583.CodeDuplicate
		}
		return iso8583.CodeApproved
	}
	if forced != "" {
		return forced
	}
	od, err := iso8583.ParseOriginalData(m.Get(iso8583.FieldOriginalData))
	if err != nil {
		return iso8583.CodeFormatError
	}
	a := s.auths[s.byOriginal[originalKey(od.MTI, od.STAN, od.Transmission, od.Acquirer)]]
	if a == nil || a.Reversed {
		return iso8583.CodeNoSuchRecord
	}
	if n > a.Captured-a.Refunded {
		return iso8583.CodeInvalidAmount
	}
	a.Refunded += n
	s.refunds[rrn] = &Refund{RRN: rrn, Original: a.RRN, Amount: n}
	return iso8583.CodeApproved
}

func (s *Server) complete(m *iso8583.Message) (code, approval string) {
	a := s.auths[m.Get(iso8583.FieldRRN)]
	n, err := m.Int(iso8583.FieldAmount)
	switch {
	case a == nil || a.Reversed:
		return iso8583.CodeNoSuchRecord, ""
	case err != nil || n <= 0 || n > a.Amount:
		return iso8583.CodeInvalidAmount, ""
	case a.MTI == "0200":
		return iso8583.CodeInvalidTransaction, ""
	case a.Captured != 0 && a.Captured != n:
		return iso8583.CodeDuplicate, ""
	}
	a.Captured = n // a repeat sets the same amount again
	return iso8583.CodeApproved, a.Approval
}

func (s *Server) reverse(m *iso8583.Message, ofRefund bool) string {
	rrn := m.Get(iso8583.FieldRRN)
	if ofRefund {
		r := s.refunds[rrn]
		if r == nil {
			return iso8583.CodeNoSuchRecord
		}
		if !r.Reversed {
			r.Reversed = true
			if a := s.auths[r.Original]; a != nil {
				a.Refunded -= r.Amount
			}
		}
		return iso8583.CodeApproved
	}
	a := s.auths[rrn]
	if a == nil {
		return iso8583.CodeNoSuchRecord
	}
	a.Reversed = true // a repeat finds it reversed already: the same answer
	return iso8583.CodeApproved
}

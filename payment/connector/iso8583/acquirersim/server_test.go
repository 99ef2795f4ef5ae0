package acquirersim_test

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/payment/connector/iso8583"
	"github.com/iotpay/iotpay/payment/connector/iso8583/acquirersim"
)

func start(t *testing.T, rules ...acquirersim.Rule) *acquirersim.Server {
	t.Helper()
	s, err := acquirersim.Start(acquirersim.Config{Addr: "127.0.0.1:0", Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// raw is a hand-driven connection to the simulator.
type raw struct {
	t  *testing.T
	nc net.Conn
}

func dial(t *testing.T, s *acquirersim.Server) *raw {
	t.Helper()
	nc, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &raw{t: t, nc: nc}
}

func (r *raw) send(m *iso8583.Message) {
	r.t.Helper()
	b, err := iso8583.Pack(iso8583.Spec87ASCII, m)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := iso8583.WriteFrame(r.nc, b); err != nil {
		r.t.Fatal(err)
	}
}

// recv reads an answer, or returns nil when none comes within d.
func (r *raw) recv(d time.Duration) (*iso8583.Message, error) {
	_ = r.nc.SetReadDeadline(time.Now().Add(d))
	b, err := iso8583.ReadFrame(r.nc)
	if err != nil {
		return nil, err
	}
	return iso8583.Unpack(iso8583.Spec87ASCII, b)
}

func (r *raw) call(m *iso8583.Message) *iso8583.Message {
	r.t.Helper()
	r.send(m)
	a, err := r.recv(5 * time.Second)
	if err != nil {
		r.t.Fatal(err)
	}
	return a
}

func msg(mti string, fields map[int]string) *iso8583.Message {
	return &iso8583.Message{MTI: mti, Fields: fields}
}

func authReq(stan, rrn, pan, amount string) *iso8583.Message {
	return msg("0100", map[int]string{2: pan, 3: "000000", 4: amount, 7: "0615143025", 11: stan, 32: "123456", 37: rrn, 49: "978"})
}

const card = "4111111111111111"

func TestRulesFirstMatchWins(t *testing.T) {
	s := start(t,
		acquirersim.Rule{Match: acquirersim.Match{PANPrefix: "4000", AmountMin: 100, AmountMax: 200}, Action: acquirersim.Decline, Code: "61"},
		acquirersim.Rule{Match: acquirersim.Match{PANPrefix: "4000"}, Action: acquirersim.Decline},
		acquirersim.Rule{Match: acquirersim.Match{MTI: []string{"0100"}, AmountMin: 5000}, Action: acquirersim.Decline, Code: "51", Times: 1},
	)
	r := dial(t, s)
	for i, tc := range []struct {
		pan, amount, want string
	}{
		{"4000000000000002", "000000000150", "61"}, // first rule
		{"4000000000000002", "000000000250", "05"}, // second: decline without code is 05
		{card, "000000005000", "51"},               // third, once
		{card, "000000006000", "00"},               // third is spent: default approve
		{card, "000000000001", "00"},               // no rule
	} {
		a := r.call(authReq("00000"+string(rune('1'+i)), "00000000000"+string(rune('1'+i)), tc.pan, tc.amount))
		if got := a.Get(39); got != tc.want {
			t.Errorf("%s %s: answered %s, want %s", tc.pan, tc.amount, got, tc.want)
		}
		if a.MTI != "0110" || a.Get(11) != "00000"+string(rune('1'+i)) {
			t.Errorf("answer %v", a)
		}
	}
	if n := len(s.Standing()); n != 2 {
		t.Errorf("%d standing, want 2", n)
	}
}

func TestProtocol(t *testing.T) {
	s := start(t)
	r := dial(t, s)
	approved := r.call(authReq("000001", "000000000001", card, "000000001000"))
	if approved.Get(39) != "00" || len(approved.Get(38)) != 6 || approved.Get(37) != "000000000001" || approved.Get(4) != "000000001000" {
		t.Fatalf("approval %v", approved)
	}
	od := "0100" + "000001" + "0615143025" + "00000123456" + "00000000000"
	for _, tc := range []struct {
		name string
		m    *iso8583.Message
		want string
	}{
		{"repeat", authReq("000002", "000000000001", card, "000000001000"), "00"},
		{"repeat changed", authReq("000003", "000000000001", card, "000000002000"), "94"},
		{"missing fields", msg("0100", map[int]string{11: "000004", 2: card}), "30"},
		{"no STAN", msg("0800", map[int]string{70: "301"}), ""},
		{"unknown processing", msg("0100", map[int]string{2: card, 3: "310000", 4: "000000000001", 11: "000005", 37: "000000000005", 49: "978"}), "12"},
		{"completion unknown", msg("0220", map[int]string{4: "000000000100", 11: "000006", 37: "999999999999"}), "25"},
		{"completion too much", msg("0220", map[int]string{4: "000000009999", 11: "000007", 37: "000000000001"}), "13"},
		{"completion", msg("0220", map[int]string{4: "000000000800", 11: "000008", 37: "000000000001"}), "00"},
		{"completion repeat", msg("0221", map[int]string{4: "000000000800", 11: "000009", 37: "000000000001"}), "00"},
		{"completion other amount", msg("0220", map[int]string{4: "000000000700", 11: "000010", 37: "000000000001"}), "94"},
		{"refund", msg("0200", map[int]string{2: card, 3: "200000", 4: "000000000300", 11: "000011", 37: "000000000011", 49: "978", 90: od}), "00"},
		{"refund repeat", msg("0200", map[int]string{2: card, 3: "200000", 4: "000000000300", 11: "000012", 37: "000000000011", 49: "978", 90: od}), "00"},
		{"refund too much", msg("0200", map[int]string{2: card, 3: "200000", 4: "000000000600", 11: "000013", 37: "000000000013", 49: "978", 90: od}), "13"},
		{"refund no original", msg("0200", map[int]string{2: card, 3: "200000", 4: "000000000001", 11: "000014", 37: "000000000014", 49: "978", 90: strings.Repeat("1", 42)}), "25"},
		{"refund reversal", msg("0400", map[int]string{3: "200000", 11: "000015", 37: "000000000011", 90: od}), "00"},
		{"reversal unknown", msg("0400", map[int]string{3: "000000", 11: "000016", 37: "999999999999"}), "25"},
		{"reversal", msg("0400", map[int]string{3: "000000", 11: "000017", 37: "000000000001", 90: od}), "00"},
		{"reversal repeat", msg("0401", map[int]string{3: "000000", 11: "000017", 37: "000000000001", 90: od}), "00"},
		{"completion reversed", msg("0220", map[int]string{4: "000000000800", 11: "000018", 37: "000000000001"}), "25"},
		{"echo", msg("0800", map[int]string{7: "0615143025", 11: "000019", 70: "301"}), "00"},
		{"sign-on", msg("0800", map[int]string{11: "000020", 70: "001"}), "00"},
		{"network unknown", msg("0800", map[int]string{11: "000021", 70: "999"}), "12"},
		{"unknown MTI", msg("0300", map[int]string{11: "000022"}), "12"},
	} {
		a := r.call(tc.m)
		if want, _ := iso8583.ResponseMTI(tc.m.MTI); a.MTI != want {
			t.Errorf("%s: answered by %s, want %s", tc.name, a.MTI, want)
		}
		if tc.want == "" {
			tc.want = "30"
		}
		if got := a.Get(39); got != tc.want {
			t.Errorf("%s: answered %s, want %s", tc.name, got, tc.want)
		}
	}
	a, ok := s.Auth("000000000001")
	if !ok || !a.Reversed || a.Requests != 2 || a.Captured != 800 || a.Refunded != 0 {
		t.Errorf("authorization %+v", a)
	}
	rs := s.Refunds()
	if len(rs) != 1 || !rs[0].Reversed || rs[0].Original != "000000000001" {
		t.Errorf("refunds %+v", rs)
	}
	if len(s.Standing()) != 0 {
		t.Error("standing after reversal")
	}
	if s.Count("0220") != 5 || len(s.Received()) != 24 {
		t.Errorf("received %d, %d completions", len(s.Received()), s.Count("0220"))
	}
}

// TestNotAnswered: answers (a client's 0110) are ignored; an unreadable
// message closes the connection.
func TestNotAnswered(t *testing.T) {
	s := start(t)
	r := dial(t, s)
	r.send(msg("0110", map[int]string{11: "000001", 39: "00"}))
	if a, err := r.recv(100 * time.Millisecond); a != nil || err == nil {
		t.Errorf("answered an answer: %v", a)
	}
	if err := iso8583.WriteFrame(r.nc, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	_ = r.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.nc.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("after garbage: %v, want EOF", err)
	}
}

func TestActions(t *testing.T) {
	s := start(t,
		acquirersim.Rule{Match: acquirersim.Match{AmountMin: 1, AmountMax: 1}, Action: acquirersim.Timeout},
		acquirersim.Rule{Match: acquirersim.Match{AmountMin: 2, AmountMax: 2}, Action: acquirersim.Delay, Delay: 150 * time.Millisecond},
		acquirersim.Rule{Match: acquirersim.Match{AmountMin: 3, AmountMax: 3}, Action: acquirersim.Drop, Code: "05"},
	)
	r := dial(t, s)
	r.send(authReq("000001", "000000000001", card, "000000000001"))
	if a, _ := r.recv(300 * time.Millisecond); a != nil {
		t.Errorf("timeout answered %v", a)
	}
	if _, ok := s.Auth("000000000001"); !ok {
		t.Error("a timed-out request was not processed")
	}
	r = dial(t, s) // the deadline spoiled the first connection
	start := time.Now()
	r.send(authReq("000002", "000000000002", card, "000000000002"))
	r.send(authReq("000003", "000000000003", card, "000000000004")) // answered first
	a1, err := r.recv(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := r.recv(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if a1.Get(11) != "000003" || a2.Get(11) != "000002" || time.Since(start) < 150*time.Millisecond {
		t.Errorf("answers %v then %v after %v", a1, a2, time.Since(start))
	}
	r.send(authReq("000004", "000000000004", card, "000000000003"))
	if _, err := r.recv(5 * time.Second); err == nil {
		t.Error("drop answered")
	}
	if _, ok := s.Auth("000000000004"); ok {
		t.Error("drop with code 05 approved")
	}
}

func TestSetRulesInvalid(t *testing.T) {
	s := start(t)
	for name, r := range map[string]acquirersim.Rule{
		"action":       {Action: "maybe"},
		"code":         {Action: acquirersim.Decline, Code: "5"},
		"approve code": {Action: acquirersim.Approve, Code: "05"},
		"no delay":     {Action: acquirersim.Delay},
		"long delay":   {Action: acquirersim.Delay, Delay: time.Hour},
		"stray delay":  {Action: acquirersim.Timeout, Delay: time.Second},
		"amounts":      {Action: acquirersim.Approve, Match: acquirersim.Match{AmountMin: 10, AmountMax: 5}},
		"times":        {Action: acquirersim.Approve, Times: -1},
		"prefix":       {Action: acquirersim.Approve, Match: acquirersim.Match{PANPrefix: "4x"}},
		"mti":          {Action: acquirersim.Approve, Match: acquirersim.Match{MTI: []string{"100"}}},
	} {
		if err := s.SetRules([]acquirersim.Rule{r}); iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := acquirersim.Start(acquirersim.Config{Addr: "127.0.0.1:0", Rules: []acquirersim.Rule{{Action: "x"}}}); err == nil {
		t.Error("Start with a bad rule")
	}
}

func TestLoadRules(t *testing.T) {
	rules, err := acquirersim.LoadRules(strings.NewReader(`[
		{"pan_prefix": "4000000000000051", "action": "decline", "code": "51"},
		{"amount_min": 100000, "amount_max": 200000, "mti": ["0100", "0200"], "action": "delay", "delay": "1.5s", "times": 2},
		{"action": "approve"}
	]`))
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 3 || rules[0].Code != "51" || rules[1].Delay != 1500*time.Millisecond || rules[1].Times != 2 || len(rules[1].Match.MTI) != 2 || rules[1].Match.AmountMax != 200000 {
		t.Errorf("rules %+v", rules)
	}
	for _, bad := range []string{
		``, `{}`, `[{"action": "approve", "colour": "red"}]`, `[{"action": "nap"}]`,
		`[{"action": "delay", "delay": "soon"}]`, `[] []`, `[{"action": "decline", "code": "ABC"}]`,
		"[" + strings.Repeat(" ", acquirersim.RulesFileBytesMax) + "]",
	} {
		if _, err := acquirersim.LoadRules(strings.NewReader(bad)); iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("%.40q: %v", bad, err)
		}
	}
}

// lines is a writer that hands each line written to a channel.
type lines struct {
	mu  sync.Mutex
	buf strings.Builder
	ch  chan string
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		s := l.buf.String()
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			return len(p), nil
		}
		select {
		case l.ch <- s[:i]:
		default:
		}
		l.buf.Reset()
		l.buf.WriteString(s[i+1:])
	}
}

func TestMainCommand(t *testing.T) {
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "rules.json")
	if err := os.WriteFile(rulesFile, []byte(`[{"pan_prefix": "4000000000000051", "action": "decline", "code": "51"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lines{ch: make(chan string, 1)}
	done := make(chan error, 1)
	go func() {
		done <- acquirersim.Main(ctx, []string{"--addr", "127.0.0.1:0", "--spec", "bcd", "--rules", rulesFile}, out, io.Discard)
	}()
	var line string
	select {
	case line = <-out.ch:
	case err := <-done:
		t.Fatalf("Main ended: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("Main printed no address")
	}
	f := strings.Fields(line)
	if len(f) < 4 || f[1] != "listening" || !strings.HasPrefix(f[3], "127.0.0.1:") || !strings.Contains(line, "87bcd") {
		t.Fatalf("printed %q", line)
	}
	c, err := iso8583.New(iso8583.Config{Addr: f[3], Spec: iso8583.Spec87BCD, MerchantID: "M", TerminalID: "T", AcquirerID: "1", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := c.Authorize(ctx, &connector.Authorization{Key: "k", Amount: iotpay.Money{Amount: 100, Currency: "EUR"}, Source: "4000000000000051"})
	if err != nil || res.Code != "51" {
		t.Fatalf("%+v, %v", res, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Main did not stop")
	}
}

func TestMainFlags(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{
		{"--spec", "xml"}, {"--framing", "lines"}, {"--rules", "/nonexistent/rules.json"}, {"extra"},
	} {
		if err := acquirersim.Main(ctx, args, io.Discard, io.Discard); iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("%q: %v", args, err)
		}
	}
	if err := acquirersim.Main(ctx, []string{"-h"}, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	if err := acquirersim.Main(ctx, []string{"--nope"}, io.Discard, io.Discard); err == nil {
		t.Error("unknown flag")
	}
	var help strings.Builder
	_ = acquirersim.Main(ctx, []string{"-h"}, io.Discard, &help)
	if sc := bufio.NewScanner(strings.NewReader(help.String())); !sc.Scan() || !strings.Contains(sc.Text(), "iotpay acquirer-sim") {
		t.Errorf("usage %q", help.String())
	}
}

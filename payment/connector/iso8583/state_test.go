package iso8583_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/internal/syncbuf"
	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/payment/connector/iso8583"
	"github.com/iotpay/iotpay/payment/connector/iso8583/acquirersim"
)

var update = flag.Bool("update", false, "rewrite testdata/state_v1.json from the current encoder")

// memStore is a connector.StateStore in memory. failSave and failLoad
// make it fail as a store that is down would.
type memStore struct {
	mu       sync.Mutex
	states   map[[2]string][]byte // by connector and ref
	saves    int
	failSave bool
	failLoad bool
}

var _ connector.StateStore = (*memStore)(nil)

func newMemStore() *memStore { return &memStore{states: make(map[[2]string][]byte)} }

func (s *memStore) SaveState(ctx context.Context, name, ref string, state []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failSave {
		return errors.New("memstore: disk full")
	}
	s.states[[2]string{name, ref}] = bytes.Clone(state)
	s.saves++
	return nil
}

func (s *memStore) LoadState(ctx context.Context, name, ref string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failLoad {
		return nil, errors.New("memstore: disk on fire")
	}
	b, ok := s.states[[2]string{name, ref}]
	if !ok {
		return nil, iotpay.Errorf(iotpay.ENOTFOUND, "memstore: no state of %s %s", name, ref)
	}
	return bytes.Clone(b), nil
}

func (s *memStore) fail(save, load bool) {
	s.mu.Lock()
	s.failSave, s.failLoad = save, load
	s.mu.Unlock()
}

// get returns the state of ref of the connector iso8583.
func (s *memStore) get(ref string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.states[[2]string{iso8583.DefaultName, ref}])
}

func (s *memStore) put(ref string, b []byte) {
	s.mu.Lock()
	s.states[[2]string{iso8583.DefaultName, ref}] = bytes.Clone(b)
	s.mu.Unlock()
}

// newStateEnv starts a simulator and a client to it that keeps its state
// in st (set with Config.State).
func newStateEnv(t *testing.T, st *memStore, rules []acquirersim.Rule) *env {
	t.Helper()
	return newEnv(t, rules, func(c *iso8583.Config, _ *acquirersim.Config) { c.State = st })
}

// restart closes e's client and starts another to the same simulator, as
// a restarted process would, given st with KeepState.
func restart(t *testing.T, e *env, st *memStore) {
	t.Helper()
	if err := e.c.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Addr = e.sim.Addr()
	c, err := iso8583.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.KeepState(st)
	t.Cleanup(func() { c.Close() })
	e.c = c
}

// lastOf returns the last request of type mti the simulator received.
func lastOf(t *testing.T, sim *acquirersim.Server, mti string) *iso8583.Message {
	t.Helper()
	rec := sim.Received()
	for i := len(rec) - 1; i >= 0; i-- {
		if rec[i].MTI == mti {
			return rec[i]
		}
	}
	t.Fatalf("no %s received", mti)
	return nil
}

// wantNamesOriginal checks that m's field 90 names orig.
func wantNamesOriginal(t *testing.T, m, orig *iso8583.Message) {
	t.Helper()
	od, err := iso8583.ParseOriginalData(m.Get(iso8583.FieldOriginalData))
	if err != nil {
		t.Fatalf("%s field 90: %v", m.MTI, err)
	}
	if od.MTI != orig.MTI || od.STAN != orig.Get(11) || od.Transmission != orig.Get(7) || od.Acquirer != "00000"+testAcquirer {
		t.Errorf("%s field 90 %+v does not name %s STAN %s at %s", m.MTI, od, orig.MTI, orig.Get(11), orig.Get(7))
	}
}

// TestStateAfterRestart: a client restarted with the same store captures
// and refunds what the one before authorized, and answers a repeated
// refund as a repeat after a second restart.
func TestStateAfterRestart(t *testing.T) {
	st := newMemStore()
	e := newStateEnv(t, st, nil)
	ctx := context.Background()
	res, err := e.c.Authorize(ctx, auth("pay_s1/authorize", cardOK+"=2812", 1000))
	if err != nil || res.Status != connector.Authorized {
		t.Fatalf("authorize: %+v, %v", res, err)
	}
	ref := res.Ref
	if st.get(ref) == nil {
		t.Fatal("the approval was not saved")
	}
	orig := lastOf(t, e.sim, "0100")

	restart(t, e, st)
	c, err := e.c.Capture(ctx, ref, 0, true, "pay_s1/capture")
	if err != nil || c.Status != connector.Captured || c.Amount != 1000 || c.Approval != res.Approval {
		t.Fatalf("capture after a restart: %+v, %v", c, err)
	}
	completion := lastOf(t, e.sim, "0220")
	wantNamesOriginal(t, completion, orig)
	for n, want := range map[int]string{2: cardOK, 4: "000000001000", 14: "2812", 37: ref, 38: res.Approval, 41: "TERM0001", 42: "MERCHANT0000001", 49: "978"} {
		if completion.Get(n) != want {
			t.Errorf("0220 field %d = %q, want %q", n, completion.Get(n), want)
		}
	}
	if a, _ := e.sim.Auth(ref); a.Captured != 1000 {
		t.Errorf("acquirer captured %d", a.Captured)
	}
	r, err := e.c.Refund(ctx, ref, 400, "pay_s1/refund/1")
	if err != nil || r.Status != connector.Refunded || r.Amount != 400 {
		t.Fatalf("refund after a restart: %+v, %v", r, err)
	}
	wantNamesOriginal(t, lastOf(t, e.sim, "0200"), orig)
	checkGoldenState(t, st.get(ref))

	restart(t, e, st)
	sent := len(e.sim.Received())
	r2, err := e.c.Refund(ctx, ref, 400, "pay_s1/refund/1")
	if err != nil || r2.Status != connector.Refunded || r2.Amount != 400 {
		t.Fatalf("repeated refund after a second restart: %+v, %v", r2, err)
	}
	if n := len(e.sim.Received()); n != sent {
		t.Errorf("a repeated refund sent %d requests", n-sent)
	}
	if c2, err := e.c.Capture(ctx, ref, 0, true, "pay_s1/capture"); err != nil || c2.Amount != 1000 || len(e.sim.Received()) != sent {
		t.Errorf("repeated capture: %+v, %v", c2, err)
	}
	r3, err := e.c.Refund(ctx, ref, 0, "pay_s1/refund/2")
	if err != nil || r3.Amount != 1000 {
		t.Fatalf("refund of the rest: %+v, %v", r3, err)
	}
	if a, _ := e.sim.Auth(ref); a.Refunded != 1000 || len(e.sim.Refunds()) != 2 {
		t.Errorf("acquirer refunded %d in %d refunds", a.Refunded, len(e.sim.Refunds()))
	}
}

// checkGoldenState compares the state of TestStateAfterRestart's payment,
// captured and partly refunded, with testdata/state_v1.json.
func checkGoldenState(t *testing.T, got []byte) {
	t.Helper()
	name := filepath.Join("testdata", "state_v1.json")
	if *update {
		if err := os.WriteFile(name, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("state\n got %s\nwant %s", got, want)
	}
}

// TestVoidAfterRestart: a restarted client voids what the one before
// authorized; the void is kept, so a capture after another restart is
// refused.
func TestVoidAfterRestart(t *testing.T) {
	st := newMemStore()
	e := newStateEnv(t, st, nil)
	ctx := context.Background()
	res, err := e.c.Authorize(ctx, auth("pay_s2/authorize", cardOK, 700))
	if err != nil {
		t.Fatal(err)
	}
	orig := lastOf(t, e.sim, "0100")
	restart(t, e, st)
	v, err := e.c.Void(ctx, res.Ref, "pay_s2/void")
	if err != nil || v.Status != connector.Voided || v.Amount != 700 {
		t.Fatalf("void after a restart: %+v, %v", v, err)
	}
	rev := lastOf(t, e.sim, "0400")
	wantNamesOriginal(t, rev, orig)
	if rev.Get(37) != res.Ref || rev.Get(39) != iso8583.CodeCustomerCancellation || rev.Get(4) != "000000000700" {
		t.Errorf("reversal %v", rev)
	}
	wantNoneStanding(t, e.sim)
	restart(t, e, st)
	if _, err := e.c.Capture(ctx, res.Ref, 0, true, "pay_s2/capture"); iotpay.ErrorCode(err) != iotpay.EINVALID || !strings.Contains(err.Error(), "voided") {
		t.Errorf("capture of a voided payment after a restart: %v", err)
	}
}

// TestRepeatAfterRestart: an authorization repeated after a restart keeps
// what was done with the original: its capture is not made again.
func TestRepeatAfterRestart(t *testing.T) {
	st := newMemStore()
	e := newStateEnv(t, st, nil)
	ctx := context.Background()
	a := auth("pay_s3/authorize", cardOK, 500)
	res, err := e.c.Authorize(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Capture(ctx, res.Ref, 0, true, "pay_s3/capture"); err != nil {
		t.Fatal(err)
	}
	restart(t, e, st)
	again, err := e.c.Authorize(ctx, a)
	if err != nil || again.Ref != res.Ref || again.Approval != res.Approval {
		t.Fatalf("repeat: %+v, %v", again, err)
	}
	if c, err := e.c.Capture(ctx, res.Ref, 0, true, "pay_s3/capture"); err != nil || c.Amount != 500 {
		t.Errorf("capture after the repeat: %+v, %v", c, err)
	}
	if n := e.sim.Count("0220"); n != 1 {
		t.Errorf("%d completions", n)
	}
}

// TestStateMissing: a ref the store does not have is EINVALID; a store
// that cannot be read is a retryable EUNAVAILABLE. Nothing is sent.
func TestStateMissing(t *testing.T) {
	st := newMemStore()
	e := newStateEnv(t, st, nil)
	ctx := context.Background()
	calls := map[string]func(ref string) error{
		"capture": func(ref string) error { _, err := e.c.Capture(ctx, ref, 0, true, "k"); return err },
		"void":    func(ref string) error { _, err := e.c.Void(ctx, ref, "k"); return err },
		"refund":  func(ref string) error { _, err := e.c.Refund(ctx, ref, 0, "k"); return err },
	}
	for name, call := range calls {
		if err := call("000000000001"); iotpay.ErrorCode(err) != iotpay.EINVALID || !strings.Contains(err.Error(), "not one this client authorized") {
			t.Errorf("%s of a ref absent from the store: %v", name, err)
		}
	}
	st.fail(false, true)
	for name, call := range calls {
		err := call("000000000001")
		if !connector.Retryable(err) || !strings.Contains(err.Error(), "cannot load") {
			t.Errorf("%s with a store that cannot load: %v, want retryable", name, err)
		}
	}
	if n := len(e.sim.Received()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

// TestStateCorrupt: a state that does not decode is an error that is not
// retryable, never a panic, and nothing is sent.
func TestStateCorrupt(t *testing.T) {
	good := readGoldenState(t)
	ref := iso8583.RRN("pay_s1/authorize")
	for name, b := range map[string][]byte{
		"empty":          {},
		"garbage":        []byte("\x00\xffnot json"),
		"null":           []byte("null"),
		"no version":     []byte(`{"mti":"0100"}`),
		"version 2":      bytes.Replace(good, []byte(`{"v":1,`), []byte(`{"v":2,`), 1),
		"version string": bytes.Replace(good, []byte(`{"v":1,`), []byte(`{"v":"1",`), 1),
		"truncated":      good[:len(good)-1],
		"trailing":       append(bytes.Clone(good), '\n'),
		"unknown field":  bytes.Replace(good, []byte(`"voided":false`), []byte(`"voided":false,"cvv":"123"`), 1),
		"repeated field": bytes.Replace(good, []byte(`"voided":false`), []byte(`"voided":false,"voided":true`), 1),
		"reordered":      bytes.Replace(good, []byte(`"v":1,"mti":"0100"`), []byte(`"mti":"0100","v":1`), 1),
		"spaced":         bytes.Replace(good, []byte(`"v":1`), []byte(`"v": 1`), 1),
		"bad luhn":       bytes.Replace(good, []byte(cardOK), []byte("4111111111111112"), 1),
		"over captured":  bytes.Replace(good, []byte(`"captured":1000`), []byte(`"captured":1001`), 1),
		"refunds sum":    bytes.Replace(good, []byte(`"refunded":400`), []byte(`"refunded":300`), 1),
		"other rrn":      bytes.Replace(good, []byte(ref), []byte("000000000042"), 1),
		"too long":       bytes.Repeat([]byte(" "), iso8583.StateBytesMax+1),
	} {
		t.Run(name, func(t *testing.T) {
			if bytes.Equal(b, good) {
				t.Fatal("the corruption changed nothing")
			}
			if _, err := iso8583.ReencodeState(b); iotpay.ErrorCode(err) != iotpay.EINVALID && name != "other rrn" {
				t.Errorf("decode: %v, want EINVALID", err)
			}
			st := newMemStore()
			e := newStateEnv(t, st, nil)
			st.put(ref, b)
			_, err := e.c.Refund(context.Background(), ref, 0, "k")
			if err == nil || connector.Retryable(err) || !strings.Contains(err.Error(), "unreadable") {
				t.Errorf("refund of a corrupt state: %v", err)
			}
			if n := len(e.sim.Received()); n != 0 {
				t.Errorf("%d requests sent", n)
			}
		})
	}
	if b, err := iso8583.ReencodeState(good); err != nil || !bytes.Equal(b, good) {
		t.Errorf("the golden state decodes to %s, %v", b, err)
	}
}

func readGoldenState(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "state_v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAuthorizeNotRemembered: an approval that cannot be saved (or whose
// earlier state cannot be loaded) is reversed and answered with a
// retryable error; the retry, once the store is back, authorizes afresh.
func TestAuthorizeNotRemembered(t *testing.T) {
	for _, tc := range []struct {
		name       string
		save, load bool
		sale       bool
	}{
		{name: "save fails", save: true},
		{name: "save of a sale fails", save: true, sale: true},
		{name: "load fails", load: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newMemStore()
			e := newStateEnv(t, st, nil)
			ctx := context.Background()
			a := auth("pay_s4/authorize", cardOK, 300)
			a.Capture = tc.sale
			st.fail(tc.save, tc.load)
			_, err := e.c.Authorize(ctx, a)
			wantRetryable(t, err, "approved but not remembered durably, and was reversed")
			if n := e.sim.Count("0400"); n != 1 {
				t.Errorf("%d reversals", n)
			}
			if r := lastOf(t, e.sim, "0400"); r.Get(39) != iso8583.CodeSuspectedMalfunction {
				t.Errorf("reversal reason %q", r.Get(39))
			}
			wantNoneStanding(t, e.sim)
			st.fail(false, false)
			ref := iso8583.RRN(a.Key)
			if _, err := e.c.Void(ctx, ref, "pay_s4/void"); iotpay.ErrorCode(err) != iotpay.EINVALID {
				t.Errorf("the reversed approval is remembered: void %v", err)
			}
			res, err := e.c.Authorize(ctx, a)
			if err != nil || res.Ref != ref {
				t.Fatalf("retry: %+v, %v", res, err)
			}
			if st.get(ref) == nil {
				t.Error("the retry was not saved")
			}
			if s := e.sim.Standing(); len(s) != 1 || s[0].RRN != ref {
				t.Errorf("standing %+v", s)
			}
		})
	}
	t.Run("reversal unanswered", func(t *testing.T) {
		st := newMemStore()
		e := newStateEnv(t, st, []acquirersim.Rule{
			{Match: acquirersim.Match{MTI: []string{"0400", "0401"}}, Action: acquirersim.Timeout, Times: iso8583.DefaultReversalAttempts},
		})
		st.fail(true, false)
		_, err := e.c.Authorize(context.Background(), auth("pay_s5/authorize", cardOK, 300))
		wantRetryable(t, err, "its reversal got no answer: the reversal is pending")
		if p := e.c.PendingReversals(); len(p) != 1 || p[0].RRN != iso8583.RRN("pay_s5/authorize") {
			t.Fatalf("pending %+v", p)
		}
		if err := e.c.RetryReversals(context.Background()); err != nil {
			t.Fatal(err)
		}
		wantNoneStanding(t, e.sim)
	})
}

// TestSaveFailsAfterApproval: a capture, refund or void the acquirer
// approved is answered though it cannot be saved, and the failure logged.
func TestSaveFailsAfterApproval(t *testing.T) {
	st := newMemStore()
	var log syncbuf.Buffer
	e := newEnv(t, nil, func(c *iso8583.Config, _ *acquirersim.Config) {
		c.State = st
		c.Logger = slog.New(slog.NewTextHandler(&log, nil))
	})
	ctx := context.Background()
	res, err := e.c.Authorize(ctx, auth("pay_s6/authorize", cardOK, 900))
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.c.Authorize(ctx, auth("pay_s7/authorize", cardOK, 100))
	if err != nil {
		t.Fatal(err)
	}
	st.fail(true, false)
	if c, err := e.c.Capture(ctx, res.Ref, 0, true, "pay_s6/capture"); err != nil || c.Amount != 900 {
		t.Errorf("capture: %+v, %v", c, err)
	}
	if r, err := e.c.Refund(ctx, res.Ref, 100, "pay_s6/refund"); err != nil || r.Amount != 100 {
		t.Errorf("refund: %+v, %v", r, err)
	}
	if r, err := e.c.Void(ctx, v.Ref, "pay_s7/void"); err != nil || r.Status != connector.Voided {
		t.Errorf("void: %+v, %v", r, err)
	}
	for _, what := range []string{"a completion", "a refund", "a void"} {
		if !strings.Contains(log.String(), "level=ERROR msg=\"iso8583: "+what+" done at the acquirer but not saved") {
			t.Errorf("log does not tell of %s not saved:\n%s", what, log.String())
		}
	}
}

// TestConcurrentRefundsSaved: refunds of one payment made at once by a
// restarted client all reach the store, whatever the order their saves
// ran in.
func TestConcurrentRefundsSaved(t *testing.T) {
	const n = 20
	st := newMemStore()
	e := newStateEnv(t, st, nil)
	e.c.Close()
	e.c = nil
	cfg := testConfig()
	cfg.Addr, cfg.State = e.sim.Addr(), st
	cfg.Timeout = 5 * testTimeout
	c1, err := iso8583.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a := auth("pay_s8/authorize", cardOK, 100*n)
	a.Capture = true
	res, err := c1.Authorize(ctx, a)
	c1.Close()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := iso8583.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c2.Refund(ctx, res.Ref, 100, fmt.Sprintf("pay_s8/refund/%d", i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	c2.Close()
	c3, err := iso8583.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	sent := len(e.sim.Received())
	for i := range n {
		r, err := c3.Refund(ctx, res.Ref, 100, fmt.Sprintf("pay_s8/refund/%d", i))
		if err != nil || r.Amount != 100*n {
			t.Errorf("repeat of refund %d: %+v, %v", i, r, err)
		}
	}
	if got := len(e.sim.Received()); got != sent {
		t.Errorf("%d refunds sent again", got-sent)
	}
}

package iso8583_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/payment/connector/iso8583"
	"github.com/iotpay/iotpay/payment/connector/iso8583/acquirersim"
)

// Test cards: Luhn-valid numbers whose prefixes the rules below act on.
const (
	cardOK       = "4111111111111111"
	cardDecline  = "4000000000000051" // rules decline it with 51
	cardTimeout  = "4000000000000119" // rules never answer it
	cardDrop     = "4000000000000127" // rules drop the connection on it
	cardDown     = "4000000000000911" // rules answer 91
	cardBroken   = "4000000000000960" // rules answer 96
	testTimeout  = 200 * time.Millisecond
	testAcquirer = "123456"
)

// testNow is the clock of the tests' messages.
func testNow() time.Time {
	return time.Date(2026, 6, 15, 16, 30, 25, 0, time.FixedZone("CEST", 2*3600))
}

func eur(minor int64) iotpay.Money { return iotpay.Money{Amount: minor, Currency: "EUR"} }

type env struct {
	sim *acquirersim.Server
	c   *iso8583.Client
}

// newEnv starts a simulator with rules on 127.0.0.1 and a client to it.
func newEnv(t testing.TB, rules []acquirersim.Rule, tweak ...func(*iso8583.Config, *acquirersim.Config)) *env {
	t.Helper()
	scfg := acquirersim.Config{Addr: "127.0.0.1:0", Rules: rules, Now: testNow}
	ccfg := testConfig()
	for _, f := range tweak {
		f(&ccfg, &scfg)
	}
	sim, err := acquirersim.Start(scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	ccfg.Addr = sim.Addr()
	c, err := iso8583.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &env{sim: sim, c: c}
}

// testConfig is the tests' client configuration, but for Addr.
func testConfig() iso8583.Config {
	return iso8583.Config{
		MerchantID: "MERCHANT0000001", TerminalID: "TERM0001", AcquirerID: testAcquirer, MCC: "5999",
		Timeout: testTimeout, Now: testNow,
	}
}

// standardRules are the rules of the test cards.
func standardRules() []acquirersim.Rule {
	return []acquirersim.Rule{
		{Match: acquirersim.Match{PANPrefix: cardDecline}, Action: acquirersim.Decline, Code: "51"},
		{Match: acquirersim.Match{PANPrefix: cardTimeout}, Action: acquirersim.Timeout},
		{Match: acquirersim.Match{PANPrefix: cardDrop}, Action: acquirersim.Drop},
		{Match: acquirersim.Match{PANPrefix: cardDown}, Action: acquirersim.Decline, Code: "91"},
		{Match: acquirersim.Match{PANPrefix: cardBroken}, Action: acquirersim.Decline, Code: "96"},
	}
}

func auth(key, source string, minor int64) *connector.Authorization {
	return &connector.Authorization{Payment: "pay_test", Key: key, Amount: eur(minor), Source: source, Descriptor: "IOTPAY VENDING 1"}
}

func wantRetryable(t *testing.T, err error, says string) {
	t.Helper()
	if !connector.Retryable(err) {
		t.Fatalf("error %v is not retryable (EUNAVAILABLE)", err)
	}
	if !strings.Contains(err.Error(), says) {
		t.Errorf("error %q does not say %q", err, says)
	}
}

func wantNoneStanding(t *testing.T, sim *acquirersim.Server) {
	t.Helper()
	if s := sim.Standing(); len(s) != 0 {
		t.Errorf("%d authorizations standing at the acquirer: %+v", len(s), s)
	}
}

func TestAuthorizeApproved(t *testing.T) {
	e := newEnv(t, standardRules())
	res, err := e.c.Authorize(context.Background(), auth("pay_1/authorize", cardOK+"=2812", 1250))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != connector.Authorized || res.Ref != iso8583.RRN("pay_1/authorize") || res.Amount != 1250 || len(res.Approval) != 6 || !res.At.Equal(testNow()) {
		t.Errorf("result %+v", res)
	}
	st := e.sim.Standing()
	if len(st) != 1 || st[0].RRN != res.Ref || st[0].Amount != 1250 || st[0].Currency != "978" || st[0].MTI != "0100" || st[0].Approval != res.Approval {
		t.Fatalf("standing %+v", st)
	}
	got := e.sim.Received()
	if len(got) != 1 {
		t.Fatalf("received %d requests", len(got))
	}
	m := got[0]
	for n, want := range map[int]string{
		2: cardOK, 3: "000000", 4: "000000001250", 7: "0615143025", 11: "000001", 12: "163025", 13: "0615",
		14: "2812", 18: "5999", 22: "012", 25: "00", 32: testAcquirer, 37: res.Ref, 41: "TERM0001",
		42: "MERCHANT0000001", 43: "IOTPAY VENDING 1" + strings.Repeat(" ", 24), 49: "978",
	} {
		if m.Get(n) != want {
			t.Errorf("0100 field %d = %q, want %q", n, m.Get(n), want)
		}
	}
	if m.MTI != "0100" || len(m.Fields) != 17 {
		t.Errorf("request %v", m)
	}
}

func TestSaleCaptured(t *testing.T) {
	e := newEnv(t, nil)
	a := auth("pay_2/authorize", cardOK, 990)
	a.Capture = true
	a.Merchant = "SHOP42/T42"
	res, err := e.c.Authorize(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != connector.Captured || res.Amount != 990 {
		t.Errorf("result %+v", res)
	}
	m := e.sim.Received()[0]
	if m.MTI != "0200" || m.Get(41) != "T42     " || m.Get(42) != "SHOP42         " {
		t.Errorf("request %v", m)
	}
	if st := e.sim.Standing(); len(st) != 1 || st[0].Captured != 990 {
		t.Errorf("standing %+v", st)
	}
	// Capturing a sale is a no-op that says so.
	c, err := e.c.Capture(context.Background(), res.Ref, 0, true, "pay_2/capture")
	if err != nil || c.Status != connector.Captured || c.Amount != 990 {
		t.Errorf("capture of a sale: %+v, %v", c, err)
	}
	if e.sim.Count("0220") != 0 {
		t.Error("a sale was completed")
	}
}

func TestDeclined51(t *testing.T) {
	e := newEnv(t, standardRules())
	res, err := e.c.Authorize(context.Background(), auth("pay_3/authorize", cardDecline, 5000))
	if err != nil {
		t.Fatalf("a decline is a result, not an error: %v", err)
	}
	if res.Status != connector.Declined || res.Code != "51" || res.Message != "insufficient funds" || res.Ref == "" {
		t.Errorf("result %+v", res)
	}
	wantNoneStanding(t, e.sim)
	// A repeat gets the same decline, and makes nothing.
	res2, err := e.c.Authorize(context.Background(), auth("pay_3/authorize", cardDecline, 5000))
	if err != nil || res2.Code != "51" {
		t.Errorf("repeat: %+v, %v", res2, err)
	}
}

func TestIssuerUnavailable(t *testing.T) {
	e := newEnv(t, standardRules())
	for _, card := range []string{cardDown, cardBroken} {
		_, err := e.c.Authorize(context.Background(), auth("pay_4/"+card, card, 100))
		wantRetryable(t, err, "not authorized")
	}
	wantNoneStanding(t, e.sim)
	if n := e.sim.Count("0400"); n != 0 {
		t.Errorf("%d reversals of requests answered 91/96", n)
	}
	if len(e.c.PendingReversals()) != 0 {
		t.Error("pending reversals")
	}
}

// TestTimeoutReverses: an authorization without answer is reversed, and
// the error says so.
func TestTimeoutReverses(t *testing.T) {
	e := newEnv(t, standardRules())
	start := time.Now()
	_, err := e.c.Authorize(context.Background(), auth("pay_5/authorize", cardTimeout, 2500))
	wantRetryable(t, err, "authorization timed out and was reversed")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	if n := e.sim.Count("0400"); n != 1 {
		t.Fatalf("acquirer saw %d reversals, want 1", n)
	}
	wantNoneStanding(t, e.sim)
	all := e.sim.Authorizations()
	if len(all) != 1 || !all[0].Reversed {
		t.Errorf("authorizations %+v: want the one approved and reversed", all)
	}
	var rev *iso8583.Message
	for _, m := range e.sim.Received() {
		if m.MTI == "0400" {
			rev = m
		}
	}
	od, err := iso8583.ParseOriginalData(rev.Get(iso8583.FieldOriginalData))
	if err != nil {
		t.Fatal(err)
	}
	orig := e.sim.Received()[0]
	if od.MTI != "0100" || od.STAN != orig.Get(11) || od.Transmission != orig.Get(7) || od.Acquirer != "00000"+testAcquirer {
		t.Errorf("field 90 %+v of original %v", od, orig)
	}
	if rev.Get(37) != orig.Get(37) || rev.Get(39) != "68" || rev.Get(11) == orig.Get(11) || rev.Get(4) != orig.Get(4) {
		t.Errorf("reversal %v of %v", rev, orig)
	}
	if len(e.c.PendingReversals()) != 0 {
		t.Error("a reversal answered is pending")
	}
}

// TestDelayedAnswerReverses: an answer later than Timeout counts as none;
// when it comes, it is dropped.
func TestDelayedAnswerReverses(t *testing.T) {
	e := newEnv(t, []acquirersim.Rule{{Match: acquirersim.Match{AmountMin: 7000}, Action: acquirersim.Delay, Delay: 2 * testTimeout}})
	_, err := e.c.Authorize(context.Background(), auth("pay_6/authorize", cardOK, 7000))
	wantRetryable(t, err, "reversed")
	wantNoneStanding(t, e.sim)
	time.Sleep(2 * testTimeout) // the late 0110 arrives and is dropped
	res, err := e.c.Authorize(context.Background(), auth("pay_7/authorize", cardOK, 100))
	if err != nil || res.Status != connector.Authorized {
		t.Fatalf("after a late answer: %+v, %v", res, err)
	}
}

// TestDropReversesAfterRedial: the acquirer closes the connection on an
// authorization; the client redials and reverses it.
func TestDropReversesAfterRedial(t *testing.T) {
	e := newEnv(t, standardRules())
	_, err := e.c.Authorize(context.Background(), auth("pay_8/authorize", cardDrop, 300))
	wantRetryable(t, err, "authorization lost its connection and was reversed")
	if n := e.sim.Count("0400"); n != 1 {
		t.Fatalf("acquirer saw %d reversals, want 1", n)
	}
	wantNoneStanding(t, e.sim)
	res, err := e.c.Authorize(context.Background(), auth("pay_9/authorize", cardOK, 300))
	if err != nil || res.Status != connector.Authorized {
		t.Fatalf("after the drop: %+v, %v", res, err)
	}
}

// TestReversalUnanswered: a reversal that never gets an answer is left
// pending, retried on request and before a new try of the same operation.
func TestReversalUnanswered(t *testing.T) {
	reversals := []string{"0400", "0401"}
	t.Run("no answer", func(t *testing.T) {
		e := newEnv(t, []acquirersim.Rule{
			{Match: acquirersim.Match{MTI: []string{"0100"}}, Action: acquirersim.Timeout, Times: 1},
			{Match: acquirersim.Match{MTI: reversals}, Action: acquirersim.Timeout, Times: 3},
		})
		_, err := e.c.Authorize(context.Background(), auth("pay_10/authorize", cardOK, 400))
		wantRetryable(t, err, "its reversal got no answer either: the reversal is pending")
		if e.sim.Count("0400") != 1 || e.sim.Count("0401") != 2 {
			t.Errorf("acquirer saw %d 0400 and %d 0401, want 1 and 2", e.sim.Count("0400"), e.sim.Count("0401"))
		}
		p := e.c.PendingReversals()
		if len(p) != 1 || p[0].RRN != iso8583.RRN("pay_10/authorize") || p[0].Reversal.MTI != "0400" {
			t.Fatalf("pending %+v", p)
		}
		if err := e.c.RetryReversals(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(e.c.PendingReversals()) != 0 {
			t.Error("still pending")
		}
		wantNoneStanding(t, e.sim)
	})
	t.Run("refused until retried", func(t *testing.T) {
		e := newEnv(t, []acquirersim.Rule{
			{Match: acquirersim.Match{MTI: []string{"0100"}}, Action: acquirersim.Timeout, Times: 1},
			{Match: acquirersim.Match{MTI: reversals}, Action: acquirersim.Decline, Code: "96", Times: 3},
		})
		key := "pay_11/authorize"
		_, err := e.c.Authorize(context.Background(), auth(key, cardOK, 400))
		wantRetryable(t, err, "reversal is pending")
		if st := e.sim.Standing(); len(st) != 1 {
			t.Fatalf("want the unreversed authorization standing, got %+v", st)
		}
		// The same operation again: the pending reversal goes first, then
		// the new try authorizes afresh under the same RRN.
		res, err := e.c.Authorize(context.Background(), auth(key, cardOK, 400))
		if err != nil || res.Status != connector.Authorized || res.Ref != iso8583.RRN(key) {
			t.Fatalf("retry: %+v, %v", res, err)
		}
		if len(e.c.PendingReversals()) != 0 {
			t.Error("still pending")
		}
		st := e.sim.Standing()
		if len(st) != 1 || st[0].Requests != 1 || e.sim.Count("0100") != 2 {
			t.Errorf("standing %+v after %d 0100", st, e.sim.Count("0100"))
		}
	})
}

func TestCaptureVoidRefund(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	res, err := e.c.Authorize(ctx, auth("pay_12/authorize", cardOK+"=2812", 1000))
	if err != nil {
		t.Fatal(err)
	}
	ref := res.Ref

	_, err = e.c.Capture(ctx, ref, 600, false, "pay_12/capture")
	if !connector.IsUnsupported(err) {
		t.Errorf("partial capture keeping the rest: %v, want unsupported", err)
	}
	c, err := e.c.Capture(ctx, ref, 0, true, "pay_12/capture")
	if err != nil || c.Status != connector.Captured || c.Amount != 1000 || c.Ref != ref {
		t.Fatalf("capture: %+v, %v", c, err)
	}
	if a, _ := e.sim.Auth(ref); a.Captured != 1000 {
		t.Errorf("acquirer captured %d", a.Captured)
	}
	completion := e.sim.Received()[1]
	if completion.MTI != "0220" || completion.Get(37) != ref || completion.Get(38) != res.Approval || completion.Get(4) != "000000001000" || !completion.Has(90) {
		t.Errorf("completion %v", completion)
	}
	if c2, err := e.c.Capture(ctx, ref, 1000, true, "pay_12/capture"); err != nil || c2.Amount != 1000 {
		t.Errorf("repeat capture: %+v, %v", c2, err)
	}
	// The authorization repeated (its answer was lost): the same result,
	// and the capture already made is remembered.
	again, err := e.c.Authorize(ctx, auth("pay_12/authorize", cardOK+"=2812", 1000))
	if err != nil || again.Ref != ref || again.Approval != res.Approval {
		t.Fatalf("repeat authorization: %+v, %v", again, err)
	}
	if c3, err := e.c.Capture(ctx, ref, 0, true, "pay_12/capture"); err != nil || c3.Amount != 1000 {
		t.Errorf("capture after the repeat: %+v, %v", c3, err)
	}
	if n := e.sim.Count("0220"); n != 1 {
		t.Errorf("%d completions", n)
	}

	r1, err := e.c.Refund(ctx, ref, 400, "pay_12/refund/1")
	if err != nil || r1.Status != connector.Refunded || r1.Amount != 400 {
		t.Fatalf("refund: %+v, %v", r1, err)
	}
	r1b, err := e.c.Refund(ctx, ref, 400, "pay_12/refund/1")
	if err != nil || r1b.Amount != 400 {
		t.Fatalf("repeat refund: %+v, %v", r1b, err)
	}
	r2, err := e.c.Refund(ctx, ref, 0, "pay_12/refund/2")
	if err != nil || r2.Amount != 1000 {
		t.Fatalf("refund of the rest: %+v, %v", r2, err)
	}
	if _, err := e.c.Refund(ctx, ref, 1, "pay_12/refund/3"); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("refund beyond the capture: %v", err)
	}
	if a, _ := e.sim.Auth(ref); a.Refunded != 1000 || len(e.sim.Refunds()) != 2 {
		t.Errorf("acquirer refunded %d in %d refunds", a.Refunded, len(e.sim.Refunds()))
	}
	for _, m := range e.sim.Received() {
		if m.MTI == "0200" && (m.Get(3) != "200000" || m.Get(37) == ref) {
			t.Errorf("refund request %v", m)
		}
	}

	v, err := e.c.Authorize(ctx, auth("pay_13/authorize", cardOK, 700))
	if err != nil {
		t.Fatal(err)
	}
	vr, err := e.c.Void(ctx, v.Ref, "pay_13/void")
	if err != nil || vr.Status != connector.Voided || vr.Amount != 700 {
		t.Fatalf("void: %+v, %v", vr, err)
	}
	if a, _ := e.sim.Auth(v.Ref); !a.Reversed {
		t.Error("voided authorization stands")
	}
	rev := e.sim.Received()[len(e.sim.Received())-1]
	if rev.MTI != "0400" || rev.Get(39) != "17" || rev.Get(37) != v.Ref {
		t.Errorf("void sent %v", rev)
	}
	if _, err := e.c.Capture(ctx, v.Ref, 0, true, "pay_13/capture"); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("capture after void: %v", err)
	}
	if st := e.sim.Standing(); len(st) != 1 || st[0].RRN != ref {
		t.Errorf("standing %+v", st)
	}

	for name, err := range map[string]error{
		"capture": func() error { _, err := e.c.Capture(ctx, "000000000000", 0, true, "k"); return err }(),
		"void":    func() error { _, err := e.c.Void(ctx, "000000000000", "k"); return err }(),
		"refund":  func() error { _, err := e.c.Refund(ctx, "000000000000", 0, "k"); return err }(),
		"no key":  func() error { _, err := e.c.Capture(ctx, ref, 0, true, ""); return err }(),
	} {
		if iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
	}
}

// TestRefundTimeoutReverses: a refund is an 0200 too; without an answer
// it is reversed.
func TestRefundTimeoutReverses(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	a := auth("pay_14/authorize", cardOK, 800)
	a.Capture = true
	res, err := e.c.Authorize(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sim.SetRules([]acquirersim.Rule{{Match: acquirersim.Match{MTI: []string{"0200"}}, Action: acquirersim.Timeout, Times: 1}}); err != nil {
		t.Fatal(err)
	}
	_, err = e.c.Refund(ctx, res.Ref, 300, "pay_14/refund")
	wantRetryable(t, err, "refund timed out and was reversed")
	if a, _ := e.sim.Auth(res.Ref); a.Refunded != 0 || a.Reversed {
		t.Errorf("after the refund's reversal: %+v", a)
	}
	r, err := e.c.Refund(ctx, res.Ref, 300, "pay_14/refund")
	if err != nil || r.Amount != 300 {
		t.Fatalf("retry: %+v, %v", r, err)
	}
	if a, _ := e.sim.Auth(res.Ref); a.Refunded != 300 {
		t.Errorf("refunded %d", a.Refunded)
	}
}

func TestPing(t *testing.T) {
	e := newEnv(t, []acquirersim.Rule{{Match: acquirersim.Match{MTI: []string{"0800"}}, Action: acquirersim.Decline, Code: "96", Times: 1}})
	err := e.c.Ping(context.Background())
	wantRetryable(t, err, "echo answered 96")
	if err := e.c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := e.sim.Received()[1]
	if m.MTI != "0800" || m.Get(70) != "301" || m.Get(7) != "0615143025" {
		t.Errorf("echo %v", m)
	}
	e.sim.Close()
	wantRetryable(t, e.c.Ping(context.Background()), "echo got no answer")
}

// TestConcurrentAuthorizations: answers come back out of order (the
// smaller amounts answer later) and each reaches its request by STAN.
func TestConcurrentAuthorizations(t *testing.T) {
	const n = 40
	e := newEnv(t, []acquirersim.Rule{{Match: acquirersim.Match{AmountMax: n / 2}, Action: acquirersim.Delay, Delay: 50 * time.Millisecond}},
		func(c *iso8583.Config, _ *acquirersim.Config) { c.Timeout = 5 * time.Second })
	var wg sync.WaitGroup
	results := make([]*connector.Result, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = e.c.Authorize(context.Background(), auth(fmt.Sprintf("pay_c%d/authorize", i), cardOK, int64(i+1)))
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("authorization %d: %v", i, errs[i])
		}
		if r := results[i]; r.Amount != int64(i+1) || r.Ref != iso8583.RRN(fmt.Sprintf("pay_c%d/authorize", i)) {
			t.Errorf("authorization %d got %+v", i, r)
		}
		if a, ok := e.sim.Auth(results[i].Ref); !ok || a.Amount != int64(i+1) || a.Approval != results[i].Approval {
			t.Errorf("acquirer has %+v for %d", a, i)
		}
	}
	if st := e.sim.Standing(); len(st) != n {
		t.Errorf("%d standing, want %d", len(st), n)
	}
}

// TestIdempotentRepeat: the same key gives the same RRN, and the acquirer
// answers the repeat without a second authorization.
func TestIdempotentRepeat(t *testing.T) {
	e := newEnv(t, nil)
	r1, err := e.c.Authorize(context.Background(), auth("pay_15/authorize", cardOK, 1500))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := e.c.Authorize(context.Background(), auth("pay_15/authorize", cardOK, 1500))
	if err != nil {
		t.Fatal(err)
	}
	if r1.Ref != r2.Ref || r1.Approval != r2.Approval {
		t.Errorf("repeat answered %+v, first %+v", r2, r1)
	}
	all := e.sim.Authorizations()
	if len(all) != 1 || all[0].Requests != 2 || e.sim.Count("0100") != 2 {
		t.Errorf("authorizations %+v", all)
	}
	rec := e.sim.Received()
	if rec[0].Get(11) == rec[1].Get(11) || rec[0].Get(37) != rec[1].Get(37) {
		t.Errorf("STANs %s %s, RRNs %s %s", rec[0].Get(11), rec[1].Get(11), rec[0].Get(37), rec[1].Get(37))
	}
	// The same RRN with another amount is refused as a duplicate.
	r3, err := e.c.Authorize(context.Background(), auth("pay_15/authorize", cardOK, 1600))
	if err != nil || r3.Status != connector.Declined || r3.Code != "94" {
		t.Errorf("changed repeat: %+v, %v", r3, err)
	}
}

// TestRetryAfterReversal: the engine retries an operation that timed out
// with the same key; the reversed RRN authorizes anew, once.
func TestRetryAfterReversal(t *testing.T) {
	e := newEnv(t, []acquirersim.Rule{{Action: acquirersim.Timeout, Times: 1}})
	_, err := e.c.Authorize(context.Background(), auth("pay_16/authorize", cardOK, 900))
	wantRetryable(t, err, "reversed")
	res, err := e.c.Authorize(context.Background(), auth("pay_16/authorize", cardOK, 900))
	if err != nil || res.Status != connector.Authorized {
		t.Fatalf("retry: %+v, %v", res, err)
	}
	if st := e.sim.Standing(); len(st) != 1 || st[0].RRN != res.Ref {
		t.Errorf("standing %+v", st)
	}
}

// TestCancelledStillReverses: a caller that gives up does not leave an
// authorization behind.
func TestCancelledStillReverses(t *testing.T) {
	e := newEnv(t, standardRules())
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout/4)
	defer cancel()
	_, err := e.c.Authorize(ctx, auth("pay_17/authorize", cardTimeout, 100))
	wantRetryable(t, err, "reversed")
	if e.sim.Count("0400") != 1 {
		t.Error("no reversal")
	}
	wantNoneStanding(t, e.sim)
}

func TestPartialApprovalReversed(t *testing.T) {
	e := newEnv(t, []acquirersim.Rule{{Match: acquirersim.Match{MTI: []string{"0100"}}, Action: acquirersim.Decline, Code: "10"}})
	res, err := e.c.Authorize(context.Background(), auth("pay_18/authorize", cardOK, 100))
	if err != nil || res.Status != connector.Declined || res.Code != "10" {
		t.Fatalf("partial approval: %+v, %v", res, err)
	}
	if e.sim.Count("0400") != 1 {
		t.Error("partial approval not reversed")
	}
}

func TestStatusUnsupported(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.c.Status(context.Background(), "000000000001"); !connector.IsUnsupported(err) {
		t.Errorf("Status: %v", err)
	}
	if e.c.Name() != "iso8583" {
		t.Errorf("Name %q", e.c.Name())
	}
}

func TestAuthorizeInvalid(t *testing.T) {
	e := newEnv(t, nil)
	for name, a := range map[string]*connector.Authorization{
		"no key":           {Amount: eur(1), Source: cardOK},
		"not a card":       {Key: "k", Amount: eur(1), Source: "tok_visa"},
		"bad Luhn":         {Key: "k", Amount: eur(1), Source: "4111111111111112"},
		"unknown currency": {Key: "k", Amount: iotpay.Money{Amount: 1, Currency: "XXX"}, Source: cardOK},
		"zero amount":      {Key: "k", Amount: eur(0), Source: cardOK},
		"too large":        {Key: "k", Amount: eur(iso8583.AmountMax + 1), Source: cardOK},
		"bad merchant":     {Key: "k", Amount: eur(1), Source: cardOK, Merchant: "M/TERMINAL99"},
	} {
		if _, err := e.c.Authorize(context.Background(), a); iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
	}
	if _, err := e.c.Authorize(context.Background(), nil); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("nil: %v", err)
	}
	if n := len(e.sim.Received()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
	for _, c := range []iotpay.Currency{"USD", "GBP", "CHF", "CNY", "JPY"} {
		a := auth("pay_19/"+string(c), cardOK, 100)
		a.Amount.Currency = c
		if _, err := e.c.Authorize(context.Background(), a); err != nil {
			t.Errorf("%s: %v", c, err)
		}
	}
}

// TestBCDSpec runs the client and simulator on Spec87BCD with 4-digit
// ASCII length headers.
func TestBCDSpec(t *testing.T) {
	e := newEnv(t, standardRules(), func(c *iso8583.Config, s *acquirersim.Config) {
		c.Spec, s.Spec = iso8583.Spec87BCD, iso8583.Spec87BCD
		c.Framing, s.Framing = iso8583.FrameASCII4, iso8583.FrameASCII4
	})
	ctx := context.Background()
	res, err := e.c.Authorize(ctx, auth("pay_20/authorize", cardOK+"=2812", 1234))
	if err != nil || res.Status != connector.Authorized {
		t.Fatalf("%+v, %v", res, err)
	}
	if _, err := e.c.Capture(ctx, res.Ref, 1234, true, "pay_20/capture"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Refund(ctx, res.Ref, 0, "pay_20/refund"); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = e.c.Authorize(ctx, auth("pay_21/authorize", cardTimeout, 100))
	wantRetryable(t, err, "reversed")
	if st := e.sim.Standing(); len(st) != 1 || st[0].Refunded != 1234 {
		t.Errorf("standing %+v", st)
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := iso8583.New(iso8583.Config{Addr: addr, MerchantID: "M", TerminalID: "T", AcquirerID: "1", Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Authorize(context.Background(), auth("pay_22/authorize", cardOK, 100))
	wantRetryable(t, err, "authorization not sent")
	if len(c.PendingReversals()) != 0 {
		t.Error("a request never sent has a pending reversal")
	}
}

func TestClose(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := e.c.Authorize(context.Background(), auth("pay_23/authorize", cardOK, 100))
	wantRetryable(t, err, "closed")
	if err := e.c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNewInvalid(t *testing.T) {
	ok := iso8583.Config{Addr: "127.0.0.1:1", MerchantID: "M", TerminalID: "T", AcquirerID: "1"}
	small, err := iso8583.NewSpec("small", iso8583.ASCII, iso8583.BitmapBinary, map[int]iso8583.Field{
		3: {Name: "processing code", Length: iso8583.Fixed, Max: 6, Content: iso8583.ContentN},
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func(*iso8583.Config){
		"no addr":          func(c *iso8583.Config) { c.Addr = "" },
		"long merchant":    func(c *iso8583.Config) { c.MerchantID = strings.Repeat("M", 16) },
		"no terminal":      func(c *iso8583.Config) { c.TerminalID = "" },
		"acquirer letters": func(c *iso8583.Config) { c.AcquirerID = "ACQ" },
		"mcc":              func(c *iso8583.Config) { c.MCC = "59" },
		"timeout":          func(c *iso8583.Config) { c.Timeout = -1 },
		"attempts":         func(c *iso8583.Config) { c.ReversalAttempts = iso8583.ReversalAttemptsMax + 1 },
		"framing":          func(c *iso8583.Config) { c.Framing = 9 },
		"spec":             func(c *iso8583.Config) { c.Spec = small },
	} {
		cfg := ok
		f(&cfg)
		if _, err := iso8583.New(cfg); iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("%s: %v", name, err)
		}
	}
}

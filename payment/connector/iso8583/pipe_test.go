package iso8583_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/iotpay/iotpay/payment/connector"
	"github.com/iotpay/iotpay/payment/connector/iso8583"
)

// pipeAcquirer is an acquirer a test drives by hand over net.Pipe: each
// dial of the client hands the test the other end.
type pipeAcquirer struct {
	conns chan net.Conn
}

func newPipeClient(t *testing.T, timeout time.Duration) (*iso8583.Client, *pipeAcquirer) {
	t.Helper()
	p := &pipeAcquirer{conns: make(chan net.Conn, 4)}
	c, err := iso8583.New(iso8583.Config{
		Addr: "pipe", MerchantID: "MERCHANT0000001", TerminalID: "TERM0001", AcquirerID: testAcquirer,
		Timeout: timeout, ReversalAttempts: 1, Now: testNow,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			a, b := net.Pipe()
			p.conns <- b
			return a, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		for {
			select {
			case nc := <-p.conns:
				nc.Close()
			default:
				return
			}
		}
	})
	return c, p
}

func (p *pipeAcquirer) accept(t *testing.T) net.Conn {
	t.Helper()
	select {
	case nc := <-p.conns:
		t.Cleanup(func() { nc.Close() })
		return nc
	case <-time.After(5 * time.Second):
		t.Fatal("the client did not dial")
		return nil
	}
}

func readMsg(t *testing.T, nc net.Conn) *iso8583.Message {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := iso8583.ReadFrame(nc)
	if err != nil {
		t.Fatal(err)
	}
	m, err := iso8583.Unpack(iso8583.Spec87ASCII, b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func writeMsg(t *testing.T, nc net.Conn, m *iso8583.Message) {
	t.Helper()
	if err := iso8583.WriteFrame(nc, mustPack(t, iso8583.Spec87ASCII, m)); err != nil {
		t.Fatal(err)
	}
}

// answer returns the approval of req.
func answer(req *iso8583.Message, code string) *iso8583.Message {
	mti, _ := iso8583.ResponseMTI(req.MTI)
	r := iso8583.NewMessage(mti)
	for _, n := range []int{2, 3, 4, 7, 11, 37, 41, 42, 49, 70} {
		if v, ok := req.Lookup(n); ok {
			r.Set(n, v)
		}
	}
	r.Set(38, "APP"+req.Get(11)[3:])
	r.Set(39, code)
	return r
}

// TestOutOfOrderAnswers answers two requests in the reverse order of
// their arrival.
func TestOutOfOrderAnswers(t *testing.T) {
	c, p := newPipeClient(t, 5*time.Second)
	var wg sync.WaitGroup
	res := make([]*connector.Result, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			res[i], err = c.Authorize(context.Background(), auth([]string{"a", "b"}[i], cardOK, int64(100*(i+1))))
			if err != nil {
				t.Error(err)
			}
		}()
	}
	nc := p.accept(t)
	first, second := readMsg(t, nc), readMsg(t, nc)
	writeMsg(t, nc, answer(second, "00"))
	writeMsg(t, nc, answer(first, "00"))
	wg.Wait()
	for i, r := range res {
		if r == nil || r.Amount != int64(100*(i+1)) || r.Ref != iso8583.RRN([]string{"a", "b"}[i]) {
			t.Errorf("result %d: %+v", i, r)
		}
	}
	if res[0] != nil && res[1] != nil && res[0].Approval == res[1].Approval {
		t.Error("both got the same approval")
	}
}

// TestAcquirerEcho: the client answers the acquirer's own echo test.
func TestAcquirerEcho(t *testing.T) {
	c, p := newPipeClient(t, 5*time.Second)
	done := make(chan error, 1)
	go func() { done <- c.Ping(context.Background()) }()
	nc := p.accept(t)
	ping := readMsg(t, nc)
	echo := iso8583.NewMessage("0800")
	echo.Set(7, "0615143025")
	echo.Set(11, "777777")
	echo.Set(70, "301")
	writeMsg(t, nc, echo)
	got := readMsg(t, nc)
	if got.MTI != "0810" || got.Get(11) != "777777" || got.Get(39) != "00" || got.Get(70) != "301" {
		t.Errorf("client answered %v", got)
	}
	writeMsg(t, nc, answer(ping, "00"))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestWrongAnswerReverses: an answer that carries another RRN is no
// answer: the authorization is reversed.
func TestWrongAnswerReverses(t *testing.T) {
	c, p := newPipeClient(t, 5*time.Second)
	done := make(chan error, 1)
	go func() {
		_, err := c.Authorize(context.Background(), auth("pay_w/authorize", cardOK, 100))
		done <- err
	}()
	nc := p.accept(t)
	req := readMsg(t, nc)
	bad := answer(req, "00")
	bad.Set(37, "999999999999")
	writeMsg(t, nc, bad)
	rev := readMsg(t, nc)
	if rev.MTI != "0400" || rev.Get(37) != req.Get(37) {
		t.Fatalf("want a reversal, got %v", rev)
	}
	writeMsg(t, nc, answer(rev, "00"))
	wantRetryable(t, <-done, "reversed")
}

// TestGarbageFromAcquirer: an unreadable message ends the connection; the
// request waiting on it is reversed over a new one.
func TestGarbageFromAcquirer(t *testing.T) {
	c, p := newPipeClient(t, 5*time.Second)
	done := make(chan error, 1)
	go func() {
		_, err := c.Authorize(context.Background(), auth("pay_g/authorize", cardOK, 100))
		done <- err
	}()
	nc := p.accept(t)
	readMsg(t, nc)
	if err := iso8583.WriteFrame(nc, []byte("0110garbage")); err != nil {
		t.Fatal(err)
	}
	nc2 := p.accept(t)
	rev := readMsg(t, nc2)
	if rev.MTI != "0400" {
		t.Fatalf("want a reversal, got %v", rev)
	}
	writeMsg(t, nc2, answer(rev, "25")) // the acquirer never saw it: nothing to reverse
	wantRetryable(t, <-done, "lost its connection and was reversed")
}

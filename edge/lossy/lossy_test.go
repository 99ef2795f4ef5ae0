package lossy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// server echoes every datagram, answers "who" with the sender's address,
// and records the sequence numbers of 4-byte datagrams in arrival order.
type server struct {
	conn *net.UDPConn
	mu   sync.Mutex
	seqs []uint32
}

func newServer(t *testing.T) *server {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s, done := &server{conn: conn}, make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			msg := buf[:n]
			if string(msg) == "who" {
				msg = []byte(from.String())
			} else if n == 4 {
				s.mu.Lock()
				s.seqs = append(s.seqs, binary.BigEndian.Uint32(msg))
				s.mu.Unlock()
			}
			conn.WriteToUDPAddrPort(msg, from)
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return s
}

func (s *server) received() []uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seqs)
}

func (s *server) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seqs)
}

func listen(t *testing.T, s *server, cfg Config) *Proxy {
	p, err := Listen("", s.conn.LocalAddr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *Proxy) *net.UDPConn {
	c, err := net.DialUDP("udp", nil, p.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func writeSeq(t *testing.T, c *net.UDPConn, seq int) {
	if _, err := c.Write(binary.BigEndian.AppendUint32(nil, uint32(seq))); err != nil {
		t.Fatal(err)
	}
}

// sendUp sends sequence numbers 0..n-1 and returns what the server got.
// Every 50 datagrams it waits until the proxy and the server have caught
// up (delayed copies included), so that no socket buffer overflows and
// only the proxy loses datagrams.
func sendUp(t *testing.T, p *Proxy, c *net.UDPConn, s *server, n int) []uint32 {
	for i := range n {
		writeSeq(t, c, i)
		if i%50 == 49 || i == n-1 {
			waitFor(t, "the proxy and the server", func() bool {
				st := p.Stats().Up
				return st.Received == uint64(i+1) && st.Forwarded+st.Dropped == st.Received+st.Duplicated &&
					uint64(s.count()) == st.Forwarded
			})
		}
	}
	return s.received()
}

func roundTrip(c *net.UDPConn, msg string, timeout time.Duration) (string, error) {
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

func TestValidate(t *testing.T) {
	for field, cfg := range map[string]Config{
		"Up.Loss":           {Up: Impairment{Loss: 1.5}},
		"Down.Duplicate":    {Down: Impairment{Duplicate: -0.1}},
		"Up.Reorder":        {Up: Impairment{Reorder: math.NaN()}},
		"Down.Delay":        {Down: Impairment{Delay: -time.Second}},
		"Up.Jitter":         {Up: Impairment{Jitter: -1}},
		"Down.ReorderDelay": {Down: Impairment{ReorderDelay: -1}},
		"DatagramBytesMax":  {DatagramBytesMax: DatagramBytesLimit + 1},
		"IdleTimeout":       {IdleTimeout: -1},
	} {
		var ce *ConfigError
		if err := cfg.Validate(); !errors.As(err, &ce) || ce.Field != field {
			t.Errorf("%s: Validate() = %v", field, err)
		}
	}
	if err := (Config{Up: Impairment{Loss: 1}, Down: Impairment{Duplicate: 0}}).Validate(); err != nil {
		t.Error(err)
	}
	if _, err := Listen("", "192.0.2.1:5683", Config{}); err == nil {
		t.Error("Listen accepted a target off loopback")
	}
}

func TestNoImpairmentRoundTripsInOrder(t *testing.T) {
	p := listen(t, newServer(t), Config{})
	c := dial(t, p)
	buf := make([]byte, 16)
	for burst := range 10 {
		for i := range 20 {
			writeSeq(t, c, burst*20+i)
		}
		for i := range 20 {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := c.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			if got := binary.BigEndian.Uint32(buf[:n]); got != uint32(burst*20+i) {
				t.Fatalf("got %d, want %d", got, burst*20+i)
			}
		}
	}
	waitFor(t, "the stats", func() bool { return p.Stats().Down.Forwarded == 200 }) // counted after the write
	if st := p.Stats(); st.Up.Forwarded != 200 || st.Up.Dropped+st.Down.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestLossWithinBinomialBounds(t *testing.T) {
	const n = 2000
	for _, loss := range []float64{0.10, 0.30} {
		t.Run(fmt.Sprint("loss=", loss), func(t *testing.T) {
			s := newServer(t)
			p := listen(t, s, Config{Up: Impairment{Loss: loss}, Seed: 1})
			got := sendUp(t, p, dial(t, p), s, n)
			st := p.Stats().Up
			mean, sigma := n*loss, math.Sqrt(n*loss*(1-loss))
			if math.Abs(float64(st.Dropped)-mean) > 4*sigma {
				t.Errorf("dropped %d of %d, want %.0f ± %.0f", st.Dropped, n, mean, 4*sigma)
			}
			if st.Received != n || st.Forwarded+st.Dropped != n || uint64(len(got)) != st.Forwarded {
				t.Errorf("stats %+v, server got %d", st, len(got))
			}
		})
	}
}

func TestDuplicateIsObservableAndDeterministic(t *testing.T) {
	cfg := Config{Up: Impairment{Loss: 0.1, Duplicate: 0.3}, Seed: 42}
	var runs [2][]uint32
	for i := range runs {
		s := newServer(t)
		p := listen(t, s, cfg)
		runs[i] = sendUp(t, p, dial(t, p), s, 300)
		if st := p.Stats().Up; st.Duplicated == 0 || uint64(len(runs[i])) != st.Received-st.Dropped+st.Duplicated {
			t.Errorf("stats %+v, server got %d", st, len(runs[i]))
		}
	}
	seen := map[uint32]int{}
	for _, seq := range runs[0] {
		seen[seq]++
	}
	if !slices.Contains(slices.Collect(maps.Values(seen)), 2) {
		t.Error("the server saw no duplicate")
	}
	if diff := cmp.Diff(runs[0], runs[1]); diff != "" {
		t.Errorf("same seed, different fates (-first +second):\n%s", diff)
	}
}

func TestReorderIsObservable(t *testing.T) {
	s := newServer(t)
	p := listen(t, s, Config{Up: Impairment{Reorder: 0.3, ReorderDelay: 20 * time.Millisecond}, Seed: 3})
	got := sendUp(t, p, dial(t, p), s, 200)
	inversions := 0
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1] {
			inversions++
		}
	}
	if st := p.Stats().Up; inversions == 0 || st.Reordered == 0 || len(got) != 200 {
		t.Errorf("%d inversions, stats %+v, server got %d", inversions, st, len(got))
	}
	slices.Sort(got)
	for i, seq := range got {
		if seq != uint32(i) {
			t.Fatalf("reordering lost or invented datagrams: %v", got)
		}
	}
}

func TestDelayIsALowerBound(t *testing.T) {
	p := listen(t, newServer(t), Config{Up: Impairment{Delay: 30 * time.Millisecond},
		Down: Impairment{Delay: 20 * time.Millisecond, Jitter: 10 * time.Millisecond}})
	c := dial(t, p)
	for range 10 {
		start := time.Now()
		if _, err := roundTrip(c, "ping", 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if rtt := time.Since(start); rtt < 50*time.Millisecond {
			t.Errorf("round trip took %v, want at least 50ms", rtt)
		}
	}
}

func TestClientsGetTheirOwnUpstreamAndCutStopsAll(t *testing.T) {
	p := listen(t, newServer(t), Config{})
	a, b := dial(t, p), dial(t, p)
	peerA, errA := roundTrip(a, "who", 5*time.Second)
	peerB, errB := roundTrip(b, "who", 5*time.Second)
	if errA != nil || errB != nil || peerA == peerB {
		t.Fatalf("target saw %q (%v) and %q (%v), want two peers", peerA, errA, peerB, errB)
	}
	p.Cut(true)
	for _, c := range []*net.UDPConn{a, b} {
		if reply, err := roundTrip(c, "who", 100*time.Millisecond); err == nil {
			t.Errorf("got %q through a cut link", reply)
		}
	}
	p.Cut(false)
	if peer, err := roundTrip(a, "who", 5*time.Second); err != nil || peer != peerA {
		t.Errorf("after the cut: %q, %v; want %q", peer, err, peerA)
	}
	if err := p.SetConfig(Config{Down: Impairment{Loss: 1}}); err != nil {
		t.Fatal(err)
	}
	if reply, err := roundTrip(b, "who", 100*time.Millisecond); err == nil {
		t.Errorf("got %q with Down.Loss 1", reply)
	}
	if st := p.Stats(); st.Up.Dropped != 2 || st.Down.Dropped != 1 {
		t.Errorf("stats %+v, want 2 dropped up (cut), 1 down (loss)", st)
	}
}

func TestIdleMappingExpires(t *testing.T) {
	p := listen(t, newServer(t), Config{IdleTimeout: 50 * time.Millisecond})
	c := dial(t, p)
	first, err := roundTrip(c, "who", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if second, err := roundTrip(c, "who", 5*time.Second); err != nil || second == first {
		t.Errorf("after idling: %q, %v; want a peer other than %q", second, err, first)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	s := newServer(t)
	before := runtime.NumGoroutine()
	p := listen(t, s, Config{Up: Impairment{Delay: 50 * time.Millisecond}, Down: Impairment{Delay: time.Hour}})
	for range 3 {
		c := dial(t, p)
		if _, err := roundTrip(c, "who", 100*time.Millisecond); err == nil {
			t.Fatal("a reply came back through an hour's delay")
		}
		writeSeq(t, c, 0) // still pending at Close
	}
	closed := make(chan error)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs") // the goroutine is then left behind, but the run is failed
	}
	waitFor(t, "the goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
	for _, st := range []Counters{p.Stats().Up, p.Stats().Down} {
		if st.Forwarded+st.Dropped != st.Received+st.Duplicated {
			t.Errorf("after Close, stats %+v do not add up", st)
		}
	}
}

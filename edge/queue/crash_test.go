package queue

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

const crashDirEnv = "IOTPAY_QUEUE_CRASH_DIR"

var crashOpts = Options{SegmentBytes: 16 << 10, MaxRecords: 500}

// crashPayload is record k of append n of appender g in round r: a header
// to check the order, and padding to check the content.
func crashPayload(r, g, n, k int) []byte {
	b := fmt.Appendf(nil, "%d/%d/%d/%d/", r, g, n, k)
	return append(b, bytes.Repeat([]byte{byte('a' + (g+n+k)%26)}, (n*7+k*13)%300)...)
}

// TestCrashChild is the process TestCrash kills: appenders report every
// Append that returned, a forwarder every Ack, on stdout.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("the child process of TestCrash")
	}
	var round int
	fmt.Sscan(os.Getenv(crashDirEnv+"_ROUND"), &round)
	q, err := Open(dir, crashOpts)
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	if err != nil {
		say("error %v", err)
		os.Exit(2)
	}
	for g := range 3 {
		go func() {
			for n := 0; ; {
				batch := make([][]byte, n%3+1)
				for k := range batch {
					batch[k] = crashPayload(round, g, n, k)
				}
				first, err := q.Append(batch...)
				if errors.Is(err, ErrFull) {
					time.Sleep(time.Millisecond)
					continue
				} else if err != nil {
					say("error %v", err)
					os.Exit(2)
				}
				say("append %d %d %d", first, g, n)
				n++
			}
		}()
	}
	for {
		q.Wait(context.Background())
		recs, err := q.Peek(20)
		if err == nil && len(recs) > 0 {
			if err = q.Ack(recs[len(recs)-1].Seq); err == nil {
				say("ack %d", recs[len(recs)-1].Seq)
			}
		}
		if err != nil {
			say("error %v", err)
			os.Exit(2)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type crashAppend struct {
	first       uint64
	round, g, n int
}

// TestCrash kills a child appending to the queue with SIGKILL, three times
// on the same directory, and checks after each that every record whose
// Append returned is there, intact and in order, and nothing else is.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	var appends []crashAppend
	var acked uint64
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, fmt.Sprintf("%s_ROUND=%d", crashDirEnv, round))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		timer := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
		killAt, killed := 300+200*round, false
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var a crashAppend
			var seq uint64
			if _, err := fmt.Sscanf(sc.Text(), "append %d %d %d", &a.first, &a.g, &a.n); err == nil {
				a.round = round
				appends = append(appends, a)
			} else if _, err := fmt.Sscanf(sc.Text(), "ack %d", &seq); err == nil {
				acked = max(acked, seq)
			} else if strings.HasPrefix(sc.Text(), "error") {
				t.Fatalf("child: %s", sc.Text())
			}
			if len(appends) >= killAt && !killed {
				killed = cmd.Process.Kill() == nil // SIGKILL
			}
		}
		timer.Stop()
		if err := cmd.Wait(); !killed {
			t.Fatalf("child ended before the kill: %v", err)
		}
		checkCrash(t, dir, appends, acked)
	}
}

func checkCrash(t *testing.T, dir string, appends []crashAppend, acked uint64) {
	t.Helper()
	q, err := Open(dir, crashOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	recs := all(t, q)
	head := acked + 1
	if len(recs) > 0 {
		head = recs[0].Seq
	}
	if head <= acked {
		t.Fatalf("head %d, but the child had acked %d", head, acked)
	}
	type key struct{ r, n, k int }
	last := map[int]key{}
	bySeq := map[uint64][]byte{}
	for i, r := range recs {
		var g int
		var k key
		_, err := fmt.Sscanf(string(r.Data), "%d/%d/%d/%d/", &k.r, &g, &k.n, &k.k)
		if err != nil || r.Seq != head+uint64(i) || !bytes.Equal(r.Data, crashPayload(k.r, g, k.n, k.k)) {
			t.Fatalf("record %d (want %d) is garbage: %q", r.Seq, head+uint64(i), r.Data)
		}
		if p, ok := last[g]; ok && (k.r < p.r || k.r == p.r && (k.n < p.n || k.n == p.n && k.k <= p.k)) {
			t.Fatalf("record %d %q is out of order after %v", r.Seq, r.Data, p)
		}
		last[g], bySeq[r.Seq] = k, r.Data
	}
	for _, a := range appends {
		for k := range a.n%3 + 1 {
			seq := a.first + uint64(k)
			if want := crashPayload(a.round, a.g, a.n, k); seq >= head && !bytes.Equal(bySeq[seq], want) {
				t.Fatalf("record %d = %q, want %q", seq, bySeq[seq], want)
			}
		}
	}
	t.Logf("%d appends reported, ack %d: recovered %d records from %d", len(appends), acked, len(recs), head)
}

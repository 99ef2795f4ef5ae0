package ledger_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iotpay/iotpay/payment/ledger"
	"github.com/iotpay/iotpay/payment/ledger/ledgertest"
	"golang.org/x/sys/unix"
)

// threadsAtNice counts this process's threads whose nice value is nice,
// the main thread too unless butMain.
func threadsAtNice(t *testing.T, nice int, butMain bool) int {
	t.Helper()
	stats, err := filepath.Glob("/proc/self/task/*/stat")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	main := strconv.Itoa(os.Getpid())
	for _, p := range stats {
		if butMain && filepath.Base(filepath.Dir(p)) == main {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread ended
		}
		// The fields after the command's closing parenthesis start at
		// the third; the nice value is the nineteenth.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if v, err := strconv.Atoi(f[16]); err == nil && v == nice {
			n++
		}
	}
	return n
}

// TestWriterThreadNice: with Config.Nice the writer's thread, and only it,
// runs at that nice value, and the thread ends with the writer, so the
// priority never passes to other work.
func TestWriterThreadNice(t *testing.T) {
	const nice = -7
	runtime.LockOSThread() // the probe and its undoing on one thread
	defer runtime.UnlockOSThread()
	if err := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), nice); err != nil {
		t.Skipf("no permission to raise a thread's priority here: %v", err)
	}
	// The probe above raised this thread: put it back.
	if err := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 0); err != nil {
		t.Fatal(err)
	}
	before, beforeAll := threadsAtNice(t, nice, true), threadsAtNice(t, nice, false)
	w, err := ledger.Open(context.Background(), ledgertest.NewMem(), ledger.Config[*ledgertest.MemTx]{Nice: nice})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Do(context.Background(), func(*ledger.Batch[*ledgertest.MemTx]) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if got := threadsAtNice(t, nice, false) - beforeAll; got != 1 {
		t.Fatalf("%d threads at nice %d while the writer runs, want 1", got, nice)
	}
	w.Close()
	// A goroutine that ends on a thread it locked ends the thread too,
	// but for the process's main thread, which Go parks for good instead:
	// it runs nothing again either way.
	deadline := time.Now().Add(5 * time.Second)
	for threadsAtNice(t, nice, true) != before {
		if time.Now().After(deadline) {
			t.Fatalf("the writer's thread outlived it at nice %d", nice)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func openT(t testing.TB, dir string, opts Options) *Queue {
	t.Helper()
	q, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func all(t testing.TB, q *Queue) []Record {
	t.Helper()
	recs, err := q.Peek(math.MaxInt)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// payload is record i's content; sizes vary and include zero.
func payload(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, i*37%97) }

// fill appends records 1..n one Append each and returns them.
func fill(t testing.TB, q *Queue, n int) []Record {
	t.Helper()
	var want []Record
	for i := 1; i <= n; i++ {
		if _, err := q.Append(payload(i)); err != nil {
			t.Fatal(err)
		}
		want = append(want, Record{Seq: uint64(i), Data: payload(i)})
	}
	return want
}

func segFiles(t testing.TB, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func TestReopenKeepsOrder(t *testing.T) {
	dir := t.TempDir()
	q := openT(t, dir, Options{SegmentBytes: 1024})
	var want []Record
	for i := 1; i <= 300; {
		batch := [][]byte{}
		for k := 0; k < i%4+1; k++ {
			want = append(want, Record{Seq: uint64(i + k), Data: payload(i + k)})
			batch = append(batch, payload(i+k))
		}
		first, err := q.Append(batch...)
		if err != nil || first != uint64(i) {
			t.Fatalf("Append = %d, %v; want %d", first, err, i)
		}
		i += len(batch)
	}
	if diff := cmp.Diff(want, all(t, q)); diff != "" {
		t.Fatalf("before reopen (-want +got):\n%s", diff)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openT(t, dir, Options{SegmentBytes: 1024})
	if diff := cmp.Diff(want, all(t, q)); diff != "" {
		t.Fatalf("after reopen (-want +got):\n%s", diff)
	}
	if first, err := q.Append([]byte("next")); err != nil || first != uint64(len(want)+1) {
		t.Fatalf("Append after reopen = %d, %v", first, err)
	}
}

func TestAckResumes(t *testing.T) {
	dir := t.TempDir()
	q := openT(t, dir, Options{})
	want := fill(t, q, 10)
	if err := q.Ack(4); err != nil {
		t.Fatal(err)
	}
	if err := q.Ack(2); err != nil {
		t.Errorf("Ack behind the head = %v", err)
	}
	if err := q.Ack(11); !errors.Is(err, ErrAckRange) {
		t.Errorf("Ack beyond the tail = %v", err)
	}
	q.Close()
	q = openT(t, dir, Options{})
	if diff := cmp.Diff(want[4:], all(t, q)); diff != "" {
		t.Fatalf("after reopen (-want +got):\n%s", diff)
	}
	var size int64
	for _, r := range want[4:] {
		size += int64(len(r.Data))
	}
	if n, b := q.Len(); n != 6 || b != size {
		t.Errorf("Len = %d, %d; want 6, %d", n, b, size)
	}
	if first, err := q.Append(nil); err != nil || first != 11 {
		t.Errorf("Append = %d, %v; want 11", first, err)
	}
}

func TestSegmentsRotateAndAreDeleted(t *testing.T) {
	dir := t.TempDir()
	q := openT(t, dir, Options{SegmentBytes: 2 * (headerBytes + 50)})
	for range 10 {
		if _, err := q.Append(make([]byte, 50)); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []struct {
		ack   uint64
		files int
	}{{0, 5}, {5, 3}, {6, 2}, {10, 1}} {
		if err := q.Ack(step.ack); err != nil {
			t.Fatal(err)
		}
		if n := segFiles(t, dir); n != step.files {
			t.Errorf("after Ack(%d): %d segments, want %d", step.ack, n, step.files)
		}
	}
	q.Close()
	q = openT(t, dir, Options{})
	if n, b := q.Len(); n != 0 || b != 0 {
		t.Errorf("Len after reopen = %d, %d", n, b)
	}
	if first, err := q.Append(nil); err != nil || first != 11 {
		t.Errorf("Append = %d, %v; want 11", first, err)
	}
}

func TestBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		size int
		fits int
	}{
		{"records", Options{MaxRecords: 3}, 10, 3},
		{"bytes", Options{MaxBytes: 100}, 40, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := openT(t, t.TempDir(), tc.opts)
			for range tc.fits {
				if _, err := q.Append(make([]byte, tc.size)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := q.Append(make([]byte, tc.size)); !errors.Is(err, ErrFull) {
				t.Fatalf("Append over the bound = %v, want ErrFull", err)
			}
			if err := q.Ack(1); err != nil {
				t.Fatal(err)
			}
			if _, err := q.Append(make([]byte, tc.size)); err != nil {
				t.Fatalf("Append after Ack = %v", err)
			}
			batch := slices.Repeat([][]byte{make([]byte, tc.size)}, tc.fits+1)
			if _, err := q.Append(batch...); !errors.Is(err, ErrTooLarge) {
				t.Errorf("batch above the bound = %v, want ErrTooLarge", err)
			}
		})
	}
	q := openT(t, t.TempDir(), Options{MaxRecordBytes: 10})
	if _, err := q.Append(make([]byte, 11)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("record above MaxRecordBytes = %v", err)
	}
}

// TestTornTail cuts the last record at every offset, and flips each of its
// bytes: Open keeps the records before it, and appends after them.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	q := openT(t, dir, Options{})
	want := fill(t, q, 4)
	q.Append(bytes.Repeat([]byte{'z'}, 100))
	q.Close()
	seg := segPath(dir, 1)
	full, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	start := len(full) - headerBytes - 100
	check := func(name string, data []byte) {
		t.Helper()
		if err := os.WriteFile(seg, data, 0o600); err != nil {
			t.Fatal(err)
		}
		q, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer q.Close()
		if diff := cmp.Diff(want, all(t, q)); diff != "" {
			t.Fatalf("%s (-want +got):\n%s", name, diff)
		}
		if first, err := q.Append([]byte("after")); err != nil || first != 5 {
			t.Fatalf("%s: Append = %d, %v", name, first, err)
		}
	}
	for cut := start; cut < len(full); cut++ {
		check(fmt.Sprintf("cut at %d", cut), full[:cut])
	}
	for i := start; i < len(full); i++ {
		flipped := bytes.Clone(full)
		flipped[i] ^= 0x40
		check(fmt.Sprintf("flip at %d", i), flipped)
	}
}

func TestCorruption(t *testing.T) {
	rec := int64(headerBytes + 50)
	flip := func(first uint64, off int64) func(string) {
		return func(dir string) {
			b, _ := os.ReadFile(segPath(dir, first))
			b[off] ^= 1
			os.WriteFile(segPath(dir, first), b, 0o600)
		}
	}
	for _, tc := range []struct {
		name    string
		segment int64 // Options.SegmentBytes
		batches []int // Appends of that many 50-byte records
		damage  func(dir string)
		off     int64 // of the corruption in segment 1, or -1 if Open recovers
		left    int   // records recovered
	}{
		{"earlier segment", 2 * rec, []int{1, 1, 1, 1, 1, 1}, flip(1, rec+30), rec, 0},
		{"missing segment", 2 * rec, []int{1, 1, 1, 1, 1, 1}, func(dir string) { os.Remove(segPath(dir, 3)) }, 2 * rec, 0},
		// Each Append syncs before the next writes, whose lag says so.
		{"synced record in the last segment", 0, []int{3, 1}, flip(1, 30), 0, 0},
		// Records synced by one fsync at the very end look like a torn write.
		{"last group commit", 0, []int{1, 3}, flip(1, rec+30), -1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			q := openT(t, dir, Options{SegmentBytes: tc.segment})
			for _, n := range tc.batches {
				if _, err := q.Append(slices.Repeat([][]byte{make([]byte, 50)}, n)...); err != nil {
					t.Fatal(err)
				}
			}
			q.Close()
			tc.damage(dir)
			q, err := Open(dir, Options{})
			var ce *CorruptError
			switch {
			case tc.off < 0 && err != nil:
				t.Fatal(err)
			case tc.off < 0:
				defer q.Close()
				if n, _ := q.Len(); n != tc.left {
					t.Fatalf("Len = %d, want %d", n, tc.left)
				}
			case !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) || ce.File != segPath(dir, 1) || ce.Offset != tc.off:
				t.Fatalf("Open = %v, want corruption of segment 1 at %d", err, tc.off)
			}
		})
	}
}

// TestAckAheadOfData: with NoSync a power loss can drop acknowledged
// records; numbering resumes after the ack.
func TestAckAheadOfData(t *testing.T) {
	dir := t.TempDir()
	q := openT(t, dir, Options{NoSync: true})
	fill(t, q, 5)
	q.Ack(5)
	q.Close()
	os.Truncate(segPath(dir, 1), headerBytes+int64(len(payload(1))))
	q = openT(t, dir, Options{NoSync: true})
	if first, err := q.Append([]byte("x")); err != nil || first != 6 {
		t.Fatalf("Append = %d, %v; want 6", first, err)
	}
	if got := all(t, q); len(got) != 1 || got[0].Seq != 6 {
		t.Fatalf("Peek = %v", got)
	}
}

// TestConcurrent runs appenders against a small bound and a forwarder that
// waits, peeks and acks: every record arrives once, each appender's in order.
func TestConcurrent(t *testing.T) {
	const appenders, perAppender = 4, 150
	q := openT(t, t.TempDir(), Options{MaxRecords: 40, SegmentBytes: 2048})
	var wg sync.WaitGroup
	for g := range appenders {
		wg.Go(func() {
			for n := 0; n < perAppender; {
				batch := [][]byte{}
				for k := 0; k < n%3+1 && n+k < perAppender; k++ {
					batch = append(batch, fmt.Appendf(nil, "%d/%d", g, n+k))
				}
				if _, err := q.Append(batch...); errors.Is(err, ErrFull) {
					time.Sleep(time.Millisecond)
					continue
				} else if err != nil {
					t.Error(err)
					return
				}
				n += len(batch)
			}
		})
	}
	next, seen := uint64(1), make([]int, appenders)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for got := 0; got < appenders*perAppender; {
		if err := q.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		recs, err := q.Peek(17)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			var g, n int
			fmt.Sscanf(string(r.Data), "%d/%d", &g, &n)
			if r.Seq != next || n != seen[g] {
				t.Fatalf("record %d %q, want seq %d and %d/%d", r.Seq, r.Data, next, g, seen[g])
			}
			next, seen[g], got = next+1, n+1, got+1
		}
		if err := q.Ack(next - 1); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

func TestWaitAndClose(t *testing.T) {
	dir := t.TempDir()
	q := openT(t, dir, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := q.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on an empty queue = %v", err)
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		q.Append([]byte("x"))
	}()
	if err := q.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	q.Ack(1)
	done := make(chan error)
	go func() { done <- q.Wait(context.Background()) }()
	time.Sleep(10 * time.Millisecond)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("Wait across Close = %v", err)
	}
	_, errAppend := q.Append(nil)
	_, errPeek := q.Peek(1)
	for _, err := range []error{errAppend, errPeek, q.Ack(1), q.Wait(ctx), q.Close()} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("after Close: %v, want ErrClosed", err)
		}
	}
}

func FuzzRecover(f *testing.F) {
	var valid []byte
	for i := range 3 {
		valid = appendRecord(valid, uint64(i+1), 0, payload(i*10))
	}
	flipped := bytes.Clone(valid)
	flipped[headerBytes+2] ^= 1 // record 1, which record 2's lag says was synced
	f.Add([]byte{})
	f.Add(valid)
	f.Add(valid[:len(valid)-5])
	f.Add(append(bytes.Clone(valid), "IQR1 torn"...))
	f.Add(flipped)
	f.Add(appendRecord(nil, 7, 0, []byte("wrong seq")))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(segPath(dir, 1), data, 0o600); err != nil {
			t.Fatal(err)
		}
		q, err := Open(dir, Options{})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open = %v, want nil or ErrCorrupt", err)
			}
			return
		}
		defer q.Close()
		off := 0
		for i, r := range all(t, q) {
			seq, _, d, ok := decodeRecord(data[off:])
			if !ok || seq != uint64(i+1) || r.Seq != seq || !bytes.Equal(r.Data, d) {
				t.Fatalf("record %d = %d %q is not the one at offset %d", i, r.Seq, r.Data, off)
			}
			off += headerBytes + len(d)
		}
		if fi, err := os.Stat(segPath(dir, 1)); err != nil || fi.Size() != int64(off) {
			t.Fatalf("segment not truncated to its %d bytes of records: %v", off, err)
		}
	})
}

// BenchmarkAppend appends 100-byte records one per Append, acking now and
// then so that the disk use stays bounded.
func BenchmarkAppend(b *testing.B) {
	rec := []byte(strings.Repeat("x", 100))
	for _, bc := range []struct {
		name             string
		noSync, parallel bool
	}{{"sync", false, false}, {"nosync", true, false}, {"sync-parallel", false, true}} {
		b.Run(bc.name, func(b *testing.B) {
			q := openT(b, b.TempDir(), Options{NoSync: bc.noSync, MaxRecords: 1 << 20, MaxBytes: 1 << 30})
			b.SetBytes(int64(len(rec)))
			b.ReportAllocs()
			appendOne := func() error {
				seq, err := q.Append(rec)
				if err == nil && seq%(1<<16) == 0 {
					err = q.Ack(seq)
				}
				return err
			}
			if !bc.parallel {
				for b.Loop() {
					if err := appendOne(); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := appendOne(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

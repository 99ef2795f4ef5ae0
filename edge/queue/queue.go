// Package queue is the gateway's durable store-and-forward queue: an
// append-only FIFO of opaque byte records on disk, bounded, which keeps
// device messages while the uplink is down and hands them to the forwarder
// in order when it returns. A crash (kill -9 included) loses no record
// whose Append returned and never reorders; it may replay records that
// were forwarded but not yet acknowledged, which the platform de-duplicates
// by the device's signed request id.
//
// # On-disk format
//
// A queue directory holds segment files, an ack file and a lock file.
// A segment is named by the sequence number of its first record in 20
// decimal digits ("00000000000000000001.seg") and holds records back to
// back, each a 24-byte little-endian header and the payload:
//
//	magic u32 "IQR1" | length u32 | seq u64 | lag u32 | crc u32 | payload
//
// crc is CRC-32C over the first 20 header bytes and the payload. lag says
// that when the record was written, every record below seq-lag was already
// synced to disk. The ack file ("ack", 16 bytes: "IQAK" | seq u64 | CRC-32C
// u32) holds the last acknowledged sequence number.
//
// # Recovery
//
// Open deletes segments that are wholly acknowledged and reads the others.
// In the last segment an intact prefix is kept and the rest is a torn write
// that is truncated away, unless an intact record after it claims, by its
// lag, that the bad record had been synced: then, as for any bad record in
// an earlier segment, Open fails with a *CorruptError (ErrCorrupt) naming
// the file and offset instead of dropping data written after it. A bad
// record that was synced together with all the records after it (one group
// commit at the very end) cannot be told from a torn write and is truncated.
//
// # Durability
//
// Append writes its records and fsyncs the active segment before it
// returns; concurrent Appends share one fsync (group commit). With
// Options.NoSync, Append returns after the write(2): the records survive a
// crash of the process (they are in the kernel's page cache) but not a power
// loss or kernel crash, which can drop the newest records of the active
// segment (as a torn tail: never garbage, never reordered). Segment rotation,
// Ack and Close sync even with NoSync.
//
// The ack position lives in its own small file replaced atomically (synced
// temporary file, rename, synced directory) rather than as a record in the
// segments: a segment can then be deleted as soon as it is acknowledged,
// and recovery learns the head without reading the data. It costs about
// three syncs per Ack, which a forwarder amortizes by acknowledging batches.
package queue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// Bounds of a Queue, the defaults of Options.
const (
	DefaultMaxBytes       = 64 << 20 // un-acked payload bytes
	DefaultMaxRecords     = 100_000  // un-acked records
	DefaultSegmentBytes   = 4 << 20  // size at which a segment is rotated
	DefaultMaxRecordBytes = 64 << 10 // payload of one record
	// RecordBytesLimit is the largest payload the format allows, and so the
	// largest Options.MaxRecordBytes.
	RecordBytesLimit = 16 << 20
	// writeBufBytes bounds the bytes an Append encodes before writing them.
	writeBufBytes = 1 << 20
)

// Errors returned by a Queue; test with errors.Is.
var (
	// ErrFull is the back-pressure signal: the Append would exceed
	// MaxRecords or MaxBytes; it can succeed once records are acknowledged.
	ErrFull = errors.New("queue: full")
	// ErrTooLarge rejects a record above MaxRecordBytes, or a batch that
	// could not fit even in an empty queue.
	ErrTooLarge = errors.New("queue: record too large")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("queue: closed")
	// ErrCorrupt is matched by a *CorruptError.
	ErrCorrupt = errors.New("queue: corrupt")
	// ErrAckRange rejects an Ack beyond the last record appended.
	ErrAckRange = errors.New("queue: ack beyond the tail")
	// ErrLocked is returned by Open when another Queue holds the directory.
	ErrLocked = errors.New("queue: directory in use")
)

// CorruptError reports data that is damaged where it cannot be a torn
// write; it matches ErrCorrupt.
type CorruptError struct {
	File   string
	Offset int64
	Reason string
}

// Error describes the damage.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("queue: corrupt %s at offset %d: %s", e.File, e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Options configure a Queue; zero fields take the defaults.
type Options struct {
	MaxBytes       int64        // bound on un-acked payload bytes
	MaxRecords     int          // bound on un-acked records
	SegmentBytes   int64        // a segment is rotated before it grows past this
	MaxRecordBytes int          // larger records get ErrTooLarge
	NoSync         bool         // skip the fsync of each Append (see the package doc)
	Logger         *slog.Logger // nil discards; gets the torn writes Open truncates
}

func (o Options) withDefaults() (Options, error) {
	if o.MaxBytes < 0 || o.MaxRecords < 0 || o.SegmentBytes < 0 || o.MaxRecordBytes < 0 ||
		o.MaxRecordBytes > RecordBytesLimit {
		return o, errors.New("queue: negative bound or MaxRecordBytes above RecordBytesLimit")
	}
	o.MaxBytes = cmp.Or(o.MaxBytes, DefaultMaxBytes)
	o.MaxRecords = cmp.Or(o.MaxRecords, DefaultMaxRecords)
	o.SegmentBytes = cmp.Or(o.SegmentBytes, DefaultSegmentBytes)
	o.MaxRecordBytes = cmp.Or(o.MaxRecordBytes, DefaultMaxRecordBytes)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Record is one queued record.
type Record struct {
	Seq  uint64
	Data []byte // owned by the caller
}

// Queue is a durable FIFO of byte records in one directory. It is safe for
// concurrent use: any number of appenders and a forwarder that Peeks and
// Acks.
type Queue struct {
	dir    string
	opts   Options
	unlock func()

	ackMu sync.Mutex // serializes Ack and Close
	mu    sync.Mutex // guards the fields below
	cond  *sync.Cond // on mu: a sync finished or the queue closed

	segs     []*segment
	head     uint64 // first record not acknowledged
	next     uint64 // sequence number of the next record appended
	visible  uint64 // records below are durable (or written, with NoSync) and can be read
	synced   uint64 // records below are synced to disk
	bytes    int64  // payload bytes in [head, next)
	syncing  bool   // a group commit runs with mu released
	syncFile *os.File
	notify   chan struct{} // closed when visible grows, if taken by Wait
	taken    bool
	buf      []byte
	err      error // sticky write or sync failure
	closed   bool
}

// Open opens the queue in dir, creating dir (mode 0700) if needed, and
// recovers it as the package doc describes.
func Open(dir string, opts Options) (*Queue, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	q := &Queue{dir: dir, opts: opts, unlock: unlock, notify: make(chan struct{})}
	q.cond = sync.NewCond(&q.mu)
	if err := q.recover(); err != nil {
		for _, s := range q.segs {
			s.f.Close()
		}
		unlock()
		return nil, err
	}
	return q, nil
}

// Append appends recs and returns the sequence number of the first. When
// it returns nil every record is durable; each record is atomic, so a crash
// during an Append may keep a prefix of its records (never a part of one).
func (q *Queue) Append(recs ...[]byte) (first uint64, err error) {
	var size int64
	for _, r := range recs {
		if len(r) > q.opts.MaxRecordBytes {
			return 0, fmt.Errorf("%w: %d bytes, max %d", ErrTooLarge, len(r), q.opts.MaxRecordBytes)
		}
		size += int64(len(r))
	}
	if len(recs) > q.opts.MaxRecords || size > q.opts.MaxBytes {
		return 0, fmt.Errorf("%w: batch of %d records, %d bytes exceeds the queue's bounds", ErrTooLarge, len(recs), size)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.closed:
		return 0, ErrClosed
	case q.err != nil:
		return 0, q.err
	case q.next-q.head+uint64(len(recs)) > uint64(q.opts.MaxRecords) || q.bytes+size > q.opts.MaxBytes:
		return 0, ErrFull
	}
	first = q.next
	if err := q.write(recs); err != nil {
		q.err = fmt.Errorf("queue: write failed, reopen to recover: %w", err)
		return 0, q.err
	}
	q.bytes += size
	if q.opts.NoSync {
		q.publish(q.next)
		return first, nil
	}
	end := q.next
	for q.visible < end {
		switch {
		case q.err != nil:
			return 0, q.err
		case !q.syncing && !q.closed:
			q.syncGroup()
		default: // another group commit or Close syncs for us
			q.cond.Wait()
		}
	}
	return first, nil
}

// write encodes recs at the tail, rotating segments as they fill; mu is held.
func (q *Queue) write(recs [][]byte) error {
	seg, seq := q.segs[len(q.segs)-1], q.next
	q.buf = q.buf[:0]
	for _, r := range recs {
		n := int64(headerBytes + len(r))
		at := seg.size + int64(len(q.buf))
		if at > 0 && at+n > q.opts.SegmentBytes || len(q.buf) >= writeBufBytes {
			if err := q.flush(seg); err != nil {
				return err
			}
			if at > 0 && at+n > q.opts.SegmentBytes {
				var err error
				if seg, err = q.rotate(seq); err != nil {
					return err
				}
			}
		}
		seg.pos = append(seg.pos, recPos{off: seg.size + int64(len(q.buf)), n: uint32(len(r))})
		q.buf = appendRecord(q.buf, seq, lag(seq, q.synced), r)
		seq++
	}
	if err := q.flush(seg); err != nil {
		return err
	}
	q.next = seq
	return nil
}

func (q *Queue) flush(seg *segment) error {
	if len(q.buf) == 0 {
		return nil
	}
	if _, err := seg.f.WriteAt(q.buf, seg.size); err != nil {
		return err
	}
	seg.size += int64(len(q.buf))
	q.buf = q.buf[:0]
	return nil
}

// rotate syncs the active segment, even with NoSync, so that only the last
// segment can have a torn tail, and starts a segment at seq.
func (q *Queue) rotate(seq uint64) (*segment, error) {
	if err := q.segs[len(q.segs)-1].f.Sync(); err != nil {
		return nil, err
	}
	q.synced = seq
	seg, err := createSegment(q.dir, seq)
	if err != nil {
		return nil, err
	}
	q.segs = append(q.segs, seg)
	return seg, nil
}

// syncGroup fsyncs the active segment for every Append written so far
// (earlier segments were synced when rotated). mu is held on entry and exit
// and released during the fsync.
func (q *Queue) syncGroup() {
	end, f := q.next, q.segs[len(q.segs)-1].f
	q.syncing, q.syncFile = true, f
	q.mu.Unlock()
	err := f.Sync()
	q.mu.Lock()
	q.syncing, q.syncFile = false, nil
	if err != nil {
		// After a failed fsync the page cache no longer says what is on disk.
		q.err = fmt.Errorf("queue: sync failed, reopen to recover: %w", err)
	} else {
		q.synced = max(q.synced, end)
		q.publish(end)
	}
	q.cond.Broadcast()
}

// publish makes the records below end readable and wakes Wait.
func (q *Queue) publish(end uint64) {
	if end <= q.visible {
		return
	}
	q.visible = end
	if q.taken {
		close(q.notify)
		q.notify, q.taken = make(chan struct{}), false
	}
}

// Wait blocks until the queue holds a record to Peek, ctx is done or the
// queue is closed.
func (q *Queue) Wait(ctx context.Context) error {
	for {
		q.mu.Lock()
		closed, ready, ch := q.closed, q.visible > q.head, q.notify
		q.taken = q.taken || !closed && !ready
		q.mu.Unlock()
		switch {
		case closed:
			return ErrClosed
		case ready:
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Peek returns up to n records from the head, oldest first, without
// removing them. It reads under the lock that Append takes briefly, so the
// forwarder should keep n modest.
func (q *Queue) Peek(n int) ([]Record, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, ErrClosed
	}
	end := q.head + min(uint64(max(n, 0)), q.visible-q.head)
	recs := make([]Record, 0, end-q.head)
	for seq := q.head; seq < end; {
		seg := q.segs[q.find(seq)]
		to := min(seg.end(), end)
		var err error
		if recs, err = seg.read(recs, seq, to); err != nil {
			return nil, err
		}
		seq = to
	}
	return recs, nil
}

// find returns the index of the segment holding seq.
func (q *Queue) find(seq uint64) int {
	return sort.Search(len(q.segs), func(i int) bool { return q.segs[i].first > seq }) - 1
}

// Ack acknowledges every record up to and including seq: the position is
// made durable, the records stop counting against the bounds and wholly
// acknowledged segments are deleted. Acknowledging an earlier position
// again is a no-op.
func (q *Queue) Ack(seq uint64) error {
	q.ackMu.Lock()
	defer q.ackMu.Unlock()
	q.mu.Lock()
	closed, head, visible := q.closed, q.head, q.visible
	q.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case seq < head:
		return nil
	case seq >= visible:
		return fmt.Errorf("%w: %d, last appended is %d", ErrAckRange, seq, visible-1)
	}
	if err := writeAck(q.dir, seq); err != nil {
		return fmt.Errorf("queue: ack: %w", err)
	}
	q.mu.Lock()
	q.bytes -= q.payloadBytes(head, seq+1)
	q.head = seq + 1
	var dead []*segment
	// The last segment stays for appends; the one a group commit is syncing
	// cannot be wholly acknowledged, but deleting it waits to be sure.
	for len(q.segs) > 1 && q.segs[1].first <= q.head && q.segs[0].f != q.syncFile {
		dead, q.segs = append(dead, q.segs[0]), q.segs[1:]
	}
	q.mu.Unlock()
	for _, s := range dead {
		s.f.Close()
		if err := os.Remove(s.path); err != nil { // Open retries
			q.opts.Logger.Warn("queue: removing acknowledged segment", "file", s.path, "err", err)
		}
	}
	return nil
}

// payloadBytes sums the payload of records [from, to); mu is held.
func (q *Queue) payloadBytes(from, to uint64) int64 {
	var n int64
	for seq := from; seq < to; {
		seg := q.segs[q.find(seq)]
		end := min(to, seg.end())
		for _, p := range seg.pos[seq-seg.first : end-seg.first] {
			n += int64(p.n)
		}
		seq = end
	}
	return n
}

// Len returns the records and payload bytes not yet acknowledged, including
// those of Appends that have not returned yet.
func (q *Queue) Len() (records int, bytes int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return int(q.next - q.head), q.bytes
}

// Close syncs what was written, wakes Wait and waiting Appends, and
// releases the directory.
func (q *Queue) Close() error {
	q.ackMu.Lock()
	defer q.ackMu.Unlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	q.closed = true
	for q.syncing {
		q.cond.Wait()
	}
	var errs []error
	if q.err == nil && q.synced < q.next {
		if err := q.segs[len(q.segs)-1].f.Sync(); err != nil {
			q.err = fmt.Errorf("queue: sync failed: %w", err)
			errs = append(errs, q.err)
		}
	}
	if q.err == nil {
		q.synced = q.next
		q.publish(q.next)
	}
	q.cond.Broadcast()
	close(q.notify)
	for _, s := range q.segs {
		errs = append(errs, s.f.Close())
	}
	q.unlock()
	return errors.Join(errs...)
}

// recover loads the directory: the ack position, then the segments.
func (q *Queue) recover() error {
	ack, err := readAck(q.dir)
	if err != nil {
		return err
	}
	firsts, err := listSegments(q.dir)
	if err != nil {
		return err
	}
	head := ack + 1
	for len(firsts) > 1 && firsts[1] <= head {
		if err := os.Remove(segPath(q.dir, firsts[0])); err != nil {
			return err
		}
		firsts = firsts[1:]
	}
	if len(firsts) > 0 && firsts[0] > head {
		return &CorruptError{File: segPath(q.dir, firsts[0]), Reason: fmt.Sprintf("records %d to %d are missing", head, firsts[0]-1)}
	}
	for i, first := range firsts {
		seg, err := q.loadSegment(first, i == len(firsts)-1)
		if err != nil {
			return err
		}
		q.segs = append(q.segs, seg)
		if i+1 < len(firsts) && seg.end() != firsts[i+1] {
			return &CorruptError{File: seg.path, Offset: seg.size,
				Reason: fmt.Sprintf("ends before record %d, the next segment starts at %d", seg.end(), firsts[i+1])}
		}
	}
	if len(q.segs) > 0 && q.segs[len(q.segs)-1].end() < head {
		// Acknowledged records lost with NoSync: start afresh after the ack.
		for _, s := range q.segs {
			s.f.Close()
			os.Remove(s.path)
		}
		q.segs = nil
	}
	if len(q.segs) == 0 {
		seg, err := createSegment(q.dir, head)
		if err != nil {
			return err
		}
		q.segs = append(q.segs, seg)
	}
	q.head, q.next = head, q.segs[len(q.segs)-1].end()
	q.visible, q.synced = q.next, q.next
	q.bytes = q.payloadBytes(q.head, q.next)
	return nil
}

// loadSegment reads and checks a segment; the last one has its torn tail
// truncated and is synced, since with NoSync it may not have been.
func (q *Queue) loadSegment(first uint64, last bool) (*segment, error) {
	path := segPath(q.dir, first)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pos, end := scan(b, first)
	if end < len(b) && (!last || syncedLater(b[end:], first+uint64(len(pos)))) {
		return nil, &CorruptError{File: path, Offset: int64(end), Reason: fmt.Sprintf("bad record %d", first+uint64(len(pos)))}
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	seg := &segment{first: first, path: path, f: f, size: int64(end), pos: pos}
	if !last {
		return seg, nil
	}
	if end < len(b) {
		q.opts.Logger.Warn("queue: truncating torn write", "file", path, "offset", end, "bytes", len(b)-end)
		err = f.Truncate(int64(end))
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return seg, nil
}

// segPath names the segment whose first record is first.
func segPath(dir string, first uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d.seg", first))
}

package queue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/iotpay/iotpay/internal/atomicfile"
)

const (
	headerBytes = 24
	recordMagic = "IQR1"
	ackMagic    = "IQAK"
	ackBytes    = 16
	ackName     = "ack"
)

var (
	le         = binary.LittleEndian
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// segment is one segment file, open for reading and, if last, appending.
type segment struct {
	first uint64
	path  string
	f     *os.File
	size  int64    // bytes of whole records
	pos   []recPos // pos[i] locates record first+i
}

// end is the sequence number after the segment's last record.
func (s *segment) end() uint64 { return s.first + uint64(len(s.pos)) }

type recPos struct {
	off int64
	n   uint32 // payload bytes
}

// read appends records [from, to) of the segment to recs, read with one
// ReadAt and checked again.
func (s *segment) read(recs []Record, from, to uint64) ([]Record, error) {
	pos := s.pos[from-s.first : to-s.first]
	start, last := pos[0].off, pos[len(pos)-1]
	buf := make([]byte, last.off+headerBytes+int64(last.n)-start)
	if _, err := s.f.ReadAt(buf, start); err != nil {
		return nil, fmt.Errorf("queue: read %s: %w", s.path, err)
	}
	for i, p := range pos {
		seq, _, data, ok := decodeRecord(buf[p.off-start:])
		if !ok || seq != from+uint64(i) || len(data) != int(p.n) {
			return nil, &CorruptError{File: s.path, Offset: p.off, Reason: "record changed on disk"}
		}
		recs = append(recs, Record{Seq: seq, Data: data[:len(data):len(data)]})
	}
	return recs, nil
}

func appendRecord(b []byte, seq uint64, lag uint32, data []byte) []byte {
	start := len(b)
	b = append(b, recordMagic...)
	b = le.AppendUint32(b, uint32(len(data)))
	b = le.AppendUint64(b, seq)
	b = le.AppendUint32(b, lag)
	crc := crc32.Update(crc32.Checksum(b[start:], castagnoli), castagnoli, data)
	b = le.AppendUint32(b, crc)
	return append(b, data...)
}

// lag is the lag field of record seq written when the records below synced
// are on disk; capping it only weakens its claim.
func lag(seq, synced uint64) uint32 {
	return uint32(min(seq-synced, math.MaxUint32))
}

// decodeRecord decodes the record at the start of b; ok is false unless b
// starts with a whole, intact record.
func decodeRecord(b []byte) (seq uint64, lag uint32, data []byte, ok bool) {
	if len(b) < headerBytes || string(b[:4]) != recordMagic {
		return 0, 0, nil, false
	}
	n := le.Uint32(b[4:])
	if n > RecordBytesLimit || int(n) > len(b)-headerBytes {
		return 0, 0, nil, false
	}
	data = b[headerBytes : headerBytes+n]
	crc := crc32.Update(crc32.Checksum(b[:headerBytes-4], castagnoli), castagnoli, data)
	return le.Uint64(b[8:]), le.Uint32(b[16:]), data, crc == le.Uint32(b[headerBytes-4:])
}

// scan walks the records of a segment whose first record is first, and
// returns their positions and the end of the intact prefix.
func scan(b []byte, first uint64) (pos []recPos, end int) {
	for seq := first; end < len(b); seq++ {
		s, _, data, ok := decodeRecord(b[end:])
		if !ok || s != seq {
			break
		}
		pos = append(pos, recPos{off: int64(end), n: uint32(len(data))})
		end += headerBytes + len(data)
	}
	return pos, end
}

// syncedLater reports whether tail, which starts with the bad bytes where
// record seq should be, holds an intact record whose lag says that record
// seq had been synced before it was written; a torn write cannot.
func syncedLater(tail []byte, seq uint64) bool {
	for i := 1; i < len(tail); i++ {
		j := bytes.Index(tail[i:], []byte(recordMagic))
		if j < 0 {
			break
		}
		i += j
		if s, back, _, ok := decodeRecord(tail[i:]); ok && uint64(back) < s && s-uint64(back) > seq {
			return true
		}
	}
	return false
}

// createSegment creates the empty segment file for records from first.
func createSegment(dir string, first uint64) (*segment, error) {
	path := segPath(dir, first)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	return &segment{first: first, path: path, f: f}, nil
}

// listSegments returns the first sequence numbers of the segments in dir,
// sorted, and removes temporary files left by a crash in writeAck.
func listSegments(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var firsts []uint64
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "."+ackName+".tmp") {
			os.Remove(filepath.Join(dir, name))
			continue
		}
		digits, ok := strings.CutSuffix(name, ".seg")
		if !ok || len(digits) != 20 {
			continue
		}
		first, err := strconv.ParseUint(digits, 10, 64)
		if err != nil || first == 0 {
			return nil, &CorruptError{File: filepath.Join(dir, name), Reason: "bad segment name"}
		}
		firsts = append(firsts, first)
	}
	slices.Sort(firsts)
	return firsts, nil
}

// readAck returns the acknowledged position, 0 if nothing was acknowledged.
func readAck(dir string) (uint64, error) {
	path := filepath.Join(dir, ackName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(b) != ackBytes || string(b[:4]) != ackMagic ||
		le.Uint32(b[12:]) != crc32.Checksum(b[:12], castagnoli) || le.Uint64(b[4:]) == math.MaxUint64 {
		return 0, &CorruptError{File: path, Reason: "bad ack file"}
	}
	return le.Uint64(b[4:]), nil
}

// writeAck replaces the ack file durably.
func writeAck(dir string, seq uint64) error {
	b := le.AppendUint64([]byte(ackMagic), seq)
	b = le.AppendUint32(b, crc32.Checksum(b, castagnoli))
	if err := atomicfile.Write(filepath.Join(dir, ackName), b, 0o600); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes new, renamed and removed directory entries durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for syncing there
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

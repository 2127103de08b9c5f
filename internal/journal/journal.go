// Package journal is an append-only, crash-safe log of opaque records with
// group commit: many writers append, one fsync makes all of them durable.
//
// On disk a journal is a folder of segment files "journal-<first seq>.log"
// (20 decimal digits). A segment starts with the 8-byte magic "CLJRNL01";
// then records follow, each framed as
//
//	length  uint32 LE   bytes of seq + payload (8 + len(payload))
//	crc     uint32 LE   CRC-32C (Castagnoli) of seq + payload
//	seq     uint64 LE   the record's sequence number (1, 2, 3, … without gaps)
//	payload []byte
//
// Open reads every segment in order and hands each valid record to the
// caller. A record that ends early (torn write) or whose checksum or
// sequence number is wrong ends the replay: in the last segment it and
// everything after it are cut off (it was never acknowledged, since an
// acknowledgement waits for fsync) and reported in Recovery; in an earlier
// segment it is an error, because acknowledged records follow it.
package journal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Magic starts every segment file.
const Magic = "CLJRNL01"

// MaxRecord is the largest payload Append accepts (and Open reads): 256 MiB.
const MaxRecord = 256 << 20

const frameHeader = 8 // length + crc

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Recovery says what Open found.
type Recovery struct {
	// Segments is the number of segment files read; Records the number of
	// valid records handed to the replay function.
	Segments, Records int
	// LastSeq is the sequence number of the last valid record (0 if none).
	LastSeq uint64
	// Dropped is the number of bytes cut from the end of the last segment
	// (a torn or corrupt tail); DropReason says why ("" when none).
	Dropped    int64
	DropReason string
	// DroppedFile is the segment that was cut.
	DroppedFile string
}

// Journal appends records to the newest segment. It is safe for concurrent
// use.
type Journal struct {
	dir string

	mu      sync.Mutex
	f       *os.File
	segName string
	next    uint64 // seq of the next record
	written uint64 // last seq written to the file (not necessarily synced)
	bytes   int64  // bytes in the current segment
	closed  bool
	err     error // sticky write/sync error

	syncMu  sync.Mutex // serialises fsyncs
	synced  uint64     // last seq known durable (guarded by mu)
	cond    *sync.Cond // signalled (with mu) when synced or err change
	syncing bool       // a sync is in progress (guarded by mu)
}

// segName gives the file name of the segment whose first record is seq.
func segName(seq uint64) string { return fmt.Sprintf("journal-%020d.log", seq) }

// segments lists the segment files in dir with their first sequence
// numbers, ascending.
func segments(dir string) ([]string, []uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	type seg struct {
		name  string
		first uint64
	}
	var segs []seg
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, "journal-") || !strings.HasSuffix(n, ".log") {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(n, "journal-"), ".log"), 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("journal: unexpected file %s in %s: remove it or move it away", n, dir)
		}
		segs = append(segs, seg{n, v})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].first < segs[j].first })
	names := make([]string, len(segs))
	firsts := make([]uint64, len(segs))
	for i, s := range segs {
		names[i], firsts[i] = s.name, s.first
	}
	return names, firsts, nil
}

// Open replays the journal in dir (created if missing) and opens it for
// appending. replay is called for every valid record in sequence order;
// an error from it stops Open. after is the sequence number the caller's
// snapshot already covers: the first record must be ≤ after+1 (no gap) and
// the next appended record gets max(last replayed, after)+1.
func Open(dir string, after uint64, replay func(seq uint64, payload []byte) error) (*Journal, Recovery, error) {
	var rec Recovery
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, rec, fmt.Errorf("journal: %w", err)
	}
	names, firsts, err := segments(dir)
	if err != nil {
		return nil, rec, err
	}
	expect := uint64(0) // next seq expected; 0 = take the first segment's
	for i, name := range names {
		last := i == len(names)-1
		path := filepath.Join(dir, name)
		if expect == 0 {
			expect = firsts[i]
			if expect > after+1 {
				return nil, rec, fmt.Errorf("journal: %s starts at record %d but the snapshot ends at %d: records %d…%d are missing", path, expect, after, after+1, expect-1)
			}
		} else if firsts[i] != expect {
			return nil, rec, fmt.Errorf("journal: %s starts at record %d, expected %d: a segment is missing or damaged", path, firsts[i], expect)
		}
		good, n, reason, err := readSegment(path, expect, replay)
		rec.Segments++
		rec.Records += n
		expect += uint64(n)
		if err != nil {
			return nil, rec, err
		}
		if reason != "" {
			if !last {
				return nil, rec, fmt.Errorf("journal: %s is damaged at byte %d (%s) and later segments exist: acknowledged records may be lost; move the folder aside and restore from the snapshot", path, good, reason)
			}
			st, err := os.Stat(path)
			if err != nil {
				return nil, rec, fmt.Errorf("journal: %w", err)
			}
			if err := truncate(path, good); err != nil {
				return nil, rec, err
			}
			rec.Dropped, rec.DropReason, rec.DroppedFile = st.Size()-good, reason, path
		}
	}
	if expect > 0 {
		rec.LastSeq = expect - 1
	}
	next := max(rec.LastSeq, after) + 1
	j := &Journal{dir: dir, next: next, written: next - 1, synced: next - 1}
	j.cond = sync.NewCond(&j.mu)
	// Append to the last segment if its name still matches the sequence
	// (it holds records up to next-1); otherwise start a new one.
	if len(names) > 0 && rec.LastSeq >= after {
		last := names[len(names)-1]
		f, err := os.OpenFile(filepath.Join(dir, last), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return nil, rec, fmt.Errorf("journal: %w", err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, rec, fmt.Errorf("journal: %w", err)
		}
		j.f, j.segName, j.bytes = f, last, st.Size()
		if st.Size() < int64(len(Magic)) { // a torn magic: rewrite the file
			f.Close()
			if err := j.startSegment(firstOf(last)); err != nil {
				return nil, rec, err
			}
		}
	} else {
		if err := j.startSegment(next); err != nil {
			return nil, rec, err
		}
	}
	return j, rec, nil
}

func firstOf(name string) uint64 {
	v, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, "journal-"), ".log"), 10, 64)
	return v
}

// readSegment replays the records of one segment starting at seq expect.
// It returns the byte offset after the last good record, the number of
// good records, and why reading stopped early ("" at a clean end).
func readSegment(path string, expect uint64, replay func(uint64, []byte) error) (good int64, n int, reason string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, "", fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	magic := make([]byte, len(Magic))
	if k, err := io.ReadFull(r, magic); err != nil {
		if k == 0 && errors.Is(err, io.EOF) {
			return 0, 0, "empty segment", nil
		}
		return 0, 0, "torn segment header", nil
	}
	if string(magic) != Magic {
		return 0, 0, fmt.Sprintf("bad magic % x (want %q)", magic, Magic), nil
	}
	good = int64(len(Magic))
	var hdr [frameHeader]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return good, n, "", nil
			}
			return good, n, "torn record header", nil
		}
		length := binary.LittleEndian.Uint32(hdr[0:4])
		sum := binary.LittleEndian.Uint32(hdr[4:8])
		if length < 8 || length > MaxRecord+8 {
			return good, n, fmt.Sprintf("record length %d out of range", length), nil
		}
		if cap(buf) < int(length) {
			buf = make([]byte, length)
		}
		buf = buf[:length]
		if _, err := io.ReadFull(r, buf); err != nil {
			return good, n, fmt.Sprintf("torn record (%d bytes declared)", length), nil
		}
		if crc32.Checksum(buf, castagnoli) != sum {
			return good, n, "checksum mismatch", nil
		}
		seq := binary.LittleEndian.Uint64(buf[0:8])
		if seq != expect+uint64(n) {
			return good, n, fmt.Sprintf("record %d where %d was expected", seq, expect+uint64(n)), nil
		}
		if err := replay(seq, buf[8:]); err != nil {
			return good, n, "", fmt.Errorf("journal: replaying record %d of %s: %w", seq, path, err)
		}
		n++
		good += frameHeader + int64(length)
	}
}

func truncate(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("journal: dropping the damaged tail of %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("journal: dropping the damaged tail of %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("journal: dropping the damaged tail of %s: %w", path, err)
	}
	return nil
}

// startSegment creates (or recreates) the segment whose first record is
// first and makes it current. Caller holds mu or has exclusive access.
func (j *Journal) startSegment(first uint64) error {
	name := segName(first)
	f, err := os.OpenFile(filepath.Join(j.dir, name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if _, err := f.Write([]byte(Magic)); err != nil {
		f.Close()
		return fmt.Errorf("journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("journal: %w", err)
	}
	syncDir(j.dir)
	j.f, j.segName, j.bytes = f, name, int64(len(Magic))
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// ErrClosed is returned after Close.
var ErrClosed = errors.New("journal: closed")

// Append writes one record and returns its sequence number. The record is
// durable only once Wait(seq) returns nil. Records are written in the order
// of Append calls; callers that need the journal order to equal the order
// in which they apply records hold their own lock across Append.
func (j *Journal) Append(payload []byte) (uint64, error) {
	if len(payload) > MaxRecord {
		return 0, fmt.Errorf("journal: record of %d bytes is over the %d-byte limit", len(payload), MaxRecord)
	}
	frame := make([]byte, frameHeader+8+len(payload))
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return 0, ErrClosed
	}
	if j.err != nil {
		return 0, j.err
	}
	seq := j.next
	binary.LittleEndian.PutUint32(frame[0:4], uint32(8+len(payload)))
	binary.LittleEndian.PutUint64(frame[8:16], seq)
	copy(frame[16:], payload)
	binary.LittleEndian.PutUint32(frame[4:8], crc32.Checksum(frame[8:], castagnoli))
	if _, err := j.f.Write(frame); err != nil {
		j.err = fmt.Errorf("journal: writing record %d: %w", seq, err)
		j.cond.Broadcast()
		return 0, j.err
	}
	j.next++
	j.written = seq
	j.bytes += int64(len(frame))
	return seq, nil
}

// Wait blocks until record seq is durable (fsynced). Concurrent waiters
// share fsyncs: one fsync covers every record written before it started
// (group commit).
func (j *Journal) Wait(seq uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for {
		if j.synced >= seq {
			return nil
		}
		if j.err != nil {
			return j.err
		}
		if !j.syncing {
			j.syncing = true
			f, upto := j.f, j.written
			j.mu.Unlock()
			err := f.Sync()
			j.mu.Lock()
			j.syncing = false
			if err != nil && j.err == nil {
				j.err = fmt.Errorf("journal: fsync: %w", err)
			}
			if err == nil && upto > j.synced {
				j.synced = upto
			}
			j.cond.Broadcast()
			continue
		}
		j.cond.Wait()
	}
}

// LastSeq is the sequence number of the last appended record.
func (j *Journal) LastSeq() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.next - 1
}

// Size is the number of bytes in the current segment.
func (j *Journal) Size() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.bytes
}

// Err is the sticky write or fsync error, nil while the journal is healthy.
// After an error no record is accepted: the file's state is unknown.
func (j *Journal) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// Rotate makes every record so far durable, closes the current segment and
// starts a new one; it returns the sequence number of the last record of
// the closed segment. A caller that has a snapshot covering that record
// then calls Trim with it.
func (j *Journal) Rotate() (uint64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return 0, ErrClosed
	}
	if j.err != nil {
		return 0, j.err
	}
	for j.syncing {
		j.cond.Wait()
	}
	last := j.next - 1
	if j.bytes == int64(len(Magic)) { // empty segment: nothing to rotate
		return last, nil
	}
	if err := j.f.Sync(); err != nil {
		j.err = fmt.Errorf("journal: fsync: %w", err)
		j.cond.Broadcast()
		return 0, j.err
	}
	j.synced = last
	j.cond.Broadcast()
	old := j.f
	if err := j.startSegment(j.next); err != nil {
		j.err = err
		return 0, err
	}
	old.Close()
	return last, nil
}

// Trim deletes the segments whose records all have sequence numbers ≤ upto
// (a snapshot covers them). The current segment is never deleted.
func (j *Journal) Trim(upto uint64) error {
	j.mu.Lock()
	cur := j.segName
	j.mu.Unlock()
	names, firsts, err := segments(j.dir)
	if err != nil {
		return err
	}
	for i, name := range names {
		if name == cur || i+1 >= len(names) {
			break
		}
		if firsts[i+1]-1 > upto { // this segment holds a record after upto
			break
		}
		if err := os.Remove(filepath.Join(j.dir, name)); err != nil {
			return fmt.Errorf("journal: trimming: %w", err)
		}
	}
	syncDir(j.dir)
	return nil
}

// Close makes everything written durable and closes the file.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	for j.syncing {
		j.cond.Wait()
	}
	j.closed = true
	err := j.f.Sync()
	if err == nil {
		j.synced = j.next - 1
	}
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	j.cond.Broadcast()
	if err != nil {
		return fmt.Errorf("journal: closing: %w", err)
	}
	return j.err
}

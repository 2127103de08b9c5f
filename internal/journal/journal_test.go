package journal

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func payload(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 1+i%37) }

type replayed struct {
	seqs []uint64
	data [][]byte
}

func (r *replayed) fn(seq uint64, p []byte) error {
	r.seqs = append(r.seqs, seq)
	r.data = append(r.data, append([]byte(nil), p...))
	return nil
}

func openT(t *testing.T, dir string, after uint64) (*Journal, Recovery, *replayed) {
	t.Helper()
	var r replayed
	j, rec, err := Open(dir, after, r.fn)
	if err != nil {
		t.Fatal(err)
	}
	return j, rec, &r
}

func appendN(t *testing.T, j *Journal, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		seq, err := j.Append(payload(i))
		if err != nil {
			t.Fatal(err)
		}
		if err := j.Wait(seq); err != nil {
			t.Fatal(err)
		}
	}
}

func checkReplay(t *testing.T, r *replayed, first, n int) {
	t.Helper()
	if len(r.seqs) != n {
		t.Fatalf("replayed %d records, want %d", len(r.seqs), n)
	}
	for k, s := range r.seqs {
		if s != uint64(first+k) {
			t.Fatalf("record %d has seq %d, want %d", k, s, first+k)
		}
		if !bytes.Equal(r.data[k], payload(first+k-1)) {
			t.Fatalf("record %d payload differs", s)
		}
	}
}

func TestAppendReplay(t *testing.T) {
	dir := t.TempDir()
	j, rec, _ := openT(t, dir, 0)
	if rec.Records != 0 || rec.LastSeq != 0 {
		t.Fatalf("fresh journal: %+v", rec)
	}
	appendN(t, j, 0, 50)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, rec, r := openT(t, dir, 0)
	checkReplay(t, r, 1, 50)
	if rec.Dropped != 0 || rec.LastSeq != 50 {
		t.Fatalf("recovery %+v", rec)
	}
	// Appending continues the sequence in the same segment.
	appendN(t, j, 50, 10)
	j.Close()
	_, _, r = openT(t, dir, 0)
	checkReplay(t, r, 1, 60)
}

// TestConcurrentGroupCommit: many goroutines append and wait; every
// acknowledged record replays exactly once, in sequence.
func TestConcurrentGroupCommit(t *testing.T) {
	dir := t.TempDir()
	j, _, _ := openT(t, dir, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[uint64][]byte{}
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				p := []byte(fmt.Sprintf("g%d-%d", g, i))
				seq, err := j.Append(p)
				if err != nil {
					t.Error(err)
					return
				}
				if err := j.Wait(seq); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got[seq] = p
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	j.Close()
	_, rec, r := openT(t, dir, 0)
	if rec.Records != 640 || len(got) != 640 {
		t.Fatalf("replayed %d, acknowledged %d, want 640", rec.Records, len(got))
	}
	for k, s := range r.seqs {
		if !bytes.Equal(r.data[k], got[s]) {
			t.Fatalf("record %d: replayed %q, acknowledged %q", s, r.data[k], got[s])
		}
	}
}

// TestTornTail cuts the segment at every byte inside the last record and
// flips every byte of it: the earlier records replay, the tail is dropped
// and reported, and appending resumes after the last good record.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	j, _, _ := openT(t, dir, 0)
	appendN(t, j, 0, 5)
	j.Close()
	path := filepath.Join(dir, segName(1))
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lastLen := frameHeader + 8 + len(payload(4))
	start := len(whole) - lastLen
	damage := func(name string, data []byte) {
		t.Run(name, func(t *testing.T) {
			d := t.TempDir()
			if err := os.WriteFile(filepath.Join(d, segName(1)), data, 0o644); err != nil {
				t.Fatal(err)
			}
			j, rec, r := openT(t, d, 0)
			checkReplay(t, r, 1, 4)
			if rec.Dropped != int64(len(data)-start) || rec.DropReason == "" {
				t.Fatalf("recovery %+v, want %d bytes dropped with a reason", rec, len(data)-start)
			}
			appendN(t, j, 100, 1)
			j.Close()
			_, rec, r = openT(t, d, 0)
			if rec.Records != 5 || rec.Dropped != 0 || r.seqs[4] != 5 || !bytes.Equal(r.data[4], payload(100)) {
				t.Fatalf("after re-append: %+v %v", rec, r.seqs)
			}
		})
	}
	for cut := start + 1; cut < len(whole); cut++ {
		damage(fmt.Sprintf("cut%d", cut), whole[:cut])
	}
	for k := start; k < len(whole); k++ {
		b := append([]byte(nil), whole...)
		b[k] ^= 0x40
		damage(fmt.Sprintf("flip%d", k), b)
	}
}

// TestRotateTrim: records before a snapshot are trimmed; replay after it
// starts at the snapshot; a gap between snapshot and journal is an error.
func TestRotateTrim(t *testing.T) {
	dir := t.TempDir()
	j, _, _ := openT(t, dir, 0)
	appendN(t, j, 0, 10)
	last, err := j.Rotate()
	if err != nil || last != 10 {
		t.Fatalf("Rotate = %d, %v; want 10", last, err)
	}
	appendN(t, j, 10, 5)
	if err := j.Trim(last); err != nil {
		t.Fatal(err)
	}
	j.Close()
	names, _, _ := segments(dir)
	if len(names) != 1 || names[0] != segName(11) {
		t.Fatalf("segments after trim: %v", names)
	}
	_, _, r := openT(t, dir, 10)
	checkReplay(t, r, 11, 5)
	if _, _, err := Open(dir, 5, func(uint64, []byte) error { return nil }); err == nil {
		t.Fatal("a snapshot at 5 with the journal starting at 11 must be refused (records 6…10 missing)")
	}
}

// TestDamageBeforeLastSegment: damage in an earlier segment is an error,
// never silently dropped.
func TestDamageBeforeLastSegment(t *testing.T) {
	dir := t.TempDir()
	j, _, _ := openT(t, dir, 0)
	appendN(t, j, 0, 3)
	j.Rotate()
	appendN(t, j, 3, 3)
	j.Close()
	p := filepath.Join(dir, segName(1))
	b, _ := os.ReadFile(p)
	b[len(b)-1] ^= 1
	os.WriteFile(p, b, 0o644)
	if _, _, err := Open(dir, 0, func(uint64, []byte) error { return nil }); err == nil {
		t.Fatal("damage in a non-final segment must be an error")
	}
}

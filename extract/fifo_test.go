//go:build unix

package extract

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cl-dev/cl/extract/data"
)

// within fails the test when f has not returned after a minute (what it
// guards against used to block for ever).
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("%s still running after a minute", what)
	}
}

// writePNG writes image i of pngBytes at path.
func writePNG(t *testing.T, path string, i int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pngBytes(t, i), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestExtractFIFO: a named pipe among an ImageFolder's images (named like
// an image) is skipped as unreadable, listed with its path; the run does
// not wait for a writer that never comes.
func TestExtractFIFO(t *testing.T) {
	dir := t.TempDir()
	writePNG(t, filepath.Join(dir, "a/0.png"), 0)
	writePNG(t, filepath.Join(dir, "a/2.png"), 2)
	writePNG(t, filepath.Join(dir, "b/3.png"), 3)
	if err := syscall.Mkfifo(filepath.Join(dir, "a/1.png"), 0o644); err != nil {
		t.Skip("no named pipes here:", err)
	}
	src, err := data.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "f.safetensors")
	within(t, "Extract over a FIFO", func() {
		res, err := Extract(context.Background(), src, &meanBackbone{s: 6}, out, Options{Batch: 2, Workers: 2, Log: quiet()})
		if err != nil {
			t.Error(err)
			return
		}
		if res.Rows != 3 || len(res.Skipped) != 1 {
			t.Errorf("%d rows, skipped %v", res.Rows, res.Skipped)
			return
		}
		s := res.Skipped[0]
		if s.ID != "a/1.png" || s.File != filepath.Join(dir, "a/1.png") || !errors.Is(s.Err, data.ErrNotRegular) ||
			!strings.Contains(s.String(), "a/1.png: open "+filepath.Join(dir, "a/1.png")+": not a regular file but a named pipe") {
			t.Errorf("skipped %q", s)
		}
	})
}

// blockingSource reads a named pipe with a plain blocking read in Load, as
// a read on a hung network file system blocks: no data source of cl does
// that, but Extract must still stop on cancellation.
type blockingSource struct {
	*memSource
	fifo    string
	blocked chan struct{}
}

func (s *blockingSource) Load(i int) (data.Sample, error) {
	if i == 5 {
		close(s.blocked)
		b, err := os.ReadFile(s.fifo) // blocks until a writer opens the pipe
		return data.Sample{Encoded: b}, err
	}
	return s.memSource.Load(i)
}

// TestExtractCancelBlockedRead: Ctrl-C while a worker is blocked in a read
// stops the run at once, writing nothing.
func TestExtractCancelBlockedRead(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip("no named pipes here:", err)
	}
	src := &blockingSource{memSource: &memSource{n: 100, load: rawSample}, fifo: fifo, blocked: make(chan struct{})}
	t.Cleanup(func() { // release the blocked reader
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			f.Close()
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-src.blocked; time.Sleep(50 * time.Millisecond); cancel() }()
	out := filepath.Join(dir, "f.safetensors")
	within(t, "Extract after cancellation with a blocked read", func() {
		_, err := Extract(ctx, src, &meanBackbone{s: 6}, out, Options{Batch: 2, Workers: 2, Log: quiet()})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled run: %v", err)
		}
	})
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cancelled run wrote %s", out)
	}
}

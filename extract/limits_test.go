package extract

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/extract/imageproc"
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

// pngHeader16 is the header of a w×h 16-bit RGBA PNG (what Inspect reads).
func pngHeader16(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 16, 6
	binary.Write(&b, binary.BigEndian, uint32(13))
	b.WriteString("IHDR")
	b.Write(ihdr)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte("IHDR"), ihdr...)))
	return b.Bytes()
}

// TestExtractDecodeMemory: an image whose decoding alone would exceed the
// decode memory is skipped with a message saying so (the 10,000² 16-bit
// PNG of 1 GB, under the default; an ordinary 8×8 PNG under a tiny
// budget), and the other images are extracted.
func TestExtractDecodeMemory(t *testing.T) {
	for _, c := range []struct {
		budget int64
		want   []int
		frag   string
	}{
		{0, []int{0, 1, 3}, "png image of 10000×10000 pixels (16-bit RGBA) needs about 1.02 GiB to decode, over the budget of 1.00 GiB"},
		{1000, nil, "over the budget of 1000 bytes (cl extract --decode-memory raises the budget)"},
	} {
		src := &memSource{n: 4, load: func(i int) (data.Sample, error) {
			if i == 2 {
				return data.Sample{Encoded: pngHeader16(10000, 10000)}, nil
			}
			return data.Sample{Encoded: pngBytes(t, i)}, nil
		}}
		out := filepath.Join(t.TempDir(), "f.safetensors")
		res, err := Extract(context.Background(), src, &meanBackbone{s: 6}, out, Options{Batch: 2, Workers: 2, DecodeMemory: c.budget, Log: quiet()})
		if c.want == nil {
			if !errors.Is(err, ErrNoImages) || !strings.Contains(err.Error(), c.frag) {
				t.Errorf("budget %d: %v", c.budget, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		checkRows(t, out, c.want)
		if len(res.Skipped) != 1 || !errors.Is(res.Skipped[0].Err, imageproc.ErrTooLarge) || !strings.Contains(res.Skipped[0].Err.Error(), c.frag) {
			t.Errorf("budget %d: skipped %v", c.budget, res.Skipped)
		}
	}
}

// TestExtractBufferMemory: a model input and batch whose float32 buffers
// exceed the limit are refused before any image is read, with an error
// naming the batch, the input size and the memory (the 8192-pixel
// crops: 0.75 GiB an image).
func TestExtractBufferMemory(t *testing.T) {
	if got, want := BufferBytes(32, 4, 224), int64(12+64)*3*224*224*4; got != want {
		t.Fatalf("BufferBytes = %d, want %d", got, want)
	}
	src := &memSource{n: 100, load: rawSample}
	out := filepath.Join(t.TempDir(), "f.safetensors")
	_, err := Extract(context.Background(), src, &meanBackbone{s: 8192}, out, Options{Batch: 32, Workers: 2, Log: quiet()})
	if err == nil || !strings.Contains(err.Error(), "batch 32 with 2 workers at the model's 8192×8192 input (preprocess crop 8192 in mean.onnx's manifest) needs 54.00 GiB of image buffers (72 images of 768 MiB), over the limit of 4.00 GiB") {
		t.Fatalf("8192-pixel crops: %v", err)
	}
	if src.loads.Load() != 0 {
		t.Fatalf("%d images loaded before the refusal", src.loads.Load())
	}
	// Within an explicit limit the same sizes are accepted (checked on a
	// small input, not allocated here).
	if _, err := Extract(context.Background(), src, &meanBackbone{s: 6}, out, Options{Batch: 32, Workers: 2, BufferMemory: BufferBytes(32, 2, 6), Log: quiet()}); err != nil {
		t.Fatal(err)
	}
}

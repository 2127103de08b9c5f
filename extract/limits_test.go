package extract

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/extract/imageproc"
)

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
	if err == nil || !strings.Contains(err.Error(), "batch 32 with 2 workers at the model's 8192×8192 input (preprocess crop 8192 in mean.onnx's manifest) needs 54.00 GiB of image buffers (72 images of 768 MiB), over the limit of 4.00 GiB: lower the batch size or the workers, or raise the limit (cl extract --buffer-memory)") {
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

package extract

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/models"
)

// memSource is an in-memory data.Source: sample i is what load(i) returns,
// label i % 3. Loads sleep a random few hundred microseconds so that
// workers finish out of order.
type memSource struct {
	n     int
	load  func(i int) (data.Sample, error)
	loads atomic.Int64
}

func (s *memSource) Len() int          { return s.n }
func (s *memSource) Classes() []string { return []string{"a", "b", "c"} }
func (s *memSource) Label(i int) int   { return i % 3 }
func (s *memSource) ID(i int) string   { return fmt.Sprintf("mem:%d", i) }
func (s *memSource) Spec() string      { return "mem" }
func (s *memSource) Close() error      { return nil }
func (s *memSource) Load(i int) (data.Sample, error) {
	s.loads.Add(1)
	time.Sleep(time.Duration(rand.Intn(300)) * time.Microsecond)
	return s.load(i)
}

// rawSample is an 8×8 RGB image with R = i mod 256, G = i / 256, B = 7.
func rawSample(i int) (data.Sample, error) {
	pix := make([]uint8, 8*8*3)
	for j := 0; j < 64; j++ {
		pix[3*j], pix[3*j+1], pix[3*j+2] = uint8(i%256), uint8(i/256), 7
	}
	return data.Sample{Raw: &data.Raw{W: 8, H: 8, C: 3, Pix: pix}}, nil
}

// meanBackbone is a pure-Go backbone: the features of an image are its
// per-channel means (D = 3), so each row says which image it came from.
type meanBackbone struct {
	s     int
	calls atomic.Int64
	hook  func(call int64)
}

func (b *meanBackbone) Manifest() models.Manifest {
	return models.Manifest{Input: "x", Output: "y", Preprocess: models.Preprocess{Interpolation: "bilinear", Crop: b.s}}
}
func (b *meanBackbone) Dim() int            { return 3 }
func (b *meanBackbone) SHA256() string      { return "feed" }
func (b *meanBackbone) Fingerprint() string { return "f00d" }
func (b *meanBackbone) Path() string        { return "/models/mean.onnx" }
func (b *meanBackbone) Run(x []float32, n int) ([]float32, error) {
	c := b.calls.Add(1)
	if b.hook != nil {
		b.hook(c)
	}
	per := b.s * b.s
	if len(x) != n*3*per {
		return nil, fmt.Errorf("input of %d values for %d images", len(x), n)
	}
	y := make([]float32, 3*n)
	for i := 0; i < n; i++ {
		for c := 0; c < 3; c++ {
			var sum float32
			for _, v := range x[(3*i+c)*per : (3*i+c+1)*per] {
				sum += v
			}
			y[3*i+c] = sum / float32(per)
		}
	}
	return y, nil
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// checkRows verifies that row r of the file is sample want[r].
func checkRows(t *testing.T, path string, want []int) *features.Set {
	t.Helper()
	s, err := features.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.N != len(want) || s.D != 3 {
		t.Fatalf("%d rows of %d, want %d of 3", s.N, s.D, len(want))
	}
	for r, i := range want {
		row := s.Row(r)
		if got := [3]int{int(row[0]*255 + 0.5), int(row[1]*255 + 0.5), int(row[2]*255 + 0.5)}; got != [3]int{i % 256, i / 256, 7} {
			t.Fatalf("row %d holds %v, want image %d", r, got, i)
		}
		if s.Labels[r] != i%3 || s.IDs[r] != fmt.Sprintf("mem:%d", i) {
			t.Fatalf("row %d: label %d id %q, want image %d", r, s.Labels[r], s.IDs[r], i)
		}
	}
	if s.Model != "mean.onnx" || s.ModelSHA256 != "feed" || s.Fingerprint != "f00d" || s.Source != "mem" ||
		s.Preprocess != `{"resize":0,"interpolation":"bilinear","crop":6}` || strings.Join(s.Classes, ",") != "a,b,c" {
		t.Fatalf("metadata %q %q %q %q %v", s.Model, s.ModelSHA256, s.Source, s.Preprocess, s.Classes)
	}
	return s
}

func TestExtractOrder(t *testing.T) {
	for _, c := range []struct{ n, batch, workers int }{{1, 32, 1}, {103, 8, 4}, {64, 16, 3}, {300, 7, 8}} {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "f.safetensors")
			src := &memSource{n: c.n, load: rawSample}
			res, err := Extract(context.Background(), src, &meanBackbone{s: 6}, out, Options{Batch: c.batch, Workers: c.workers, Log: quiet()})
			if err != nil {
				t.Fatal(err)
			}
			want := make([]int, c.n)
			for i := range want {
				want[i] = i
			}
			checkRows(t, out, want)
			if res.Rows != c.n || res.Total != c.n || len(res.Skipped) != 0 || res.D != 3 {
				t.Fatalf("result %+v", res)
			}
		})
	}
}

func TestExtractLimit(t *testing.T) {
	out := filepath.Join(t.TempDir(), "f.safetensors")
	src := &memSource{n: 500, load: rawSample}
	res, err := Extract(context.Background(), src, &meanBackbone{s: 6}, out, Options{Batch: 4, Workers: 2, Limit: 10, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, out, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	if res.Total != 10 || src.loads.Load() != 10 {
		t.Fatalf("total %d, %d loads", res.Total, src.loads.Load())
	}
}

func pngBytes(t *testing.T, i int) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, 8, 8))
	for j := 0; j < 64; j++ {
		img.Set(j%8, j/8, color.NRGBA{uint8(i % 256), uint8(i / 256), 7, 255})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// badSource: encoded PNGs, with a zero-byte file (3), a truncated one (10),
// garbage (11), an unreadable one (20) and a raw image of bad shape (21).
func badSource(t *testing.T, n int) *memSource {
	return &memSource{n: n, load: func(i int) (data.Sample, error) {
		b := pngBytes(t, i)
		switch i {
		case 3:
			return data.Sample{Encoded: []byte{}}, nil
		case 10:
			return data.Sample{Encoded: b[:len(b)/2]}, nil
		case 11:
			return data.Sample{Encoded: []byte("GIF89a but not really")}, nil
		case 20:
			return data.Sample{}, &os.PathError{Op: "open", Path: "/data/x/20.png", Err: os.ErrPermission}
		case 21:
			return data.Sample{Raw: &data.Raw{W: 8, H: 8, C: 3, Pix: make([]uint8, 5)}}, nil
		}
		return data.Sample{Encoded: b}, nil
	}}
}

func TestExtractSkipsBadImages(t *testing.T) {
	out := filepath.Join(t.TempDir(), "f.safetensors")
	var logBuf bytes.Buffer
	res, err := Extract(context.Background(), badSource(t, 30), &meanBackbone{s: 6}, out,
		Options{Batch: 4, Workers: 3, Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var want []int
	for i := 0; i < 30; i++ {
		if i != 3 && i != 10 && i != 11 && i != 20 && i != 21 {
			want = append(want, i)
		}
	}
	checkRows(t, out, want)
	if res.Rows != 25 || len(res.Skipped) != 5 {
		t.Fatalf("result %+v", res)
	}
	for k, frag := range []string{"empty (0 bytes)", "", "", "permission denied", "invalid 8x8x3 raw image"} {
		s := res.Skipped[k]
		if s.ID != fmt.Sprintf("mem:%d", []int{3, 10, 11, 20, 21}[k]) || !strings.Contains(s.Err.Error(), frag) {
			t.Errorf("skipped[%d] = %v", k, s)
		}
		if !strings.Contains(logBuf.String(), "id="+s.ID) {
			t.Errorf("no warning for %s in %q", s.ID, logBuf.String())
		}
	}
}

func TestExtractStrict(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "f.safetensors")
	_, err := Extract(context.Background(), badSource(t, 30), &meanBackbone{s: 6}, out, Options{Batch: 4, Workers: 3, Strict: true, Log: quiet()})
	if err == nil || !strings.Contains(err.Error(), "mem:3: image data is empty") || !strings.Contains(err.Error(), "--strict") {
		t.Fatalf("strict: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("strict run left files: %v", entries)
	}
}

func TestExtractAllBad(t *testing.T) {
	dir := t.TempDir()
	src := &memSource{n: 5, load: func(int) (data.Sample, error) { return data.Sample{Encoded: []byte("x")}, nil }}
	_, err := Extract(context.Background(), src, &meanBackbone{s: 6}, filepath.Join(dir, "f.safetensors"), Options{Log: quiet()})
	if !errors.Is(err, ErrNoImages) {
		t.Fatalf("all bad: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left files: %v", entries)
	}
}

func TestExtractCancel(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := &memSource{n: 10000, load: rawSample}
	bb := &meanBackbone{s: 6, hook: func(call int64) {
		if call == 3 {
			cancel()
		}
	}}
	done := make(chan error, 1)
	go func() {
		_, err := Extract(ctx, src, bb, filepath.Join(dir, "f.safetensors"), Options{Batch: 4, Workers: 2, Log: quiet()})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "extraction stopped after") {
			t.Fatalf("cancelled run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Extract did not stop after cancellation")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("cancelled run left files: %v", entries)
	}
	if l := src.loads.Load(); l > 200 {
		t.Fatalf("%d images loaded after cancelling at the third batch", l)
	}
}

func TestExtractModelError(t *testing.T) {
	dir := t.TempDir()
	src := &memSource{n: 50, load: rawSample}
	bad := &wrongDim{&meanBackbone{s: 6}}
	_, err := Extract(context.Background(), src, bad, filepath.Join(dir, "f.safetensors"), Options{Batch: 8, Log: quiet()})
	if err == nil || !strings.Contains(err.Error(), "returned 24 values for 8 images of dimension 4") {
		t.Fatalf("wrong output size: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("failed run left files: %v", entries)
	}
}

// wrongDim claims D = 4 but returns 3 values per image.
type wrongDim struct{ *meanBackbone }

func (w *wrongDim) Dim() int { return 4 }

func TestExtractUnwritable(t *testing.T) {
	src := &memSource{n: 5, load: rawSample}
	_, err := Extract(context.Background(), src, &meanBackbone{s: 6}, filepath.Join(t.TempDir(), "no", "f.safetensors"), Options{Log: quiet()})
	if err == nil || !strings.Contains(err.Error(), "cannot write") || src.loads.Load() != 0 {
		t.Fatalf("unwritable: %v (%d loads)", err, src.loads.Load())
	}
	dir := t.TempDir()
	_, err = Extract(context.Background(), src, &meanBackbone{s: 6}, dir, Options{Log: quiet()})
	if err == nil || !strings.Contains(err.Error(), "it is a folder") || src.loads.Load() != 0 {
		t.Fatalf("folder as output: %v", err)
	}
}

func TestProgressLine(t *testing.T) {
	p := newProgress(nil, 200, time.Second)
	t0 := time.Now()
	p.start, p.now = t0, func() time.Time { return t0.Add(10 * time.Second) }
	p.add(50)
	if got, want := p.line(), "[######..................] 50/200  25%  5.0 img/s  ETA 30s   "; got != want {
		t.Fatalf("line %q, want %q", got, want)
	}
	var b bytes.Buffer
	p = newProgress(&b, 3, time.Millisecond)
	p.add(3)
	time.Sleep(5 * time.Millisecond)
	p.finish()
	p.finish()
	if !strings.Contains(b.String(), "] 3/3 100%") || !strings.HasSuffix(b.String(), "\n") {
		t.Fatalf("progress output %q", b.String())
	}
}

// With DecodeBetweenRuns no image is loaded while the backbone runs, and the
// output is the same as with overlap.
func TestExtractDecodeBetweenRuns(t *testing.T) {
	for _, gated := range []bool{false, true} {
		var running, overlaps atomic.Int64
		src := &memSource{n: 97, load: func(i int) (data.Sample, error) {
			if running.Load() != 0 {
				overlaps.Add(1)
			}
			return rawSample(i)
		}}
		bb := &meanBackbone{s: 6, hook: func(int64) {
			running.Add(1)
			time.Sleep(3 * time.Millisecond) // long enough for idle workers to try loading
			running.Add(-1)
		}}
		out := filepath.Join(t.TempDir(), "f.safetensors")
		if _, err := Extract(context.Background(), src, bb, out, Options{Batch: 8, Workers: 4, Log: quiet(), DecodeBetweenRuns: gated}); err != nil {
			t.Fatal(err)
		}
		want := make([]int, 97)
		for i := range want {
			want[i] = i
		}
		checkRows(t, out, want)
		if gated && overlaps.Load() != 0 {
			t.Fatalf("gated: %d loads ran while the backbone ran", overlaps.Load())
		}
		if !gated && overlaps.Load() == 0 {
			t.Fatal("ungated: no load overlapped a backbone call; the test cannot tell the modes apart")
		}
	}
}

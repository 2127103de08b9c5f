package extract

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/models"
)

// benchImages writes n deterministic 500×375 JPEG photos-alike (smooth
// gradients, shapes and noise; quality 90, ImageNet's typical size) into
// dir/<class>/ as an ImageFolder, unless they are there already.
func benchImages(tb testing.TB, dir string, n int) {
	tb.Helper()
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, fmt.Sprintf("c%d", i%4), fmt.Sprintf("%04d.jpg", i))
		if _, err := os.Stat(p); err == nil {
			continue
		}
		w, h := 500, 375
		if i%3 == 0 {
			w, h = 375, 500
		}
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		cx, cy, r := rng.Float64()*float64(w), rng.Float64()*float64(h), 40+rng.Float64()*120
		base := [3]float64{rng.Float64() * 255, rng.Float64() * 255, rng.Float64() * 255}
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				var c [3]uint8
				in := math.Hypot(float64(x)-cx, float64(y)-cy) < r
				for k := range c {
					v := base[k]*float64(x)/float64(w) + float64(k*y)/float64(h)*80 + rng.NormFloat64()*12
					if in {
						v = 255 - v
					}
					c[k] = uint8(max(0, min(255, v)))
				}
				img.SetRGBA(x, y, color.RGBA{c[0], c[1], c[2], 255})
			}
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		f, err := os.Create(p)
		if err != nil {
			tb.Fatal(err)
		}
		if err := jpeg.Encode(f, img, &jpeg.Options{Quality: 90}); err != nil {
			tb.Fatal(err)
		}
		f.Close()
	}
}

// BenchmarkPipelineDecode measures the pipeline without a real model
// (meanBackbone): reading, JPEG decoding, bicubic resize to 256, crop 224
// and batching of 500×375 JPEGs — the CPU cost that extraction adds to
// inference.
func BenchmarkPipelineDecode(b *testing.B) {
	dir := b.TempDir()
	benchImages(b, dir, 64)
	src, err := data.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	bb := &vitShaped{meanBackbone{s: 224}}
	out := filepath.Join(b.TempDir(), "f.safetensors")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Extract(context.Background(), src, bb, out, Options{Log: quiet()}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*src.Len())/b.Elapsed().Seconds(), "img/s")
}

// vitShaped is meanBackbone with the ViT-B/16-IN21K preprocessing.
type vitShaped struct{ meanBackbone }

func (v *vitShaped) Manifest() models.Manifest {
	return models.Manifest{Input: "x", Output: "y", Preprocess: models.ViTIN21K()}
}

// BenchmarkViTB16 compares, on a ViT-B/16 (224) .onnx given by
// $CL_BENCH_VITB16 (scripts/make-vit-b16.py; random weights are fine),
// the whole extraction (JPEG files → features file) with ONNX Runtime alone
// on ready tensors, same batch and threads, alternating which goes first in
// each iteration. Metrics: pipeline img/s, inference-only img/s and their
// ratio. Images: $CL_BENCH_IMAGES (kept, for scripts/bench_extract_torch.py)
// or a temporary folder; $CL_BENCH_N images (default 96), $CL_BENCH_BATCH
// (32), $CL_BENCH_THREADS (0 = all cores). Run it with scripts/bench-extract.sh.
func BenchmarkViTB16(b *testing.B) {
	path := os.Getenv("CL_BENCH_VITB16")
	if path == "" {
		b.Skip("set CL_BENCH_VITB16 to a ViT-B/16 .onnx (scripts/make-vit-b16.py /tmp/vitb16.onnx)")
	}
	env := func(k string, def int) int {
		if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
			return v
		}
		return def
	}
	n, batch, threads := env("CL_BENCH_N", 96), env("CL_BENCH_BATCH", 32), env("CL_BENCH_THREADS", 0)
	dir := os.Getenv("CL_BENCH_IMAGES")
	if dir == "" {
		dir = b.TempDir()
	}
	benchImages(b, dir, n)
	bb := openORT(b, path, threads)
	src, err := data.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	s := bb.InputSize()
	x := make([]float32, batch*3*s*s)
	rng := rand.New(rand.NewSource(2))
	for i := range x {
		x[i] = rng.Float32()
	}
	out := filepath.Join(b.TempDir(), "f.safetensors")
	// Warm-up: one batch each (allocator arenas, page cache).
	if _, err := bb.Run(x, batch); err != nil {
		b.Fatal(err)
	}
	var tPipe, tGated, tInfer time.Duration
	extract := func(gated bool, t *time.Duration) {
		t0 := time.Now()
		if _, err := Extract(context.Background(), src, bb, out, Options{Batch: batch, Log: quiet(), DecodeBetweenRuns: gated}); err != nil {
			b.Fatal(err)
		}
		*t += time.Since(t0)
	}
	pipeline := func() {
		extract(false, &tPipe)
		extract(true, &tGated)
	}
	inferOnly := func() {
		t0 := time.Now()
		for done := 0; done < n; done += batch {
			k := min(batch, n-done)
			if _, err := bb.Run(x[:k*3*s*s], k); err != nil {
				b.Fatal(err)
			}
		}
		tInfer += time.Since(t0)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			pipeline()
			inferOnly()
		} else {
			inferOnly()
			pipeline()
		}
	}
	pipe := float64(b.N*n) / tPipe.Seconds()
	gated := float64(b.N*n) / tGated.Seconds()
	inf := float64(b.N*n) / tInfer.Seconds()
	b.ReportMetric(pipe, "pipeline-img/s")
	b.ReportMetric(gated, "gated-img/s")
	b.ReportMetric(inf, "infer-img/s")
	b.ReportMetric(pipe/inf, "ratio")
	b.ReportMetric(gated/inf, "gated-ratio")
}

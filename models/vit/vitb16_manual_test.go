//go:build manual && cgo

package vit

import (
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/cl-dev/cl/internal/safetensors"
	"github.com/cl-dev/cl/models"
)

// TestViTB16 is the ViT-B/16-size check of docs/VIT.md, run by
// scripts/bench-vit.sh: CL_VIT_B16_DIR names the folder written by
// `make_reference.py --vitb DIR` (random weights). It reports (never
// asserts) speed: the Go-built graphs against torch.onnx.export's graph of
// the same weights on 2 threads, runs alternating, batch 1 and 32. Parity
// with torch and the int8 cosine are asserted.
func TestViTB16(t *testing.T) {
	dir := os.Getenv("CL_VIT_B16_DIR")
	if dir == "" {
		t.Skip("set CL_VIT_B16_DIR (see scripts/bench-vit.sh) to run the ViT-B/16 parity and speed check")
	}
	threads := 2
	start := time.Now()
	w, err := Load(filepath.Join(dir, "vitb.safetensors"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("read checkpoint: %v (%+v)", time.Since(start).Round(time.Millisecond), w.Config)
	g, err := safetensors.ReadFile(filepath.Join(dir, "vitb_golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	in := g.Tensors["input"]
	want := g.Tensors["features"].Float32s()
	type cand struct {
		name string
		s    *session
	}
	var cands []cand
	torchModel, err := models.ReadModel(filepath.Join(dir, "vitb_torch.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	cands = append(cands, cand{"torch.onnx.export", newSession(t, torchModel, threads)})
	var fp32 []float32
	for _, c := range []struct {
		name string
		o    Options
	}{{"go onnx-attention", Options{Attention: AttentionONNX}}, {"go mha", Options{Attention: AttentionMHA}},
		{"go int8", Options{Attention: AttentionONNX, Quantize: "int8"}}} {
		start := time.Now()
		m, err := Build(w, c.o)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: built in %v", c.name, time.Since(start).Round(time.Millisecond))
		if c.o.Quantize == "" {
			if err := models.WriteModel(filepath.Join(dir, "vitb_"+c.o.Attention+".onnx"), m); err != nil {
				t.Fatal(err)
			}
		}
		s := newSession(t, m, threads)
		out := s.run(t, tensorFeed(InputName, in))[OutputName]
		if c.o.Quantize == "" {
			d := maxAbsDiff(t, out, want)
			t.Logf("%s: max |Δ| vs torch = %.3g (features max |x| %.3g)", c.name, d, maxAbs(want))
			if d > tolerance {
				t.Errorf("%s: max |Δ| %.3g > %g", c.name, d, tolerance)
			}
			fp32 = out
		} else {
			W := w.Width
			minCos := 1.0
			for i := 0; i < int(in.Shape[0]); i++ {
				if c := cosine(out[i*W:(i+1)*W], fp32[i*W:(i+1)*W]); c < minCos {
					minCos = c
				}
			}
			t.Logf("%s: min cosine vs fp32 over %d images = %.5f", c.name, in.Shape[0], minCos)
			if minCos < 0.95 {
				t.Errorf("int8 cosine %.4f < 0.95", minCos)
			}
		}
		if c.o.Attention == AttentionMHA && os.Getenv("CL_VIT_B16_MHA") == "" {
			s.s.Destroy() // timed only when asked: keeps the run short
			s.s = nil
		} else {
			cands = append(cands, cand{c.name, s})
		}
		runtime.GC()
	}
	per := len(in.Float32s()) / int(in.Shape[0])
	for _, c := range []struct{ n, reps int }{{1, 21}, {32, 3}} {
		x := make([]float32, c.n*per)
		for i := 0; i < c.n; i++ {
			copy(x[i*per:], in.Float32s()[(i%int(in.Shape[0]))*per:])
		}
		f := feed{name: InputName, shape: []int64{int64(c.n), 3, int64(w.Image), int64(w.Image)}, data: x}
		times := make([][]time.Duration, len(cands))
		if c.n == 1 { // warm-up (batch 32 runs after the batch-1 ones)
			for _, cd := range cands {
				cd.s.run(t, f)
			}
		}
		for r := 0; r < c.reps; r++ {
			for i, cd := range cands {
				start := time.Now()
				cd.s.run(t, f)
				times[i] = append(times[i], time.Since(start))
			}
		}
		// On a shared machine the minimum is the least disturbed run.
		base, baseMed := minimum(times[0]), median(times[0])
		for i, cd := range cands {
			m, md := minimum(times[i]), median(times[i])
			t.Logf("batch %2d  %-18s min %8.1f ms (median %8.1f)  %6.2f img/s  speed vs torch export ×%.2f (medians ×%.2f)",
				c.n, cd.name, float64(m)/1e6, float64(md)/1e6, float64(c.n)/m.Seconds(), float64(base)/float64(m),
				float64(baseMed)/float64(md))
		}
	}
}

func maxAbs(v []float32) float64 {
	var m float64
	for _, x := range v {
		if a := float64(x); a > m {
			m = a
		} else if -a > m {
			m = -a
		}
	}
	return m
}

func minimum(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		if x < m {
			m = x
		}
	}
	return m
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

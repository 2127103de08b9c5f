//go:build manual

package heads

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cl-dev/cl/extract/features"
	"github.com/cl-dev/cl/heads/internal/kernel"
)

// TestTopKRealFeatures (build tag manual: go test -tags manual ./heads
// -run TopKReal) is an opt-in check on real feature files: set
// CL_TOPK_FEATURES to a folder holding train.safetensors and
// test.safetensors (e.g. MobileNetV2 Fashion-MNIST features). For each
// ranker it logs how often the float32 kernel's arg-max alone agrees with the
// float64 arg-max of Scores, the mean shortlist size, and requires TopK to
// equal the Scores ranking (top-1 and top-5).
func TestTopKRealFeatures(t *testing.T) {
	dir := os.Getenv("CL_TOPK_FEATURES")
	if dir == "" {
		t.Skip("set CL_TOPK_FEATURES to a folder with train.safetensors and test.safetensors to run")
	}
	tr, err := features.Read(filepath.Join(dir, "train.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	te, err := features.Read(filepath.Join(dir, "test.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range rankerMethods {
		if m == "aper" {
			continue // same path as simplecil
		}
		h := fitHead(t, m, tr.X, tr.Labels)
		checkTopK(t, "real", h, te.X)
		var f *fastScorer
		switch hh := h.(type) {
		case *protoHead:
			f = hh.fast.p.Load()
		case *LDA:
			f = hh.fast.p.Load()
		}
		if f == nil || f.full {
			t.Logf("%s: no float32 path for these features (norms out of range)", m)
			continue
		}
		s := scoresOf(t, h, te.X)
		c, d, n := f.c, f.d, te.N
		approx := make([]float32, n*f.packed.Stride())
		kernel.Dot(approx, te.X, n, f.packed)
		agree := 0
		for i := 0; i < n; i++ {
			a := approx[i*f.packed.Stride():]
			b32, b64 := 0, 0
			for j := 1; j < c; j++ {
				v, w := float64(a[j]), float64(a[b32])
				if f.bias != nil {
					v, w = f.alpha*v+f.bias[j], f.alpha*w+f.bias[b32]
				}
				if v > w {
					b32 = j
				}
				if s[i*c+j] > s[i*c+b64] {
					b64 = j
				}
			}
			if b32 == b64 {
				agree++
			}
		}
		t.Logf("%s: %d test rows, D=%d, C=%d: float32-only arg-max agrees with float64 on %d (%.4f%%); TopK equals Scores ranking on all",
			m, n, d, c, agree, 100*float64(agree)/float64(n))
	}
}

//go:build manual

package heads

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/heads/internal/kernel"
)

// TestTopKRealFeatures (build tag manual: go test -tags manual ./heads
// -run TopKReal) is an opt-in check on real feature files: set
// CL_TOPK_FEATURES to a folder holding train.safetensors and
// test.safetensors (e.g. MobileNetV2 Fashion-MNIST features). For each
// ranker it requires TopK to equal the Scores ranking (k = 1, 2, 5, C), the
// int8 shortlist to hold the arg-max of Scores on every row, and logs the
// mean shortlist size and how many rows needed no float64 re-scoring.
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
	if !kernel.Int8Available() {
		t.Fatal("no AVX-512 VNNI on this machine: TopK scores every class exactly")
	}
	for _, m := range rankerMethods {
		if m == "aper" {
			continue // same path as simplecil
		}
		h := fitHead(t, m, tr.X, tr.Labels)
		checkTopK(t, "real", h, te.X)
		var f *linearScorer
		switch hh := h.(type) {
		case *protoHead:
			f = hh.scorer()
		case *LDA:
			f = hh.scorer()
		}
		if f.q == nil {
			t.Fatalf("%s: no int8 path for these features", m)
		}
		s := scoresOf(t, h, te.X)
		c, n := f.c, te.N
		sc := f.getScratch()
		total, single := 0, 0
		for r0 := 0; r0 < n; r0 += rankBlock {
			nb := min(rankBlock, n-r0)
			f.q.Dot(sc.dots, f.q.Stride(), sc.stats, te.X[r0*f.d:(r0+nb)*f.d], nb, sc.k8)
			for i := r0; i < r0+nb; i++ {
				if !sc.stats[i-r0].OK {
					t.Fatalf("%s row %d not quantised", m, i)
				}
				sc.cand = sc.cand[:0]
				f.shortlist(sc, sc.dots[(i-r0)*f.q.Stride():(i-r0)*f.q.Stride()+f.c8], sc.stats[i-r0], 1)
				if best := rankOf(s[i*c:(i+1)*c], c, 1)[0]; !slices.Contains(sc.cand, best) {
					t.Fatalf("%s row %d: arg-max %d not in the shortlist %v", m, i, best, sc.cand)
				}
				total += len(sc.cand)
				if len(sc.cand) == 1 {
					single++
				}
			}
		}
		t.Logf("%s: %d test rows, D=%d, C=%d: %.3f classes shortlisted per row; %.2f%% of rows decided by int8 alone; TopK equals the Scores ranking",
			m, n, f.d, c, float64(total)/float64(n), 100*float64(single)/float64(n))
	}
}

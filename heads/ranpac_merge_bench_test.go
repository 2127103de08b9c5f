package heads

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/cl-dev/cl/internal/linalg"
	"github.com/cl-dev/cl/internal/npy"
)

// BenchmarkRanPACMergeForget times, in memory (no head files), what cl merge
// and cl forget do to RanPAC heads: two heads fitted on the two halves of N
// synthetic rows (one stage each, untimed), then merge: h1.Merge(h2) and
// Refresh (G₁ + G₂, Q₁ + Q₂, the Cholesky solve at h1's λ); then forget:
// Unlearn of the first F rows of h1's half (RANPAC_BENCH_FORGET, default
// N/10: their HᵀH and H out of G and Q) and Refresh. Sizes from
// RANPAC_BENCH_M (2000) and RANPAC_BENCH_N (10000). merge-s and forget-s are
// the two times (last iteration). With RANPAC_BENCH_DIR set, the inputs, the
// projection, λ and the predictions of the first 500 rows after each step
// are written there for scripts/bench_ranpac_merge.py, which runs the same
// steps in numpy and compares.
func BenchmarkRanPACMergeForget(b *testing.B) {
	m := envInt("RANPAC_BENCH_M", 2000)
	n := envInt("RANPAC_BENCH_N", 10000)
	f := envInt("RANPAC_BENCH_FORGET", n/10)
	const d, c = 768, 10
	x, y := ranpacData(11, c, d, n/c)
	half := len(y) / 2
	var h1 *RanPAC
	var mergeTime, forgetTime time.Duration
	var predMerge, predForget []int
	predict := func(h *RanPAC) []int {
		sc, err := h.Scores(x[:500*d])
		if err != nil {
			b.Fatal(err)
		}
		k := len(sc) / 500
		p := make([]int, 500)
		for i := range p {
			p[i] = argmaxRow(sc[i*k : (i+1)*k])
		}
		return p
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		h1 = nil
		runtime.GC()
		var hs [2]*RanPAC
		for j, r := range [][2]int{{0, half}, {half, len(y)}} {
			h, err := NewRanPAC(RanPACConfig{M: m, Scoring: "cosine", Split: "shuffled", Search: "fast", Ridge: "stable"})
			if err != nil {
				b.Fatal(err)
			}
			if err := h.Learn(x[r[0]*d:r[1]*d], y[r[0]:r[1]]); err != nil {
				b.Fatal(err)
			}
			if err := h.EndStage(); err != nil {
				b.Fatal(err)
			}
			hs[j] = h
		}
		h1 = hs[0]
		runtime.GC()
		b.StartTimer()
		start := time.Now()
		if err := h1.Merge(hs[1]); err != nil {
			b.Fatal(err)
		}
		if err := Refresh(h1); err != nil {
			b.Fatal(err)
		}
		mergeTime = time.Since(start)
		b.StopTimer()
		hs[1] = nil
		predMerge = predict(h1)
		runtime.GC()
		b.StartTimer()
		start = time.Now()
		if err := h1.Unlearn(x[:f*d], y[:f]); err != nil {
			b.Fatal(err)
		}
		if err := Refresh(h1); err != nil {
			b.Fatal(err)
		}
		forgetTime = time.Since(start)
		b.StopTimer()
		predForget = predict(h1)
	}
	rss := peakRSS()
	b.ReportMetric(mergeTime.Seconds(), "merge-s")
	b.ReportMetric(forgetTime.Seconds(), "forget-s")
	b.ReportMetric(float64(rss)/(8*float64(m)*float64(m)), "peak-rss/G")
	dir := os.Getenv("RANPAC_BENCH_DIR")
	if dir == "" {
		return
	}
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(npy.WriteFloat32(filepath.Join(dir, "x.npy"), x, []int{len(y), d}))
	must(npy.WriteFloat32(filepath.Join(dir, "W.npy"), h1.Projection(), []int{d, m}))
	out, _ := json.Marshal(map[string]any{
		"y": y, "half": half, "forget": f, "lambda": h1.solveLambda(),
		"pred_merge": predMerge, "pred_forget": predForget,
		"merge_seconds": mergeTime.Seconds(), "forget_seconds": forgetTime.Seconds(),
		"peak_rss_bytes": rss, "blas": linalg.Backend(), "lapack": linalg.LAPACKBackend(),
	})
	must(os.WriteFile(filepath.Join(dir, "go_merge.json"), out, 0o644))
}

package heads

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/cl-dev/cl/internal/linalg"
	"github.com/cl-dev/cl/internal/npy"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkRanPACStage times one RanPAC stage of N samples of D = 768 in 10
// classes: Learn (G += HᵀH, Q) then EndStage (λ selection on the stage and
// the final Cholesky solve). Sizes come from RANPAC_BENCH_M (default 1000)
// and RANPAC_BENCH_N (default 1000); RANPAC_BENCH_SEARCH=solve times PILOT's
// 17 solves instead. The metric peak-heap/G is the largest heap in use
// (runtime HeapInuse, sampled every 20 ms) during the stage divided by the
// bytes of G (8·P²); learn-heap/G and endstage-heap/G split it between Learn
// and EndStage (λ search + solve), and learn-s and endstage-s split the
// time (last iteration); learn-untimed-s and endstage-untimed-s are the
// parts of them outside the timed phases (checks, allocation and first
// touches, copies, the collector). NAME-GFLOP/s is each phase's analytic flop count
// (ranpacPhaseRates) over its wall time (last iteration), and peak-rss/G the
// process's peak resident memory (getrusage; 0 where unavailable) over the
// bytes of G. With RANPAC_BENCH_DIR
// set, the inputs, the projection, the split order, λ and the predictions
// are written there for scripts/bench_ranpac.py to compare with numpy.
func BenchmarkRanPACStage(b *testing.B) {
	m := envInt("RANPAC_BENCH_M", 1000)
	n := envInt("RANPAC_BENCH_N", 1000)
	const d, c = 768, 10
	x, y := ranpacData(11, c, d, n/c)
	search := os.Getenv("RANPAC_BENCH_SEARCH")
	if search == "" {
		search = "fast"
	}
	var h *RanPAC
	var peak atomic.Uint64
	var learnPeak, endPeak uint64
	var learnTime, endTime, learnPhases, endPhases time.Duration
	stop := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}
	}()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h = nil
		runtime.GC()
		var err error
		if h, err = NewRanPAC(RanPACConfig{M: m, Scoring: "cosine", Split: "shuffled", Search: search, Ridge: "stable"}); err != nil {
			b.Fatal(err)
		}
		h.timing = &ranpacTiming{}
		start := time.Now()
		if err := h.Learn(x, y); err != nil {
			b.Fatal(err)
		}
		learnTime = time.Since(start)
		learnPhases = h.timing.total()
		learnPeak = max(learnPeak, peak.Swap(0))
		start = time.Now()
		if err := h.EndStage(); err != nil {
			b.Fatal(err)
		}
		endTime = time.Since(start)
		endPhases = h.timing.total() - learnPhases
		endPeak = max(endPeak, peak.Swap(0))
	}
	b.StopTimer()
	close(stop)
	p := float64(m)
	b.ReportMetric(float64(max(learnPeak, endPeak))/(8*p*p), "peak-heap/G")
	b.ReportMetric(float64(learnPeak)/(8*p*p), "learn-heap/G")
	b.ReportMetric(float64(endPeak)/(8*p*p), "endstage-heap/G")
	b.ReportMetric(learnTime.Seconds(), "learn-s")
	b.ReportMetric(endTime.Seconds(), "endstage-s")
	b.ReportMetric((learnTime - learnPhases).Seconds(), "learn-untimed-s")
	b.ReportMetric((endTime - endPhases).Seconds(), "endstage-untimed-s")
	b.ReportMetric(h.Lambda(), "lambda")
	phases := ranpacPhaseRates(h, n, d, c, search)
	for _, ph := range phases {
		b.ReportMetric(ph.GFLOPs/ph.Seconds, ph.Name+"-GFLOP/s")
	}
	rss := peakRSS()
	b.ReportMetric(float64(rss)/(8*p*p), "peak-rss/G")
	dir := os.Getenv("RANPAC_BENCH_DIR")
	if dir == "" {
		return
	}
	test := x[:500*d]
	sc, err := h.Scores(test)
	if err != nil {
		b.Fatal(err)
	}
	pred := make([]int, 500)
	for i := range pred {
		pred[i] = argmaxRow(sc[i*c : (i+1)*c])
	}
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(npy.WriteFloat32(filepath.Join(dir, "x.npy"), x, []int{len(y), d}))
	must(npy.WriteFloat32(filepath.Join(dir, "W.npy"), h.Projection(), []int{d, m}))
	out, _ := json.Marshal(map[string]any{
		"y": y, "perm": RanPACSplitOrder(0, 0, len(y), true), "lambda": h.Lambda(),
		"pred": pred, "seconds_per_stage": b.Elapsed().Seconds() / float64(b.N),
		"learn_seconds": learnTime.Seconds(), "endstage_seconds": endTime.Seconds(),
		"learn_untimed_seconds": (learnTime - learnPhases).Seconds(), "endstage_untimed_seconds": (endTime - endPhases).Seconds(),
		"peak_heap_over_G": float64(max(learnPeak, endPeak)) / (8 * p * p), "blas": linalg.Backend(),
		"lapack": linalg.LAPACKBackend(), "peak_rss_over_G": float64(rss) / (8 * p * p), "phases": phases,
	})
	must(os.WriteFile(filepath.Join(dir, "go.json"), out, 0o644))
}

// BenchmarkRidgeSolve times the final solve of EndStage, (G + λI) W = Q with
// 10 right-hand sides, at n = 2000 (RANPAC_FACTOR_N overrides): "inplace" is
// ridgeSolve (factorised in G's memory, G restored), "copy" the former
// copy-based solve (ridgeSolveCopy, a second n×n buffer).
func BenchmarkRidgeSolve(b *testing.B) {
	n := envInt("RANPAC_FACTOR_N", 2000)
	r := rand.New(rand.NewPCG(17, 18))
	k := n / 2
	x := randSlice(r, k*n)
	g := make([]float64, n*n)
	gonum.Implementation{}.Dgemm(blas.Trans, blas.NoTrans, n, n, k, 1, x, n, x, n, 0, g, n)
	rhs := blas64.General{Rows: n, Cols: 10, Stride: 10, Data: randSlice(r, n*10)}
	for _, v := range []struct {
		name  string
		solve func([]float64, int, float64, blas64.General) (blas64.General, string, error)
	}{{"inplace", ridgeSolve}, {"copy", ridgeSolveCopy}} {
		b.Run(v.name, func(b *testing.B) {
			for b.Loop() {
				if _, s, err := v.solve(g, n, 1e-3, rhs); err != nil || s != "cholesky" {
					b.Fatal(s, err)
				}
			}
		})
	}
}

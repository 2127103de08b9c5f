package heads

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"

	"github.com/cl-dev/cl/internal/linalg"
	"github.com/cl-dev/cl/internal/npy"
)

// BenchmarkStatHeadFit times fitting FeCAM (variant=paper, the defaults) or
// streaming LDA (shrinkage 1e-4) on N synthetic rows of D features in C
// classes: Learn of all rows (the statistics) then EndStage (FeCAM: per
// class eigenvalues and Cholesky inverse; LDA: one Cholesky solve). The
// method and sizes come from STATHEAD_BENCH_METHOD (fecam, the default, or
// lda), STATHEAD_BENCH_N (6000), STATHEAD_BENCH_D (768) and
// STATHEAD_BENCH_C (10). learn-s and endstage-s split the time (last
// iteration); peak-rss-MiB is the process's peak resident memory. With
// STATHEAD_BENCH_DIR set, the inputs, the times and the predictions of the
// first 500 rows are written there for scripts/bench_stathead.py, which runs
// the same method in numpy and compares.
func BenchmarkStatHeadFit(b *testing.B) {
	method := os.Getenv("STATHEAD_BENCH_METHOD")
	if method == "" {
		method = "fecam"
	}
	n := envInt("STATHEAD_BENCH_N", 6000)
	d := envInt("STATHEAD_BENCH_D", 768)
	c := envInt("STATHEAD_BENCH_C", 10)
	x, y := ranpacData(13, c, d, n/c)
	var h Head
	var learnTime, endTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h = nil
		runtime.GC()
		h = newHead(b, method, nil)
		start := time.Now()
		if err := h.Learn(x, y); err != nil {
			b.Fatal(err)
		}
		learnTime = time.Since(start)
		start = time.Now()
		if err := h.EndStage(); err != nil {
			b.Fatal(err)
		}
		endTime = time.Since(start)
	}
	b.StopTimer()
	rss := peakRSS()
	b.ReportMetric(learnTime.Seconds(), "learn-s")
	b.ReportMetric(endTime.Seconds(), "endstage-s")
	b.ReportMetric(float64(rss)/(1<<20), "peak-rss-MiB")
	dir := os.Getenv("STATHEAD_BENCH_DIR")
	if dir == "" {
		return
	}
	const test = 500
	sc, err := h.Scores(x[:test*d])
	if err != nil {
		b.Fatal(err)
	}
	cls := len(sc) / test
	pred := make([]int, test)
	for i := range pred {
		pred[i] = argmaxRow(sc[i*cls : (i+1)*cls])
	}
	if err := npy.WriteFloat32(filepath.Join(dir, "x.npy"), x, []int{len(y), d}); err != nil {
		b.Fatal(err)
	}
	out, _ := json.Marshal(map[string]any{
		"method": method, "y": y, "pred": pred, "seconds": b.Elapsed().Seconds() / float64(b.N),
		"learn_seconds": learnTime.Seconds(), "endstage_seconds": endTime.Seconds(),
		"peak_rss_bytes": rss, "blas": linalg.Backend(), "lapack": linalg.LAPACKBackend(),
	})
	if err := os.WriteFile(filepath.Join(dir, "go.json"), out, 0o644); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkScatterSyrk measures the rate of LDA's scatter Σ x xᵀ alone: the
// Dsyrk of the selected BLAS (CL_BLAS=openblas: OpenBLAS's) on N × D float64
// rows (STATHEAD_BENCH_N, 60000, and STATHEAD_BENCH_D, 1280), as one call
// ("one") and as one call per chunk of 1024, 4096 or 16384 rows, the way
// Learn feeds it. It reports GFLOP/s (N·D·(D+1) flops, the product's upper
// triangle).
func BenchmarkScatterSyrk(b *testing.B) {
	n := envInt("STATHEAD_BENCH_N", 60000)
	d := envInt("STATHEAD_BENCH_D", 1280)
	x := make([]float64, n*d)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range x {
		x[i] = r.NormFloat64()
	}
	out := make([]float64, d*d)
	for _, chunk := range []int{n, 1024, 4096, 16384} {
		name := fmt.Sprintf("chunk-%d", chunk)
		if chunk == n {
			name = "one"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				clear(out)
				for i := 0; i < n; i += chunk {
					j := min(i+chunk, n)
					a := blas64.General{Rows: j - i, Cols: d, Stride: d, Data: x[i*d : j*d]}
					blas64.Syrk(blas.Trans, 1, a, 1, blas64.Symmetric{Uplo: blas.Upper, N: d, Stride: d, Data: out})
				}
			}
			b.ReportMetric(float64(n)*float64(d)*float64(d+1)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkFeCAMScoresRows times FeCAM's Scores of 1 row (a lone request)
// and of 512 rows against C = 10 classes at D = 768 (STATHEAD_BENCH_D, _C):
// per class the precision is unpacked from its triangle once per call, then
// one product per 256-row block.
func BenchmarkFeCAMScoresRows(b *testing.B) {
	d := envInt("STATHEAD_BENCH_D", 768)
	c := envInt("STATHEAD_BENCH_C", 10)
	x, y := ranpacData(13, c, d, 2*d/c+1)
	h := newHead(b, "fecam", nil)
	if err := h.Learn(x, y); err != nil {
		b.Fatal(err)
	}
	if err := h.EndStage(); err != nil {
		b.Fatal(err)
	}
	for _, rows := range []int{1, 512} {
		b.Run(fmt.Sprintf("rows-%d", rows), func(b *testing.B) {
			for b.Loop() {
				if _, err := h.Scores(x[:rows*d]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

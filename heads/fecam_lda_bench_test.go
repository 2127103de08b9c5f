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

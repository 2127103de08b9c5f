package heads

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

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
// during the stage divided by the bytes of G (8·P²). With RANPAC_BENCH_DIR
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
		if h, err = NewRanPAC(map[string]string{"M": strconv.Itoa(m), "search": search}); err != nil {
			b.Fatal(err)
		}
		if err := h.Learn(x, y); err != nil {
			b.Fatal(err)
		}
		if err := h.EndStage(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(stop)
	p := float64(m)
	b.ReportMetric(float64(peak.Load())/(8*p*p), "peak-heap/G")
	b.ReportMetric(h.Lambda(), "lambda")
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
	})
	must(os.WriteFile(filepath.Join(dir, "go.json"), out, 0o644))
}

//go:build manual && unix

package heads

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/heads/internal/kernel"
)

// BenchmarkPredictReal (build tag manual) measures prediction on real
// feature files beside synthetic ones of the same shape: set
// CL_TOPK_FEATURES to a folder holding train.safetensors and
// test.safetensors. For each head (SimpleCIL, NCM, LDA) fitted on the
// training rows it times Scores + arg-max and TopK (k = 1, every int8 path
// the machine has) on the first 1024 test rows, and on 1024 synthetic rows
// (BenchmarkPredict's class centres + noise, same C and D, centres scaled to
// the real rows' mean norm). Run it as docs/PERFORMANCE.md says:
//
//	CL_TOPK_FEATURES=DIR GOMAXPROCS=1 go test -tags manual ./heads -run '^$' -bench PredictReal -benchtime 300ms
func BenchmarkPredictReal(b *testing.B) {
	dir := os.Getenv("CL_TOPK_FEATURES")
	if dir == "" {
		b.Skip("set CL_TOPK_FEATURES to a folder with train.safetensors and test.safetensors to run")
	}
	tr, err := features.Read(filepath.Join(dir, "train.safetensors"))
	if err != nil {
		b.Fatal(err)
	}
	te, err := features.Read(filepath.Join(dir, "test.safetensors"))
	if err != nil {
		b.Fatal(err)
	}
	d, c := tr.D, len(tr.Classes)
	n := min(1024, te.N)
	// Synthetic rows of the same shape, at the real rows' scale.
	norm := 0.0
	for i := 0; i < tr.N; i++ {
		s := 0.0
		for _, v := range tr.Row(i) {
			s += float64(v) * float64(v)
		}
		norm += math.Sqrt(s) / float64(tr.N)
	}
	r := rand.New(rand.NewPCG(uint64(d), 3))
	centre := make([]float32, c*d)
	for i := range centre {
		centre[i] = float32(r.NormFloat64() * norm / math.Sqrt(float64(d)))
	}
	sample := func(rows int) ([]float32, []int) {
		x := make([]float32, rows*d)
		y := make([]int, rows)
		for i := range y {
			y[i] = r.IntN(c)
			for l := 0; l < d; l++ {
				x[i*d+l] = centre[y[i]*d+l] + float32(2*r.NormFloat64()*norm/math.Sqrt(float64(d)))
			}
		}
		return x, y
	}
	sxtr, sytr := sample(tr.N)
	sxte, _ := sample(n)
	name := filepath.Base(dir)
	for _, data := range []struct {
		kind     string
		xtr, xte []float32
		ytr      []int
	}{{"real", tr.X, te.X[:n*d], tr.Labels}, {"synthetic", sxtr, sxte, sytr}} {
		for _, m := range []string{"simplecil", "ncm", "lda"} {
			prefix := fmt.Sprintf("%s/%s/%s/C=%d/D=%d/n=%d", name, data.kind, m, c, d, n)
			// samples/cpu-s divides by the process's CPU time instead of the
			// wall time: on a machine shared with other jobs (GOMAXPROCS=1)
			// it counts only the time the benchmark actually ran.
			report := func(b *testing.B, cpu0 float64) {
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
				b.ReportMetric(float64(n)*float64(b.N)/(cpuSeconds()-cpu0), "samples/cpu-s")
			}
			h := newHead(b, m, nil)
			if err := h.Learn(data.xtr, data.ytr); err != nil {
				b.Fatal(err)
			}
			if err := h.EndStage(); err != nil {
				b.Fatal(err)
			}
			b.Run(prefix+"/scores+argmax", func(b *testing.B) {
				cpu0 := cpuSeconds()
				for b.Loop() {
					s, err := h.Scores(data.xte)
					if err != nil {
						b.Fatal(err)
					}
					argmax(s, c)
				}
				report(b, cpu0)
			})
			top := make([]int, n)
			for _, path := range kernel.Paths() {
				if path == "go" {
					continue
				}
				restore, err := kernel.UsePath(path)
				if err != nil {
					b.Fatal(err)
				}
				hp := newHead(b, m, nil) // quantised on this path
				if err := hp.Learn(data.xtr, data.ytr); err != nil {
					b.Fatal(err)
				}
				if err := hp.EndStage(); err != nil {
					b.Fatal(err)
				}
				b.Run(prefix+"/topk-"+path, func(b *testing.B) {
					cpu0 := cpuSeconds()
					for b.Loop() {
						if err := hp.(Ranker).TopK(data.xte, 1, top); err != nil {
							b.Fatal(err)
						}
					}
					report(b, cpu0)
				})
				restore()
			}
		}
	}
}

// cpuSeconds is the process's user + system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

package kernel

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkInt8Dot: quantising rows and their int8 products with 100 classes
// (the approximate half of TopK), against Dot for every class (the exact
// half, or all of Scores). Rates are feature rows per second; run with
// GOMAXPROCS=1 for per-core figures.
func BenchmarkInt8Dot(b *testing.B) {
	const c = 100
	for _, d := range []int{768, 1280} {
		r := rand.New(rand.NewPCG(1, uint64(d)))
		w := make([]float64, c*d)
		for i := range w {
			w[i] = r.NormFloat64()
		}
		const n = 1024
		x := make([]float32, n*d)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		dst := make([]int32, n*c)
		st := make([]RowQuant, n)
		for _, cv := range paths {
			if !*cv.on {
				continue
			}
			convOverride = &cv.cv
			p := QuantizeClasses(w, c, d)
			convOverride = nil
			sc := p.NewScratch()
			b.Run(fmt.Sprintf("int8-%s/D=%d", cv.name, d), func(b *testing.B) {
				for b.Loop() {
					p.Dot(dst, c, st, x, n, sc)
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
			})
		}
		x64 := make([]float64, d)
		for l := range x64 {
			x64[l] = float64(x[l])
		}
		b.Run(fmt.Sprintf("float64-dot/D=%d", d), func(b *testing.B) {
			var s float64
			for b.Loop() {
				for j := 0; j < c; j++ {
					s += Dot(x64, w[j*d:(j+1)*d])
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			_ = s
		})
	}
}

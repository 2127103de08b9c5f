package kernel

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
)

// BenchmarkDot compares, for 100 classes, the candidate inner loops side by
// side: the assembly tiles (asm), the portable Go kernel (go), gonum's
// float32 Sgemm (sgemm) and float64 Dgemm (dgemm, the exact path's product).
// Run with GOMAXPROCS=1 for per-core rates.
func BenchmarkDot(b *testing.B) {
	const c = 100
	r := rand.New(rand.NewPCG(1, 1))
	for _, d := range []int{768, 1280} {
		for _, n := range []int{1, 1024} {
			x := make([]float32, n*d)
			w := make([]float32, c*d)
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			for i := range w {
				w[i] = float32(r.NormFloat64())
			}
			p := Pack(w, c, d)
			dst := make([]float32, n*p.Stride())
			x64, w64, s64 := make([]float64, n*d), make([]float64, c*d), make([]float64, n*c)
			for i, v := range x {
				x64[i] = float64(v)
			}
			for i, v := range w {
				w64[i] = float64(v)
			}
			s32 := make([]float32, n*c)
			run := func(name string, f func()) {
				b.Run(fmt.Sprintf("D=%d/n=%d/%s", d, n, name), func(b *testing.B) {
					for b.Loop() {
						f()
					}
					sec := b.Elapsed().Seconds()
					b.ReportMetric(float64(n)*float64(b.N)/sec, "samples/s")
					b.ReportMetric(2*float64(c*d)*float64(n)*float64(b.N)/sec/1e9, "GFLOP/s")
				})
			}
			if useAsm {
				run("asm", func() { Dot(dst, x, n, p) })
			}
			run("go", func() { dotGo(dst, x, n, p) })
			run("sgemm", func() {
				blas32.Gemm(blas.NoTrans, blas.Trans, 1, blas32.General{Rows: n, Cols: d, Stride: d, Data: x},
					blas32.General{Rows: c, Cols: d, Stride: d, Data: w}, 0, blas32.General{Rows: n, Cols: c, Stride: c, Data: s32})
			})
			run("dgemm", func() {
				blas64.Gemm(blas.NoTrans, blas.Trans, 1, blas64.General{Rows: n, Cols: d, Stride: d, Data: x64},
					blas64.General{Rows: c, Cols: d, Stride: d, Data: w64}, 0, blas64.General{Rows: n, Cols: c, Stride: c, Data: s64})
			})
		}
	}
}

package heads

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cl-dev/cl/heads/internal/kernel"
)

// BenchmarkPredict compares, side by side, the two ways to get each row's
// best class: Scores (exact float64 kernel.Dot for every class) + arg-max,
// and TopK (int8 shortlist + exact re-scoring of the shortlist) on each int8
// path of the machine (topk-vnni: AVX-512 VNNI; topk-avx2: AVX2). Features
// are class centres plus noise (most rows are nearest to their own class).
// Run with GOMAXPROCS=1 for per-core rates; GFLOP/s counts 2·C·D per row.
func BenchmarkPredict(b *testing.B) {
	for _, cd := range []struct{ c, d int }{{100, 768}, {100, 1280}, {10, 1280}} {
		c, d := cd.c, cd.d
		r := rand.New(rand.NewPCG(uint64(d), 3))
		centre := make([]float32, c*d)
		for i := range centre {
			centre[i] = float32(r.NormFloat64())
		}
		sample := func(n int) ([]float32, []int) {
			x := make([]float32, n*d)
			y := make([]int, n)
			for i := range y {
				y[i] = r.IntN(c)
				for l := 0; l < d; l++ {
					x[i*d+l] = centre[y[i]*d+l] + float32(2*r.NormFloat64())
				}
			}
			return x, y
		}
		xtr, ytr := sample(20 * c)
		xte, _ := sample(1024)
		for _, m := range []string{"simplecil", "ncm"} {
			h := newHead(b, m, nil)
			if err := h.Learn(xtr, ytr); err != nil {
				b.Fatal(err)
			}
			for _, n := range []int{1, 1024} {
				x := xte[:n*d]
				top := make([]int, n)
				report := func(b *testing.B) {
					sec := b.Elapsed().Seconds()
					b.ReportMetric(float64(n)*float64(b.N)/sec, "samples/s")
					b.ReportMetric(2*float64(c*d)*float64(n)*float64(b.N)/sec/1e9, "GFLOP/s")
				}
				b.Run(fmt.Sprintf("%s/C=%d/D=%d/n=%d/scores+argmax", m, c, d, n), func(b *testing.B) {
					for b.Loop() {
						s, err := h.Scores(x)
						if err != nil {
							b.Fatal(err)
						}
						argmax(s, c)
					}
					report(b)
				})
				for _, path := range kernel.Paths() {
					if path == "go" {
						continue // TopK then scores every class, as Scores
					}
					restore, err := kernel.UsePath(path)
					if err != nil {
						b.Fatal(err)
					}
					hp := newHead(b, m, nil) // quantised on this path
					if err := hp.Learn(xtr, ytr); err != nil {
						b.Fatal(err)
					}
					b.Run(fmt.Sprintf("%s/C=%d/D=%d/n=%d/topk-%s", m, c, d, n, path), func(b *testing.B) {
						for b.Loop() {
							if err := hp.(Ranker).TopK(x, 1, top); err != nil {
								b.Fatal(err)
							}
						}
						report(b)
					})
					restore()
				}
			}
		}
	}
}

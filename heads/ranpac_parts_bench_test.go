package heads

import (
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/lapack64"

	"github.com/cl-dev/cl/internal/linalg"
)

// BenchmarkRanPACSearchParts times the pieces of the native λ search and of
// the final solve on one n×n Gram S = H_fᵀH_f (H_f: n_f × n, ReLU of
// Gaussians, as RanPAC's projection), so that the phases' seconds can be
// split: the band reduction (SymBand, for every half-bandwidth in
// RANPAC_PARTS_KD, default "64"), Qᵀ R, the 17 banded LU solves (dgbsv) and
// banded Cholesky solves (dpbtrf + dpbtrs, LU where they fail; inline and
// as bandLambdaSolves runs them), Q·Z for all λ, V·(Q Z); then the final solve's
// mirror (CopyTri), the blocked Cholesky, the native dpotrf on the whole
// matrix and the two triangular solves. Sizes: RANPAC_PARTS_N (n, default
// 2000), RANPAC_PARTS_NF (n_f, default 16000), RANPAC_PARTS_NV (validation
// rows, default 4000), c = 10. Each piece runs RANPAC_PARTS_REPS times
// (default 3) on fresh copies of its inputs and reports its fastest run in
// seconds (the minimum is what a shared machine lets through). It needs the
// native LAPACK (CL_BLAS=openblas). RANPAC_PARTS_ONLY=band times the band
// reductions alone, the half-bandwidths in turn within each repetition.
func BenchmarkRanPACSearchParts(b *testing.B) {
	nat := linalg.NativeLAPACK()
	if nat == nil {
		b.Skip("no native LAPACK selected; run with CL_BLAS=openblas")
	}
	n := envInt("RANPAC_PARTS_N", 2000)
	nf := envInt("RANPAC_PARTS_NF", 16000)
	nv := envInt("RANPAC_PARTS_NV", 4000)
	reps := envInt("RANPAC_PARTS_REPS", 3)
	const c = 10
	kds := []int{64}
	if s := os.Getenv("RANPAC_PARTS_KD"); s != "" {
		kds = kds[:0]
		for _, f := range strings.Split(s, ",") {
			k, err := strconv.Atoi(f)
			if err != nil {
				b.Fatal(err)
			}
			kds = append(kds, k)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	hf := blas64.General{Rows: nf, Cols: n, Stride: n, Data: make([]float64, nf*n)}
	for i := range hf.Data {
		hf.Data[i] = max(r.NormFloat64(), 0)
	}
	s0 := make([]float64, n*n)
	linalg.SyrkUpper(true, 1, hf, s0, n)
	r0 := make([]float64, n*c)
	for i := range r0 {
		r0[i] = r.NormFloat64() * 100
	}
	v := blas64.General{Rows: nv, Cols: n, Stride: n, Data: hf.Data[:nv*n]}
	grid := RidgeGrid
	w := len(grid) * c
	// piece reports the fastest of reps runs of run, each after setup.
	piece := func(name string, setup, run func()) {
		best := time.Duration(1 << 62)
		for range reps {
			if setup != nil {
				setup()
			}
			t0 := time.Now()
			run()
			best = min(best, time.Since(t0))
		}
		b.ReportMetric(best.Seconds(), name+"-s")
	}
	b.ResetTimer()
	if os.Getenv("RANPAC_PARTS_ONLY") == "band" {
		// The reductions alone, the half-bandwidths in turn within each
		// repetition (a shared machine's load then weighs on all alike).
		best := make([]time.Duration, len(kds))
		for i := range best {
			best[i] = 1 << 62
		}
		s := make([]float64, n*n)
		for range reps {
			for i, kd := range kds {
				band := make([]float64, n*(kd+1))
				tt := make([]float64, linalg.BandTSize(n, kd))
				copy(s, s0)
				t0 := time.Now()
				nat.SymBand(s, n, kd, band, tt)
				best[i] = min(best[i], time.Since(t0))
			}
		}
		for i, kd := range kds {
			b.ReportMetric(best[i].Seconds(), "band-kd"+strconv.Itoa(kd)+"-s")
		}
		return
	}
	for range b.N {
		for _, kd := range kds {
			sfx := "-kd" + strconv.Itoa(kd)
			s := make([]float64, n*n)
			band := make([]float64, n*(kd+1))
			tt := make([]float64, linalg.BandTSize(n, kd))
			piece("band"+sfx, func() { copy(s, s0) }, func() { nat.SymBand(s, n, kd, band, tt) })
			rt := make([]float64, n*c)
			piece("qtr"+sfx, func() { copy(rt, r0) }, func() { nat.SymBandMulQ(true, s, n, kd, tt, rt, c, c) })
			x := make([]float64, n*c)
			z := make([]float64, n*w)
			load := func() {
				for i := 0; i < n; i++ {
					for q := 0; q < c; q++ {
						x[q*n+i] = rt[i*c+q]
					}
				}
			}
			store := func(j int) {
				for i := 0; i < n; i++ {
					for q := 0; q < c; q++ {
						z[i*w+j*c+q] = x[q*n+i]
					}
				}
			}
			piece("gbsv17"+sfx, nil, func() {
				for j, lam := range grid {
					load()
					nat.BandSolve(band, n, kd, lam, x, c)
					store(j)
				}
			})
			work := make([]float64, n*(kd+1))
			fails := 0
			piece("pbsv17"+sfx, func() { fails = 0 }, func() {
				for j, lam := range grid {
					load()
					if !nat.BandCholSolve(band, n, kd, lam, x, c, work) {
						fails++
						nat.BandSolve(band, n, kd, lam, x, c)
					}
					store(j)
				}
			})
			b.ReportMetric(float64(fails), "pbsv-fails"+sfx)
			piece("solves17"+sfx, nil, func() { bandLambdaSolves(nat, band, n, kd, rt, c, z, grid) })
			z0 := append([]float64(nil), z...)
			piece("qz"+sfx, func() { copy(z, z0) }, func() { nat.SymBandMulQ(false, s, n, kd, tt, z, w, w) })
			pred := blas64.General{Rows: nv, Cols: w, Stride: w, Data: make([]float64, nv*w)}
			piece("vqz"+sfx, nil, func() {
				blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, v, blas64.General{Rows: n, Cols: w, Stride: w, Data: z}, 0, pred)
			})
		}
		// The final solve's pieces, on S + 10⁶·I.
		g := make([]float64, n*n)
		a := make([]float64, n*n)
		piece("copytri", func() { copy(g, s0) }, func() { linalg.CopyTri(g, n, true) })
		for i := 0; i < n; i++ {
			g[i*n+i] += 1e6
		}
		piece("cholupper256", func() { copy(a, g) }, func() { linalg.CholUpper(a, n) })
		piece("dpotrf", func() { copy(a, g) }, func() { nat.CholUpper(a, n, n) })
		wo := blas64.General{Rows: n, Cols: c, Stride: c, Data: make([]float64, n*c)}
		piece("potrs", func() { copy(wo.Data, r0) }, func() {
			lapack64.Potrs(blas64.Triangular{N: n, Stride: n, Uplo: blas.Upper, Diag: blas.NonUnit, Data: a}, wo)
		})
	}
}

package heads

import (
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/gonum"

	"github.com/cl-dev/cl/internal/linalg"
)

// gridBandMin is the order from which gridLossesNative reduces S to a band
// of half-bandwidth gridBandKD (two-stage reduction, first stage) instead of
// to tridiagonal form. dsytrd spends half its flops in matrix-vector
// products that stream the whole trailing matrix from memory once per
// column; dsytrd_sy2sb uses matrix-matrix products only. Measured on the
// 2-core dev machine under load (docs/PERFORMANCE.md): n = 2000, dsytrd
// 1.1–2.2 s against sy2sb 0.56–0.66 s; n = 4000, 8.2–10.3 s against
// 3.5–6.6 s. Variables so that tests can run both paths on small matrices.
var (
	gridBandMin = 1024
	gridBandKD  = 64
)

// gridLossesNative is gridLosses on a native LAPACK (linalg.NativeLAPACK).
// S = Q B Qᵀ with B tridiagonal (dsytrd, n < gridBandMin) or a band of
// half-bandwidth gridBandKD (dsytrd_sy2sb), and Q is never formed: Qᵀ R
// comes from applying Q's reflectors to the n×c R; every λ's solve
// Z_λ = (B + λI)⁻¹ Qᵀ R (tridiagonal: gonum's Dgtsv; band: dgbsv, both LU
// with partial pivoting) goes into one n × (len(grid)·c) block, which a
// single application of Q turns into Q·Z for all λ at once, and one product
// V·(Q Z) gives every λ's predictions. Against forming Q (dorgtr, 4/3·n³
// flops) and V·Q (2·nv·n²) this costs about 4·n²·c·(len(grid)+1) +
// 2·nv·n·c·len(grid) flops besides the reduction, and no n×n or nv×n
// scratch. A singular B + λI gives +Inf, as in gridLosses.
func gridLossesNative(nat linalg.Native, s []float64, n int, r, v, yv blas64.General, grid []float64, progress func(done, total int)) []float64 {
	if progress != nil {
		progress(0, 2)
		defer progress(2, 2)
	}
	c := r.Cols
	k := len(grid)
	w := k * c
	rt := make([]float64, n*c)
	for i := 0; i < n; i++ {
		copy(rt[i*c:(i+1)*c], r.Data[i*r.Stride:i*r.Stride+c])
	}
	z := make([]float64, n*w) // column block j·c … (j+1)·c is Z for grid[j]
	var ok []bool
	if n >= gridBandMin && n > gridBandKD+1 {
		ok = bandSolves(nat, s, n, rt, c, z, grid, progress)
	} else {
		ok = tridiagSolves(nat, s, n, rt, c, z, grid, progress)
	}
	pred := blas64.General{Rows: v.Rows, Cols: w, Stride: w, Data: make([]float64, v.Rows*w)}
	blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, v, blas64.General{Rows: n, Cols: w, Stride: w, Data: z}, 0, pred)
	losses := make([]float64, k)
	for j := range grid {
		if !ok[j] {
			losses[j] = math.Inf(1)
			continue
		}
		losses[j] = sse(blas64.General{Rows: v.Rows, Cols: c, Stride: w, Data: pred.Data[j*c:]}, yv)
	}
	return losses
}

// tridiagSolves reduces S (upper triangle of s, overwritten) to tridiagonal
// T = Qᵀ S Q, writes Q·(T + λI)⁻¹·Qᵀ·R into z's column block j for grid[j]
// (z is n × len(grid)·c, row-major; rt, R n×c, is overwritten) and reports
// which λ had a nonsingular T + λI.
func tridiagSolves(nat linalg.Native, s []float64, n int, rt []float64, c int, z []float64, grid []float64, progress func(done, total int)) []bool {
	d := make([]float64, n)
	e := make([]float64, max(n-1, 0))
	tau := make([]float64, max(n-1, 0))
	if !nat.SymTridiag(s, n, d, e, tau) {
		panic("ranpac: native dsytrd rejected its arguments")
	}
	if progress != nil {
		progress(1, 2)
	}
	if !nat.SymTridiagMulQ(true, s, n, tau, rt, c, c) {
		panic("ranpac: native dormtr rejected its arguments")
	}
	w := len(grid) * c
	col := make([]float64, n*c)
	dl := make([]float64, len(e))
	du := make([]float64, len(e))
	dd := make([]float64, n)
	ok := make([]bool, len(grid))
	var impl gonum.Implementation
	for j, lam := range grid {
		copy(dl, e)
		copy(du, e)
		for i := range dd {
			dd[i] = d[i] + lam
		}
		copy(col, rt)
		if ok[j] = impl.Dgtsv(n, c, dl, dd, du, col, c); !ok[j] {
			continue
		}
		for i := 0; i < n; i++ {
			copy(z[i*w+j*c:i*w+(j+1)*c], col[i*c:(i+1)*c])
		}
	}
	if !nat.SymTridiagMulQ(false, s, n, tau, z, w, w) {
		panic("ranpac: native dormtr rejected its arguments")
	}
	return ok
}

// bandSolves is tridiagSolves with S reduced to a band of half-bandwidth
// gridBandKD instead (dsytrd_sy2sb; the banded solves by dgbsv).
func bandSolves(nat linalg.Native, s []float64, n int, rt []float64, c int, z []float64, grid []float64, progress func(done, total int)) []bool {
	kd := gridBandKD
	band := make([]float64, n*(kd+1))
	tau := make([]float64, n)
	if !nat.SymBand(s, n, kd, band, tau) {
		panic("ranpac: native dsytrd_sy2sb rejected its arguments")
	}
	if progress != nil {
		progress(1, 2)
	}
	if !nat.SymBandMulQ(true, s, n, kd, tau, rt, c, c) {
		panic("ranpac: native dormqr rejected its arguments")
	}
	w := len(grid) * c
	x := make([]float64, n*c) // column-major: right-hand side q at x[q·n:]
	ok := make([]bool, len(grid))
	for j, lam := range grid {
		for i := 0; i < n; i++ {
			for q := 0; q < c; q++ {
				x[q*n+i] = rt[i*c+q]
			}
		}
		if ok[j] = nat.BandSolve(band, n, kd, lam, x, c); !ok[j] {
			continue
		}
		for i := 0; i < n; i++ {
			for q := 0; q < c; q++ {
				z[i*w+j*c+q] = x[q*n+i]
			}
		}
	}
	if !nat.SymBandMulQ(false, s, n, kd, tau, z, w, w) {
		panic("ranpac: native dormqr rejected its arguments")
	}
	return ok
}

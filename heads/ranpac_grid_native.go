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
// column; the band reduction uses matrix-matrix products only. Measured on the
// 2-core dev machine under load (docs/PERFORMANCE.md): n = 2000, dsytrd
// 1.1–2.2 s against sy2sb 0.56–0.66 s; n = 4000, 8.2–10.3 s against
// 3.5–6.6 s. Variables so that tests can run both paths on small matrices.
var (
	gridBandMin = 1024
	gridBandKD  = 64
)

// gridLossesNative is gridLosses on a native LAPACK (linalg.NativeLAPACK).
// S = Q B Qᵀ with B tridiagonal (dsytrd, n < gridBandMin) or a band of
// half-bandwidth gridBandKD (SymBand: dsytrd_sy2sb's panels, each a
// recursive QR that keeps its block reflector), and Q is never formed: Qᵀ R
// comes from applying Q's reflectors to the n×c R; every λ's solve
// Z_λ = (B + λI)⁻¹ Qᵀ R (tridiagonal: gonum's Dgtsv, LU with partial
// pivoting; band: banded Cholesky, LU where it fails, see bandSolves) goes
// into one n × (len(grid)·c) block, which a single application of Q turns
// into Q·Z for all λ at once, and one product V·(Q Z) gives every λ's
// predictions. Against forming Q (dorgtr, 4/3·n³ flops) and V·Q (2·nv·n²)
// this costs about 4·n²·c·(len(grid)+1) + 2·nv·n·c·len(grid) flops besides
// the reduction, and no n×n or nv×n scratch. A singular B + λI gives +Inf,
// as in gridLosses.
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
// gridBandKD instead (linalg.Native.SymBand; Q applied through its kept
// block reflectors). Each λ's banded system is solved by Cholesky
// (BandCholSolve: B + λI is positive definite for λ > 0 up to rounding) and,
// where that factorisation fails, by LU with partial pivoting (BandSolve), so
// every λ the LU solves gets an answer still.
func bandSolves(nat linalg.Native, s []float64, n int, rt []float64, c int, z []float64, grid []float64, progress func(done, total int)) []bool {
	kd := gridBandKD
	band := make([]float64, n*(kd+1))
	t := make([]float64, linalg.BandTSize(n, kd))
	if !nat.SymBand(s, n, kd, band, t) {
		panic("ranpac: native band reduction rejected its arguments")
	}
	if progress != nil {
		progress(1, 2)
	}
	if !nat.SymBandMulQ(true, s, n, kd, t, rt, c, c) {
		panic("ranpac: native band reduction's Qᵀ rejected its arguments")
	}
	ok := bandLambdaSolves(nat, band, n, kd, rt, c, z, grid)
	w := len(grid) * c
	if !nat.SymBandMulQ(false, s, n, kd, t, z, w, w) {
		panic("ranpac: native band reduction's Q rejected its arguments")
	}
	return ok
}

// bandLambdaSolves writes (B + λI)⁻¹·rt for every λ of grid into z's column
// block j (z is n × len(grid)·c, row-major; rt is n×c, row-major) and
// reports which λ had an answer: B is the symmetric band (n, kd) of
// SymBand, each system is solved by banded Cholesky and, where that fails,
// by banded LU. (Sharing the λ out over two goroutines gained nothing
// measurable on the shared 2-core machine: docs/PERFORMANCE.md.)
func bandLambdaSolves(nat linalg.Native, band []float64, n, kd int, rt []float64, c int, z []float64, grid []float64) []bool {
	w := len(grid) * c
	ok := make([]bool, len(grid))
	x := make([]float64, n*c) // column-major: right-hand side q at x[q·n:]
	work := make([]float64, n*(kd+1))
	for j, lam := range grid {
		for i := 0; i < n; i++ {
			for q := 0; q < c; q++ {
				x[q*n+i] = rt[i*c+q]
			}
		}
		if ok[j] = lam > 0 && nat.BandCholSolve(band, n, kd, lam, x, c, work); !ok[j] {
			if ok[j] = nat.BandSolve(band, n, kd, lam, x, c); !ok[j] {
				continue
			}
		}
		for i := 0; i < n; i++ {
			for q := 0; q < c; q++ {
				z[i*w+j*c+q] = x[q*n+i]
			}
		}
	}
	return ok
}

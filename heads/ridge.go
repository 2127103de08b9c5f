package heads

import (
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/gonum"
	"gonum.org/v1/gonum/lapack/lapack64"

	"github.com/cl-dev/cl/internal/linalg"
)

// RidgeGrid is the λ grid of PILOT's optimise_ridge_parameter:
// 10⁻⁸, 10⁻⁷, …, 10⁸ (17 values).
var RidgeGrid = func() []float64 {
	g := make([]float64, 17)
	for i := range g {
		g[i] = math.Pow10(i - 8)
	}
	return g
}()

// gridLosses returns, for each λ in grid, the sum of squared errors
// ‖V (S + λI)⁻¹ R − Yv‖²_F, where S is symmetric n×n (upper triangle of s,
// row-major; s is overwritten), R is n×c, V is nv×n and Yv is nv×c.
//
// It reduces S once to tridiagonal form, S = Q T Qᵀ (LAPACK dsytrd + dorgtr:
// the first half of a symmetric eigendecomposition), then for every λ solves
// the tridiagonal system (T + λI) Z = Qᵀ R in O(n·c) and forms the
// predictions (V Q) Z. This is exact ridge regression for every λ at the
// cost of one O(n³) reduction, instead of one O(n³) solve per λ. A singular
// T + λI gives +Inf.
//
// progress, when not nil, hears 0 of 2 before the reduction, 1 of 2 after it
// and 2 of 2 at the end.
//
// With a native LAPACK selected (linalg.NativeLAPACK) it runs
// gridLossesNative instead, which never forms Q; the losses agree to
// rounding.
func gridLosses(s []float64, n int, r, v, yv blas64.General, grid []float64, progress func(done, total int)) []float64 {
	if nat := linalg.NativeLAPACK(); nat != nil {
		return gridLossesNative(nat, s, n, r, v, yv, grid, progress)
	}
	if progress != nil {
		progress(0, 2)
		defer progress(2, 2)
	}
	var impl gonum.Implementation
	d := make([]float64, n)
	e := make([]float64, max(n-1, 0))
	tau := make([]float64, max(n-1, 0))
	work := make([]float64, 1)
	impl.Dsytrd(blas.Upper, n, s, n, d, e, tau, work, -1)
	lwork := max(int(work[0]), 1)
	impl.Dorgtr(blas.Upper, n, s, n, tau, work, -1)
	lwork = max(lwork, int(work[0]))
	work = make([]float64, lwork)
	impl.Dsytrd(blas.Upper, n, s, n, d, e, tau, work, lwork)
	impl.Dorgtr(blas.Upper, n, s, n, tau, work, lwork)
	if progress != nil {
		progress(1, 2)
	}
	q := blas64.General{Rows: n, Cols: n, Stride: n, Data: s}

	c := r.Cols
	rt := blas64.General{Rows: n, Cols: c, Stride: c, Data: make([]float64, n*c)}
	blas64.Gemm(blas.Trans, blas.NoTrans, 1, q, r, 0, rt)
	p := blas64.General{Rows: v.Rows, Cols: n, Stride: n, Data: make([]float64, v.Rows*n)}
	blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, v, q, 0, p)

	z := blas64.General{Rows: n, Cols: c, Stride: c, Data: make([]float64, n*c)}
	pred := blas64.General{Rows: v.Rows, Cols: c, Stride: c, Data: make([]float64, v.Rows*c)}
	dl := make([]float64, len(e))
	du := make([]float64, len(e))
	dd := make([]float64, n)
	losses := make([]float64, len(grid))
	for k, lam := range grid {
		copy(dl, e)
		copy(du, e)
		for i := range dd {
			dd[i] = d[i] + lam
		}
		copy(z.Data, rt.Data)
		if !impl.Dgtsv(n, c, dl, dd, du, z.Data, c) {
			losses[k] = math.Inf(1)
			continue
		}
		blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, p, z, 0, pred)
		losses[k] = sse(pred, yv)
	}
	return losses
}

// solveLosses is the slow path of λ selection, as PILOT computes it: for each
// λ it solves (A + λI) W = B by LU with partial pivoting (A is n×n symmetric,
// upper triangle used; B is n×c), then scores V W against Yv.
// progress, when not nil, hears the λ values done after each.
func solveLosses(a []float64, n int, b, v, yv blas64.General, grid []float64, progress func(done, total int)) []float64 {
	c := b.Cols
	m := blas64.General{Rows: n, Cols: n, Stride: n, Data: make([]float64, n*n)}
	w := blas64.General{Rows: n, Cols: c, Stride: c, Data: make([]float64, n*c)}
	pred := blas64.General{Rows: v.Rows, Cols: c, Stride: c, Data: make([]float64, v.Rows*c)}
	ipiv := make([]int, n)
	losses := make([]float64, len(grid))
	for k, lam := range grid {
		for i := 0; i < n; i++ {
			for j := i; j < n; j++ {
				m.Data[i*n+j] = a[i*n+j]
				m.Data[j*n+i] = a[i*n+j]
			}
			m.Data[i*n+i] += lam
		}
		if !lapack64.Getrf(m, ipiv) {
			losses[k] = math.Inf(1)
			continue
		}
		copy(w.Data, b.Data)
		lapack64.Getrs(blas.NoTrans, m, w, ipiv)
		blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, v, w, 0, pred)
		losses[k] = sse(pred, yv)
		if progress != nil {
			progress(k+1, len(grid))
		}
	}
	return losses
}

// sse is the sum of squared differences of two equal-shape matrices; NaN
// becomes +Inf so that it never wins an argmin.
func sse(a, b blas64.General) float64 {
	var s float64
	for i := 0; i < a.Rows; i++ {
		ra := a.Data[i*a.Stride : i*a.Stride+a.Cols]
		rb := b.Data[i*b.Stride : i*b.Stride+b.Cols]
		for j, x := range ra {
			d := x - rb[j]
			s += d * d
		}
	}
	if math.IsNaN(s) {
		return math.Inf(1)
	}
	return s
}

// argminFirst returns the index of the smallest value, the first on ties.
func argminFirst(v []float64) int {
	best := 0
	for i, x := range v {
		if x < v[best] {
			best = i
		}
	}
	return best
}

package heads

import (
	"errors"
	"math"

	"github.com/cl-dev/cl/internal/linalg"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/gonum"
	"gonum.org/v1/gonum/lapack/lapack64"
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
func gridLosses(s []float64, n int, r, v, yv blas64.General, grid []float64) []float64 {
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
func solveLosses(a []float64, n int, b, v, yv blas64.General, grid []float64) []float64 {
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

// errNotPD reports that a matrix was not numerically positive definite.
var errNotPD = errors.New("matrix is not numerically positive definite")

// ridgeSolve solves (G + λI) W = B for W (n×c) where G is n×n symmetric (upper
// triangle of g used). It needs no second n×n buffer: it factorises G + λI
// in place by Cholesky and then rebuilds G, so that on return g's upper
// triangle and diagonal hold G bit for bit and its strict lower triangle
// holds G's mirror (g is then fully symmetric; whatever was below the
// diagonal before is overwritten).
//
// In detail: the diagonal is saved (n floats), the strict upper triangle is
// copied into the strict lower one, λ is added to the diagonal and cholUpper
// overwrites the upper triangle with U (UᵀU = G + λI) without reading the
// lower one; W comes from U, then the upper triangle is copied back from the
// lower one and the diagonal restored. cholUpper sees exactly the values the
// former copy-based solve gave it, so W is bit-for-bit that solve's. The
// restore is deferred, so G survives a panic too.
//
// If G + λI is not numerically positive definite the solve falls back to LU
// with partial pivoting on a fresh n×n copy (the one case that allocates a
// second n×n matrix) and reports solver "lu" instead of "cholesky".
func ridgeSolve(g []float64, n int, lam float64, b blas64.General) (w blas64.General, solver string, err error) {
	w = blas64.General{Rows: n, Cols: b.Cols, Stride: b.Cols, Data: make([]float64, n*b.Cols)}
	for i := 0; i < n; i++ {
		copy(w.Data[i*w.Stride:i*w.Stride+b.Cols], b.Data[i*b.Stride:i*b.Stride+b.Cols])
	}
	if n == 0 {
		return w, "cholesky", nil
	}
	if linalg.CholInPlace(g, n, lam, func(u []float64) {
		lapack64.Potrs(blas64.Triangular{N: n, Stride: n, Uplo: blas.Upper, Diag: blas.NonUnit, Data: u}, w)
	}) {
		return w, "cholesky", nil
	}
	a := make([]float64, n*n)
	copy(a, g) // g is fully symmetric after cholInPlace
	for i := 0; i < n; i++ {
		a[i*n+i] += lam
	}
	m := blas64.General{Rows: n, Cols: n, Stride: n, Data: a}
	ipiv := make([]int, n)
	if !lapack64.Getrf(m, ipiv) {
		return w, "", errNotPD
	}
	lapack64.Getrs(blas.NoTrans, m, w, ipiv)
	for _, x := range w.Data {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return w, "", errNotPD
		}
	}
	return w, "lu", nil
}

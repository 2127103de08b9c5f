package heads

import (
	"errors"
	"math"

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

// syrkUpper adds into the upper triangle of c (n×n, row-major, stride n)
// alpha·aᵀa when trans is true (a is k×n) or alpha·a·aᵀ when trans is false (a is n×k),
// with the registered BLAS's Dsyrk (fastBLAS unless another was registered:
// blocked onto gonum's parallel Dgemm). Entries below the diagonal of c are
// not touched; readers use the upper triangle.
func syrkUpper(trans bool, alpha float64, a blas64.General, c []float64, n int) {
	t := blas.NoTrans
	if trans {
		t = blas.Trans
	}
	blas64.Syrk(t, alpha, a, 1, blas64.Symmetric{Uplo: blas.Upper, N: n, Stride: n, Data: c})
}

// symmetrize copies the upper triangle of the n×n row-major c into its lower
// triangle.
func symmetrize(c []float64, n int) {
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			c[j*n+i] = c[i*n+j]
		}
	}
}

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
// triangle of g used, g untouched). It factorises a copy of G + λI by
// Cholesky (one extra n×n buffer); if that copy is not numerically positive
// definite it falls back to LU with partial pivoting on a fresh copy and
// reports solver "lu" instead of "cholesky".
func ridgeSolve(g []float64, n int, lam float64, b blas64.General) (w blas64.General, solver string, err error) {
	a := make([]float64, n*n)
	fill := func() {
		for i := 0; i < n; i++ {
			copy(a[i*n+i:i*n+n], g[i*n+i:i*n+n])
			a[i*n+i] += lam
		}
	}
	fill()
	w = blas64.General{Rows: n, Cols: b.Cols, Stride: b.Cols, Data: make([]float64, n*b.Cols)}
	for i := 0; i < n; i++ {
		copy(w.Data[i*w.Stride:i*w.Stride+b.Cols], b.Data[i*b.Stride:i*b.Stride+b.Cols])
	}
	if cholUpper(a, n) {
		lapack64.Potrs(blas64.Triangular{N: n, Stride: n, Uplo: blas.Upper, Diag: blas.NonUnit, Data: a}, w)
		return w, "cholesky", nil
	}
	fill()
	symmetrize(a, n)
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

// cholNB is the block size of cholUpper.
const cholNB = 256

// cholUpper overwrites the upper triangle of the n×n row-major a (stride n)
// with its Cholesky factor U, A = UᵀU, as LAPACK dpotrf (Upper) does, and
// reports whether A was numerically positive definite. It is the
// right-looking blocked algorithm with 256-wide panels: gonum's Dpotrf uses
// 64-wide ones, whose thin Dgemm updates run at about half gonum's Dgemm rate,
// while here almost all the work is one rank-256 Dsyrk per panel, which
// fastBLAS runs on the parallel Dgemm. The lower triangle is not referenced.
func cholUpper(a []float64, n int) bool {
	bi := blas64.Implementation()
	var li gonum.Implementation
	for j := 0; j < n; j += cholNB {
		jb := min(cholNB, n-j)
		if !li.Dpotrf(blas.Upper, jb, a[j*n+j:], n) {
			return false
		}
		if rest := n - j - jb; rest > 0 {
			// U₁₂ = U₁₁⁻ᵀ A₁₂, then A₂₂ −= U₁₂ᵀ U₁₂.
			bi.Dtrsm(blas.Left, blas.Upper, blas.Trans, blas.NonUnit, jb, rest, 1, a[j*n+j:], n, a[j*n+j+jb:], n)
			bi.Dsyrk(blas.Upper, blas.Trans, rest, jb, -1, a[j*n+j+jb:], n, 1, a[(j+jb)*n+j+jb:], n)
		}
	}
	return true
}

// Package linalg is cl's float64 linear algebra beneath the heads: a faster
// pure-Go BLAS (FastBLAS: gonum's BLAS with parallel Dsyrk, Dsyr2k, Dtrsm and
// Dsymv), the blocked Cholesky factorisation (CholUpper, CholInPlace) and the
// triangle helpers the heads' Gram matrices need.
//
// gonum's LAPACK (lapack/gonum: Dpotrf, Dsytrd, …) takes its BLAS from
// blas64.Implementation() and cannot be handed one, so the BLAS is a process
// setting. It is chosen explicitly by the program (cmd/cl: Select with
// FastBLAS, or OpenBLAS from internal/openblas), never by importing a
// package. A program or test that chooses nothing runs gonum's own pure-Go
// BLAS, which is correct and only slower. Backend reports what runs.
//
// Matrices are row-major float64 slices with a stride (gonum's blas64
// convention); n×n symmetric matrices keep their upper triangle, the lower
// one being scratch unless a function says otherwise.
package linalg

import (
	"runtime"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// FastBLAS is gonum's pure-Go BLAS with four routines replaced by parallel
// versions: Dsyrk and Dsyr2k are blocked onto gonum's parallel Dgemm (gonum's
// own are serial and about half Dgemm's rate), Dtrsm splits the right-hand
// sides over goroutines (bit-for-bit the serial result: every column of B, or
// row for Side = Right, is computed by the same serial code) and Dsymv splits
// the rows (rounding differs from gonum's serial sum).
// Every other routine, Dgemm included, is gonum's, so results that depend only
// on them are unchanged.
//
// Select(PureGo, FastBLAS{}) makes it the process's BLAS (gonum's LAPACK
// included).
type FastBLAS struct {
	gonum.Implementation
}

// syrkNB is the block size (rows of C) of FastBLAS's Dsyrk and Dsyr2k, and
// syrkMinWork the n·n·k below which they call gonum's serial version.
var (
	syrkNB      = 256
	syrkMinWork = 64 * 64 * 64
)

// trsmMinWork is the m·m·n (or n·n·m) below which Dtrsm runs serially.
var trsmMinWork = 64 * 64 * 64

var scratchPool = sync.Pool{New: func() any { s := make([]float64, 0); return &s }}

func getScratch(n int) *[]float64 {
	p := scratchPool.Get().(*[]float64)
	if cap(*p) < n {
		*p = make([]float64, n)
	}
	*p = (*p)[:n]
	return p
}

// Dsyrk performs C = alpha·A·Aᵀ + beta·C (tA = NoTrans, A n×k) or
// C = alpha·Aᵀ·A + beta·C (A k×n) on the uplo triangle of the n×n C only; the
// other triangle is not read or written. Semantics are those of
// gonum.Implementation.Dsyrk (beta = 0 ignores C's old values).
func (f FastBLAS) Dsyrk(ul blas.Uplo, tA blas.Transpose, n, k int, alpha float64, a []float64, lda int, beta float64, c []float64, ldc int) {
	f.syrk(syrkNB, ul, tA, n, k, alpha, a, lda, beta, c, ldc)
}

func (f FastBLAS) syrk(nb int, ul blas.Uplo, tA blas.Transpose, n, k int, alpha float64, a []float64, lda int, beta float64, c []float64, ldc int) {
	if n*n*k < syrkMinWork || alpha == 0 || k == 0 || n <= 1 || !validUT(ul, tA) {
		// Small problems, quick returns and argument errors (panics) are gonum's.
		if beta == 0 && validUT(ul, tA) && n > 0 {
			f.Implementation.Dsyrk(ul, tA, n, 0, alpha, a, lda, 1, c, ldc) // checks c's size
			zeroTri(ul, n, c, ldc)
		}
		f.Implementation.Dsyrk(ul, tA, n, k, alpha, a, lda, beta, c, ldc)
		return
	}
	// Let gonum check the arguments' sizes: a zero-work call with the same shapes.
	f.Implementation.Dsyrk(ul, tA, n, 0, alpha, a, lda, 1, c, ldc)
	trans := tA != blas.NoTrans
	sp := getScratch(min(nb, n) * min(nb, n))
	defer scratchPool.Put(sp)
	s := *sp
	var t []float64 // trans: Aᵀ's block row I, m×k
	if trans {
		tp := getScratch(min(nb, n) * k)
		defer scratchPool.Put(tp)
		t = *tp
	}
	// gemm: C[i0:i0+m, j0:j0+w] = alpha·A_I·A_Jᵀ + beta·C over rows I and columns J.
	gemm := func(i0, m, j0, w int, beta float64, cc []float64, ldcc int) {
		if trans {
			// (Aᵀ)_I·A_J from the transposed panel: gonum's NoTrans×NoTrans
			// Dgemm runs about 1.5 × faster than its Trans×NoTrans.
			f.Dgemm(blas.NoTrans, blas.NoTrans, m, w, k, alpha, t, k, a[j0:], lda, beta, cc, ldcc)
		} else {
			f.Dgemm(blas.NoTrans, blas.Trans, m, w, k, alpha, a[i0*lda:], lda, a[j0*lda:], lda, beta, cc, ldcc)
		}
	}
	for i0 := 0; i0 < n; i0 += nb {
		m := min(nb, n-i0)
		if trans {
			transposePanel(a, lda, k, i0, m, t)
		}
		if ul == blas.Upper && i0+m < n {
			gemm(i0, m, i0+m, n-i0-m, beta, c[i0*ldc+i0+m:], ldc)
		}
		if ul == blas.Lower && i0 > 0 {
			gemm(i0, m, 0, i0, beta, c[i0*ldc:], ldc)
		}
		gemm(i0, m, i0, m, 0, s, m)
		mergeTri(ul, m, beta, s, m, false, c[i0*ldc+i0:], ldc)
	}
}

// Dsyr2k performs C = alpha·A·Bᵀ + alpha·B·Aᵀ + beta·C (tA = NoTrans, A and B
// n×k) or C = alpha·Aᵀ·B + alpha·Bᵀ·A + beta·C (A and B k×n) on the uplo
// triangle of the n×n C only. Semantics are those of
// gonum.Implementation.Dsyr2k.
func (f FastBLAS) Dsyr2k(ul blas.Uplo, tA blas.Transpose, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	f.syr2k(syrkNB, ul, tA, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func (f FastBLAS) syr2k(nb int, ul blas.Uplo, tA blas.Transpose, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	if n*n*k < syrkMinWork || alpha == 0 || k == 0 || n <= 1 || !validUT(ul, tA) {
		if beta == 0 && validUT(ul, tA) && n > 0 {
			f.Implementation.Dsyr2k(ul, tA, n, 0, alpha, a, lda, b, ldb, 1, c, ldc)
			zeroTri(ul, n, c, ldc)
		}
		f.Implementation.Dsyr2k(ul, tA, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	f.Implementation.Dsyr2k(ul, tA, n, 0, alpha, a, lda, b, ldb, 1, c, ldc)
	trans := tA != blas.NoTrans
	sp := getScratch(min(nb, n) * min(nb, n))
	defer scratchPool.Put(sp)
	s := *sp
	var ta, tb []float64 // trans: Aᵀ's and Bᵀ's block rows I, m×k each
	if trans {
		tp := getScratch(2 * min(nb, n) * k)
		defer scratchPool.Put(tp)
		ta, tb = (*tp)[:min(nb, n)*k], (*tp)[min(nb, n)*k:]
	}
	// gemm: C_IJ = alpha·X_I·Y_Jᵀ + beta·C_IJ; xt is Xᵀ's block row I when trans.
	gemm := func(x []float64, ldx int, xt []float64, y []float64, ldy int, i0, m, j0, w int, beta float64, cc []float64, ldcc int) {
		if trans {
			f.Dgemm(blas.NoTrans, blas.NoTrans, m, w, k, alpha, xt, k, y[j0:], ldy, beta, cc, ldcc)
		} else {
			f.Dgemm(blas.NoTrans, blas.Trans, m, w, k, alpha, x[i0*ldx:], ldx, y[j0*ldy:], ldy, beta, cc, ldcc)
		}
	}
	for i0 := 0; i0 < n; i0 += nb {
		m := min(nb, n-i0)
		if trans {
			transposePanel(a, lda, k, i0, m, ta)
			transposePanel(b, ldb, k, i0, m, tb)
		}
		j0, w := i0+m, n-i0-m // Upper: columns right of the diagonal block.
		if ul == blas.Lower {
			j0, w = 0, i0
		}
		if w > 0 {
			cc := c[i0*ldc+j0:]
			gemm(a, lda, ta, b, ldb, i0, m, j0, w, beta, cc, ldc)
			gemm(b, ldb, tb, a, lda, i0, m, j0, w, 1, cc, ldc)
		}
		// Diagonal block: S = alpha·A_I·B_Iᵀ, C_II = beta·C_II + S + Sᵀ.
		gemm(a, lda, ta, b, ldb, i0, m, i0, m, 0, s, m)
		mergeTri(ul, m, beta, s, m, true, c[i0*ldc+i0:], ldc)
	}
}

// transposePanel writes columns i0…i0+m−1 of the k-row matrix a (stride lda)
// transposed into t, m×k row-major.
func transposePanel(a []float64, lda, k, i0, m int, t []float64) {
	for l := 0; l < k; l++ {
		row := a[l*lda+i0 : l*lda+i0+m]
		for i, v := range row {
			t[i*k+l] = v
		}
	}
}

// validUT reports whether ul and tA are valid Dsyrk/Dsyr2k flags.
func validUT(ul blas.Uplo, tA blas.Transpose) bool {
	return (ul == blas.Upper || ul == blas.Lower) && (tA == blas.NoTrans || tA == blas.Trans || tA == blas.ConjTrans)
}

// zeroTri zeroes the ul triangle of the n×n c. gonum's Dsyrk (Lower, Trans)
// multiplies C by beta = 0, which keeps NaN and Inf; the reference BLAS
// ignores C when beta = 0, and so does FastBLAS.
func zeroTri(ul blas.Uplo, n int, c []float64, ldc int) {
	for i := 0; i < n; i++ {
		if ul == blas.Upper {
			clear(c[i*ldc+i : i*ldc+n])
		} else {
			clear(c[i*ldc : i*ldc+i+1])
		}
	}
}

// mergeTri sets the ul triangle (diagonal included) of the m×m block c to
// beta·c + s (plus sᵀ when addT); beta = 0 ignores c's old values. The other
// triangle of c is not touched.
func mergeTri(ul blas.Uplo, m int, beta float64, s []float64, lds int, addT bool, c []float64, ldc int) {
	for i := 0; i < m; i++ {
		j0, j1 := i, m
		if ul == blas.Lower {
			j0, j1 = 0, i+1
		}
		ci := c[i*ldc : i*ldc+m]
		si := s[i*lds : i*lds+m]
		for j := j0; j < j1; j++ {
			v := si[j]
			if addT {
				v += s[j*lds+i]
			}
			switch beta {
			case 0:
				ci[j] = v
			case 1:
				ci[j] += v
			default:
				ci[j] = beta*ci[j] + v
			}
		}
	}
}

// Dtrsm solves op(A)·X = alpha·B (Side = Left) or X·op(A) = alpha·B
// (Side = Right) for X, overwriting the m×n B, as gonum.Implementation.Dtrsm
// does; large problems run gonum's code on column blocks (Left) or row blocks
// (Right) of B in parallel, which gives bit-for-bit the serial result.
func (f FastBLAS) Dtrsm(s blas.Side, ul blas.Uplo, tA blas.Transpose, d blas.Diag, m, n int, alpha float64, a []float64, lda int, b []float64, ldb int) {
	workers := runtime.GOMAXPROCS(0)
	tri, rhs := m, n
	if s == blas.Right {
		tri, rhs = n, m
	}
	if workers < 2 || tri*tri*rhs < trsmMinWork || rhs < 2*workers || tri == 0 ||
		(s != blas.Left && s != blas.Right) {
		f.Implementation.Dtrsm(s, ul, tA, d, m, n, alpha, a, lda, b, ldb)
		return
	}
	// Let gonum check the arguments: the same call on no right-hand sides.
	if s == blas.Left {
		f.Implementation.Dtrsm(s, ul, tA, d, m, 0, alpha, a, lda, b, ldb)
	} else {
		f.Implementation.Dtrsm(s, ul, tA, d, 0, n, alpha, a, lda, b, ldb)
	}
	if len(b) < ldb*(m-1)+n {
		f.Implementation.Dtrsm(s, ul, tA, d, m, n, alpha, a, lda, b, ldb) // panics with gonum's message
		return
	}
	chunk := (rhs + workers - 1) / workers
	var wg sync.WaitGroup
	for r0 := 0; r0 < rhs; r0 += chunk {
		r1 := min(r0+chunk, rhs)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s == blas.Left {
				f.Implementation.Dtrsm(s, ul, tA, d, m, r1-r0, alpha, a, lda, b[r0:], ldb)
			} else {
				f.Implementation.Dtrsm(s, ul, tA, d, r1-r0, n, alpha, a, lda, b[r0*ldb:], ldb)
			}
		}()
	}
	wg.Wait()
}

// symvMinN is the n below which Dsymv runs gonum's serial code.
var symvMinN = 512

// Dsymv performs y = alpha·A·x + beta·y with A n×n symmetric (the ul triangle
// read), as gonum.Implementation.Dsymv does (beta = 0 ignores y). Large
// problems split A's rows over goroutines, each summing its rows' share of
// A·x into its own buffer (the reduction to tridiagonal form, Dsytrd, spends
// half its work here); the sum differs from gonum's in rounding only.
func (f FastBLAS) Dsymv(ul blas.Uplo, n int, alpha float64, a []float64, lda int, x []float64, incx int, beta float64, y []float64, incy int) {
	workers := runtime.GOMAXPROCS(0)
	if workers < 2 || n < symvMinN || alpha == 0 || (ul != blas.Upper && ul != blas.Lower) ||
		lda < n || incx == 0 || incy == 0 || len(a) < lda*(n-1)+n ||
		len(x) < 1+(n-1)*abs(incx) || len(y) < 1+(n-1)*abs(incy) {
		f.Implementation.Dsymv(ul, n, alpha, a, lda, x, incx, beta, y, incy)
		return
	}
	kx, ky := 0, 0
	if incx < 0 {
		kx = -(n - 1) * incx
	}
	if incy < 0 {
		ky = -(n - 1) * incy
	}
	bp := getScratch((workers + 1) * n)
	defer scratchPool.Put(bp)
	buf := *bp
	xs := buf[workers*n:]
	for i := range xs {
		xs[i] = x[kx+i*incx]
	}
	clear(buf[:workers*n])
	// Row boundaries with about equal triangle work per worker.
	bounds := make([]int, workers+1)
	total := float64(n) * float64(n+1) / 2
	acc, w := 0.0, 1
	for i := 0; i < n && w < workers; i++ {
		if ul == blas.Upper {
			acc += float64(n - i)
		} else {
			acc += float64(i + 1)
		}
		if acc >= total*float64(w)/float64(workers) {
			bounds[w] = i + 1
			w++
		}
	}
	for ; w <= workers; w++ {
		bounds[w] = n
	}
	var g gonum.Implementation
	var wg sync.WaitGroup
	for p := 0; p < workers; p++ {
		yw := buf[p*n : (p+1)*n]
		r0, r1 := bounds[p], bounds[p+1]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r0; i < r1; i++ {
				xi := xs[i]
				if ul == blas.Upper {
					row := a[i*lda+i+1 : i*lda+n]
					yw[i] += a[i*lda+i]*xi + g.Ddot(len(row), row, 1, xs[i+1:], 1)
					g.Daxpy(len(row), xi, row, 1, yw[i+1:], 1)
				} else {
					row := a[i*lda : i*lda+i]
					yw[i] += g.Ddot(i, row, 1, xs[:i], 1) + a[i*lda+i]*xi
					g.Daxpy(i, xi, row, 1, yw[:i], 1)
				}
			}
		}()
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		var s float64
		for p := 0; p < workers; p++ {
			s += buf[p*n+i]
		}
		yi := &y[ky+i*incy]
		if beta == 0 {
			*yi = alpha * s
		} else {
			*yi = beta**yi + alpha*s
		}
	}
}

func abs(i int) int {
	if i < 0 {
		return -i
	}
	return i
}

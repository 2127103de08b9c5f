//go:build cgo

package openblas

// #include "lapack.h"
import "C"

import (
	"unsafe"

	"github.com/cl-dev/cl/internal/linalg"
)

// Lapack is linalg.Native run by the LAPACK routines of the OpenBLAS that
// Load opened (dsytrd_, dormtr_, dsyevd_, dpotrf_, dpotri_, dgbsv_, dpbtrf_,
// dpbtrs_, and for the band reduction of band.c dgeqrt3_ with CBLAS's dgemm,
// dsymm, dsyr2k and dtrmm; dsytrd_sy2sb_ and dormqr_ are the tests'
// reference). cl's row-major
// upper triangles are LAPACK's column-major lower ones in the same memory,
// so nothing is copied or transposed: SymTridiag is dsytrd('L'),
// SymTridiagMulQ is dormtr('R', 'L') on the c×n column-major view of b, and
// so on. Calls whose slices are too short for the sizes panic before any
// native code runs. Use it only after Load succeeded and selected it.
type Lapack struct{}

var _ linalg.Native = Lapack{}

// dptr is a C pointer to s's first element, nil for an empty s.
func dptr(s []float64) *C.double {
	if len(s) == 0 {
		return nil
	}
	return (*C.double)(unsafe.Pointer(&s[0]))
}

func need(what string, s []float64, n int) {
	if len(s) < n {
		panic("openblas: " + what + " is shorter than the sizes given")
	}
}

// square checks a holds an n×n matrix of stride lda.
func square(a []float64, n, lda int) {
	if lda < max(n, 1) {
		panic("openblas: stride smaller than the matrix")
	}
	if n > 0 {
		need("matrix", a, lda*(n-1)+n)
	}
}

// SymTridiag implements linalg.Native.
func (Lapack) SymTridiag(a []float64, n int, d, e, tau []float64) bool {
	if n == 0 {
		return true
	}
	square(a, n, n)
	need("d", d, n)
	need("e", e, n-1)
	need("tau", tau, n-1)
	return C.cl_dsytrd_l(C.int(n), dptr(a), C.int(n), dptr(d), dptr(e), dptr(tau)) == 0
}

// SymTridiagMulQ implements linalg.Native.
func (Lapack) SymTridiagMulQ(trans bool, a []float64, n int, tau []float64, b []float64, c, stride int) bool {
	if n == 0 || c == 0 {
		return true
	}
	square(a, n, n)
	need("tau", tau, n-1)
	if stride < c {
		panic("openblas: stride smaller than the columns")
	}
	need("b", b, stride*(n-1)+c)
	// b is the c×n column-major X = bᵀ: Qᵀb = (X·Q)ᵀ, Q·b = (X·Qᵀ)ᵀ.
	t := C.char('T')
	if trans {
		t = 'N'
	}
	return C.cl_dormtr_rl(t, C.int(c), C.int(n), dptr(a), C.int(n), dptr(tau), dptr(b), C.int(stride)) == 0
}

// SymEigenvalues implements linalg.Native.
func (Lapack) SymEigenvalues(a []float64, n, lda int, w []float64) bool {
	if n == 0 {
		return true
	}
	square(a, n, lda)
	need("w", w, n)
	return C.cl_dsyevd_nl(C.int(n), dptr(a), C.int(lda), dptr(w)) == 0
}

// CholUpper implements linalg.Native.
func (Lapack) CholUpper(a []float64, n, lda int) bool {
	if n == 0 {
		return true
	}
	square(a, n, lda)
	return C.cl_dpotrf_l(C.int(n), dptr(a), C.int(lda)) == 0
}

// CholInverseUpper implements linalg.Native.
func (Lapack) CholInverseUpper(a []float64, n, lda int) bool {
	if n == 0 {
		return true
	}
	square(a, n, lda)
	return C.cl_dpotri_l(C.int(n), dptr(a), C.int(lda)) == 0
}

// SymBand implements linalg.Native by cl_sy2sb_l (band.c): the panels and
// update of LAPACK's dsytrd_sy2sb('L'), each panel factorised by the
// recursive dgeqrt3, which also gives the block reflector's T kept in t.
func (l Lapack) SymBand(a []float64, n, kd int, band, t []float64) bool {
	return l.symBand(a, n, kd, band, nil, t)
}

// symBand is SymBand also writing the reflectors' scalars to tau [n] when
// tau is not nil (for symBandMulQDormqr).
func (Lapack) symBand(a []float64, n, kd int, band, tau, t []float64) bool {
	if n == 0 {
		return true
	}
	if kd < 1 {
		panic("openblas: SymBand needs kd ≥ 1")
	}
	square(a, n, n)
	need("band", band, n*(kd+1))
	need("t", t, linalg.BandTSize(n, kd))
	if tau != nil {
		need("tau", tau, n)
	}
	return C.cl_sy2sb_l(C.int(n), C.int(kd), dptr(a), C.int(n), dptr(band), C.int(kd+1), dptr(tau), dptr(t)) == 0
}

// SymBandMulQ implements linalg.Native with the T factors SymBand kept:
// for each panel three level-3 products (cl_sbmulq_r) on b's rows below it,
// where dormqr would form each T again.
func (Lapack) SymBandMulQ(trans bool, a []float64, n, kd int, t []float64, b []float64, c, stride int) bool {
	if n-kd <= 0 || c == 0 {
		return true
	}
	square(a, n, n)
	need("t", t, linalg.BandTSize(n, kd))
	if stride < c {
		panic("openblas: stride smaller than the columns")
	}
	need("b", b, stride*(n-1)+c)
	// b is the c×n column-major X = bᵀ: Qᵀb = (X·Q)ᵀ, Q·b = (X·Qᵀ)ᵀ.
	tr := C.int(1)
	if trans {
		tr = 0
	}
	return C.cl_sbmulq_r(tr, C.int(n), C.int(kd), dptr(a), C.int(n), dptr(t), dptr(b), C.int(stride), C.int(c)) == 0
}

// symBandSy2sb is SymBand by LAPACK's own dsytrd_sy2sb (dgeqrf + dlarft per
// panel; no T kept), the reference the tests hold SymBand to.
func (Lapack) symBandSy2sb(a []float64, n, kd int, band, tau []float64) bool {
	if n == 0 {
		return true
	}
	square(a, n, n)
	need("band", band, n*(kd+1))
	need("tau", tau, n)
	return C.cl_dsy2sb_l(C.int(n), C.int(kd), dptr(a), C.int(n), dptr(band), C.int(kd+1), dptr(tau)) == 0
}

// symBandMulQDormqr is SymBandMulQ by LAPACK's dormqr from the reflectors'
// scalars tau. Q = H(1)…H(n−kd) acts on rows kd…n−1 only; its reflectors
// are those of a QR factorisation stored column-major at (kd, 0) of a's
// column-major view.
func (Lapack) symBandMulQDormqr(trans bool, a []float64, n, kd int, tau []float64, b []float64, c, stride int) bool {
	k := n - kd
	if k <= 0 || c == 0 {
		return true
	}
	square(a, n, n)
	need("tau", tau, k)
	if stride < c {
		panic("openblas: stride smaller than the columns")
	}
	need("b", b, stride*(n-1)+c)
	t := C.char('T')
	if trans {
		t = 'N'
	}
	// b's rows kd… are the columns kd… of the c×n column-major X = bᵀ.
	return C.cl_dormqr_r(t, C.int(c), C.int(k), C.int(k), dptr(a[kd:]), C.int(n), dptr(tau), dptr(b[kd*stride:]), C.int(stride)) == 0
}

// BandSolve implements linalg.Native: it spreads B + λI into dgbsv's
// general band storage (kl = ku = kd, 3·kd+1 rows) and solves.
func (Lapack) BandSolve(band []float64, n, kd int, lam float64, r []float64, c int) bool {
	if n == 0 || c == 0 {
		return true
	}
	need("band", band, n*(kd+1))
	need("r", r, n*c)
	ld := 3*kd + 1
	ab := make([]float64, ld*n)
	for j := 0; j < n; j++ {
		for t := 0; t <= kd && j+t < n; t++ {
			v := band[j*(kd+1)+t]
			if t == 0 {
				v += lam
			}
			ab[2*kd+t+j*ld] = v     // B(j+t, j)
			ab[2*kd-t+(j+t)*ld] = v // B(j, j+t)
		}
	}
	ipiv := make([]C.int, n)
	return C.cl_dgbsv(C.int(n), C.int(kd), C.int(kd), C.int(c), dptr(ab), C.int(ld), &ipiv[0], dptr(r), C.int(n)) == 0
}

// BandCholSolve implements linalg.Native: it copies B + λI into work (LAPACK's
// lower band storage, which is band's own layout) and runs dpbtrf + dpbtrs.
func (Lapack) BandCholSolve(band []float64, n, kd int, lam float64, r []float64, c int, work []float64) bool {
	if n == 0 || c == 0 {
		return true
	}
	need("band", band, n*(kd+1))
	need("r", r, n*c)
	need("work", work, n*(kd+1))
	copy(work[:n*(kd+1)], band)
	for j := 0; j < n; j++ {
		work[j*(kd+1)] += lam
	}
	return C.cl_dpbsv_l(C.int(n), C.int(kd), C.int(c), dptr(work), C.int(kd+1), dptr(r), C.int(n)) == 0
}

//go:build cgo && !openblas

package openblas

// #include "lapack.h"
import "C"

import (
	"unsafe"

	"github.com/cl-dev/cl/internal/linalg"
)

// Lapack is linalg.Native run by the LAPACK routines of the OpenBLAS that
// Load opened (dsytrd_, dormtr_, dsyevd_, dpotrf_, dpotri_). cl's row-major
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

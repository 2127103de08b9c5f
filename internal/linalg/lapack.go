package linalg

import "sync"

// Native is the float64 LAPACK subset cl's heads call, run by a native
// library (internal/openblas registers OpenBLAS's LAPACK with SelectNative).
// When none is selected (NativeLAPACK returns nil) the heads run gonum's
// pure-Go LAPACK (lapack/gonum) over the selected BLAS, as before.
//
// Every matrix is row-major with stride n, and symmetric matrices are given
// by their upper triangle (diagonal included); the strict lower triangle is
// neither read nor written unless a method says otherwise. The results agree
// with gonum's to rounding, not bit for bit: the reductions need not pick the
// same Householder vectors.
type Native interface {
	// SymTridiag reduces the symmetric n×n A in the upper triangle of a to
	// tridiagonal form, A = Q T Qᵀ (LAPACK dsytrd): d [n] receives T's
	// diagonal, e [n−1] its off-diagonal, and Q is kept as Householder
	// vectors in a's upper triangle and tau [n−1], for SymTridiagMulQ only.
	// It reports false on an argument error (never for a valid call).
	SymTridiag(a []float64, n int, d, e, tau []float64) bool
	// SymTridiagMulQ overwrites the n×c row-major b (stride ≥ c) with Q·b
	// (trans false) or Qᵀ·b (trans true), Q from SymTridiag(a, n, …, tau)
	// (LAPACK dormtr).
	SymTridiagMulQ(trans bool, a []float64, n int, tau []float64, b []float64, c, stride int) bool
	// SymEigenvalues writes the eigenvalues of the symmetric n×n A (upper
	// triangle of a, which is overwritten) into w [n], ascending (LAPACK
	// dsyevd without vectors). It reports false when the iteration did not
	// converge.
	SymEigenvalues(a []float64, n, lda int, w []float64) bool
	// CholUpper overwrites the upper triangle of the n×n A (stride lda) with
	// its Cholesky factor U, A = UᵀU (LAPACK dpotrf), and reports whether A
	// was numerically positive definite.
	CholUpper(a []float64, n, lda int) bool
	// CholInverseUpper overwrites the factor U in the upper triangle of a
	// (stride lda) with the upper triangle of (UᵀU)⁻¹ (LAPACK dpotri) and
	// reports whether U was nonsingular.
	CholInverseUpper(a []float64, n, lda int) bool
}

var (
	nativeMu   sync.Mutex
	native     Native
	nativeName string
)

// SelectNative makes n the LAPACK of the heads (nil: gonum's pure-Go LAPACK)
// and records name for NativeName. Like Select, programs call it once at
// start-up, before any head computes.
func SelectNative(name string, n Native) {
	nativeMu.Lock()
	defer nativeMu.Unlock()
	native, nativeName = n, name
	if n == nil {
		nativeName = ""
	}
}

// NativeLAPACK returns the selected native LAPACK, nil when the heads run
// gonum's pure-Go LAPACK.
func NativeLAPACK() Native {
	nativeMu.Lock()
	defer nativeMu.Unlock()
	return native
}

// LAPACKBackend names the LAPACK in use: the name given to SelectNative, or
// "gonum (pure Go)" when none is selected.
func LAPACKBackend() string {
	nativeMu.Lock()
	defer nativeMu.Unlock()
	if native == nil {
		return "gonum (pure Go)"
	}
	return nativeName
}

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
	// SymBand reduces the symmetric n×n A in the upper triangle of a to a
	// symmetric band matrix B of half-bandwidth kd ≥ 1, A = Q B Qᵀ (LAPACK
	// dsytrd_sy2sb, the first stage of the two-stage reduction, all
	// level-3 products): band [n·(kd+1)] receives B with
	// band[j·(kd+1)+t] = B(j+t, j) = B(j, j+t) for t = 0…kd, j+t < n, and Q
	// is kept in a's upper triangle and tau [n], for SymBandMulQ only.
	SymBand(a []float64, n, kd int, band, tau []float64) bool
	// SymBandMulQ is SymTridiagMulQ for the Q of SymBand(a, n, kd, …, tau)
	// (LAPACK dormqr on the reflectors below B's band).
	SymBandMulQ(trans bool, a []float64, n, kd int, tau []float64, b []float64, c, stride int) bool
	// BandSolve overwrites r, c right-hand sides of length n one after
	// another (r[j·n+i]), with (B + λI)⁻¹ r for the symmetric band B that
	// SymBand wrote to band (n, kd), by LU with partial pivoting (LAPACK
	// dgbsv). It reports false when B + λI is exactly singular.
	BandSolve(band []float64, n, kd int, lam float64, r []float64, c int) bool
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

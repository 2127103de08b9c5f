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
	// symmetric band matrix B of half-bandwidth kd ≥ 1, A = Q B Qᵀ (the
	// first stage of LAPACK's two-stage reduction, dsytrd_sy2sb's panels,
	// all level-3 products): band [n·(kd+1)] receives B with
	// band[j·(kd+1)+t] = B(j+t, j) = B(j, j+t) for t = 0…kd, j+t < n, and Q
	// = Q₁⋯Q_P, one block reflector I − V_p T_p V_pᵀ per kd-column panel, is
	// kept in a's upper triangle (V_p) and t [BandTSize(n, kd)] (T_p), for
	// SymBandMulQ only.
	SymBand(a []float64, n, kd int, band, t []float64) bool
	// SymBandMulQ is SymTridiagMulQ for the Q of SymBand(a, n, kd, …, t).
	SymBandMulQ(trans bool, a []float64, n, kd int, t []float64, b []float64, c, stride int) bool
	// BandSolve overwrites r, c right-hand sides of length n one after
	// another (r[j·n+i]), with (B + λI)⁻¹ r for the symmetric band B that
	// SymBand wrote to band (n, kd), by LU with partial pivoting (LAPACK
	// dgbsv). It reports false when B + λI is exactly singular.
	BandSolve(band []float64, n, kd int, lam float64, r []float64, c int) bool
	// BandCholSolve is BandSolve by a banded Cholesky factorisation instead
	// (LAPACK dpbtrf + dpbtrs: a third of the LU's flops, no pivoting), for
	// λ > 0 where B + λI is positive definite. work [n·(kd+1)] receives the
	// factor. It reports false when B + λI is not numerically positive
	// definite; r is then untouched, so the caller can fall back to BandSolve.
	BandCholSolve(band []float64, n, kd int, lam float64, r []float64, c int, work []float64) bool
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

// BandTSize is the length of SymBand's t for an n×n matrix and half-bandwidth
// kd: a kd×kd factor per panel of kd columns, ⌈(n−kd)/kd⌉ panels.
func BandTSize(n, kd int) int {
	if n <= kd {
		return 0
	}
	return (n - kd + kd - 1) / kd * kd * kd
}

//go:build cgo && !openblas

package openblas

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/lapack"
	"gonum.org/v1/gonum/lapack/gonum"

	"github.com/cl-dev/cl/internal/linalg"
)

// spd returns a random n×n symmetric positive definite matrix (full,
// row-major, stride lda ≥ n; padding holds NaN so that a read of it shows).
func spd(r *rand.Rand, n, lda int) []float64 {
	x := rnd(r, n*n)
	a := make([]float64, lda*n)
	for i := range a {
		a[i] = math.NaN()
	}
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for k := 0; k < n; k++ {
				s += x[i*n+k] * x[j*n+k]
			}
			a[i*lda+j] = s / float64(n)
		}
		a[i*lda+i] += 0.5
	}
	return a
}

// TestNativeLAPACK checks every routine of Lapack against its definition
// (reconstruction A = Q T Qᵀ, A = UᵀU, A·A⁻¹ = I) and against gonum's LAPACK
// (eigenvalues, Cholesky factor) to 1e-12 relative, with padded strides, and
// that the strict lower triangle is neither read nor written.
func TestNativeLAPACK(t *testing.T) {
	needRuntime(t)
	if linalg.NativeLAPACK() == nil {
		t.Fatal("Load selected no native LAPACK though libopenblas.so.0 exports it")
	}
	if c := Config(); !strings.Contains(c, "LAPACK: openblas LAPACK") {
		t.Fatalf("Config() = %q does not name the native LAPACK", c)
	}
	var nat Lapack
	var ref gonum.Implementation
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 7, 65, 150} {
		// Tridiagonal reduction: rebuild A from T and Q, and Qᵀ(Q b) = b.
		a := spd(r, n, n)
		full := slices.Clone(a)
		for i := 0; i < n; i++ {
			for j := 0; j < i; j++ {
				a[i*n+j] = 7 // the lower triangle must stay as it is
			}
		}
		d, e, tau := make([]float64, n), make([]float64, n-1), make([]float64, n-1)
		if !nat.SymTridiag(a, n, d, e, tau) {
			t.Fatalf("n=%d: SymTridiag failed", n)
		}
		for i := 0; i < n; i++ {
			for j := 0; j < i; j++ {
				if a[i*n+j] != 7 {
					t.Fatalf("n=%d: SymTridiag wrote the lower triangle", n)
				}
			}
		}
		q := make([]float64, n*n) // Q = Q·I
		for i := 0; i < n; i++ {
			q[i*n+i] = 1
		}
		if !nat.SymTridiagMulQ(false, a, n, tau, q, n, n) {
			t.Fatalf("n=%d: SymTridiagMulQ failed", n)
		}
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				var s float64 // (Q T Qᵀ)_ij
				for k := 0; k < n; k++ {
					tq := d[k] * q[j*n+k]
					if k > 0 {
						tq += e[k-1] * q[j*n+k-1]
					}
					if k < n-1 {
						tq += e[k] * q[j*n+k+1]
					}
					s += q[i*n+k] * tq
				}
				if math.Abs(s-full[i*n+j]) > 1e-12*float64(n) {
					t.Fatalf("n=%d: (Q T Qᵀ)[%d,%d] = %v, A %v", n, i, j, s, full[i*n+j])
				}
			}
		}
		const c, stride = 3, 5
		b := rnd(r, n*stride)
		b0 := slices.Clone(b)
		nat.SymTridiagMulQ(false, a, n, tau, b, c, stride)
		nat.SymTridiagMulQ(true, a, n, tau, b, c, stride)
		close(t, "Qᵀ(Q b)", b, b0, 1e-13*float64(n))

		// Eigenvalues against gonum's Dsyev.
		const pad = 3
		lda := n + pad
		a = spd(r, n, lda)
		full = slices.Clone(a)
		w := make([]float64, n)
		if !nat.SymEigenvalues(a, n, lda, w) {
			t.Fatalf("n=%d: SymEigenvalues failed", n)
		}
		wr := make([]float64, n)
		work := make([]float64, 1)
		ar := slices.Clone(full)
		ref.Dsyev(lapack.EVNone, blas.Upper, n, ar, lda, wr, work, -1)
		work = make([]float64, int(work[0]))
		if !ref.Dsyev(lapack.EVNone, blas.Upper, n, ar, lda, wr, work, len(work)) {
			t.Fatal("gonum Dsyev failed")
		}
		close(t, "eigenvalues", w, wr, 1e-12*float64(n))

		// Cholesky against gonum's Dpotrf, and the inverse against A.
		a = slices.Clone(full)
		ar = slices.Clone(full)
		if !nat.CholUpper(a, n, lda) || !ref.Dpotrf(blas.Upper, n, ar, lda) {
			t.Fatalf("n=%d: Cholesky failed", n)
		}
		for i := 0; i < n; i++ {
			for j := 0; j < lda; j++ {
				if j < i || j >= n {
					if !(math.IsNaN(a[i*lda+j]) && math.IsNaN(full[i*lda+j])) && a[i*lda+j] != full[i*lda+j] {
						t.Fatalf("n=%d: CholUpper wrote [%d,%d] outside the upper triangle", n, i, j)
					}
					continue
				}
				if math.Abs(a[i*lda+j]-ar[i*lda+j]) > 1e-12*(1+math.Abs(ar[i*lda+j])) {
					t.Fatalf("n=%d: U[%d,%d] = %v, gonum %v", n, i, j, a[i*lda+j], ar[i*lda+j])
				}
			}
		}
		if !nat.CholInverseUpper(a, n, lda) {
			t.Fatalf("n=%d: CholInverseUpper failed", n)
		}
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				var s float64
				for k := 0; k < n; k++ {
					ik, kj := full[min(i, k)*lda+max(i, k)], a[min(k, j)*lda+max(k, j)]
					s += ik * kj
				}
				want := 0.0
				if i == j {
					want = 1
				}
				if math.Abs(s-want) > 1e-10 {
					t.Fatalf("n=%d: (A·A⁻¹)[%d,%d] = %v", n, i, j, s)
				}
			}
		}
	}
	// Not positive definite: reported, not a panic.
	a := []float64{1, 2, 2, 1}
	if nat.CholUpper(a, 2, 2) {
		t.Fatal("CholUpper accepted an indefinite matrix")
	}
	// Short slices panic before native code runs.
	func() {
		defer func() {
			if recover() == nil {
				t.Error("SymTridiag with a short matrix did not panic")
			}
		}()
		nat.SymTridiag(make([]float64, 3), 2, make([]float64, 2), make([]float64, 1), make([]float64, 1))
	}()
}

// TestCholUpperNative checks linalg.CholUpper (256-wide panels) with the
// native LAPACK selected against the pure-Go one: same factor to 1e-12.
func TestCholUpperNative(t *testing.T) {
	needRuntime(t)
	r := rand.New(rand.NewPCG(5, 6))
	const n = 600
	a := spd(r, n, n)
	b := slices.Clone(a)
	if !linalg.CholUpper(a, n) {
		t.Fatal("native CholUpper failed")
	}
	linalg.UsePureGo()
	if !linalg.CholUpper(b, n) {
		t.Fatal("pure-Go CholUpper failed")
	}
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			if math.Abs(a[i*n+j]-b[i*n+j]) > 1e-12*(1+math.Abs(b[i*n+j])) {
				t.Fatalf("U[%d,%d] = %v, pure Go %v", i, j, a[i*n+j], b[i*n+j])
			}
		}
	}
}

// TestNativeBand checks the two-stage path's first stage against its
// definition: A = Q B Qᵀ rebuilt from SymBand's band and SymBandMulQ, the
// strict lower triangle untouched, Qᵀ(Q b) = b; that SymBand's B and Q are
// LAPACK's dsytrd_sy2sb's (band, and Q through dormqr, to 1e-12·n); that
// BandSolve's and BandCholSolve's X satisfy (B + λI) X = R; and that
// BandCholSolve reports an indefinite B + λI and leaves R as it was.
func TestNativeBand(t *testing.T) {
	needRuntime(t)
	var nat Lapack
	r := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []struct{ n, kd int }{{1, 4}, {5, 4}, {6, 4}, {40, 3}, {130, 16}, {131, 16}, {97, 32}, {300, 64}} {
		n, kd := tc.n, tc.kd
		a := spd(r, n, n)
		full := slices.Clone(a)
		for i := 0; i < n; i++ {
			for j := 0; j < i; j++ {
				a[i*n+j] = 7
			}
		}
		a2 := slices.Clone(a)
		band, tau := make([]float64, n*(kd+1)), make([]float64, n)
		tt := make([]float64, linalg.BandTSize(n, kd))
		if !nat.symBand(a, n, kd, band, tau, tt) {
			t.Fatalf("n=%d kd=%d: SymBand failed", n, kd)
		}
		for i := 0; i < n; i++ {
			for j := 0; j < i; j++ {
				if a[i*n+j] != 7 {
					t.Fatalf("n=%d: SymBand wrote the lower triangle", n)
				}
			}
		}
		// LAPACK's own first stage: the same band and the same Q.
		band2, tau2 := make([]float64, n*(kd+1)), make([]float64, n)
		if !nat.symBandSy2sb(a2, n, kd, band2, tau2) {
			t.Fatalf("n=%d kd=%d: dsytrd_sy2sb failed", n, kd)
		}
		close(t, "band against dsytrd_sy2sb", band, band2, 1e-12*float64(n))
		bm := make([]float64, n*n) // B, full
		for j := 0; j < n; j++ {
			for k := 0; k <= kd && j+k < n; k++ {
				bm[(j+k)*n+j], bm[j*n+j+k] = band[j*(kd+1)+k], band[j*(kd+1)+k]
			}
		}
		q := make([]float64, n*n)
		q2 := make([]float64, n*n)
		for i := 0; i < n; i++ {
			q[i*n+i], q2[i*n+i] = 1, 1
		}
		if !nat.SymBandMulQ(false, a, n, kd, tt, q, n, n) {
			t.Fatalf("n=%d: SymBandMulQ failed", n)
		}
		if !nat.symBandMulQDormqr(false, a2, n, kd, tau2, q2, n, n) {
			t.Fatalf("n=%d: dormqr failed", n)
		}
		close(t, "Q against dsytrd_sy2sb + dormqr", q, q2, 1e-12*float64(n))
		bq := make([]float64, n*n) // B Qᵀ
		for k := 0; k < n; k++ {
			for j := 0; j < n; j++ {
				var s float64
				for l := 0; l < n; l++ {
					s += bm[k*n+l] * q[j*n+l]
				}
				bq[k*n+j] = s
			}
		}
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				var s float64 // (Q B Qᵀ)_ij
				for k := 0; k < n; k++ {
					s += q[i*n+k] * bq[k*n+j]
				}
				if math.Abs(s-full[i*n+j]) > 1e-12*float64(n) {
					t.Fatalf("n=%d kd=%d: (Q B Qᵀ)[%d,%d] = %v, A %v", n, kd, i, j, s, full[i*n+j])
				}
			}
		}
		const c, stride = 3, 4
		b := rnd(r, n*stride)
		b0 := slices.Clone(b)
		bd := slices.Clone(b)
		nat.SymBandMulQ(true, a, n, kd, tt, b, c, stride)
		nat.symBandMulQDormqr(true, a, n, kd, tau, bd, c, stride)
		close(t, "Qᵀb against dormqr", b, bd, 1e-13*float64(n))
		nat.SymBandMulQ(false, a, n, kd, tt, b, c, stride)
		close(t, "Q(Qᵀ b)", b, b0, 1e-13*float64(n))

		const lam = 0.25
		rhs := rnd(r, n*c)
		work := make([]float64, n*(kd+1))
		for _, chol := range []bool{false, true} {
			x := slices.Clone(rhs)
			if chol && !nat.BandCholSolve(band, n, kd, lam, x, c, work) {
				t.Fatalf("n=%d: BandCholSolve failed", n)
			} else if !chol && !nat.BandSolve(band, n, kd, lam, x, c) {
				t.Fatalf("n=%d: BandSolve failed", n)
			}
			for k := 0; k < c; k++ {
				for i := 0; i < n; i++ {
					s := lam * x[k*n+i]
					for j := 0; j < n; j++ {
						s += bm[i*n+j] * x[k*n+j]
					}
					if math.Abs(s-rhs[k*n+i]) > 1e-10 {
						t.Fatalf("n=%d chol=%v: ((B + λI) X − R)[%d,%d] = %v", n, chol, i, k, s-rhs[k*n+i])
					}
				}
			}
		}
		// B − (λ_min + 1)·I is indefinite: the Cholesky says so, R stays.
		if n > 1 {
			x := slices.Clone(rhs)
			var lmin float64 = math.Inf(1)
			for j := 0; j < n; j++ {
				lmin = min(lmin, band[j*(kd+1)]) // a diagonal entry bounds λ_min from above
			}
			if nat.BandCholSolve(band, n, kd, -lmin-1, x, c, work) {
				t.Fatalf("n=%d: BandCholSolve accepted an indefinite B + λI", n)
			}
			if !slices.Equal(x, rhs) {
				t.Fatalf("n=%d: BandCholSolve changed R after failing", n)
			}
		}
	}
}

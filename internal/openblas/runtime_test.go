//go:build cgo && !openblas

package openblas

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"

	"github.com/cl-dev/cl/internal/linalg"
)

// needRuntime loads OpenBLAS or skips (fails under CI=true).
func needRuntime(t *testing.T) {
	t.Helper()
	if err := Load(""); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI installs libopenblas0)", err)
		}
		t.Skipf("%v; install it with apt-get install libopenblas0 to test the run-time OpenBLAS path", err)
	}
	t.Cleanup(func() { linalg.UsePureGo() })
}

func rnd(r *rand.Rand, n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = r.Float64()*2 - 1
	}
	return s
}

func close(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	for i := range got {
		if d := math.Abs(got[i] - want[i]); d > tol*(1+math.Abs(want[i])) || math.IsNaN(got[i]) {
			t.Fatalf("%s: [%d] = %v, FastBLAS %v", what, i, got[i], want[i])
		}
	}
}

// TestRuntimeRoutines checks every routine Runtime sends to OpenBLAS
// against FastBLAS on random row-major operands with padded strides, both
// transposes, both triangles and sides; rounding may differ (1e-12).
func TestRuntimeRoutines(t *testing.T) {
	needRuntime(t)
	if b := linalg.Backend(); b != "openblas (libopenblas.so.0, run time)" {
		t.Fatalf("Backend() = %q", b)
	}
	t.Log(Config())
	r := rand.New(rand.NewPCG(1, 2))
	var rt Runtime
	var ref linalg.FastBLAS
	const m, n, k, pad = 37, 29, 41, 3
	for _, tA := range []blas.Transpose{blas.NoTrans, blas.Trans} {
		for _, tB := range []blas.Transpose{blas.NoTrans, blas.Trans} {
			a, b, c := rnd(r, 64*(64+pad)), rnd(r, 64*(64+pad)), rnd(r, m*(n+pad))
			lda, ldb := k+pad, n+pad
			if tA != blas.NoTrans {
				lda = m + pad
			}
			if tB != blas.NoTrans {
				ldb = k + pad
			}
			want := append([]float64(nil), c...)
			rt.Dgemm(tA, tB, m, n, k, 1.5, a, lda, b, ldb, -0.5, c, n+pad)
			ref.Dgemm(tA, tB, m, n, k, 1.5, a, lda, b, ldb, -0.5, want, n+pad)
			close(t, "Dgemm", c, want, 1e-12)
		}
	}
	for _, ul := range []blas.Uplo{blas.Upper, blas.Lower} {
		for _, tA := range []blas.Transpose{blas.NoTrans, blas.Trans} {
			a, b := rnd(r, 64*64), rnd(r, 64*64)
			c := rnd(r, n*(n+pad))
			want := append([]float64(nil), c...)
			rt.Dsyrk(ul, tA, n, k, 0.7, a, 60, 0.3, c, n+pad)
			ref.Dsyrk(ul, tA, n, k, 0.7, a, 60, 0.3, want, n+pad)
			close(t, "Dsyrk", c, want, 1e-12)
			rt.Dsyr2k(ul, tA, n, k, 0.7, a, 60, b, 60, 0.3, c, n+pad)
			ref.Dsyr2k(ul, tA, n, k, 0.7, a, 60, b, 60, 0.3, want, n+pad)
			close(t, "Dsyr2k", c, want, 1e-12)
			for _, s := range []blas.Side{blas.Left, blas.Right} {
				for _, d := range []blas.Diag{blas.NonUnit, blas.Unit} {
					tri := rnd(r, 64*64)
					for i := 0; i < 64; i++ {
						tri[i*64+i] = 4 + r.Float64() // well conditioned
					}
					bb := rnd(r, m*(n+pad))
					want := append([]float64(nil), bb...)
					rt.Dtrsm(s, ul, tA, d, m, n, 1.2, tri, 64, bb, n+pad)
					ref.Dtrsm(s, ul, tA, d, m, n, 1.2, tri, 64, want, n+pad)
					close(t, "Dtrsm", bb, want, 1e-12)
					rt.Dtrmm(s, ul, tA, d, m, n, 1.2, tri, 64, bb, n+pad)
					ref.Dtrmm(s, ul, tA, d, m, n, 1.2, tri, 64, want, n+pad)
					close(t, "Dtrmm", bb, want, 1e-12)
				}
			}
		}
		a := rnd(r, n*(n+pad))
		for _, inc := range []int{1, 2, -3} {
			ai := func(v int) int {
				if v < 0 {
					return -v
				}
				return v
			}(inc)
			x, y := rnd(r, 1+(m-1)*ai), rnd(r, 1+(m-1)*ai)
			want := append([]float64(nil), y...)
			rt.Dsymv(ul, n, 0.9, a, n+pad, x, inc, 0.4, y, inc)
			ref.Dsymv(ul, n, 0.9, a, n+pad, x, inc, 0.4, want, inc)
			close(t, "Dsymv", y, want, 1e-12)
			aa := append([]float64(nil), a...)
			want2 := append([]float64(nil), a...)
			rt.Dsyr2(ul, n, 0.9, x, inc, y, inc, aa, n+pad)
			ref.Dsyr2(ul, n, 0.9, x, inc, y, inc, want2, n+pad)
			close(t, "Dsyr2", aa, want2, 1e-12)
		}
	}
	a := rnd(r, m*(n+pad))
	for _, tA := range []blas.Transpose{blas.NoTrans, blas.Trans} {
		x, y := rnd(r, 64), rnd(r, 64)
		want := append([]float64(nil), y...)
		rt.Dgemv(tA, m, n, 1.1, a, n+pad, x, 1, 0.2, y, 1)
		ref.Dgemv(tA, m, n, 1.1, a, n+pad, x, 1, 0.2, want, 1)
		close(t, "Dgemv", y, want, 1e-12)
	}
	x, y := rnd(r, m), rnd(r, n)
	aa, want := append([]float64(nil), a...), append([]float64(nil), a...)
	rt.Dger(m, n, -0.6, x, 1, y, 1, aa, n+pad)
	ref.Dger(m, n, -0.6, x, 1, y, 1, want, n+pad)
	close(t, "Dger", aa, want, 1e-12)
	// Arguments OpenBLAS would read past: FastBLAS panics with gonum's message.
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Dgemm with a short A did not panic")
			}
		}()
		rt.Dgemm(blas.NoTrans, blas.NoTrans, 10, 10, 10, 1, make([]float64, 50), 10, make([]float64, 100), 10, 0, make([]float64, 100), 10)
	}()
	// Through the selected BLAS, as the heads call it.
	g := blas64.General{Rows: 3, Cols: 3, Stride: 3, Data: rnd(r, 9)}
	out := blas64.General{Rows: 3, Cols: 3, Stride: 3, Data: make([]float64, 9)}
	blas64.Gemm(blas.NoTrans, blas.Trans, 1, g, g, 0, out)
}

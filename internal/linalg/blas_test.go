package linalg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/blas/gonum"
	lapackgonum "gonum.org/v1/gonum/lapack/gonum"
	"gonum.org/v1/gonum/lapack/lapack64"
)

func randSlice(r *rand.Rand, n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = r.Float64()*2 - 1
	}
	return s
}

// checkTri compares got with want on the ul triangle (relative tolerance) and
// requires the other triangle and the padding beyond n columns to be
// bit-for-bit the original orig.
func checkTri(t *testing.T, name string, ul blas.Uplo, n, ldc int, got, want, orig []float64, scale float64) {
	t.Helper()
	for i := 0; i < n; i++ {
		for j := 0; j < ldc; j++ {
			idx := i*ldc + j
			in := j < n && ((ul == blas.Upper && j >= i) || (ul == blas.Lower && j <= i))
			if !in {
				if math.Float64bits(got[idx]) != math.Float64bits(orig[idx]) {
					t.Fatalf("%s: C[%d,%d] outside the triangle changed: %v -> %v", name, i, j, orig[idx], got[idx])
				}
				continue
			}
			if d := math.Abs(got[idx] - want[idx]); d > 1e-12*scale || math.IsNaN(got[idx]) != math.IsNaN(want[idx]) {
				t.Fatalf("%s: C[%d,%d] = %v, gonum %v", name, i, j, got[idx], want[idx])
			}
		}
	}
}

func TestFastBLASSyrkSyr2k(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var ref gonum.Implementation
	var f FastBLAS
	saved := syrkMinWork
	syrkMinWork = 0 // exercise the blocked path on small shapes too
	defer func() { syrkMinWork = saved }()
	for _, sh := range []struct{ n, k, nb int }{{1, 3, 2}, {2, 1, 2}, {7, 5, 3}, {13, 17, 4}, {33, 9, 8}, {64, 31, 16}, {100, 70, 33}, {257, 40, 256}} {
		for _, ul := range []blas.Uplo{blas.Upper, blas.Lower} {
			for _, tA := range []blas.Transpose{blas.NoTrans, blas.Trans} {
				for _, beta := range []float64{0, 1, -0.7} {
					for _, alpha := range []float64{1, -1.3, 0} {
						n, k := sh.n, sh.k
						row, col := n, k
						if tA == blas.Trans {
							row, col = k, n
						}
						lda, ldc := col+3, n+2
						a := randSlice(r, lda*row)
						b := randSlice(r, lda*row)
						orig := randSlice(r, ldc*n)
						if beta == 0 { // beta = 0 must ignore C, NaNs included
							for i := range orig {
								if i%5 == 0 {
									orig[i] = math.NaN()
								}
							}
						}
						name := fmt.Sprintf("n=%d k=%d nb=%d %c %c beta=%v alpha=%v", n, k, sh.nb, ul, tA, beta, alpha)

						// gonum's Dsyrk (Lower, Trans) scales C by beta = 0, so NaN·0 stays
						// NaN there; the reference BLAS ignores C when beta = 0. The
						// reference therefore starts from C with NaNs set to 0.
						clean := append([]float64(nil), orig...)
						for i, v := range clean {
							if math.IsNaN(v) {
								clean[i] = 0
							}
						}
						want := append([]float64(nil), clean...)
						got := append([]float64(nil), orig...)
						ref.Dsyrk(ul, tA, n, k, alpha, a, lda, beta, want, ldc)
						f.syrk(sh.nb, ul, tA, n, k, alpha, a, lda, beta, got, ldc)
						checkTri(t, "Dsyrk "+name, ul, n, ldc, got, want, orig, float64(k+1))

						want = append(want[:0], clean...)
						got = append(got[:0], orig...)
						ref.Dsyr2k(ul, tA, n, k, alpha, a, lda, b, lda, beta, want, ldc)
						f.syr2k(sh.nb, ul, tA, n, k, alpha, a, lda, b, lda, beta, got, ldc)
						checkTri(t, "Dsyr2k "+name, ul, n, ldc, got, want, orig, float64(k+1))
					}
				}
			}
		}
	}
}

func TestFastBLASTrsmBitwise(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var ref gonum.Implementation
	var f FastBLAS
	saved := trsmMinWork
	trsmMinWork = 0
	defer func() { trsmMinWork = saved }()
	for _, sh := range []struct{ m, n int }{{5, 9}, {17, 40}, {64, 130}, {3, 2}} {
		for _, s := range []blas.Side{blas.Left, blas.Right} {
			for _, ul := range []blas.Uplo{blas.Upper, blas.Lower} {
				for _, tA := range []blas.Transpose{blas.NoTrans, blas.Trans} {
					for _, d := range []blas.Diag{blas.NonUnit, blas.Unit} {
						m, n := sh.m, sh.n
						na := m
						if s == blas.Right {
							na = n
						}
						lda, ldb := na+1, n+3
						a := randSlice(r, lda*na)
						for i := 0; i < na; i++ {
							a[i*lda+i] = 2 + r.Float64() // well conditioned
						}
						want := randSlice(r, ldb*m)
						got := append([]float64(nil), want...)
						ref.Dtrsm(s, ul, tA, d, m, n, 0.9, a, lda, want, ldb)
						f.Dtrsm(s, ul, tA, d, m, n, 0.9, a, lda, got, ldb)
						for i := range got {
							if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
								t.Fatalf("Dtrsm m=%d n=%d %c %c %c %c: element %d = %v, gonum %v", m, n, s, ul, tA, d, i, got[i], want[i])
							}
						}
					}
				}
			}
		}
	}
}

// TestBackend checks the selection and its report: gonum's own BLAS until
// something is selected, then the selected name.
func TestBackend(t *testing.T) {
	prev := blas64.Implementation()
	defer blas64.Use(prev)
	blas64.Use(gonum.Implementation{})
	if got := Backend(); got != Gonum {
		t.Fatalf("Backend() = %q with gonum's BLAS, want %q", got, Gonum)
	}
	UsePureGo()
	if got := Backend(); got != PureGo {
		t.Fatalf("Backend() = %q after UsePureGo, want %q", got, PureGo)
	}
	if _, ok := blas64.Implementation().(FastBLAS); !ok || !GonumGemm() {
		t.Fatalf("after UsePureGo: blas64 is %T, GonumGemm %v", blas64.Implementation(), GonumGemm())
	}
	Select("custom", gonum.Implementation{})
	if got := Backend(); got != "custom" {
		t.Fatalf("Backend() = %q after Select(custom), want custom", got)
	}
}

// TestFastBLASLapack runs gonum's Dpotrf and Dsytrd through FastBLAS (as
// the selected BLAS) and checks them against the factorisation's definition.
func TestFastBLASLapack(t *testing.T) {
	prev := blas64.Implementation()
	defer blas64.Use(prev)
	blas64.Use(FastBLAS{})
	savedS, savedV, savedT := syrkMinWork, symvMinN, trsmMinWork
	syrkMinWork, symvMinN, trsmMinWork = 0, 0, 0 // every call through the parallel paths
	defer func() { syrkMinWork, symvMinN, trsmMinWork = savedS, savedV, savedT }()
	r := rand.New(rand.NewPCG(5, 6))
	n := 300
	x := randSlice(r, n*n)
	g := make([]float64, n*n)
	blas64.Gemm(blas.Trans, blas.NoTrans, 1, blas64.General{Rows: n, Cols: n, Stride: n, Data: x}, blas64.General{Rows: n, Cols: n, Stride: n, Data: x}, 0, blas64.General{Rows: n, Cols: n, Stride: n, Data: g})
	for i := 0; i < n; i++ {
		g[i*n+i] += 1
	}
	for _, ul := range []blas.Uplo{blas.Upper, blas.Lower} {
		a := append([]float64(nil), g...)
		tri, ok := lapack64.Potrf(blas64.Symmetric{N: n, Stride: n, Uplo: ul, Data: a})
		if !ok {
			t.Fatal("Potrf failed on a PD matrix")
		}
		u := make([]float64, n*n) // the triangular factor, upper: G = UᵀU
		for i := 0; i < n; i++ {
			for j := i; j < n; j++ {
				if ul == blas.Upper {
					u[i*n+j] = tri.Data[i*n+j]
				} else {
					u[i*n+j] = tri.Data[j*n+i]
				}
			}
		}
		back := make([]float64, n*n)
		gonum.Implementation{}.Dgemm(blas.Trans, blas.NoTrans, n, n, n, 1, u, n, u, n, 0, back, n)
		for i := range back {
			if math.Abs(back[i]-g[i]) > 1e-9*float64(n) {
				t.Fatalf("Potrf %c: UᵀU differs from G at %d: %v vs %v", ul, i, back[i], g[i])
			}
		}
	}
	// Dsytrd: the eigenvalues of T (d, e) must be those of G; compare the traces of T and T².
	a := append([]float64(nil), g...)
	d, e, tau := make([]float64, n), make([]float64, n-1), make([]float64, n-1)
	var impl lapackgonum.Implementation
	work := make([]float64, 1)
	impl.Dsytrd(blas.Upper, n, a, n, d, e, tau, work, -1)
	work = make([]float64, int(work[0]))
	impl.Dsytrd(blas.Upper, n, a, n, d, e, tau, work, len(work))
	var tr, tr2, gt, gt2 float64
	for i := 0; i < n; i++ {
		tr += d[i]
		tr2 += d[i] * d[i]
		gt += g[i*n+i]
		for j := 0; j < n; j++ {
			gt2 += g[i*n+j] * g[i*n+j]
		}
	}
	for _, v := range e {
		tr2 += 2 * v * v
	}
	if math.Abs(tr-gt) > 1e-9*math.Abs(gt) || math.Abs(tr2-gt2) > 1e-9*gt2 {
		t.Fatalf("Dsytrd: trace %v vs %v, ‖T‖² %v vs ‖G‖² %v", tr, gt, tr2, gt2)
	}
}

// BenchmarkFactor times gonum's Dpotrf and Dsytrd at n = 2000 with gonum's
// plain BLAS and with FastBLAS, side by side. RANPAC_FACTOR_N overrides n.
func BenchmarkFactor(b *testing.B) {
	n := 2000
	if s, err := strconv.Atoi(os.Getenv("RANPAC_FACTOR_N")); err == nil && s > 1 {
		n = s
	}
	r := rand.New(rand.NewPCG(7, 8))
	x := randSlice(r, n*n)
	g := make([]float64, n*n)
	gonum.Implementation{}.Dgemm(blas.Trans, blas.NoTrans, n, n, n, 1.0/float64(n), x, n, x, n, 0, g, n)
	for i := 0; i < n; i++ {
		g[i*n+i] += 1
	}
	prev := blas64.Implementation()
	defer blas64.Use(prev)
	var impl lapackgonum.Implementation
	a := make([]float64, n*n)
	for _, bi := range []struct {
		name string
		impl blas.Float64
	}{{"gonum", gonum.Implementation{}}, {"fast", FastBLAS{}}} {
		b.Run("potrf/"+bi.name, func(b *testing.B) {
			blas64.Use(bi.impl)
			for b.Loop() {
				copy(a, g)
				start := time.Now()
				if !impl.Dpotrf(blas.Upper, n, a, n) {
					b.Fatal("not PD")
				}
				b.ReportMetric(float64(n)*float64(n)*float64(n)/3/time.Since(start).Seconds()/1e9, "GFLOP/s")
			}
		})
		b.Run("cholUpper/"+bi.name, func(b *testing.B) {
			blas64.Use(bi.impl)
			for b.Loop() {
				copy(a, g)
				start := time.Now()
				if !CholUpper(a, n) {
					b.Fatal("not PD")
				}
				b.ReportMetric(float64(n)*float64(n)*float64(n)/3/time.Since(start).Seconds()/1e9, "GFLOP/s")
			}
		})
		b.Run("sytrd/"+bi.name, func(b *testing.B) {
			blas64.Use(bi.impl)
			d, e, tau := make([]float64, n), make([]float64, n-1), make([]float64, n-1)
			work := make([]float64, 1)
			impl.Dsytrd(blas.Upper, n, a, n, d, e, tau, work, -1)
			work = make([]float64, int(work[0]))
			for b.Loop() {
				copy(a, g)
				impl.Dsytrd(blas.Upper, n, a, n, d, e, tau, work, len(work))
			}
		})
	}
}

// TestCholUpper checks the blocked Cholesky against gonum's Dpotrf on sizes
// around the block size, and that it rejects an indefinite matrix.
func TestCholUpper(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{1, 5, 255, 256, 257, 600} {
		x := randSlice(r, n*n)
		g := make([]float64, n*n)
		gonum.Implementation{}.Dgemm(blas.Trans, blas.NoTrans, n, n, n, 1, x, n, x, n, 0, g, n)
		for i := 0; i < n; i++ {
			g[i*n+i] += 1
			for j := 0; j < i; j++ {
				g[i*n+j] = math.NaN() // the lower triangle must not be read or written
			}
		}
		got := append([]float64(nil), g...)
		want := append([]float64(nil), g...)
		if !CholUpper(got, n) {
			t.Fatalf("n=%d: cholUpper failed on a PD matrix", n)
		}
		if !(lapackgonum.Implementation{}).Dpotrf(blas.Upper, n, want, n) {
			t.Fatalf("n=%d: Dpotrf failed", n)
		}
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				k := i*n + j
				if j < i {
					if !math.IsNaN(got[k]) {
						t.Fatalf("n=%d: lower triangle written at [%d,%d]", n, i, j)
					}
					continue
				}
				if math.Abs(got[k]-want[k]) > 1e-10*(1+math.Abs(want[k])) {
					t.Fatalf("n=%d: U[%d,%d] = %v, Dpotrf %v", n, i, j, got[k], want[k])
				}
			}
		}
	}
	ind := []float64{1, 2, 0, 1} // [[1 2] [2 1]] is indefinite
	if CholUpper(ind, 2) {
		t.Fatal("cholUpper accepted an indefinite matrix")
	}
}

func TestFastBLASSymv(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	saved := symvMinN
	symvMinN = 0
	defer func() { symvMinN = saved }()
	var ref gonum.Implementation
	var f FastBLAS
	for _, n := range []int{1, 2, 7, 64, 301} {
		for _, ul := range []blas.Uplo{blas.Upper, blas.Lower} {
			for _, inc := range [][2]int{{1, 1}, {3, 2}, {-2, 1}, {1, -3}} {
				for _, beta := range []float64{0, 1, 0.5} {
					lda := n + 2
					a := randSlice(r, lda*n)
					x := randSlice(r, 1+(n-1)*abs(inc[0]))
					y0 := randSlice(r, 1+(n-1)*abs(inc[1]))
					want := append([]float64(nil), y0...)
					if beta == 0 { // y's elements are ignored when beta = 0; the gaps between them are untouched
						ky := 0
						if inc[1] < 0 {
							ky = -(n - 1) * inc[1]
						}
						for i := 0; i < n; i++ {
							y0[ky+i*inc[1]] = math.NaN()
							want[ky+i*inc[1]] = 0
						}
					}
					got := append([]float64(nil), y0...)
					ref.Dsymv(ul, n, 0.7, a, lda, x, inc[0], beta, want, inc[1])
					f.Dsymv(ul, n, 0.7, a, lda, x, inc[0], beta, got, inc[1])
					for i := range got {
						if math.Abs(got[i]-want[i]) > 1e-12*float64(n) || math.IsNaN(got[i]) {
							t.Fatalf("n=%d %c inc=%v beta=%v: y[%d] = %v, gonum %v", n, ul, inc, beta, i, got[i], want[i])
						}
					}
				}
			}
		}
	}
}

// BenchmarkCopyTri times the triangle mirror that heads' ridge solve does twice
// around its in-place Cholesky (upper → lower, then back), at n = 4000 or
// RANPAC_FACTOR_N.
func BenchmarkCopyTri(b *testing.B) {
	n := 4000
	if s, err := strconv.Atoi(os.Getenv("RANPAC_FACTOR_N")); err == nil && s > 1 {
		n = s
	}
	c := randSlice(rand.New(rand.NewPCG(13, 14)), n*n)
	for b.Loop() {
		CopyTri(c, n, true)
		CopyTri(c, n, false)
	}
}

// TestCopyTri checks the tiled, parallel triangle mirror against the
// element-by-element definition, both directions, on sizes around the tile
// and the parallel threshold.
func TestCopyTri(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for _, n := range []int{0, 1, 2, 63, 64, 65, 1023, 1024, 1500} {
		for _, toLower := range []bool{true, false} {
			c := randSlice(r, n*n)
			want := append([]float64(nil), c...)
			for i := 0; i < n; i++ {
				for j := i + 1; j < n; j++ {
					if toLower {
						want[j*n+i] = want[i*n+j]
					} else {
						want[i*n+j] = want[j*n+i]
					}
				}
			}
			CopyTri(c, n, toLower)
			for k := range c {
				if c[k] != want[k] {
					t.Fatalf("n=%d toLower=%v: c[%d,%d] = %v, want %v", n, toLower, k/n, k%n, c[k], want[k])
				}
			}
		}
	}
}

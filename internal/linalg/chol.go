package linalg

import (
	"runtime"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/gonum"
)

// SyrkUpper adds into the upper triangle of c (n×n, row-major, stride n)
// alpha·aᵀa when trans is true (a is k×n) or alpha·a·aᵀ when trans is false (a is n×k),
// with the selected BLAS's Dsyrk. Entries below the diagonal of c are
// not touched; readers use the upper triangle.
func SyrkUpper(trans bool, alpha float64, a blas64.General, c []float64, n int) {
	t := blas.NoTrans
	if trans {
		t = blas.Trans
	}
	blas64.Syrk(t, alpha, a, 1, blas64.Symmetric{Uplo: blas.Upper, N: n, Stride: n, Data: c})
}

// Symmetrize copies the upper triangle of the n×n row-major c into its lower
// triangle.
func Symmetrize(c []float64, n int) { CopyTri(c, n, true) }

// CholInPlace factorises G + λI, G the n×n symmetric matrix in the upper
// triangle of g (row-major, stride n), with CholUpper in g's own memory and
// calls use with the factor U (upper triangle of its argument) when G + λI
// is numerically positive definite. Before returning, even by a panic, it
// restores G: on return g's upper triangle and diagonal are G's bit for bit
// and its strict lower triangle is their mirror. It reports whether the
// factorisation succeeded (use is not called otherwise).
//
// progress, when not nil, is called after each panel of the factorisation
// with the columns done and n.
func CholInPlace(g []float64, n int, lam float64, use func(u []float64), progress func(done, total int)) bool {
	diag := make([]float64, n)
	for i := range diag {
		diag[i] = g[i*n+i]
	}
	CopyTri(g, n, true)
	defer func() {
		CopyTri(g, n, false)
		for i, v := range diag {
			g[i*n+i] = v
		}
	}()
	for i := 0; i < n; i++ {
		g[i*n+i] += lam
	}
	if !CholUpperProgress(g, n, progress) {
		return false
	}
	use(g)
	return true
}

// triBlock is the tile size of CopyTri.
const triBlock = 64

// CopyTri copies the strict upper triangle of the n×n row-major c into its
// strict lower triangle (toLower) or the other way round, tile by tile so
// that both the rows read and the columns written stay in cache; large
// matrices are split into block rows over goroutines. The diagonal is not
// touched.
func CopyTri(c []float64, n int, toLower bool) {
	tiles := func(b0, b1 int) {
		for i0 := b0 * triBlock; i0 < min(b1*triBlock, n); i0 += triBlock {
			i1 := min(i0+triBlock, n)
			for j0 := i0; j0 < n; j0 += triBlock {
				j1 := min(j0+triBlock, n)
				for i := i0; i < i1; i++ {
					for j := max(j0, i+1); j < j1; j++ {
						if toLower {
							c[j*n+i] = c[i*n+j]
						} else {
							c[i*n+j] = c[j*n+i]
						}
					}
				}
			}
		}
	}
	nb := (n + triBlock - 1) / triBlock
	workers := min(runtime.GOMAXPROCS(0), nb)
	if workers < 2 || n < 1024 {
		tiles(0, nb)
		return
	}
	// Block row b holds about nb − b tiles: cut where the running sum
	// reaches each worker's share.
	var wg sync.WaitGroup
	total := nb * (nb + 1) / 2
	b0, acc := 0, 0
	for w := 1; w <= workers; w++ {
		b1 := b0
		for b1 < nb && (w == workers || acc < total*w/workers) {
			acc += nb - b1
			b1++
		}
		wg.Add(1)
		go func(b0, b1 int) {
			defer wg.Done()
			tiles(b0, b1)
		}(b0, b1)
		b0 = b1
	}
	wg.Wait()
}

// cholNB is the block size of CholUpper.
const cholNB = 256

// CholUpper overwrites the upper triangle of the n×n row-major a (stride n)
// with its Cholesky factor U, A = UᵀU, as LAPACK dpotrf (Upper) does, and
// reports whether A was numerically positive definite. It is the
// right-looking blocked algorithm with 256-wide panels: gonum's Dpotrf uses
// 64-wide ones, whose thin Dgemm updates run at about half gonum's Dgemm rate,
// while here almost all the work is one rank-256 Dsyrk per panel, which
// FastBLAS runs on the parallel Dgemm. The lower triangle is not referenced.
//
// With a native LAPACK selected (SelectNative) the diagonal blocks are
// factorised by its dpotrf instead of gonum's Dpotrf; the panel updates are
// the selected BLAS's either way.
func CholUpper(a []float64, n int) bool { return CholUpperProgress(a, n, nil) }

// CholUpperProgress is CholUpper calling progress (when not nil) after each
// 256-column panel with the columns done and n.
func CholUpperProgress(a []float64, n int, progress func(done, total int)) bool {
	bi := blas64.Implementation()
	var li gonum.Implementation
	nat := NativeLAPACK()
	for j := 0; j < n; j += cholNB {
		jb := min(cholNB, n-j)
		if nat != nil {
			if !nat.CholUpper(a[j*n+j:], jb, n) {
				return false
			}
		} else if !li.Dpotrf(blas.Upper, jb, a[j*n+j:], n) {
			return false
		}
		if rest := n - j - jb; rest > 0 {
			// U₁₂ = U₁₁⁻ᵀ A₁₂, then A₂₂ −= U₁₂ᵀ U₁₂.
			bi.Dtrsm(blas.Left, blas.Upper, blas.Trans, blas.NonUnit, jb, rest, 1, a[j*n+j:], n, a[j*n+j+jb:], n)
			bi.Dsyrk(blas.Upper, blas.Trans, rest, jb, -1, a[j*n+j+jb:], n, 1, a[(j+jb)*n+j+jb:], n)
		}
		if progress != nil {
			progress(j+jb, n)
		}
	}
	return true
}

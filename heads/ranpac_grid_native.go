package heads

import (
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/gonum"

	"github.com/cl-dev/cl/internal/linalg"
)

// gridLossesNative is gridLosses on a native LAPACK (linalg.NativeLAPACK):
// the same reduction S = Q T Qᵀ (dsytrd), but Q is never formed. Qᵀ R comes
// from dormtr on the n×c R; every λ's tridiagonal solve Z_λ = (T + λI)⁻¹ Qᵀ R
// goes into one n × (len(grid)·c) block, which a single dormtr turns into
// Q·Z for all λ at once, and one product V·(Q Z) gives every λ's
// predictions. Against forming Q (dorgtr, 4/3·n³ flops) and V·Q (2·nv·n²)
// this costs about 4·n²·c·(len(grid)+1) + 2·nv·n·c·len(grid) flops, and no
// n×n or nv×n scratch. A singular T + λI gives +Inf, as in gridLosses.
func gridLossesNative(nat linalg.Native, s []float64, n int, r, v, yv blas64.General, grid []float64, progress func(done, total int)) []float64 {
	if progress != nil {
		progress(0, 2)
		defer progress(2, 2)
	}
	d := make([]float64, n)
	e := make([]float64, max(n-1, 0))
	tau := make([]float64, max(n-1, 0))
	if !nat.SymTridiag(s, n, d, e, tau) {
		panic("ranpac: native dsytrd rejected its arguments")
	}
	if progress != nil {
		progress(1, 2)
	}
	c := r.Cols
	rt := make([]float64, n*c)
	for i := 0; i < n; i++ {
		copy(rt[i*c:(i+1)*c], r.Data[i*r.Stride:i*r.Stride+c])
	}
	if !nat.SymTridiagMulQ(true, s, n, tau, rt, c, c) {
		panic("ranpac: native dormtr rejected its arguments")
	}
	k := len(grid)
	w := k * c
	z := make([]float64, n*w) // column block j·c … (j+1)·c is Z for grid[j]
	col := make([]float64, n*c)
	dl := make([]float64, len(e))
	du := make([]float64, len(e))
	dd := make([]float64, n)
	ok := make([]bool, k)
	var impl gonum.Implementation
	for j, lam := range grid {
		copy(dl, e)
		copy(du, e)
		for i := range dd {
			dd[i] = d[i] + lam
		}
		copy(col, rt)
		if ok[j] = impl.Dgtsv(n, c, dl, dd, du, col, c); !ok[j] {
			continue
		}
		for i := 0; i < n; i++ {
			copy(z[i*w+j*c:i*w+(j+1)*c], col[i*c:(i+1)*c])
		}
	}
	if !nat.SymTridiagMulQ(false, s, n, tau, z, w, w) {
		panic("ranpac: native dormtr rejected its arguments")
	}
	pred := blas64.General{Rows: v.Rows, Cols: w, Stride: w, Data: make([]float64, v.Rows*w)}
	blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, v, blas64.General{Rows: n, Cols: w, Stride: w, Data: z}, 0, pred)
	losses := make([]float64, k)
	for j := range grid {
		if !ok[j] {
			losses[j] = math.Inf(1)
			continue
		}
		losses[j] = sse(blas64.General{Rows: v.Rows, Cols: c, Stride: w, Data: pred.Data[j*c:]}, yv)
	}
	return losses
}

package heads

import (
	"time"

	"errors"
	"fmt"
	"math"

	"github.com/cl-dev/cl/internal/linalg"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/lapack64"
)

// ridgeFloorFactor scales the stable ridge's λ floor (ridgeFloor). Cholesky
// solves (G + λI + E) W = Q with a rounding perturbation ‖E‖ of order
// P·ε·max_i G_ii (ε = 2⁻⁵²; the rounding of G's own accumulation is of the
// same order). In the directions where G is (numerically) singular only λ
// separates the solution from that noise, so λ must exceed ‖E‖ by a wide
// margin: λ ≥ 10⁴·P·ε·max G_ii bounds the noise's share of W_o by about
// 10⁻⁴ there. docs/HEADS.md records the measurements behind the factor.
const ridgeFloorFactor = 1e4

// ridgeFloor is the smallest λ the stable ridge solves G + λI with:
// ridgeFloorFactor·P·2⁻⁵²·max_i G_ii (0 for an empty G).
func ridgeFloor(g []float64, p int) float64 {
	var m float64
	for i := 0; i < p; i++ {
		m = max(m, g[i*p+i])
	}
	return ridgeFloorFactor * float64(p) * 0x1p-52 * m
}

// RidgeFloor is the smallest λ that ridge=stable solves with for the
// current G (0 with ridge=pilot or before the first Learn): the λ search
// only picks grid values at or above it, and a smaller λ (fixed, or selected
// before Merge grew G) is raised to it.
func (h *RanPAC) RidgeFloor() float64 {
	if h.cfg.Ridge == "pilot" || h.g == nil {
		return 0
	}
	return ridgeFloor(h.g, h.Width())
}

// pickLambda returns the λ of the smallest loss, the first on ties: over
// the whole RidgeGrid with ridge=pilot (PILOT's rule), over the grid values
// ≥ RidgeFloor() with ridge=stable — or the floor itself when it exceeds
// every grid value.
func (h *RanPAC) pickLambda(losses []float64) float64 {
	floor := h.RidgeFloor()
	best := -1
	for i, l := range losses {
		if RidgeGrid[i] >= floor && (best < 0 || l < losses[best]) {
			best = i
		}
	}
	if best < 0 {
		return floor
	}
	return RidgeGrid[best]
}

// solveLambda is the λ W_o is solved with: the selected or fixed λ, raised
// to RidgeFloor() with ridge=stable.
func (h *RanPAC) solveLambda() float64 { return max(h.lambda, h.RidgeFloor()) }

// solve computes W_o for the current statistics and λ (solveLambda).
func (h *RanPAC) solve() error {
	cls := h.Classes()
	p := h.Width()
	c := len(cls)
	b := blas64.General{Rows: p, Cols: c, Stride: c, Data: make([]float64, p*c)}
	for j, l := range cls {
		for i, v := range h.q[l] {
			b.Data[i*c+j] = v
		}
	}
	lam := h.solveLambda()
	defer h.timing.since(phaseSolve, time.Now())
	w, solver, err := ridgeSolveProgress(h.g, p, lam, b, h.phase("solve (Cholesky of G + λI)"))
	if err != nil {
		return fmt.Errorf("ranpac: solving (G + λI) W = Q with λ = %g: %v; set a larger lambda=<value>", lam, err)
	}
	h.wo, h.woCls, h.solver = w.Data, cls, solver
	h.woNorms = make([]float64, c)
	for j := range cls {
		var s float64
		for i := 0; i < p; i++ {
			v := h.wo[i*c+j]
			s += v * v
		}
		h.woNorms[j] = math.Sqrt(s)
	}
	return nil
}

// errNotPD reports that a matrix was not numerically positive definite.
var errNotPD = errors.New("matrix is not numerically positive definite")

// ridgeSolve solves (G + λI) W = B for W (n×c) where G is n×n symmetric (upper
// triangle of g used). It needs no second n×n buffer: it factorises G + λI
// in place by Cholesky and then rebuilds G, so that on return g's upper
// triangle and diagonal hold G bit for bit and its strict lower triangle
// holds G's mirror (g is then fully symmetric; whatever was below the
// diagonal before is overwritten).
//
// In detail: the diagonal is saved (n floats), the strict upper triangle is
// copied into the strict lower one, λ is added to the diagonal and linalg.CholUpper
// overwrites the upper triangle with U (UᵀU = G + λI) without reading the
// lower one; W comes from U, then the upper triangle is copied back from the
// lower one and the diagonal restored. linalg.CholUpper sees exactly the values the
// former copy-based solve gave it, so W is bit-for-bit that solve's. The
// restore is deferred, so G survives a panic too.
//
// If G + λI is not numerically positive definite the solve falls back to LU
// with partial pivoting on a fresh n×n copy (the one case that allocates a
// second n×n matrix) and reports solver "lu" instead of "cholesky".
func ridgeSolve(g []float64, n int, lam float64, b blas64.General) (w blas64.General, solver string, err error) {
	return ridgeSolveProgress(g, n, lam, b, nil)
}

// ridgeSolveProgress is ridgeSolve reporting the Cholesky's columns done
// (linalg.CholInPlace) to progress when it is not nil.
func ridgeSolveProgress(g []float64, n int, lam float64, b blas64.General, progress func(done, total int)) (w blas64.General, solver string, err error) {
	w = blas64.General{Rows: n, Cols: b.Cols, Stride: b.Cols, Data: make([]float64, n*b.Cols)}
	for i := 0; i < n; i++ {
		copy(w.Data[i*w.Stride:i*w.Stride+b.Cols], b.Data[i*b.Stride:i*b.Stride+b.Cols])
	}
	if n == 0 {
		return w, "cholesky", nil
	}
	if linalg.CholInPlace(g, n, lam, func(u []float64) {
		lapack64.Potrs(blas64.Triangular{N: n, Stride: n, Uplo: blas.Upper, Diag: blas.NonUnit, Data: u}, w)
	}, progress) {
		return w, "cholesky", nil
	}
	a := largeFloats(n * n)
	copy(a, g) // g is fully symmetric after linalg.CholInPlace
	for i := 0; i < n; i++ {
		a[i*n+i] += lam
	}
	m := blas64.General{Rows: n, Cols: n, Stride: n, Data: a}
	ipiv := make([]int, n)
	if !lapack64.Getrf(m, ipiv) {
		return w, "", errNotPD
	}
	lapack64.Getrs(blas.NoTrans, m, w, ipiv)
	for _, x := range w.Data {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return w, "", errNotPD
		}
	}
	return w, "lu", nil
}

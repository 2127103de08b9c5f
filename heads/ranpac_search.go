package heads

import (
	"time"

	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"

	"github.com/cl-dev/cl/internal/linalg"
)

// RanPACSplitOrder is the row order of a stage of n samples before the
// fit/validation split: a permutation drawn from PCG(seed, stage+1) for
// split=shuffled, the identity for split=ordered. stage counts EndStage
// calls from 0. The first int(0.8·n) rows of the order fit, the rest
// validate.
func RanPACSplitOrder(seed uint64, stage, n int, shuffled bool) []int {
	if !shuffled {
		p := make([]int, n)
		for i := range p {
			p[i] = i
		}
		return p
	}
	return rand.New(rand.NewPCG(seed, uint64(stage)+1)).Perm(n)
}

// selectLosses computes the validation MSE of every λ of RidgeGrid on the
// buffered stage.
func (h *RanPAC) selectLosses() []float64 {
	n := len(h.stageY)
	order := RanPACSplitOrder(h.cfg.Seed, h.stages, n, h.cfg.Split == "shuffled")
	d := h.d
	xs := make([]float32, n*d)
	ys := make([]int, n)
	for i, r := range order {
		copy(xs[i*d:(i+1)*d], h.stageX[r*d:(r+1)*d])
		ys[i] = h.stageY[r]
	}
	// One-hot columns: the classes present in this stage; the others are
	// zero in Y and in every W_λ and add nothing to the squared error.
	cols := map[int]int{}
	for _, l := range ys {
		if _, ok := cols[l]; !ok {
			cols[l] = len(cols)
		}
	}
	c := len(cols)
	p := h.Width()
	nf := int(float64(n) * 0.8)
	nv := n - nf
	yf := blas64.General{Rows: nf, Cols: c, Stride: c, Data: make([]float64, nf*c)}
	yv := blas64.General{Rows: nv, Cols: c, Stride: c, Data: make([]float64, nv*c)}
	for i, l := range ys {
		if i < nf {
			yf.Data[i*c+cols[l]] = 1
		} else {
			yv.Data[(i-nf)*c+cols[l]] = 1
		}
	}
	var sums []float64
	if h.cfg.Search != "solve" && nf < p {
		// Dual form: W_λ = H_fitᵀ (K + λI)⁻¹ Y_fit with K = H_fit H_fitᵀ, so
		// the validation predictions are K_vf (K + λI)⁻¹ Y_fit. K and K_vf
		// are summed over column blocks of the projection, so the stage's
		// n × M matrix H never exists (400 MB at n = 5000, M = 10⁴).
		k, kvf := h.stageKernels(xs, n, nf)
		t0 := time.Now()
		sums = gridLosses(k, nf, yf, kvf, yv, RidgeGrid, h.phase("λ search: reduction"))
		h.timing.since(phaseSearchSolve, t0)
		return h.meanLosses(sums, nv)
	}
	t0 := time.Now()
	hAll := h.project(xs, n)
	h.timing.since(phaseProjection, t0)
	hf := blas64.General{Rows: nf, Cols: p, Stride: p, Data: hAll.Data[:nf*p]}
	hv := blas64.General{Rows: nv, Cols: p, Stride: p, Data: hAll.Data[nf*p:]}
	switch {
	case h.cfg.Search == "solve":
		t0 := time.Now()
		a := make([]float64, p*p)
		linalg.SyrkUpper(true, 1, hf, a, p)
		b := blas64.General{Rows: p, Cols: c, Stride: c, Data: make([]float64, p*c)}
		blas64.Gemm(blas.Trans, blas.NoTrans, 1, hf, yf, 0, b)
		t1 := time.Now()
		h.timing.since(phaseSearchGram, t0)
		defer h.timing.since(phaseSearchSolve, t1)
		sums = solveLosses(a, p, b, hv, yv, RidgeGrid, h.phase("λ search: solves"))
	default:
		t0 := time.Now()
		a := make([]float64, p*p)
		linalg.SyrkUpper(true, 1, hf, a, p)
		b := blas64.General{Rows: p, Cols: c, Stride: c, Data: make([]float64, p*c)}
		blas64.Gemm(blas.Trans, blas.NoTrans, 1, hf, yf, 0, b)
		t1 := time.Now()
		h.timing.since(phaseSearchGram, t0)
		defer h.timing.since(phaseSearchSolve, t1)
		sums = gridLosses(a, p, b, hv, yv, RidgeGrid, h.phase("λ search: reduction"))
	}
	return h.meanLosses(sums, nv)
}

// meanLosses turns sums of squared errors over nv validation rows into
// PILOT's MSE (mean over rows and over every class column).
func (h *RanPAC) meanLosses(sums []float64, nv int) []float64 {
	denom := float64(nv * len(h.counts))
	for i := range sums {
		sums[i] /= denom
	}
	return sums
}

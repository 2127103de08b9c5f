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
	ys := make([]int, n)
	for i, r := range order {
		ys[i] = h.stageY[r]
	}
	// xs is the stage's rows in that order [n, D], built only where the
	// search projects them (not where it reorders Learn's H).
	xs := func() []float32 {
		xs := largeSlice[float32](n * d)
		for i, r := range order {
			copy(xs[i*d:(i+1)*d], h.stageX[r*d:(r+1)*d])
		}
		return xs
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
		k, kvf := h.stageKernels(xs(), n, nf)
		t0 := time.Now()
		sums = gridLosses(k, nf, yf, kvf, yv, RidgeGrid, h.phase("λ search: reduction"))
		h.timing.since(phaseSearchSolve, t0)
		return h.meanLosses(sums, nv)
	}
	t0 := time.Now()
	stageG := h.stageG
	h.stageG = nil
	hAll, ok := h.cachedStageH(order)
	if !ok {
		stageG = nil
		hAll = h.project(xs(), n)
	}
	h.timing.since(phaseProjection, t0)
	hf := blas64.General{Rows: nf, Cols: p, Stride: p, Data: hAll.Data[:nf*p]}
	hv := blas64.General{Rows: nv, Cols: p, Stride: p, Data: hAll.Data[nf*p:]}
	switch {
	case h.cfg.Search == "solve":
		t0 := time.Now()
		a := fitGram(hf, hv, stageG, p)
		b := blas64.General{Rows: p, Cols: c, Stride: c, Data: make([]float64, p*c)}
		blas64.Gemm(blas.Trans, blas.NoTrans, 1, hf, yf, 0, b)
		t1 := time.Now()
		h.timing.since(phaseSearchGram, t0)
		defer h.timing.since(phaseSearchSolve, t1)
		sums = solveLosses(a, p, b, hv, yv, RidgeGrid, h.phase("λ search: solves"))
	default:
		t0 := time.Now()
		a := fitGram(hf, hv, stageG, p)
		b := blas64.General{Rows: p, Cols: c, Stride: c, Data: make([]float64, p*c)}
		blas64.Gemm(blas.Trans, blas.NoTrans, 1, hf, yf, 0, b)
		t1 := time.Now()
		h.timing.since(phaseSearchGram, t0)
		defer h.timing.since(phaseSearchSolve, t1)
		sums = gridLosses(a, p, b, hv, yv, RidgeGrid, h.phase("λ search: reduction"))
	}
	return h.meanLosses(sums, nv)
}

// fitGram returns H_fitᵀH_fit (P×P, upper triangle): from the stage's Gram
// kept by Learn, less H_valᵀH_val, when stageG is not nil (it is overwritten),
// otherwise as a product over the fit rows. The two differ in the last bits
// (relative rounding of order ‖stageG‖/‖H_fitᵀH_fit‖ ≈ 1.25 units, as the
// validation rows are a fifth of the stage).
func fitGram(hf, hv blas64.General, stageG []float64, p int) []float64 {
	if stageG != nil {
		linalg.SyrkUpper(true, -1, hv, stageG, p)
		return stageG
	}
	a := largeFloats(p * p)
	linalg.SyrkUpper(true, 1, hf, a, p)
	return a
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

// stageCache returns the memory in which Learn keeps H of its n rows for the
// λ search (n×P), or nil. The search projects the stage again otherwise;
// with the cache it only reorders the rows. It is kept only where it costs
// no extra peak memory: when the batch starts a stage (one Learn per stage,
// as cl fit and the protocol call it) whose search is primal on this batch
// alone (int(0.8·n) ≥ P, or search=solve), since that search holds the
// stage's n×P H anyway, and with M > 0 and λ to select. Any later change of
// the buffered rows (another Learn, Unlearn, RemoveClass, Merge) drops it.
func (h *RanPAC) stageCache(n int) []float64 {
	p := h.Width()
	if len(h.stageY) > 0 || h.cfg.M == 0 || float64(h.cfg.Lambda) > 0 ||
		(h.cfg.Search != "solve" && int(float64(n)*0.8) < p) {
		return nil
	}
	return largeFloats(n * p)
}

// cachedStageH returns H of the buffered rows in the given order (a
// permutation of 0…n−1), reordering Learn's cache in place, or false when
// there is no valid cache. The cache is consumed either way.
func (h *RanPAC) cachedStageH(order []int) (blas64.General, bool) {
	hc, n, p := h.stageH, len(order), h.Width()
	h.stageH = nil
	if hc == nil || len(hc) != n*p {
		return blas64.General{}, false
	}
	// Row i of the result is row order[i] of the cache: follow each cycle
	// of the permutation with one row of scratch.
	tmp := make([]float64, p)
	done := make([]bool, n)
	for i := range n {
		if done[i] || order[i] == i {
			done[i] = true
			continue
		}
		copy(tmp, hc[i*p:(i+1)*p])
		j := i
		for {
			done[j] = true
			src := order[j]
			if src == i {
				copy(hc[j*p:(j+1)*p], tmp)
				break
			}
			copy(hc[j*p:(j+1)*p], hc[src*p:(src+1)*p])
			j = src
		}
	}
	return blas64.General{Rows: n, Cols: p, Stride: p, Data: hc}, true
}

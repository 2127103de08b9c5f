package heads

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"

	"github.com/cl-dev/cl/internal/linalg"
	"github.com/cl-dev/cl/internal/safetensors"
)

// RanPAC option defaults (see NewRanPAC).
const (
	RanPACDefaultM    = 10000
	RanPACDefaultSeed = 0
)

// ranpacOptions lists every option key with its default.
var ranpacOptions = map[string]string{
	"M":          strconv.Itoa(RanPACDefaultM),
	"lambda":     "auto",
	"scoring":    "cosine",
	"seed":       strconv.Itoa(RanPACDefaultSeed),
	"split":      "shuffled",
	"search":     "fast",
	"class_gram": "false",
}

func init() {
	Register(Spec{
		Name:    "ranpac",
		Summary: "RanPAC: random ReLU projection + ridge regression on the Gram matrix, λ chosen per stage (METHODS §2.3)",
		Options: ranpacOptions,
		New:     func(o map[string]string) (Head, error) { return NewRanPAC(o) },
		Load:    loadRanPAC,
	})
}

// learnChunk bounds the rows projected at once in Learn/Unlearn, so that the
// transient H is at most learnChunk×M float64 (82 MB at M = 10000).
const learnChunk = 1024

// RanPAC is the RanPAC head (METHODS §2.3, PILOT models/ranpac.py).
//
// A sample x ∈ R^D becomes h(x) = ReLU(x·W) ∈ R^M with W ∈ R^{D×M} i.i.d.
// N(0,1) (rounded to float32, as PILOT's float32 torch.randn), regenerated
// from (seed, D, M) and never stored. With M = 0, h(x) = x (ridge on raw
// features, no ReLU). Write P for the width of h (M, or D when M = 0).
//
// Statistics, all float64: G = Σ hᵀh (P×P), one column q_c = Σ_{y=c} h (P)
// per class, per-class counts, and optionally per-class Gram matrices G_c
// (option class_gram=true; needed only by RemoveClass). The samples learned
// since the last EndStage are buffered as float32 features (n×D×4 bytes)
// for the per-stage λ selection.
//
// EndStage chooses λ on the buffered stage only, as PILOT does, then solves
// W_o = (G + λI)⁻¹ Q by Cholesky. Scores are cos(h(x), W_o[:,c]) (PILOT) or
// h(x)·W_o[:,c] (scoring=linear, the original RanPAC code).
//
// A RanPAC is not safe for concurrent use.
type RanPAC struct {
	m         int
	lambdaFix float64 // 0: choose λ per stage
	scoring   string
	seed      uint64
	split     string
	search    string
	classGram bool

	d    int
	proj []float64 // D×M row-major float64 copy of the float32 W; nil when M = 0

	g      []float64         // P×P; upper triangle (diagonal included) valid, lower one scratch (see ridgeSolve)
	q      map[int][]float64 // label → P
	counts map[int]int64     // label → samples
	gc     map[int][]float64 // label → P×P upper (class_gram only)
	stageX []float32         // buffered stage rows, n×D
	stageY []int             // their labels
	stages int               // EndStage calls so far

	lambda  float64   // λ in use, 0 before the first EndStage
	losses  []float64 // validation MSE per RidgeGrid entry at the last selection
	solver  string    // "cholesky" or "lu" for the current W_o
	wo      []float64 // P×C row-major, columns in Classes() order; nil when stale
	woCls   []int
	woNorms []float64 // ‖W_o[:,c]‖
}

// NewRanPAC builds an empty RanPAC head from string options:
//
//	M          projection width (default 10000; 0 = ridge on raw features)
//	lambda     "auto" (choose per stage on RidgeGrid, default) or a fixed λ > 0
//	scoring    "cosine" (PILOT, default) or "linear" (original RanPAC)
//	seed       projection and split seed, an unsigned integer (default 0)
//	split      "shuffled" (seeded random fit/validation split, default) or
//	           "ordered" (first 80 % of the stage in learning order fit)
//	search     "fast" (one tridiagonal reduction for the whole grid, default)
//	           or "solve" (17 LU solves of size P, as PILOT)
//	class_gram "true" keeps one P×P Gram per class so that RemoveClass is
//	           exact (C×P²×8 bytes); default "false"
func NewRanPAC(options map[string]string) (*RanPAC, error) {
	h := &RanPAC{m: RanPACDefaultM, scoring: "cosine", split: "shuffled", search: "fast", seed: RanPACDefaultSeed}
	for k, v := range options {
		var err error
		switch k {
		case "M":
			h.m, err = strconv.Atoi(v)
			if err == nil && h.m < 0 {
				err = errors.New("must be ≥ 0")
			}
		case "lambda":
			if v == "auto" || v == "" {
				h.lambdaFix = 0
			} else {
				h.lambdaFix, err = strconv.ParseFloat(v, 64)
				if err == nil && !(h.lambdaFix > 0 && !math.IsInf(h.lambdaFix, 0)) {
					err = errors.New("must be \"auto\" or a finite number > 0")
				}
			}
		case "scoring":
			h.scoring = v
			if v != "cosine" && v != "linear" {
				err = errors.New(`must be "cosine" or "linear"`)
			}
		case "seed":
			h.seed, err = strconv.ParseUint(v, 10, 64)
		case "split":
			h.split = v
			if v != "shuffled" && v != "ordered" {
				err = errors.New(`must be "shuffled" or "ordered"`)
			}
		case "search":
			h.search = v
			if v != "fast" && v != "solve" {
				err = errors.New(`must be "fast" or "solve"`)
			}
		case "class_gram":
			h.classGram, err = strconv.ParseBool(v)
		default:
			keys := make([]string, 0, len(ranpacOptions))
			for k := range ranpacOptions {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			return nil, fmt.Errorf("ranpac: unknown option %q (known: %s)", k, strings.Join(keys, ", "))
		}
		if err != nil {
			return nil, fmt.Errorf("ranpac: option %s=%q: %v", k, v, err)
		}
	}
	h.q = map[int][]float64{}
	h.counts = map[int]int64{}
	h.gc = map[int][]float64{}
	return h, nil
}

// Method returns "ranpac".
func (h *RanPAC) Method() string { return "ranpac" }

// Dim is the feature dimension D (0 until the first Learn).
func (h *RanPAC) Dim() int { return h.d }

// Width is the width P of h(x): M, or D when M = 0 (0 until D is known).
func (h *RanPAC) Width() int {
	if h.m == 0 {
		return h.d
	}
	return h.m
}

// Lambda is the ridge λ in use (0 before the first EndStage).
func (h *RanPAC) Lambda() float64 { return h.lambda }

// Losses returns the validation MSE for each RidgeGrid value at the last
// EndStage that chose λ (nil when λ is fixed). The mean runs over the
// validation rows and the head's classes at that time; PILOT divides by all
// classes of the dataset instead, a constant factor that leaves the argmin
// unchanged (columns of unseen classes are zero in Y and in W_λ).
func (h *RanPAC) Losses() []float64 { return slices.Clone(h.losses) }

// Solver reports how the current W_o was solved: "cholesky", "lu" (the
// fallback when G + λI is not numerically positive definite) or "" (none).
func (h *RanPAC) Solver() string { return h.solver }

// Projection returns the D×M projection W as float32, row-major (nil when
// M = 0 or D is not known yet).
func (h *RanPAC) Projection() []float32 {
	if h.proj == nil {
		return nil
	}
	out := make([]float32, len(h.proj))
	for i, v := range h.proj {
		out[i] = float32(v)
	}
	return out
}

// RanPACProjection generates the D×M projection matrix for a seed: entries
// NormFloat64 of math/rand/v2's PCG seeded (seed, 0x5eed), drawn in
// row-major order and rounded to float32.
func RanPACProjection(seed uint64, d, m int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	w := make([]float32, d*m)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	return w
}

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

func projectionHash(w []float32) string {
	f := fnv.New64a()
	var b [4]byte
	for _, v := range w {
		u := math.Float32bits(v)
		b[0], b[1], b[2], b[3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
		f.Write(b[:])
	}
	return strconv.FormatUint(f.Sum64(), 16)
}

// setDim fixes D, generates the projection and allocates G.
func (h *RanPAC) setDim(d int) {
	h.setProjection(d)
	p := h.Width()
	h.g = make([]float64, p*p)
}

// setProjection fixes D and generates the projection.
func (h *RanPAC) setProjection(d int) {
	h.d = d
	if h.m > 0 {
		w := RanPACProjection(h.seed, d, h.m)
		h.proj = make([]float64, len(w))
		for i, v := range w {
			h.proj[i] = float64(v)
		}
	}
}

// check validates x [n, D] and y [n] (y may be nil for Scores).
func (h *RanPAC) check(op string, x []float32, y []int, learn bool) (int, error) {
	if y != nil || learn {
		n := len(y)
		if n == 0 {
			if len(x) != 0 {
				return 0, fmt.Errorf("ranpac: %s: %d feature values but no labels", op, len(x))
			}
			return 0, nil
		}
		if len(x)%n != 0 {
			return 0, fmt.Errorf("ranpac: %s: %d feature values do not split into %d rows", op, len(x), n)
		}
		d := len(x) / n
		if h.d != 0 && d != h.d {
			return 0, fmt.Errorf("ranpac: %s: features have dimension %d, the head has %d (features from another model?)", op, d, h.d)
		}
		if d == 0 {
			return 0, fmt.Errorf("ranpac: %s: empty feature rows", op)
		}
		for i, l := range y {
			if l < 0 {
				return 0, fmt.Errorf("ranpac: %s: row %d has negative label %d", op, i, l)
			}
		}
		if err := ranpacFinite(op, x, d); err != nil {
			return 0, err
		}
		if h.d == 0 && learn {
			h.setDim(d)
		}
		return n, nil
	}
	if h.d == 0 {
		return 0, fmt.Errorf("ranpac: %s: the head has learned nothing", op)
	}
	if len(x)%h.d != 0 {
		return 0, fmt.Errorf("ranpac: %s: %d feature values are not rows of dimension %d (features from another model?)", op, len(x), h.d)
	}
	if err := ranpacFinite(op, x, h.d); err != nil {
		return 0, err
	}
	return len(x) / h.d, nil
}

func ranpacFinite(op string, x []float32, d int) error {
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("ranpac: %s: row %d, column %d is %v; remove or repair that sample", op, i/d, i%d, v)
		}
	}
	return nil
}

// project returns H = h(x) for n rows, n×P row-major.
func (h *RanPAC) project(x []float32, n int) blas64.General {
	return h.projectInto(x, n, nil)
}

// projectScratch is the reusable memory of projectInto for up to rows rows.
type projectScratch struct{ x64, out []float64 }

func (h *RanPAC) newProjectScratch(rows int) *projectScratch {
	s := &projectScratch{x64: make([]float64, rows*h.d)}
	if h.m > 0 {
		s.out = make([]float64, rows*h.m)
	}
	return s
}

// projectInto is project writing into scratch (nil = fresh memory). The
// chunked loops reuse one scratch: a fresh n × M matrix per chunk (80 MB at
// 1024 × 10⁴) would pile up as garbage next to G before the collector runs.
func (h *RanPAC) projectInto(x []float32, n int, scratch *projectScratch) blas64.General {
	d := h.d
	if scratch == nil {
		scratch = h.newProjectScratch(n)
	}
	x64 := scratch.x64[:len(x)]
	for i, v := range x {
		x64[i] = float64(v)
	}
	xm := blas64.General{Rows: n, Cols: d, Stride: d, Data: x64}
	if h.m == 0 {
		return xm
	}
	out := blas64.General{Rows: n, Cols: h.m, Stride: h.m, Data: scratch.out[:n*h.m]}
	blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, xm, blas64.General{Rows: d, Cols: h.m, Stride: h.m, Data: h.proj}, 0, out)
	for i, v := range out.Data {
		if v < 0 {
			out.Data[i] = 0
		}
	}
	return out
}

// accumulate adds (sign = +1) or subtracts (−1) the statistics of n rows.
func (h *RanPAC) accumulate(x []float32, y []int, n int, sign float64) {
	p := h.Width()
	scratch := h.newProjectScratch(min(learnChunk, n))
	for s := 0; s < n; s += learnChunk {
		e := min(s+learnChunk, n)
		hm := h.projectInto(x[s*h.d:e*h.d], e-s, scratch)
		linalg.SyrkUpper(true, sign, hm, h.g, p)
		byClass := map[int][]int{}
		for i := s; i < e; i++ {
			l := y[i]
			qc := h.q[l]
			if qc == nil {
				qc = make([]float64, p)
				h.q[l] = qc
			}
			row := hm.Data[(i-s)*p : (i-s+1)*p]
			for j, v := range row {
				qc[j] += sign * v
			}
			h.counts[l] += int64(sign)
			if h.classGram {
				byClass[l] = append(byClass[l], i-s)
			}
		}
		for l, rows := range byClass {
			sub := blas64.General{Rows: len(rows), Cols: p, Stride: p, Data: make([]float64, len(rows)*p)}
			for k, r := range rows {
				copy(sub.Data[k*p:(k+1)*p], hm.Data[r*p:(r+1)*p])
			}
			gcl := h.gc[l]
			if gcl == nil {
				gcl = make([]float64, p*p)
				h.gc[l] = gcl
			}
			linalg.SyrkUpper(true, sign, sub, gcl, p)
		}
	}
}

// Learn adds samples x [n, D] (float32, row-major) with labels y [n]. Each
// sample updates G, its class column of Q and count, and is buffered for the
// λ selection of the current stage.
func (h *RanPAC) Learn(x []float32, y []int) error {
	n, err := h.check("Learn", x, y, true)
	if err != nil || n == 0 {
		return err
	}
	h.accumulate(x, y, n, 1)
	h.stageX = append(h.stageX, x...)
	h.stageY = append(h.stageY, y...)
	h.wo = nil
	return nil
}

// EndStage chooses λ on the samples learned since the last EndStage (unless
// the option lambda fixes it) and solves W_o = (G + λI)⁻¹ Q. The stage's
// rows are ordered by RanPACSplitOrder; the first int(0.8·n) fit ridge
// regressions for every λ in RidgeGrid and the rest measure the validation
// MSE; the smallest wins (the first on ties). An empty stage is an error.
func (h *RanPAC) EndStage() error {
	n := len(h.stageY)
	if n == 0 {
		return errors.New("ranpac: EndStage: no samples were learned since the last EndStage; learn the stage's samples first")
	}
	if h.lambdaFix > 0 {
		h.lambda = h.lambdaFix
		h.losses = nil
	} else {
		if n < 2 {
			return fmt.Errorf("ranpac: EndStage: λ selection needs at least 2 samples in the stage, got %d; learn more or set lambda=<value>", n)
		}
		losses := h.selectLosses()
		h.losses = losses
		h.lambda = RidgeGrid[argminFirst(losses)]
		// The search's scratch (K and K_vf, ≈ n² floats) is garbage now:
		// collect it rather than carry it through the solve (which works
		// in G's own memory and allocates only O(P·C)).
		runtime.GC()
	}
	if err := h.solve(); err != nil {
		return err
	}
	h.stageX, h.stageY = nil, nil
	h.stages++
	return nil
}

// Refresh re-solves W_o from the statistics after Merge, Unlearn or
// RemoveClass (see heads.Refresh). Samples still buffered from an unfinished
// stage end that stage (EndStage, which selects λ on them); otherwise W_o is
// solved with the fixed lambda option or, failing that, the λ selected at the
// last EndStage (after Merge: the first head's, or the second's if the first
// had none). A head that never selected λ and has no fixed one is an error.
func (h *RanPAC) Refresh() error {
	if len(h.stageY) > 0 {
		return h.EndStage()
	}
	if len(h.Classes()) == 0 {
		h.wo, h.woCls, h.woNorms = nil, nil, nil
		return nil
	}
	lam := h.lambdaFix
	if lam == 0 {
		lam = h.lambda
	}
	if lam == 0 {
		return errors.New("ranpac: Refresh: no λ has been selected yet (no stage was ever ended); learn a stage, or create the head with lambda=<value>")
	}
	h.lambda = lam
	return h.solve()
}

// selectLosses computes the validation MSE of every λ of RidgeGrid on the
// buffered stage.
func (h *RanPAC) selectLosses() []float64 {
	n := len(h.stageY)
	order := RanPACSplitOrder(h.seed, h.stages, n, h.split == "shuffled")
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
	if h.search != "solve" && nf < p {
		// Dual form: W_λ = H_fitᵀ (K + λI)⁻¹ Y_fit with K = H_fit H_fitᵀ, so
		// the validation predictions are K_vf (K + λI)⁻¹ Y_fit. K and K_vf
		// are summed over column blocks of the projection, so the stage's
		// n × M matrix H never exists (400 MB at n = 5000, M = 10⁴).
		k, kvf := h.stageKernels(xs, n, nf)
		sums = gridLosses(k, nf, yf, kvf, yv, RidgeGrid)
		return h.meanLosses(sums, nv)
	}
	hAll := h.project(xs, n)
	hf := blas64.General{Rows: nf, Cols: p, Stride: p, Data: hAll.Data[:nf*p]}
	hv := blas64.General{Rows: nv, Cols: p, Stride: p, Data: hAll.Data[nf*p:]}
	switch {
	case h.search == "solve":
		a := make([]float64, p*p)
		linalg.SyrkUpper(true, 1, hf, a, p)
		b := blas64.General{Rows: p, Cols: c, Stride: c, Data: make([]float64, p*c)}
		blas64.Gemm(blas.Trans, blas.NoTrans, 1, hf, yf, 0, b)
		sums = solveLosses(a, p, b, hv, yv, RidgeGrid)
	default:
		a := make([]float64, p*p)
		linalg.SyrkUpper(true, 1, hf, a, p)
		b := blas64.General{Rows: p, Cols: c, Stride: c, Data: make([]float64, p*c)}
		blas64.Gemm(blas.Trans, blas.NoTrans, 1, hf, yf, 0, b)
		sums = gridLosses(a, p, b, hv, yv, RidgeGrid)
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

// kernelBlock is the number of projection columns stageKernels handles at
// once (n × kernelBlock float64 of scratch).
const kernelBlock = 1024

// stageKernels returns K = H_fit H_fitᵀ (upper triangle of nf×nf) and
// K_vf = H_val H_fitᵀ (nv×nf) for the n rows xs [n, D] (the first nf are the
// fit rows), summing over column blocks of the projection, with
// H = ReLU(xs·W) (or xs itself when M = 0).
func (h *RanPAC) stageKernels(xs []float32, n, nf int) ([]float64, blas64.General) {
	d, nv := h.d, n-nf
	x64 := make([]float64, len(xs))
	for i, v := range xs {
		x64[i] = float64(v)
	}
	xm := blas64.General{Rows: n, Cols: d, Stride: d, Data: x64}
	k := make([]float64, nf*nf)
	kvf := blas64.General{Rows: nv, Cols: nf, Stride: nf, Data: make([]float64, nv*nf)}
	add := func(hb blas64.General) {
		hf := blas64.General{Rows: nf, Cols: hb.Cols, Stride: hb.Stride, Data: hb.Data[:nf*hb.Stride]}
		hv := blas64.General{Rows: nv, Cols: hb.Cols, Stride: hb.Stride, Data: hb.Data[nf*hb.Stride:]}
		linalg.SyrkUpper(false, 1, hf, k, nf)
		blas64.Gemm(blas.NoTrans, blas.Trans, 1, hv, hf, 1, kvf)
	}
	if h.m == 0 {
		add(xm)
		return k, kvf
	}
	scratch := make([]float64, n*min(kernelBlock, h.m))
	for m0 := 0; m0 < h.m; m0 += kernelBlock {
		bw := min(kernelBlock, h.m-m0)
		hb := blas64.General{Rows: n, Cols: bw, Stride: bw, Data: scratch[:n*bw]}
		w := blas64.General{Rows: d, Cols: bw, Stride: h.m, Data: h.proj[m0:]}
		blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, xm, w, 0, hb)
		for i, v := range hb.Data {
			if v < 0 {
				hb.Data[i] = 0
			}
		}
		add(hb)
	}
	return k, kvf
}

// solve computes W_o for the current statistics and λ.
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
	w, solver, err := ridgeSolve(h.g, p, h.lambda, b)
	if err != nil {
		return fmt.Errorf("ranpac: solving (G + λI) W = Q with λ = %g: %v; set a larger lambda=<value>", h.lambda, err)
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

// Classes lists the labels with at least one sample, ascending.
func (h *RanPAC) Classes() []int {
	cls := make([]int, 0, len(h.counts))
	for l, n := range h.counts {
		if n > 0 {
			cls = append(cls, l)
		}
	}
	sort.Ints(cls)
	return cls
}

// Scores returns row-major [n, len(Classes())] scores for x [n, D]:
// cos(h(x), W_o[:,c]) (each vector divided by max(‖·‖, 1e-12), as PyTorch's
// F.normalize) or h(x)·W_o[:,c] with scoring=linear. After Learn, Unlearn,
// RemoveClass or Merge, W_o is solved again with the current λ first.
func (h *RanPAC) Scores(x []float32) ([]float64, error) {
	if h.lambda == 0 {
		return nil, errors.New("ranpac: Scores: no stage has ended yet; call EndStage after learning (λ and W_o are computed there)")
	}
	n, err := h.check("Scores", x, nil, false)
	if err != nil {
		return nil, err
	}
	if h.wo == nil {
		if len(h.counts) == 0 {
			return nil, errors.New("ranpac: Scores: the head has no classes left")
		}
		if err := h.solve(); err != nil {
			return nil, err
		}
	}
	c := len(h.woCls)
	out := make([]float64, n*c)
	p := h.Width()
	scratch := h.newProjectScratch(min(learnChunk, n))
	for s := 0; s < n; s += learnChunk {
		e := min(s+learnChunk, n)
		hm := h.projectInto(x[s*h.d:e*h.d], e-s, scratch)
		sc := blas64.General{Rows: e - s, Cols: c, Stride: c, Data: out[s*c : e*c]}
		blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, hm, blas64.General{Rows: p, Cols: c, Stride: c, Data: h.wo}, 0, sc)
		if h.scoring == "cosine" {
			for i := 0; i < e-s; i++ {
				var nn float64
				for _, v := range hm.Data[i*p : (i+1)*p] {
					nn += v * v
				}
				hn := max(math.Sqrt(nn), 1e-12)
				for j := 0; j < c; j++ {
					sc.Data[i*c+j] /= hn * max(h.woNorms[j], 1e-12)
				}
			}
		}
	}
	return out, nil
}

// Unlearn subtracts the exact contribution of samples learned before: their
// h(x)ᵀh(x) from G (and from their class Gram), h(x) from their class column,
// one from their class count. A class whose count reaches 0 disappears. Rows
// still buffered for the current stage's λ selection are dropped from the
// buffer (matched by identical features and label). Unlearning more samples
// of a class than it has is an error and changes nothing.
func (h *RanPAC) Unlearn(x []float32, y []int) error {
	n, err := h.check("Unlearn", x, y, false)
	if err != nil || n == 0 {
		return err
	}
	if h.d == 0 {
		return errors.New("ranpac: Unlearn: the head has learned nothing")
	}
	need := map[int]int64{}
	for _, l := range y {
		need[l]++
	}
	for l, k := range need {
		if h.counts[l] < k {
			return fmt.Errorf("ranpac: Unlearn: class %d has %d samples, cannot remove %d", l, h.counts[l], k)
		}
	}
	h.accumulate(x, y, n, -1)
	d := h.d
	for i, l := range y {
		row := x[i*d : (i+1)*d]
		for r := range h.stageY {
			if h.stageY[r] == l && slices.Equal(h.stageX[r*d:(r+1)*d], row) {
				h.stageX = slices.Delete(h.stageX, r*d, (r+1)*d)
				h.stageY = slices.Delete(h.stageY, r, r+1)
				break
			}
		}
	}
	for l := range need {
		if h.counts[l] == 0 {
			h.dropClass(l)
		}
	}
	h.wo = nil
	return nil
}

func (h *RanPAC) dropClass(l int) {
	delete(h.counts, l)
	delete(h.q, l)
	delete(h.gc, l)
	d := h.d
	keepX := h.stageX[:0]
	keepY := h.stageY[:0]
	for r, yl := range h.stageY {
		if yl != l {
			keepX = append(keepX, h.stageX[r*d:(r+1)*d]...)
			keepY = append(keepY, yl)
		}
	}
	h.stageX, h.stageY = keepX, keepY
}

// RemoveClass removes every statistic of class label: its column of Q, its
// count, its buffered stage rows and its samples' Gram G_c from G. That last
// part needs the per-class Gram matrices, kept only with class_gram=true;
// without it RemoveClass is an error (Unlearn with the class's features is
// exact in every configuration).
func (h *RanPAC) RemoveClass(label int) error {
	if h.counts[label] == 0 {
		return fmt.Errorf("ranpac: RemoveClass: the head has no class %d", label)
	}
	if !h.classGram {
		return fmt.Errorf("ranpac: RemoveClass(%d): the head keeps no per-class Gram matrix, so the class's share of G is unknown; "+
			"call Unlearn with the class's features (cl forget --features), or create the head with class_gram=true (C×P²×8 bytes)", label)
	}
	gcl := h.gc[label]
	for i := range h.g {
		h.g[i] -= gcl[i]
	}
	h.dropClass(label)
	h.wo = nil
	return nil
}

// params returns the configuration as strings (the keys of ranpacOptions).
func (h *RanPAC) params() map[string]string {
	lam := "auto"
	if h.lambdaFix > 0 {
		lam = strconv.FormatFloat(h.lambdaFix, 'g', -1, 64)
	}
	return map[string]string{
		"M":          strconv.Itoa(h.m),
		"lambda":     lam,
		"scoring":    h.scoring,
		"seed":       strconv.FormatUint(h.seed, 10),
		"split":      h.split,
		"search":     h.search,
		"class_gram": strconv.FormatBool(h.classGram),
	}
}

// Merge adds the statistics of another RanPAC head with the same options and
// feature dimension: G, Q, counts, class Grams and the buffered stage rows.
// The merged head keeps its own λ (or takes the other's if it has none) and
// solves W_o again before the next Scores.
func (h *RanPAC) Merge(other Head) error {
	o, ok := other.(*RanPAC)
	if !ok {
		return fmt.Errorf("ranpac: Merge: cannot merge a %s head into a ranpac head", other.Method())
	}
	hp, op := h.params(), o.params()
	for k, v := range hp {
		if op[k] != v {
			return fmt.Errorf("ranpac: Merge: option %s differs (%s vs %s)", k, v, op[k])
		}
	}
	if o.d == 0 {
		return nil
	}
	if h.d == 0 {
		h.setDim(o.d)
	} else if h.d != o.d {
		return fmt.Errorf("ranpac: Merge: feature dimension differs (%d vs %d)", h.d, o.d)
	}
	for i, v := range o.g {
		h.g[i] += v
	}
	p := h.Width()
	for l, qc := range o.q {
		dst := h.q[l]
		if dst == nil {
			dst = make([]float64, p)
			h.q[l] = dst
		}
		for i, v := range qc {
			dst[i] += v
		}
	}
	for l, c := range o.counts {
		h.counts[l] += c
	}
	for l, gcl := range o.gc {
		dst := h.gc[l]
		if dst == nil {
			dst = make([]float64, p*p)
			h.gc[l] = dst
		}
		for i, v := range gcl {
			dst[i] += v
		}
	}
	h.stageX = append(h.stageX, o.stageX...)
	h.stageY = append(h.stageY, o.stageY...)
	if h.lambda == 0 {
		h.lambda, h.losses = o.lambda, slices.Clone(o.losses)
	}
	h.stages = max(h.stages, o.stages)
	h.wo = nil
	return nil
}

// State returns the head's tensors and parameters:
//
//	G        F64 [P, P]  Σ hᵀh, symmetric (kept in float64: further Learn,
//	                     Unlearn and Merge stay exact; 800 MB at M = 10000)
//	Q        F64 [P, C]  Σ hᵀ·onehot, columns in classes order
//	classes  I64 [C]     labels, ascending
//	counts   I64 [C]     samples per class
//	Wo       F64 [P, C]  the solved weights (absent when stale)
//	losses   F64 [17]    validation MSE per RidgeGrid λ at the last selection
//	stage_x  F32 [n, D]  and stage_y I64 [n]: rows buffered for the current
//	                     stage (absent when empty)
//	class_gram F64 [C, P, P] with class_gram=true
//
// and parameters: the options, plus dim, lambda_selected, stages, solver and
// projection_fnv64 (a hash of W that the loader checks, so that a build whose
// random generator differs refuses the file instead of scoring garbage).
// W itself is not stored: it is regenerated from seed, dim and M.
func (h *RanPAC) State() (map[string]safetensors.Tensor, map[string]string, error) {
	params := h.params()
	params["dim"] = strconv.Itoa(h.d)
	params["lambda_selected"] = strconv.FormatFloat(h.lambda, 'g', -1, 64)
	params["stages"] = strconv.Itoa(h.stages)
	params["solver"] = h.solver
	if h.proj != nil {
		params["projection_fnv64"] = projectionHash(h.Projection())
	}
	t := map[string]safetensors.Tensor{}
	if h.d == 0 {
		return t, params, nil
	}
	p := h.Width()
	cls := h.Classes()
	c := len(cls)
	// G's lower triangle is scratch: mirror the upper one into it in place
	// (no P×P clone; FromFloat64s makes the one byte copy).
	linalg.Symmetrize(h.g, p)
	t["G"] = safetensors.FromFloat64s([]int64{int64(p), int64(p)}, h.g)
	q := make([]float64, p*c)
	cl := make([]int64, c)
	cn := make([]int64, c)
	for j, l := range cls {
		cl[j], cn[j] = int64(l), h.counts[l]
		for i, v := range h.q[l] {
			q[i*c+j] = v
		}
	}
	t["Q"] = safetensors.FromFloat64s([]int64{int64(p), int64(c)}, q)
	t["classes"] = safetensors.FromInt64s([]int64{int64(c)}, cl)
	t["counts"] = safetensors.FromInt64s([]int64{int64(c)}, cn)
	if h.wo != nil {
		t["Wo"] = safetensors.FromFloat64s([]int64{int64(p), int64(c)}, h.wo)
	}
	if h.losses != nil {
		t["losses"] = safetensors.FromFloat64s([]int64{int64(len(h.losses))}, h.losses)
	}
	if len(h.stageY) > 0 {
		sy := make([]int64, len(h.stageY))
		for i, v := range h.stageY {
			sy[i] = int64(v)
		}
		t["stage_x"] = safetensors.FromFloat32s([]int64{int64(len(h.stageY)), int64(h.d)}, h.stageX)
		t["stage_y"] = safetensors.FromInt64s([]int64{int64(len(sy))}, sy)
	}
	if h.classGram {
		all := make([]float64, 0, c*p*p)
		for _, l := range cls {
			linalg.Symmetrize(h.gc[l], p) // lower triangle is scratch, as G's
			all = append(all, h.gc[l]...)
		}
		t["class_gram"] = safetensors.FromFloat64s([]int64{int64(c), int64(p), int64(p)}, all)
	}
	return t, params, nil
}

// loadRanPAC rebuilds a RanPAC head from State's output.
func loadRanPAC(t map[string]safetensors.Tensor, params map[string]string) (Head, error) {
	opts := map[string]string{}
	for k := range ranpacOptions {
		if v, ok := params[k]; ok {
			opts[k] = v
		}
	}
	h, err := NewRanPAC(opts)
	if err != nil {
		return nil, err
	}
	d, err := strconv.Atoi(params["dim"])
	if err != nil || d < 0 {
		return nil, fmt.Errorf("ranpac: bad dim parameter %q", params["dim"])
	}
	if h.lambda, err = strconv.ParseFloat(params["lambda_selected"], 64); err != nil || h.lambda < 0 {
		return nil, fmt.Errorf("ranpac: bad lambda_selected parameter %q", params["lambda_selected"])
	}
	if h.stages, err = strconv.Atoi(params["stages"]); err != nil || h.stages < 0 {
		return nil, fmt.Errorf("ranpac: bad stages parameter %q", params["stages"])
	}
	h.solver = params["solver"]
	if d == 0 {
		return h, nil
	}
	// Validate sizes before allocating anything from them.
	p := d
	if h.m > 0 {
		p = h.m
	}
	if d > 1<<20 || p > 1<<17 || int64(d)*int64(h.m) > 1<<32 {
		return nil, fmt.Errorf("ranpac: implausible sizes dim=%d M=%d", d, h.m)
	}
	if g, ok := t["G"]; !ok || !slices.Equal(g.Shape, []int64{int64(p), int64(p)}) {
		return nil, fmt.Errorf("ranpac: tensor \"G\" missing or not [%d %d]", p, p)
	}
	h.setProjection(d)
	if h.proj != nil {
		if got, want := projectionHash(h.Projection()), params["projection_fnv64"]; got != want {
			return nil, fmt.Errorf("ranpac: the regenerated projection (hash %s) differs from the one this head was built with (%s); "+
				"the head was written by a build with another random generator — refit it with this build", got, want)
		}
	}
	get := func(name string, dt safetensors.DType, shape ...int64) (safetensors.Tensor, error) {
		x, ok := t[name]
		if !ok {
			return x, fmt.Errorf("ranpac: missing tensor %q", name)
		}
		if x.DType != dt || !slices.Equal(x.Shape, shape) || int64(len(x.Data)) != x.NumElements()*int64(dt.Size()) {
			return x, fmt.Errorf("ranpac: tensor %q is %s %v, want %s %v", name, x.DType, x.Shape, dt, shape)
		}
		return x, nil
	}
	cl, ok := t["classes"]
	if !ok || len(cl.Shape) != 1 {
		return nil, errors.New("ranpac: missing or malformed tensor \"classes\"")
	}
	c := cl.Shape[0]
	if cl, err = get("classes", safetensors.I64, c); err != nil {
		return nil, err
	}
	g, err := get("G", safetensors.F64, int64(p), int64(p))
	if err != nil {
		return nil, err
	}
	q, err := get("Q", safetensors.F64, int64(p), c)
	if err != nil {
		return nil, err
	}
	cn, err := get("counts", safetensors.I64, c)
	if err != nil {
		return nil, err
	}
	h.g = g.Float64s()
	qs := q.Float64s()
	labels, counts := cl.Int64s(), cn.Int64s()
	for j, l := range labels {
		if l < 0 || counts[j] <= 0 || (j > 0 && l <= labels[j-1]) {
			return nil, fmt.Errorf("ranpac: classes/counts malformed at index %d", j)
		}
		col := make([]float64, p)
		for i := range col {
			col[i] = qs[i*int(c)+j]
		}
		h.q[int(l)] = col
		h.counts[int(l)] = counts[j]
	}
	if _, ok := t["Wo"]; ok {
		wo, err := get("Wo", safetensors.F64, int64(p), c)
		if err != nil {
			return nil, err
		}
		h.wo = wo.Float64s()
		h.woCls = h.Classes()
		h.woNorms = make([]float64, c)
		for j := range h.woNorms {
			var s float64
			for i := 0; i < p; i++ {
				s += h.wo[i*int(c)+j] * h.wo[i*int(c)+j]
			}
			h.woNorms[j] = math.Sqrt(s)
		}
	}
	if l, ok := t["losses"]; ok {
		if _, err := get("losses", safetensors.F64, int64(len(RidgeGrid))); err != nil {
			return nil, err
		}
		h.losses = l.Float64s()
	}
	if sy, ok := t["stage_y"]; ok {
		if len(sy.Shape) != 1 {
			return nil, errors.New("ranpac: malformed tensor \"stage_y\"")
		}
		n := sy.Shape[0]
		if sy, err = get("stage_y", safetensors.I64, n); err != nil {
			return nil, err
		}
		sx, err := get("stage_x", safetensors.F32, n, int64(d))
		if err != nil {
			return nil, err
		}
		h.stageX = sx.Float32s()
		for _, v := range sy.Int64s() {
			if h.counts[int(v)] == 0 {
				return nil, fmt.Errorf("ranpac: stage_y has label %d that is not a class of the head", v)
			}
			h.stageY = append(h.stageY, int(v))
		}
	}
	if h.classGram {
		all, err := get("class_gram", safetensors.F64, c, int64(p), int64(p))
		if err != nil {
			return nil, err
		}
		v := all.Float64s()
		for j, l := range labels {
			h.gc[int(l)] = v[j*p*p : (j+1)*p*p]
		}
	}
	return h, nil
}

// relabel renumbers the classes (Q's columns, counts, class Grams and the
// buffered stage's labels); W_o is solved again when next needed.
func (h *RanPAC) relabel(to map[int]int) {
	q, counts, gc := map[int][]float64{}, map[int]int64{}, map[int][]float64{}
	for l, v := range h.q {
		q[to[l]] = v
	}
	for l, n := range h.counts {
		counts[to[l]] = n
	}
	for l, g := range h.gc {
		gc[to[l]] = g
	}
	h.q, h.counts, h.gc = q, counts, gc
	for i, l := range h.stageY {
		h.stageY[i] = to[l]
	}
	h.wo, h.woCls, h.woNorms = nil, nil, nil
}

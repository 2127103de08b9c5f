package heads

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

func init() {
	Register(Spec{
		Name:    "ranpac",
		Summary: "RanPAC: random ReLU projection + ridge regression on the Gram matrix, λ chosen per stage",
		Config:  func() Config { c := DefaultRanPACConfig(); return &c },
		NewHead: func(c Config) (Head, error) { return NewRanPAC(*c.(*RanPACConfig)) },
		Load:    loadRanPAC,
	})
}

// learnChunk bounds the rows projected at once in Learn/Unlearn, so that the
// transient H is at most learnChunk×M float64 (82 MB at M = 10000).
const learnChunk = 1024

// RanPAC is the RanPAC head (docs/METHODS.md §2.3, PILOT models/ranpac.py).
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
// W_o = (G + λI)⁻¹ Q by Cholesky; with ridge=stable (the default) λ is never
// below what G's float64 solve resolves (see ridgeFloor). Scores are cos(h(x), W_o[:,c]) (PILOT) or
// h(x)·W_o[:,c] (scoring=linear, the original RanPAC code).
//
// A RanPAC is not safe for concurrent use.
type RanPAC struct {
	cfg RanPACConfig

	d    int
	proj []float64 // D×M row-major float64 copy of the float32 W; nil when M = 0

	g      []float64         // P×P; upper triangle (diagonal included) valid, lower one scratch (see ridgeSolve)
	q      map[int][]float64 // label → P
	counts map[int]int64     // label → samples
	gc     map[int][]float64 // label → P×P upper (class_gram only)
	stageX []float32         // buffered stage rows, n×D
	stageY []int             // their labels
	stageH []float64         // H of every buffered row (n×P, stage order), or nil: see stageCache
	stageG []float64         // Σ hᵀh over those rows (P×P, upper triangle) while stageH is kept, or nil
	stages int               // EndStage calls so far

	lambda  float64   // λ in use, 0 before the first EndStage
	losses  []float64 // validation MSE per RidgeGrid entry at the last selection
	solver  string    // "cholesky" or "lu" for the current W_o
	wo      []float64 // P×C row-major, columns in Classes() order; nil when stale
	woCls   []int
	woNorms []float64 // ‖W_o[:,c]‖

	progress Progress      // nil: silent (SetProgress)
	timing   *ranpacTiming // nil: no phase timing (benchmarks set it)
}

// NewRanPAC builds an empty RanPAC head; start from DefaultRanPACConfig.
// An invalid configuration is an error naming the option.
func NewRanPAC(cfg RanPACConfig) (*RanPAC, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &RanPAC{cfg: cfg, q: map[int][]float64{}, counts: map[int]int64{}, gc: map[int][]float64{}}, nil
}

// Config returns the head's configuration.
func (h *RanPAC) Config() RanPACConfig { return h.cfg }

// Method returns "ranpac".
func (h *RanPAC) Method() string { return "ranpac" }

// Dim is the feature dimension D (0 until the first Learn).
func (h *RanPAC) Dim() int { return h.d }

// Width is the width P of h(x): M, or D when M = 0 (0 until D is known).
func (h *RanPAC) Width() int {
	if h.cfg.M == 0 {
		return h.d
	}
	return h.cfg.M
}

// Lambda is the ridge λ selected at the last EndStage, or the fixed one (0
// before the first EndStage). With ridge=stable W_o is solved with
// max(Lambda(), RidgeFloor()); the search itself only selects values at or
// above the floor.
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

// Learn adds samples x [n, D] (float32, row-major) with labels y [n]. Each
// sample updates G, its class column of Q and count, and is buffered for the
// λ selection of the current stage.
func (h *RanPAC) Learn(x []float32, y []int) error {
	n, err := h.check("Learn", x, y, true)
	if err != nil || n == 0 {
		return err
	}
	cache := h.stageCache(n)
	h.dropStageCache() // a second Learn in the stage: what was kept misses these rows
	h.accumulateInto(x, y, n, 1, cache)
	h.stageH = cache
	if len(h.stageX) == 0 {
		h.stageX = largeSlice[float32](len(x))
		copy(h.stageX, x)
	} else {
		h.stageX = append(h.stageX, x...)
	}
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
	if float64(h.cfg.Lambda) > 0 {
		h.lambda = float64(h.cfg.Lambda)
		h.losses = nil
	} else {
		if n < 2 {
			return fmt.Errorf("ranpac: EndStage: λ selection needs at least 2 samples in the stage, got %d; learn more or set lambda=<value>", n)
		}
		losses := h.selectLosses()
		h.losses = losses
		h.lambda = h.pickLambda(losses)
		// The search's scratch (K and K_vf, ≈ n² floats) is garbage now:
		// collect it rather than carry it through the solve (which works
		// in G's own memory and allocates only O(P·C)).
		runtime.GC()
	}
	if err := h.solve(); err != nil {
		return err
	}
	h.stageX, h.stageY = nil, nil
	h.dropStageCache()
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
	lam := float64(h.cfg.Lambda)
	if lam == 0 {
		lam = h.lambda
	}
	if lam == 0 {
		return errors.New("ranpac: Refresh: no λ has been selected yet (no stage was ever ended); learn a stage, or create the head with lambda=<value>")
	}
	h.lambda = lam
	return h.solve()
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
		if h.cfg.Scoring == "cosine" {
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

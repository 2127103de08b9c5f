package heads

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cl-dev/cl/heads/internal/kernel"
)

// Ranker is implemented by heads that rank classes faster than Scores
// followed by a sort, with exactly the same result (SimpleCIL, APER, NCM and
// LDA).
type Ranker interface {
	// TopK writes into dst, row-major [n, k] (len n·k), the column indices
	// into Classes() of the k highest scores of each row of x [n, D], best
	// first, equal scores by lower column first: exactly the ranking of the
	// scores that Scores(x) returns for the same x. It needs
	// 1 ≤ k ≤ len(Classes()) and validates x as Scores does.
	TopK(x []float32, k int, dst []int) error
}

// The scores of SimpleCIL, APER, NCM and LDA are one linear form per class,
//
//	s_c(x) = α·⟨x, w_c⟩ + b_c − [NCM] ‖x‖²,   or   ⟨x, w_c⟩ / max(‖x‖, 1e-12) (cosine),
//
// and Scores computes every dot product and ‖x‖² with kernel.Dot, whose
// float64 operation order is fixed: the same bits on every machine.
//
// How TopK is exact and fast. The int8 kernel (AVX-512 VNNI, AVX-VNNI, AVX2
// or arm64 SDOT; heads/internal/kernel) gives, for each
// row, the exact integer products of the row and the centred class rows
// v_c = w_c − w̄ (w̄ the mean class row: ⟨x, w̄⟩ is the same for every class,
// so it does not change the ranking), both quantised with one scale per
// row, x = s_x·q_x + Δx and v_c = s_c·q_c + Δv_c. Then
//
//	|⟨x, v_c⟩ − s_x·s_c·⟨q_x, q_c⟩| ≤ ‖Δx‖·‖v_c‖ + ‖s_x·q_x‖·‖Δv_c‖ =: δ_c,
//
// with ‖s_x·q_x‖ ≤ ‖x‖ + ‖Δx‖. Let ã_c be the approximate score less the
// common α⟨x, w̄⟩ (or ⟨x, w̄⟩/‖x‖ and ‖x‖² terms) and ε a
// slack far above every float64 rounding of either computation (1e-9 of the
// magnitudes involved). A class with ã_c + αδ_c + ε below the k-th largest
// ã_j − αδ_j − ε is beaten strictly by k classes, also after rounding, so
// it cannot be in the top k. The remaining shortlist, usually one class, is
// re-scored with exactly the operations of Scores and sorted; a shortlist of
// one with k = 1 needs no re-scoring at all. Rows the int8 path cannot bound
// (non-finite values, max|x| outside [1e-15, 1e15]) and heads whose class
// rows it cannot bound are scored exactly for every class.

// linearScorer scores one head's classes (immutable once built).
type linearScorer struct {
	version uint64
	d, c    int
	w       []float64 // [C, D] the class rows (shared with the head, read-only)
	alpha   float64   // α: 1, or 2 for NCM
	bias    []float64 // b [C]; nil for cosine scores
	cosine  bool      // ⟨x, w_c⟩ / max(‖x‖, 1e-12)
	subSS   bool      // NCM: − ‖x‖²

	q       *kernel.Int8Classes // nil: no int8 shortlist
	maxNorm float64             // max_c ‖w_c‖ (not centred)
	maxBias float64             // max_c |b_c|
	// c8 is C rounded up to 8; the per-class inputs of kernel.Bounds, padded
	// with scale 0 and bias −Inf (never shortlisted).
	c8                           int
	scale8, norm8, resid8, bias8 []float64
	scratch                      sync.Pool // *rankScratch
}

// scorerCache caches a linearScorer per statistics version; safe for
// concurrent use (two racing builders build the same thing, one wins).
type scorerCache struct{ p atomic.Pointer[linearScorer] }

func (sc *scorerCache) get(version uint64, build func() *linearScorer) *linearScorer {
	if f := sc.p.Load(); f != nil && f.version == version {
		return f
	}
	f := build()
	f.version = version
	sc.p.Store(f)
	return f
}

func newLinearScorer(w []float64, c, d int, alpha float64, bias []float64, cosine, subSS bool) *linearScorer {
	f := &linearScorer{d: d, c: c, w: w, alpha: alpha, bias: bias, cosine: cosine, subSS: subSS}
	if !kernel.Int8Available() {
		return f
	}
	// Rank by ⟨x, w_c − w̄⟩ (w̄ the mean class row; ⟨x, w̄⟩ is common to all
	// classes): class rows share a large common part in real features, and
	// the quantisation error scales with ‖w_c − w̄‖ instead of ‖w_c‖.
	mean := make([]float64, d)
	for j := 0; j < c; j++ {
		var ss float64
		for l, v := range w[j*d : (j+1)*d] {
			mean[l] += v / float64(c)
			ss += v * v
		}
		f.maxNorm = max(f.maxNorm, math.Sqrt(ss))
	}
	centred := make([]float64, c*d)
	for j := 0; j < c; j++ {
		for l, v := range w[j*d : (j+1)*d] {
			centred[j*d+l] = v - mean[l]
		}
	}
	for _, b := range bias {
		f.maxBias = max(f.maxBias, math.Abs(b))
	}
	if f.maxNorm <= 1e150 && f.maxBias <= 1e200 {
		f.q = kernel.QuantizeClasses(centred, c, d)
	}
	if f.q == nil {
		return f
	}
	f.c8 = (c + 7) / 8 * 8
	f.scale8, f.norm8, f.resid8, f.bias8 = make([]float64, f.c8), make([]float64, f.c8), make([]float64, f.c8), make([]float64, f.c8)
	copy(f.scale8, f.q.Scale)
	copy(f.norm8, f.q.Norm)
	copy(f.resid8, f.q.ResidNorm)
	copy(f.bias8, bias)
	for j := c; j < f.c8; j++ {
		f.bias8[j] = math.Inf(-1)
	}
	return f
}

// scorer returns the prototype head's linear scorer for its current state.
func (h *protoHead) scorer() *linearScorer {
	return h.fast.get(h.st.version, func() *linearScorer {
		if h.cosine {
			return newLinearScorer(h.p, len(h.labels), h.st.d, 1, nil, true, false)
		}
		return newLinearScorer(h.p, len(h.labels), h.st.d, 2, h.bias, false, true)
	})
}

// scorer returns LDA's linear scorer; the caller has checked it is solved.
func (h *LDA) scorer() *linearScorer {
	return h.fast.get(h.version, func() *linearScorer {
		return newLinearScorer(h.w, len(h.labels), h.st.d, 1, h.b, false, false)
	})
}

// TopK implements Ranker.
func (h *protoHead) TopK(x []float32, k int, dst []int) error {
	if len(h.labels) == 0 {
		return errEmpty(h.method)
	}
	return h.scorer().topK(h.method, x, k, dst)
}

// TopK implements Ranker. It needs EndStage after the last change, as Scores.
func (h *LDA) TopK(x []float32, k int, dst []int) error {
	if err := h.checkSolved(); err != nil {
		return err
	}
	return h.scorer().topK(h.method, x, k, dst)
}

// scores returns the [n, C] scores of the rows of x (validated by the
// caller) with kernel.Dot.
func (f *linearScorer) scores(x []float32) []float64 {
	d, c := f.d, f.c
	n := len(x) / d
	out := make([]float64, n*c)
	row := make([]float64, d)
	for i := 0; i < n; i++ {
		ss := f.loadRow(row, x[i*d:(i+1)*d])
		for j := 0; j < c; j++ {
			out[i*c+j] = f.score(row, j, ss)
		}
	}
	return out
}

// loadRow converts one feature row to float64 and returns ‖x‖² as Scores
// sums it (kernel.Dot of the row with itself), or 0 where no score uses it.
func (f *linearScorer) loadRow(row []float64, x []float32) float64 {
	for l, v := range x {
		row[l] = float64(v)
	}
	if f.cosine || f.subSS {
		return kernel.Dot(row, row)
	}
	return 0
}

// score is the score of class j for the float64 row with ‖x‖² = ss: the
// one definition Scores and TopK's re-scoring share.
func (f *linearScorer) score(row []float64, j int, ss float64) float64 {
	v := kernel.Dot(row, f.w[j*f.d:(j+1)*f.d])
	switch {
	case f.cosine:
		return v / max(math.Sqrt(ss), 1e-12)
	case f.subSS:
		return (f.alpha*v + f.bias[j]) - ss
	default:
		return f.alpha*v + f.bias[j]
	}
}

// rankBlock is the number of rows TopK quantises and multiplies at a time.
const rankBlock = 768

// rankScratch is TopK's working memory, pooled per scorer.
type rankScratch struct {
	k8    *kernel.Scratch
	dots  []int32 // [rankBlock, q.Stride()]
	mask  []uint8 // [c8/8] candidate bits
	stats []kernel.RowQuant
	row   []float64 // [D]
	lo    []float64 // [c8] lower bounds
	hi    []float64 // [c8] upper bounds
	top   []float64
	cand  []int
	exact []float64
	order []int
}

func (f *linearScorer) getScratch() *rankScratch {
	if s, ok := f.scratch.Get().(*rankScratch); ok {
		return s
	}
	s := &rankScratch{row: make([]float64, f.d), lo: make([]float64, f.c8), hi: make([]float64, f.c8), top: make([]float64, 0, 16)}
	if f.q != nil {
		s.k8 = f.q.NewScratch()
		s.dots = make([]int32, rankBlock*f.q.Stride()) // summed in place: see kernel.Int8Classes.Dot
		s.mask = make([]uint8, f.c8/8)
		s.stats = make([]kernel.RowQuant, rankBlock)
	}
	return s
}

func (f *linearScorer) topK(method string, x []float32, k int, dst []int) error {
	d, c := f.d, f.c
	if d == 0 || len(x)%d != 0 {
		return fmt.Errorf("%s: %d feature values are not rows of the head's dimension %d (features of another model?)", method, len(x), d)
	}
	n := len(x) / d
	if k < 1 || k > c {
		return fmt.Errorf("%s: top-%d of %d classes: k must be in [1, %d]", method, k, c, c)
	}
	if len(dst) != n*k {
		return fmt.Errorf("%s: top-%d of %d rows needs %d outputs, got %d", method, k, n, n*k, len(dst))
	}
	s := f.getScratch()
	defer f.scratch.Put(s)
	for r0 := 0; r0 < n; r0 += rankBlock {
		nb := min(rankBlock, n-r0)
		if f.q != nil {
			f.q.Dot(s.dots, f.q.Stride(), s.stats, x[r0*d:(r0+nb)*d], nb, s.k8)
		}
		for i := r0; i < r0+nb; i++ {
			xr := x[i*d : (i+1)*d]
			s.cand = s.cand[:0]
			if f.q != nil && s.stats[i-r0].OK {
				ld := f.q.Stride()
				f.shortlist(s, s.dots[(i-r0)*ld:(i-r0)*ld+f.c8], s.stats[i-r0], k)
				if k == 1 && len(s.cand) == 1 {
					dst[i] = s.cand[0]
					continue
				}
			} else {
				if err := checkFiniteFrom(method, xr, d, i); err != nil {
					return err
				}
				for j := 0; j < c; j++ {
					s.cand = append(s.cand, j)
				}
			}
			f.rank(s, xr, k, dst[i*k:(i+1)*k])
		}
	}
	return nil
}

// shortlist puts into s.cand, ascending, every class that may be among the
// k best of a row with int8 products dots [c8] and quantisation stats st
// (classes ≥ C are padding, never shortlisted).
func (f *linearScorer) shortlist(s *rankScratch, dots []int32, st kernel.RowQuant, k int) {
	// SumSq and ResidSq are float32 sums of D terms: relative error below
	// (D+8)·2⁻²³ in any summation order (each term's own rounding included),
	// plus float32 underflow, at most 2⁻¹⁴⁸ per term.
	const tiny = 0x1p-148
	dim := float64(f.d)
	infl := 1 + (dim+8)*0x1p-23
	nrm := math.Sqrt(st.SumSq*infl + dim*tiny)
	dx := math.Sqrt(st.ResidSq*infl + dim*tiny)
	a := f.alpha
	p := [4]float64{a * st.Scale, a * dx, a * (nrm + dx), 1e-9 * (a*nrm*f.maxNorm + f.maxBias + nrm*nrm)}
	best := kernel.Bounds(dots, f.scale8, f.norm8, f.resid8, f.bias8, &p, s.lo, s.hi)
	if k > 1 {
		best = kthLargest(s.lo[:f.c], k, s.top)
	}
	s.cand = kernel.AtLeast(s.cand, s.hi, best, s.mask) // padding (−Inf) never qualifies
}

// rank scores the classes in s.cand exactly as Scores does and writes the k
// best, equal scores by lower column.
func (f *linearScorer) rank(s *rankScratch, xr []float32, k int, dst []int) {
	ss := f.loadRow(s.row, xr)
	s.exact, s.order = s.exact[:0], s.order[:0]
	for p, j := range s.cand {
		s.exact = append(s.exact, f.score(s.row, j, ss))
		s.order = append(s.order, p)
	}
	slices.SortStableFunc(s.order, func(p, q int) int {
		switch {
		case s.exact[p] > s.exact[q]:
			return -1
		case s.exact[p] < s.exact[q]:
			return 1
		}
		return 0
	})
	for r := range dst {
		dst[r] = s.cand[s.order[r]]
	}
}

// kthLargest returns the k-th largest value of a (1 ≤ k ≤ len(a)); top is
// scratch.
func kthLargest(a []float64, k int, top []float64) float64 {
	if k > 16 {
		s := slices.Clone(a)
		slices.Sort(s)
		return s[len(s)-k]
	}
	// top holds the k largest so far, descending.
	top = top[:0]
	for _, v := range a {
		if len(top) == k && v <= top[k-1] {
			continue
		}
		if len(top) < k {
			top = append(top, v)
		} else {
			top[k-1] = v
		}
		for p := len(top) - 1; p > 0 && top[p] > top[p-1]; p-- {
			top[p], top[p-1] = top[p-1], top[p]
		}
	}
	return top[k-1]
}

package heads

import (
	"fmt"
	"math"
	"slices"
	"sync/atomic"

	"gonum.org/v1/gonum/blas/gonum"

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

// How TopK is exact and fast: a float32 kernel (heads/internal/kernel,
// AVX2+FMA assembly where available) computes approximate scores ã_j of all
// C classes; a rigorous bound δ on |ã_j − s_j|, where s_j is the float64
// score Scores computes, shortlists the classes with ã_j ≥ t − 2δ, t being the
// k-th largest ã (any class below cannot be in the top k: k classes have
// s ≥ t − δ > ã_j + δ ≥ s_j). The shortlist, usually k classes, is re-scored
// with the very float64 operations of Scores (gonum Dgemm's Ddot blocks and
// order) and sorted. The bound (D+2)·2⁻²⁴·‖x‖·max_c‖w_c‖ for the float32 dot
// products holds for any summation order (one rounding per FMA or add, at most
// D+1 along any path, plus the rounding of w to float32); a float64 term
// covers the reference's own rounding. Rows whose norm lies outside
// [1e-15, 1e15], and class matrices with a row norm above 1e15, where float32
// could overflow or lose range, are re-scored in full.

// fastScorer holds the packed float32 copy of a head's score matrix and what
// the exact re-scoring needs; it is immutable once built.
type fastScorer struct {
	version uint64
	d, c    int
	packed  *kernel.Packed
	w       []float64 // [C, D] the rows Scores multiplies (shared, read-only)
	alpha   float64   // Dgemm's alpha: 1, or 2 for NCM
	bias    []float64 // nil for cosine scores
	cosine  bool      // rows of x are L2-normalised (SimpleCIL, APER)
	subSS   bool      // scores subtract ‖x‖² (NCM)
	maxNorm float64   // max_c ‖w_c‖
	maxBias float64   // max_c |bias_c|
	full    bool      // re-score every class (w out of float32's safe range, or a non-gonum BLAS)
}

// fastCache caches a fastScorer per statistics version; safe for concurrent
// use (two racing builders build the same thing, one wins).
type fastCache struct{ p atomic.Pointer[fastScorer] }

func (fc *fastCache) get(version uint64, build func() *fastScorer) *fastScorer {
	if f := fc.p.Load(); f != nil && f.version == version {
		return f
	}
	f := build()
	f.version = version
	fc.p.Store(f)
	return f
}

func newFastScorer(w []float64, c, d int, alpha float64, bias []float64, cosine, subSS bool) *fastScorer {
	f := &fastScorer{d: d, c: c, w: w, alpha: alpha, bias: bias, cosine: cosine, subSS: subSS}
	w32 := make([]float32, c*d)
	for j := 0; j < c; j++ {
		var ss float64
		for l, v := range w[j*d : (j+1)*d] {
			ss += v * v
			w32[j*d+l] = float32(v)
		}
		f.maxNorm = max(f.maxNorm, math.Sqrt(ss))
	}
	for _, b := range bias {
		f.maxBias = max(f.maxBias, math.Abs(b))
	}
	isGonum := gonumGemm() // gonum's Dgemm (heads registers fastBLAS, which keeps it)
	f.full = !isGonum || !(f.maxNorm <= 1e15)
	if !f.full {
		f.packed = kernel.Pack(w32, c, d)
	}
	return f
}

// TopK implements Ranker.
func (h *protoHead) TopK(x []float32, k int, dst []int) error {
	if len(h.labels) == 0 {
		return errEmpty(h.method)
	}
	f := h.fast.get(h.st.version, func() *fastScorer {
		if h.cosine {
			return newFastScorer(h.p, len(h.labels), h.st.d, 1, nil, true, false)
		}
		return newFastScorer(h.p, len(h.labels), h.st.d, 2, h.bias, false, true)
	})
	return f.topK(h.method, x, k, dst)
}

// TopK implements Ranker. It needs EndStage after the last change, as Scores.
func (h *LDA) TopK(x []float32, k int, dst []int) error {
	if len(h.st.cls) == 0 {
		return errEmpty(h.method)
	}
	if !h.solved || h.version != h.st.version {
		return fmt.Errorf("lda: the statistics changed since the last EndStage: call EndStage before scoring")
	}
	f := h.fast.get(h.version, func() *fastScorer {
		return newFastScorer(h.w, len(h.labels), h.st.d, 1, h.b, false, false)
	})
	return f.topK(h.method, x, k, dst)
}

func (f *fastScorer) topK(method string, x []float32, k int, dst []int) error {
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
	var approx []float32
	if !f.full {
		approx = make([]float32, min(n, scoreBlock)*f.packed.Stride())
	}
	row := make([]float64, d)
	a := make([]float64, c)
	top := make([]float64, 0, k)
	var cand []int
	var exact []float64
	var order []int
	const u32, u64 = 0x1p-24, 0x1p-53
	// Scores runs one Dgemm per block of scoreBlock rows; gonum sums each
	// dot product whole when the block has fewer than 4 tiles of 64×64
	// (serial path), else in k-blocks of 64 added into C in order.
	for r0 := 0; r0 < n; r0 += scoreBlock {
		r1 := min(r0+scoreBlock, n)
		kb := d
		if (r1-r0+63)/64*((c+63)/64) >= 4 {
			kb = 64
		}
		if !f.full {
			kernel.Dot(approx, x[r0*d:r1*d], r1-r0, f.packed)
		}
		for i := r0; i < r1; i++ {
			ss, err := prepRow(method, row, x, i, d, f.cosine)
			if err != nil {
				return err
			}
			nrm := math.Sqrt(ss)
			if !f.subSS {
				ss = 0 // only NCM's scores subtract ‖x‖²
			}
			cand = cand[:0]
			if f.full || !(nrm >= 1e-15 && nrm <= 1e15) {
				for j := 0; j < c; j++ {
					cand = append(cand, j)
				}
			} else {
				ar := approx[(i-r0)*f.packed.Stride():]
				// float32 products and sums, w rounded to float32, and
				// float32 underflow (absolute 2⁻¹⁴⁹ per operation).
				e32 := float64(d+2)*u32*1.1*nrm*f.maxNorm + float64(d+2)*0x1p-148*(1+nrm)
				var delta float64
				if f.cosine {
					inv := 1 / max(nrm, 1e-12)
					for j := range a {
						a[j] = float64(ar[j]) * inv
					}
					delta = e32*inv + 4*float64(d+16)*u64*f.maxNorm
				} else {
					for j := range a {
						a[j] = f.alpha*float64(ar[j]) + f.bias[j]
					}
					delta = f.alpha*e32 + 4*float64(d+16)*u64*(f.alpha*nrm*f.maxNorm+f.maxBias+ss)
				}
				t := kthLargest(a, k, top)
				for j, v := range a {
					if v >= t-2*delta {
						cand = append(cand, j)
					}
				}
			}
			// Re-score the shortlist exactly as Scores does.
			exact = exact[:0]
			for _, j := range cand {
				exact = append(exact, f.rescore(row, j, kb, ss))
			}
			order = order[:0]
			for p := range cand {
				order = append(order, p)
			}
			slices.SortStableFunc(order, func(p, q int) int {
				switch {
				case exact[p] > exact[q]:
					return -1
				case exact[p] < exact[q]:
					return 1
				}
				return 0
			})
			for r := 0; r < k; r++ {
				dst[i*k+r] = cand[order[r]]
			}
		}
	}
	return nil
}

// prepRow converts row i of x [n, d] to float64 into row, L2-normalised when
// normalize is set, with exactly the operations of toFloat64 (the same sum
// of squares, the same sqrt, clamp and divisions), and returns the sum of
// squares of the unnormalised row, which is NCM's ‖x‖² as Scores sums it. A
// non-finite value makes that sum non-finite, so rows are checked in the same
// pass and only a bad row is searched for the error's column.
func prepRow(method string, row []float64, x []float32, i, d int, normalize bool) (float64, error) {
	xr := x[i*d : (i+1)*d]
	row = row[:d]
	var ss float64
	for l, v := range xr {
		a := float64(v)
		row[l] = a
		ss += a * a
	}
	if !(ss <= math.MaxFloat64) {
		// Rows before i were finite: this names row i and its column.
		if err := checkFinite(method, x[:(i+1)*d], d); err != nil {
			return 0, err
		}
	}
	if normalize {
		nrm := math.Sqrt(ss)
		if nrm < 1e-12 {
			nrm = 1e-12
		}
		for l := range row {
			row[l] /= nrm
		}
	}
	return ss, nil
}

// rescore returns the score of class j for one row (float64, normalised for
// cosine scores, as Scores converts it) with the operations of Scores: the
// dot product in Ddot blocks of kb added into 0 with Dgemm's alpha, then
// bias − ‖x‖² (NCM) or bias (LDA); ss is ‖x‖² summed as Scores sums it.
func (f *fastScorer) rescore(row []float64, j, kb int, ss float64) float64 {
	d := f.d
	w := f.w[j*d : (j+1)*d]
	var v float64
	for l0 := 0; l0 < d; l0 += kb {
		l1 := min(l0+kb, d)
		v += f.alpha * gonum.Implementation{}.Ddot(l1-l0, row[l0:l1], 1, w[l0:l1], 1)
	}
	if f.bias != nil {
		v += f.bias[j] - ss
	}
	return v
}

// kthLargest returns the k-th largest value of a (1 ≤ k ≤ len(a)); top is
// scratch with capacity ≥ k.
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

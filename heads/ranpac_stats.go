package heads

import (
	"time"

	"errors"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/floats"

	"github.com/cl-dev/cl/internal/linalg"
)

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
			if err := h.checkWidth(op, d); err != nil {
				return 0, err
			}
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
	if allFinite(x) {
		return nil
	}
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("ranpac: %s: row %d, column %d is %v; remove or repair that sample", op, i/d, i%d, v)
		}
	}
	return nil
}

// accumulate adds (sign = +1) or subtracts (−1) the statistics of n rows.
func (h *RanPAC) accumulate(x []float32, y []int, n int, sign float64) {
	h.accumulateInto(x, y, n, sign, nil)
}

// accumulateInto is accumulate also copying the rows' H into keep (n×P)
// when keep is not nil. Then the rows' Gram Σ hᵀh is summed apart, kept as
// h.stageG, and added to G once at the end, so that the λ search can take
// its fit rows' Gram as stageG − H_valᵀH_val (a fifth of the rows) instead
// of a product over the fit rows (four fifths). On the first stage G is
// then the same bits as chunk by chunk (0 + S = S); later stages round
// G_prev + S once instead of once per chunk.
func (h *RanPAC) accumulateInto(x []float32, y []int, n int, sign float64, keep []float64) {
	p := h.Width()
	gram := h.g
	var stageG []float64
	if keep != nil {
		stageG = largeFloats(p * p)
		gram = stageG
	}
	scratch := h.newProjectScratch(min(learnChunk, n))
	name := "learning rows"
	if sign < 0 {
		name = "unlearning rows"
	}
	report := h.phase(name)
	for s := 0; s < n; s += learnChunk {
		e := min(s+learnChunk, n)

		t0 := time.Now()
		if keep != nil && h.cfg.M > 0 {
			// Project straight into keep: copying H there afterwards cost as
			// much as the Gram itself at M = 2000, N = 20000 (a large,
			// non-preemptible memmove that the collector waits on).
			scratch.out = keep[s*p : e*p]
		}
		hm := h.projectInto(x[s*h.d:e*h.d], e-s, scratch)
		t1 := time.Now()
		h.timing.since(phaseProjection, t0)
		if keep != nil && h.cfg.M == 0 {
			copy(keep[s*p:e*p], hm.Data)
		}
		linalg.SyrkUpper(true, sign, hm, gram, p)
		h.timing.since(phaseGram, t1)
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
			if h.cfg.ClassGram {
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
				gcl = largeFloats(p * p)
				h.gc[l] = gcl
			}
			linalg.SyrkUpper(true, sign, sub, gcl, p)
		}
		if report != nil {
			report(e, n)
		}
	}
	if stageG != nil {
		t0 := time.Now()
		addUpper(h.g, stageG, p)
		h.timing.since(phaseGram, t0)
		h.stageG = stageG
	}
}

// addUpper adds the upper triangle (diagonal included) of the n×n
// row-major s to that of g.
func addUpper(g, s []float64, n int) {
	for i := 0; i < n; i++ {
		floats.Add(g[i*n+i:(i+1)*n], s[i*n+i:(i+1)*n])
	}
}

// dropStageCache forgets the kept H and Gram of the stage's rows (the
// buffered rows changed, or the stage ended).
func (h *RanPAC) dropStageCache() { h.stageH, h.stageG = nil, nil }

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
	h.dropStageCache() // the buffered rows change
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
	h.dropStageCache() // the buffered rows change
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
	if !h.cfg.ClassGram {
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
			dst = largeFloats(p * p)
			h.gc[l] = dst
		}
		for i, v := range gcl {
			dst[i] += v
		}
	}
	h.stageX = append(h.stageX, o.stageX...)
	h.stageY = append(h.stageY, o.stageY...)
	h.dropStageCache() // o's rows are not in it
	if h.lambda == 0 {
		h.lambda, h.losses = o.lambda, slices.Clone(o.losses)
	}
	h.stages = max(h.stages, o.stages)
	h.wo = nil
	return nil
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

// checkWidth refuses, before anything is allocated, a feature dimension d
// whose projection (D×M float64) and Gram matrix exceed the memory budget.
func (h *RanPAC) checkWidth(op string, d int) error {
	p := h.cfg.M
	if p == 0 {
		p = d
	}
	if p > ranpacMaxWidth {
		return fmt.Errorf("ranpac: %s: features of dimension %d with M=0 give a %d×%d Gram matrix (%s); set M", op, d, p, p, byteSize(gramBytes(p)))
	}
	proj := 8 * float64(d) * float64(h.cfg.M)
	if err := checkMemory(fmt.Sprintf("a RanPAC head on %d-dimensional features (projection %s, Gram matrix %s)",
		d, byteSize(proj), byteSize(gramBytes(p))), proj+ranpacPeakBytes(p)); err != nil {
		return fmt.Errorf("ranpac: %s: %v; choose a smaller M", op, err)
	}
	return nil
}

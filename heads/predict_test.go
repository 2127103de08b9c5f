package heads

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/blas/blas64"
)

// rankOf ranks scores s [n, c] as protocol.Predict does: descending, equal
// scores by lower column.
func rankOf(s []float64, c, k int) []int {
	n := len(s) / c
	out := make([]int, 0, n*k)
	idx := make([]int, c)
	for i := 0; i < n; i++ {
		row := s[i*c : (i+1)*c]
		for j := range idx {
			idx[j] = j
		}
		slices.SortStableFunc(idx, func(a, b int) int {
			switch {
			case row[a] > row[b]:
				return -1
			case row[a] < row[b]:
				return 1
			}
			return 0
		})
		out = append(out, idx[:k]...)
	}
	return out
}

// checkTopK requires TopK to equal the ranking of Scores on x for several k.
func checkTopK(t *testing.T, what string, h Head, x []float32) {
	t.Helper()
	r, ok := h.(Ranker)
	if !ok {
		t.Fatalf("%s: %s head is not a Ranker", what, h.Method())
	}
	s := scoresOf(t, h, x)
	c := len(h.Classes())
	n := len(s) / c
	for _, k := range []int{1, 2, 5, c} {
		k = min(k, c)
		got := make([]int, n*k)
		if err := r.TopK(x, k, got); err != nil {
			t.Fatalf("%s: TopK: %v", what, err)
		}
		want := rankOf(s, c, k)
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s %s k=%d n=%d: row %d rank %d: TopK gives class column %d, Scores ranks %d (scores %v vs %v)",
					what, h.Method(), k, n, i/k, i%k, got[i], want[i], s[i/k*c+got[i]], s[i/k*c+want[i]])
			}
		}
	}
}

func fitHead(t *testing.T, m string, x []float32, y []int) Head {
	t.Helper()
	h := newHead(t, m, nil)
	if err := h.Learn(x, y); err != nil {
		t.Fatal(err)
	}
	if err := h.EndStage(); err != nil {
		t.Fatal(err)
	}
	return h
}

var rankerMethods = []string{"simplecil", "aper", "ncm", "lda"}

// TestTopKGolden: on the golden data TopK agrees with Scores' ranking (whose
// arg-max the golden tests compare with numpy's predictions).
func TestTopKGolden(t *testing.T) {
	g := loadGolden(t)
	for _, m := range rankerMethods {
		h := fitHead(t, m, g.xtr, g.ytr)
		checkTopK(t, "golden", h, g.xte)
	}
}

// TestTopKRandom covers block sizes on both sides of gonum's serial/parallel
// Dgemm switch (rows per 256-row block, 64-wide tiles), odd D and C, and
// classes built to be near-ties or exact ties (duplicated prototypes).
func TestTopKRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, tc := range []struct{ n, c, d int }{
		{1, 1, 1}, {7, 3, 5}, {64, 200, 33}, {255, 17, 130}, {257, 100, 77}, {600, 5, 64}, {130, 130, 129},
	} {
		// Class means: half random, the rest near-copies (relative 1e-9)
		// or exact copies of class 0.
		base := make([]float32, tc.c*tc.d)
		for i := range base {
			base[i] = float32(r.NormFloat64())
		}
		for j := tc.c / 2; j < tc.c; j++ {
			for l := 0; l < tc.d; l++ {
				v := base[l]
				if j%2 == 0 {
					v *= float32(1 + 1e-7*r.NormFloat64())
				}
				base[j*tc.d+l] = v
			}
		}
		per := 3
		x := make([]float32, 0, tc.c*per*tc.d)
		y := make([]int, 0, tc.c*per)
		for j := 0; j < tc.c; j++ {
			for s := 0; s < per; s++ {
				for l := 0; l < tc.d; l++ {
					x = append(x, base[j*tc.d+l]+float32(0.01*r.NormFloat64()))
				}
				y = append(y, j)
			}
		}
		test := make([]float32, tc.n*tc.d)
		for i := 0; i < tc.n; i++ {
			j := r.IntN(tc.c)
			for l := 0; l < tc.d; l++ {
				test[i*tc.d+l] = base[j*tc.d+l] * float32(1+0.3*r.NormFloat64())
			}
		}
		for _, m := range rankerMethods {
			if m == "lda" && tc.c*per <= tc.d {
				continue // LDA's shrunk covariance is fine, but keep it well posed
			}
			checkTopK(t, "random", fitHead(t, m, x, y), test)
		}
	}
}

// TestRescoreBitwise: the re-scoring reproduces Scores bit for bit, for every
// class, in blocks on both sides of the Dgemm switch.
func TestRescoreBitwise(t *testing.T) {
	if !gonumGemm() { // -tags openblas: TopK then never re-scores (full float64 path)
		t.Skipf("BLAS is %T: re-scoring matches Scores only under gonum's Dgemm", blas64.Implementation())
	}
	g := loadGolden(t)
	for _, m := range rankerMethods {
		h := fitHead(t, m, g.xtr, g.ytr)
		var f *fastScorer
		switch hh := h.(type) {
		case *protoHead:
			if hh.cosine {
				f = newFastScorer(hh.p, len(hh.labels), g.d, 1, nil, true, false)
			} else {
				f = newFastScorer(hh.p, len(hh.labels), g.d, 2, hh.bias, false, true)
			}
		case *LDA:
			f = newFastScorer(hh.w, len(hh.labels), g.d, 1, hh.b, false, false)
		}
		n := len(g.xte) / g.d
		for _, rows := range []int{1, n} {
			x := g.xte[:rows*g.d]
			s := scoresOf(t, h, x)
			c := f.c
			for i := 0; i < rows; i++ {
				kb := g.d
				mb := min(rows-i/scoreBlock*scoreBlock, scoreBlock)
				if (mb+63)/64*((c+63)/64) >= 4 {
					kb = 64
				}
				row := make([]float64, g.d)
				ss, err := prepRow(m, row, x, i, g.d, f.cosine)
				if err != nil {
					t.Fatal(err)
				}
				if !f.subSS {
					ss = 0
				}
				for j := 0; j < c; j++ {
					if got := f.rescore(row, j, kb, ss); math.Float64bits(got) != math.Float64bits(s[i*c+j]) {
						t.Fatalf("%s rows=%d [%d,%d]: rescore %v, Scores %v", m, rows, i, j, got, s[i*c+j])
					}
				}
			}
		}
	}
}

func TestTopKErrors(t *testing.T) {
	g := loadGolden(t)
	h := fitHead(t, "simplecil", g.xtr, g.ytr).(Ranker)
	if err := h.TopK(g.xte[:g.d], 0, make([]int, 0)); err == nil {
		t.Error("k = 0 accepted")
	}
	if err := h.TopK(g.xte[:g.d], g.c+1, make([]int, g.c+1)); err == nil {
		t.Error("k > C accepted")
	}
	if err := h.TopK(g.xte[:g.d+1], 1, make([]int, 1)); err == nil {
		t.Error("ragged rows accepted")
	}
	if err := h.TopK(g.xte[:g.d], 1, make([]int, 2)); err == nil {
		t.Error("wrong dst length accepted")
	}
	bad := slices.Clone(g.xte[:g.d])
	bad = append(bad, bad...)
	bad[g.d+3] = float32(math.NaN())
	if err := h.TopK(bad, 1, make([]int, 2)); err == nil || !strings.Contains(err.Error(), "row 1 column 3") {
		t.Errorf("NaN in row 1 column 3: %v", err)
	}
	if err := NewSimpleCIL().(Ranker).TopK(g.xte[:g.d], 1, make([]int, 1)); err == nil {
		t.Error("empty head accepted")
	}
}

// TestTopKExtremeNorms: rows whose norm is outside float32's safe range take
// the full re-scoring path and still agree with Scores.
func TestTopKExtremeNorms(t *testing.T) {
	g := loadGolden(t)
	x := slices.Clone(g.xte[:8*g.d])
	for l := 0; l < g.d; l++ {
		x[l] *= 1e30
		x[g.d+l] *= 1e-30
		x[2*g.d+l] = 0
	}
	x[3*g.d] = 1e-40 // one subnormal value, the rest zero
	for l := 1; l < g.d; l++ {
		x[3*g.d+l] = 0
	}
	for _, m := range rankerMethods {
		checkTopK(t, "extreme", fitHead(t, m, g.xtr, g.ytr), x)
	}
}

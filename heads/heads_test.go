package heads

import (
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// methodCase is one head configuration the property tests run on.
type methodCase struct {
	name, method string
	opts         map[string]string
}

var propertyCases = []methodCase{
	{"simplecil", "simplecil", nil},
	{"ncm", "ncm", nil},
	{"aper", "aper", nil},
	{"lda", "lda", nil},
	{"fecam-paper", "fecam", nil},
	{"fecam-pilot", "fecam", map[string]string{"variant": "pilot"}},
}

func scoresOf(t *testing.T, h Head, x []float32) []float64 {
	t.Helper()
	if err := h.EndStage(); err != nil {
		t.Fatal(err)
	}
	s, err := h.Scores(x)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func assertClose(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d scores, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(got[i]-want[i]) / (1 + math.Abs(want[i])); d > tol {
			t.Fatalf("%s: score %d = %.17g, want %.17g (relative difference %.3g > %.3g)", what, i, got[i], want[i], d, tol)
		}
	}
}

// subset returns the rows of (x, y) whose index satisfies keep.
func subset(x []float32, y []int, d int, keep func(i int) bool) ([]float32, []int) {
	var xs []float32
	var ys []int
	for i := range y {
		if keep(i) {
			xs = append(xs, x[i*d:(i+1)*d]...)
			ys = append(ys, y[i])
		}
	}
	return xs, ys
}

func TestOrderIndependence(t *testing.T) {
	g := loadGolden(t)
	perm := rand.New(rand.NewPCG(1, 2)).Perm(len(g.ytr))
	xs := make([]float32, len(g.xtr))
	ys := make([]int, len(g.ytr))
	for i, p := range perm {
		copy(xs[i*g.d:(i+1)*g.d], g.xtr[p*g.d:(p+1)*g.d])
		ys[i] = g.ytr[p]
	}
	for _, tc := range propertyCases {
		t.Run(tc.name, func(t *testing.T) {
			a := newHead(t, tc.method, tc.opts)
			if err := a.Learn(g.xtr, g.ytr); err != nil {
				t.Fatal(err)
			}
			b := newHead(t, tc.method, tc.opts)
			for i := 0; i < len(ys); {
				j := min(i+1+i%23, len(ys)) // uneven batches
				if err := b.Learn(xs[i*g.d:j*g.d], ys[i:j]); err != nil {
					t.Fatal(err)
				}
				if tc.method == "lda" || tc.method == "fecam" {
					if err := b.EndStage(); err != nil && !strings.Contains(err.Error(), "at least 2") {
						t.Fatal(err)
					}
				}
				i = j
			}
			assertClose(t, "shuffled batches vs one batch", scoresOf(t, b, g.xte), scoresOf(t, a, g.xte), 1e-9)
		})
	}
}

func TestMerge(t *testing.T) {
	g := loadGolden(t)
	// A: classes 0-5 and half of class 6; B: the rest (shares class 6).
	inA := func(i int) bool { return g.ytr[i] < 6 || (g.ytr[i] == 6 && i%2 == 0) }
	xa, ya := subset(g.xtr, g.ytr, g.d, inA)
	xb, yb := subset(g.xtr, g.ytr, g.d, func(i int) bool { return !inA(i) })
	for _, tc := range propertyCases {
		t.Run(tc.name, func(t *testing.T) {
			all := newHead(t, tc.method, tc.opts)
			fit(t, all, g.xtr, g.ytr, g.d)
			a, b := newHead(t, tc.method, tc.opts), newHead(t, tc.method, tc.opts)
			fit(t, a, xa, ya, g.d)
			fit(t, b, xb, yb, g.d)
			if err := a.Merge(b); err != nil {
				t.Fatal(err)
			}
			assertClose(t, "Merge(A, B) vs learn all", scoresOf(t, a, g.xte), scoresOf(t, all, g.xte), 1e-9)
			if len(a.Classes()) != g.c {
				t.Errorf("merged head has classes %v", a.Classes())
			}
		})
	}
	t.Run("refusals", func(t *testing.T) {
		a, b := newHead(t, "simplecil", nil), newHead(t, "ncm", nil)
		if err := a.Merge(b); err == nil {
			t.Error("merging simplecil with ncm succeeded")
		}
		f1 := newHead(t, "fecam", nil)
		f2 := newHead(t, "fecam", map[string]string{"variant": "pilot"})
		if err := f1.Merge(f2); err == nil || !strings.Contains(err.Error(), "options") {
			t.Errorf("merging different options: %v", err)
		}
		c, d := newHead(t, "ncm", nil), newHead(t, "ncm", nil)
		c.Learn([]float32{1, 2}, []int{0})
		d.Learn([]float32{1, 2, 3}, []int{0})
		if err := c.Merge(d); err == nil || !strings.Contains(err.Error(), "dimension") {
			t.Errorf("merging dimensions 2 and 3: %v", err)
		}
	})
}

func TestUnlearn(t *testing.T) {
	g := loadGolden(t)
	// A: classes 0-7 but only the first rows; B: later rows of old classes
	// and all of classes 8, 9.
	inA := func(i int) bool { return g.ytr[i] < 8 && i < 300 }
	xa, ya := subset(g.xtr, g.ytr, g.d, inA)
	xb, yb := subset(g.xtr, g.ytr, g.d, func(i int) bool { return !inA(i) })
	for _, tc := range propertyCases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHead(t, tc.method, tc.opts)
			fit(t, h, xa, ya, g.d)
			before := scoresOf(t, h, g.xte)
			classes := h.Classes()
			fit(t, h, xb, yb, g.d)
			if err := h.Unlearn(xb, yb); err != nil {
				t.Fatal(err)
			}
			if got := h.Classes(); len(got) != len(classes) {
				t.Fatalf("classes after unlearn %v, want %v", got, classes)
			}
			assertClose(t, "learn B, unlearn B", scoresOf(t, h, g.xte), before, 1e-9)
			// Over-unlearning is refused and changes nothing.
			if err := h.Unlearn(xb, yb); err == nil {
				t.Error("unlearning samples twice succeeded")
			}
			assertClose(t, "after refused unlearn", scoresOf(t, h, g.xte), before, 1e-9)
		})
	}
}

func TestRemoveClass(t *testing.T) {
	g := loadGolden(t)
	xk, yk := subset(g.xtr, g.ytr, g.d, func(i int) bool { return g.ytr[i] != 3 })
	for _, tc := range propertyCases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHead(t, tc.method, tc.opts)
			fit(t, h, g.xtr, g.ytr, g.d)
			err := h.RemoveClass(3)
			if tc.method == "lda" {
				if !errors.Is(err, ErrNeedSamples) {
					t.Fatalf("lda RemoveClass: %v, want ErrNeedSamples", err)
				}
				x3, y3 := subset(g.xtr, g.ytr, g.d, func(i int) bool { return g.ytr[i] == 3 })
				if err := h.Unlearn(x3, y3); err != nil {
					t.Fatal(err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			want := newHead(t, tc.method, tc.opts)
			fit(t, want, xk, yk, g.d)
			assertClose(t, "remove class 3 vs never learned", scoresOf(t, h, g.xte), scoresOf(t, want, g.xte), 1e-9)
			if err := h.RemoveClass(3); err == nil {
				t.Error("removing a missing class succeeded")
			}
		})
	}
}

func TestSaveLoad(t *testing.T) {
	g := loadGolden(t)
	names := make([]string, g.c)
	for i := range names {
		names[i] = string(rune('a' + i))
	}
	info := Info{Classes: names, Model: "vit.onnx", ModelSHA256: "abc123", Preprocess: `{"resize":256}`}
	for _, tc := range propertyCases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHead(t, tc.method, tc.opts)
			fit(t, h, g.xtr, g.ytr, g.d)
			want := scoresOf(t, h, g.xte)
			path := filepath.Join(t.TempDir(), "h.safetensors")
			if err := Save(path, h, info); err != nil {
				t.Fatal(err)
			}
			h2, info2, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if h2.Method() != tc.method || h2.Dim() != g.d || info2.Fingerprint != info.Fingerprint || info2.Dim != g.d ||
				strings.Join(info2.Classes, ",") != strings.Join(names, ",") || info2.Model != info.Model {
				t.Fatalf("loaded %s dim %d info %+v", h2.Method(), h2.Dim(), info2)
			}
			got, err := h2.Scores(g.xte)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("score %d: %v after load, %v before", i, got[i], want[i])
				}
			}
			// The loaded head keeps learning like the original.
			if err := h2.Merge(h); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("unnamed class", func(t *testing.T) {
		h := newHead(t, "ncm", nil)
		h.Learn([]float32{1, 2}, []int{5})
		if err := Save(filepath.Join(t.TempDir(), "h"), h, Info{Classes: []string{"a"}}); err == nil {
			t.Error("saving label 5 with one class name succeeded")
		}
	})
}

func TestValidation(t *testing.T) {
	for _, tc := range propertyCases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHead(t, tc.method, tc.opts)
			if _, err := h.Scores([]float32{1, 2}); err == nil {
				t.Error("Scores on an empty head succeeded")
			}
			nan := float32(math.NaN())
			err := h.Learn([]float32{1, 2, 3, nan, 5, 6}, []int{0, 1, 0})
			if err == nil || !strings.Contains(err.Error(), "row 1") {
				t.Errorf("NaN in row 1: %v", err)
			}
			inf := float32(math.Inf(1))
			if err := h.Learn([]float32{inf, 2}, []int{0}); err == nil || !strings.Contains(err.Error(), "row 0") {
				t.Errorf("Inf in row 0: %v", err)
			}
			if err := h.Learn([]float32{1, 2, 3, 4}, []int{0, -1}); err == nil || !strings.Contains(err.Error(), "row 1") {
				t.Errorf("negative label: %v", err)
			}
			if err := h.Learn([]float32{1, 2, 3}, []int{0, 1}); err == nil {
				t.Error("3 values for 2 rows accepted")
			}
			if h.Dim() != 0 || len(h.Classes()) != 0 {
				t.Fatalf("failed Learn changed the head: dim %d classes %v", h.Dim(), h.Classes())
			}
			if err := h.Learn([]float32{1, 2, 3, 4, 2, 1, 0, 1}, []int{0, 0, 1, 1}); err != nil {
				t.Fatal(err)
			}
			if err := h.Learn([]float32{1, 2, 3, 4, 5, 6}, []int{0, 1}); err == nil || !strings.Contains(err.Error(), "dimension 3") {
				t.Errorf("dimension 3 into a head of dimension 2: %v", err)
			}
			if tc.method == "lda" || tc.method == "fecam" {
				if _, err := h.Scores([]float32{1, 2}); err == nil || !strings.Contains(err.Error(), "EndStage") {
					t.Errorf("Scores before EndStage: %v", err)
				}
			}
			if err := h.EndStage(); err != nil {
				t.Fatal(err)
			}
			if _, err := h.Scores([]float32{1, 2, 3}); err == nil {
				t.Error("3 values scored by a head of dimension 2")
			}
			if _, err := h.Scores([]float32{1, nan}); err == nil || !strings.Contains(err.Error(), "row 0") {
				t.Errorf("NaN scored: %v", err)
			}
			s, err := h.Scores([]float32{1, 2, 3, 4})
			if err != nil || len(s) != 4 {
				t.Fatalf("Scores: %v %v", s, err)
			}
			if err := h.Unlearn([]float32{1, 2}, []int{7}); err == nil {
				t.Error("unlearning an unknown class succeeded")
			}
		})
	}
}

func TestClassSeenAgain(t *testing.T) {
	// A class learned in two stages has the mean of all its samples.
	h := newHead(t, "ncm", nil)
	h.Learn([]float32{0, 0, 2, 2}, []int{0, 0})
	h.Learn([]float32{10, 10}, []int{1})
	h.Learn([]float32{4, 4}, []int{0}) // class 0 again: mean (2, 2)
	s, err := h.Scores([]float32{2, 2})
	if err != nil {
		t.Fatal(err)
	}
	if s[0] != 0 || s[1] != -128 {
		t.Errorf("scores %v, want [0 -128]", s)
	}
}

func TestOptions(t *testing.T) {
	for _, m := range Methods() {
		spec, _ := Lookup(m)
		if _, err := spec.New(nil); err != nil {
			t.Errorf("%s with its defaults: %v", m, err)
		}
		var defaults [][2]string
		for _, o := range spec.Options() {
			defaults = append(defaults, [2]string{o.Key, o.Default})
		}
		if cfg, err := spec.Parse(defaults); err != nil || !reflect.DeepEqual(cfg, spec.Config()) {
			t.Errorf("%s: parsing its own defaults gives %+v, %v", m, cfg, err)
		}
		_, err := spec.Parse([][2]string{{"bogus", "1"}})
		if err == nil || !strings.Contains(err.Error(), "bogus") {
			t.Errorf("%s: unknown option: %v", m, err)
		}
		for _, o := range spec.Options() {
			if !strings.Contains(err.Error(), o.Key+" (default "+o.Default+")") {
				t.Errorf("%s: error %q does not list known option %s", m, err, o.Key)
			}
		}
		if m != "ranpac" {
			if _, err := spec.New(&RanPACConfig{}); err == nil {
				t.Errorf("%s accepted a ranpac configuration", m)
			}
		}
	}
	for _, bad := range []map[string]string{{"variant": "x"}, {"gamma1": "-1"}, {"alpha": "nan"}, {"gamma2": "1e7"}} {
		c := DefaultFeCAMConfig()
		if err := ParseInto(&c, sortedPairs(bad)); err == nil {
			t.Errorf("fecam %v accepted", bad)
		}
	}
	if _, err := NewFeCAM(FeCAMConfig{Variant: "x"}); err == nil {
		t.Error("fecam variant x accepted by NewFeCAM")
	}
	if _, err := NewLDA(LDAConfig{Shrinkage: 2}); err == nil || !strings.Contains(err.Error(), "shrinkage") {
		t.Errorf("lda shrinkage 2: %v", err)
	}
	// Params and ParseInto round-trip, with canonical spellings.
	c := DefaultLDAConfig()
	if err := ParseInto(&c, [][2]string{{"shrinkage", "1e-4"}}); err != nil || Params(&c)["shrinkage"] != "0.0001" {
		t.Errorf("lda params %v, %v", Params(&c), err)
	}
}

func TestFeCAMNeedsTwoSamples(t *testing.T) {
	h, _ := NewFeCAM(DefaultFeCAMConfig())
	h.Learn([]float32{1, 2, 3, 4, 5, 6}, []int{0, 0, 1})
	if err := h.EndStage(); err == nil || !strings.Contains(err.Error(), "class 1") {
		t.Errorf("EndStage with one sample of class 1: %v", err)
	}
}

// TestPinvFastPaths checks that pinvSym's Cholesky paths equal the
// eigen-decomposition pseudo-inverse on the goldens' FeCAM matrices.
func TestPinvFastPaths(t *testing.T) {
	g := loadGolden(t)
	for _, variant := range []string{"paper", "pilot"} {
		c := DefaultFeCAMConfig()
		c.Variant = variant
		h, _ := NewFeCAM(c)
		if err := h.Learn(g.xtr, g.ytr); err != nil {
			t.Fatal(err)
		}
		d := g.d
		cov, err := h.st.covariance("fecam", 0)
		if err != nil {
			t.Fatal(err)
		}
		var corr, null []float64
		if variant == "pilot" {
			for i := 0; i < d; i++ {
				cov[i*d+i] += 100
			}
			corr, null = rowCorrcoef(cov, d), pilotNull(cov, d)
			// null is the null direction of corr.
			for i := 0; i < d; i++ {
				var s float64
				for j := 0; j < d; j++ {
					s += corr[i*d+j] * null[j]
				}
				if math.Abs(s) > 1e-10 {
					t.Fatalf("pilot: (C·u)[%d] = %g", i, s)
				}
			}
		} else {
			corr = cov
			for i := 0; i < d; i++ {
				corr[i*d+i] += 0.5
			}
		}
		fast, slow := pinvSym(corr, d, null), pinvEigen(corr, d)
		assertClose(t, variant, fast, slow, 1e-9)
	}
}

// TestRelabel: renumbering classes permutes the score columns (Classes()
// ascending) and nothing else, for every head; bad maps are refused.
func TestRelabel(t *testing.T) {
	g := loadGolden(t)
	for _, m := range []string{"simplecil", "aper", "ncm", "lda", "fecam", "ranpac"} {
		opts := map[string]string(nil)
		if m == "ranpac" {
			opts = map[string]string{"M": "64"}
		}
		h := newHead(t, m, opts)
		if err := h.Learn(g.xtr, g.ytr); err != nil {
			t.Fatal(err)
		}
		before := scoresOf(t, h, g.xte)
		old := h.Classes()
		// Reverse the order and shift: class l → 100 − l.
		to := map[int]int{}
		for _, l := range old {
			to[l] = 100 - l
		}
		if err := Relabel(h, map[int]int{old[0]: 5, old[1]: 5}); err == nil {
			t.Errorf("%s: a non-injective map was accepted", m)
		}
		if err := Relabel(h, map[int]int{old[0]: 1}); err == nil {
			t.Errorf("%s: a partial map was accepted", m)
		}
		if err := Relabel(h, to); err != nil {
			t.Fatal(err)
		}
		if err := Refresh(h); err != nil {
			t.Fatal(err)
		}
		after, err := h.Scores(g.xte)
		if err != nil {
			t.Fatal(err)
		}
		cls := h.Classes()
		c := len(cls)
		if c != len(old) {
			t.Fatalf("%s: %d classes after relabel, want %d", m, c, len(old))
		}
		col := map[int]int{}
		for j, l := range cls {
			col[l] = j
		}
		for i := 0; i < len(before)/c; i++ {
			for j, l := range old {
				got, want := after[i*c+col[to[l]]], before[i*c+j]
				if math.Abs(got-want) > 1e-9*(1+math.Abs(want)) {
					t.Fatalf("%s row %d class %d→%d: %v, want %v", m, i, l, to[l], got, want)
				}
			}
		}
	}
}

package heads

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/blas/gonum"
	"gonum.org/v1/gonum/lapack/lapack64"

	"github.com/cl-dev/cl/internal/linalg"
	"github.com/cl-dev/cl/internal/npy"
)

const ranpacGoldenDir = "testdata/ranpac"

type ranpacMeta struct {
	C, D, M int
	Seed    uint64
	Stages  [][]int
	YTrain  []int `json:"y_train"`
	YTest   []int `json:"y_test"`
}

type ranpacStage struct {
	Lambda     float64
	Losses     []float64
	Classes    []int
	Cosine     []float64
	Linear     []float64
	PredCosine []int `json:"pred_cosine"`
	PredLinear []int `json:"pred_linear"`
}

func readRanPACMeta(t *testing.T) ranpacMeta {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ranpacGoldenDir, "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m ranpacMeta
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// stageRows returns the training rows of the classes of one stage, in file
// order.
func stageRows(x []float32, y []int, d int, classes []int) ([]float32, []int) {
	return subset(x, y, d, func(i int) bool { return slices.Contains(classes, y[i]) })
}

// TestRanPACGoldens replays the numpy reference (PILOT's procedure with the
// same projection and split): identical λ per stage and identical
// predictions, scores within 1e-8, for M = 2000 and M = 0, cosine and
// linear scoring, fast and slow λ search.
func TestRanPACGoldens(t *testing.T) {
	m := readRanPACMeta(t)
	xtr, shape, err := npy.ReadFloat32(filepath.Join(ranpacGoldenDir, "x_train.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if shape[1] != m.D {
		t.Fatalf("x_train shape %v", shape)
	}
	xte, _, err := npy.ReadFloat32(filepath.Join(ranpacGoldenDir, "x_test.npy"))
	if err != nil {
		t.Fatal(err)
	}
	w, _, err := npy.ReadFloat32(filepath.Join(ranpacGoldenDir, "W.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w, RanPACProjection(m.Seed, m.D, m.M)) {
		t.Fatal("RanPACProjection no longer reproduces W.npy: the random generator changed; regenerate the goldens and note that old head files will be refused")
	}
	b, err := os.ReadFile(filepath.Join(ranpacGoldenDir, "goldens.json"))
	if err != nil {
		t.Fatal(err)
	}
	var gold map[string][]ranpacStage
	if err := json.Unmarshal(b, &gold); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		gold   string
		opts   map[string]string
		linear bool
	}{
		{"projected", map[string]string{"M": "2000"}, false},
		{"projected", map[string]string{"M": "2000", "scoring": "linear"}, true},
		{"raw", map[string]string{"M": "0"}, false},
		{"raw", map[string]string{"M": "0", "scoring": "linear", "search": "solve"}, true},
	} {
		name := tc.gold + "/" + tc.opts["scoring"] + "/" + tc.opts["search"]
		t.Run(name, func(t *testing.T) {
			h, err := NewRanPAC(ranpacConfig(t, tc.opts))
			if err != nil {
				t.Fatal(err)
			}
			for s, cls := range m.Stages {
				xs, ys := stageRows(xtr, m.YTrain, m.D, cls)
				if err := h.Learn(xs, ys); err != nil {
					t.Fatal(err)
				}
				if err := h.EndStage(); err != nil {
					t.Fatal(err)
				}
				g := gold[tc.gold][s]
				if h.Lambda() != g.Lambda {
					t.Fatalf("stage %d: λ = %g, numpy chose %g (losses %v vs %v)", s, h.Lambda(), g.Lambda, h.Losses(), g.Losses)
				}
				// Our MSE divides by the seen classes, PILOT's by all C.
				// Near the optimum the systems are well conditioned and the
				// losses agree closely; at tiny λ both are rounding noise.
				scale := float64(len(h.Classes())) / float64(m.C)
				for i, l := range h.Losses() {
					if RidgeGrid[i] >= g.Lambda/100 && !(math.Abs(l*scale-g.Losses[i]) <= 1e-7*g.Losses[i]) {
						t.Errorf("stage %d: loss[%d] = %.12g, numpy %.12g", s, i, l*scale, g.Losses[i])
					}
				}
				if !slices.Equal(h.Classes(), g.Classes) {
					t.Fatalf("classes %v, want %v", h.Classes(), g.Classes)
				}
				sc, err := h.Scores(xte)
				if err != nil {
					t.Fatal(err)
				}
				want, wantPred := g.Cosine, g.PredCosine
				if tc.linear {
					want, wantPred = g.Linear, g.PredLinear
				}
				assertRanPACClose(t, "scores", sc, want, 1e-8)
				c := len(g.Classes)
				for i := range wantPred {
					if p := argmaxRow(sc[i*c : (i+1)*c]); p != wantPred[i] {
						t.Fatalf("stage %d: test row %d predicted column %d, numpy %d", s, i, p, wantPred[i])
					}
				}
			}
		})
	}
}

func argmaxRow(v []float64) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

func assertRanPACClose(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(got[i]-want[i]) / (1 + math.Abs(want[i])); !(d <= tol) {
			t.Fatalf("%s: value %d = %.17g, want %.17g (relative difference %.3g > %.3g)", what, i, got[i], want[i], d, tol)
		}
	}
}

// ranpacData draws a small synthetic problem: c classes, d dims, per samples
// each, in shuffled order.
func ranpacData(seed uint64, c, d, per int) ([]float32, []int) {
	rng := rand.New(rand.NewPCG(seed, 7))
	means := make([]float64, c*d)
	for i := range means {
		means[i] = rng.NormFloat64()
	}
	x := make([]float32, 0, c*per*d) // allocated once: the benchmarks' peak RSS is then the head's, not append's garbage
	y := make([]int, 0, c*per)
	for _, i := range rng.Perm(c * per) {
		l := i % c
		for j := 0; j < d; j++ {
			x = append(x, float32(means[l*d+j]+1.5*rng.NormFloat64()))
		}
		y = append(y, l)
	}
	return x, y
}

func newRanPACT(t *testing.T, opts map[string]string) *RanPAC {
	t.Helper()
	h, err := NewRanPAC(ranpacConfig(t, opts))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestRanPACSearchPaths checks that the fast λ search (dual and primal
// tridiagonal forms) and PILOT's 17 LU solves agree on λ and the losses.
func TestRanPACSearchPaths(t *testing.T) {
	const d = 16
	x, y := ranpacData(3, 6, d, 30)                 // 180 rows: 144 fit
	for _, m := range []string{"0", "100", "400"} { // primal, primal, dual
		fast := newRanPACT(t, map[string]string{"M": m})
		slow := newRanPACT(t, map[string]string{"M": m, "search": "solve"})
		for _, h := range []*RanPAC{fast, slow} {
			if err := h.Learn(x, y); err != nil {
				t.Fatal(err)
			}
			if err := h.EndStage(); err != nil {
				t.Fatal(err)
			}
		}
		if fast.Lambda() != slow.Lambda() {
			t.Fatalf("M=%s: fast λ %g, slow λ %g\nfast %v\nslow %v", m, fast.Lambda(), slow.Lambda(), fast.Losses(), slow.Losses())
		}
		fl, sl := fast.Losses(), slow.Losses()
		best := argminFirst(sl)
		for i := range sl {
			// Around the optimum both are well conditioned and must agree
			// closely; at tiny λ both are dominated by rounding.
			if RidgeGrid[i] >= RidgeGrid[best]/100 && math.Abs(fl[i]-sl[i]) > 1e-6*sl[i] {
				t.Errorf("M=%s λ=%g: fast loss %.12g, slow %.12g", m, RidgeGrid[i], fl[i], sl[i])
			}
		}
	}
}

// TestRanPACIncremental checks the exactness properties: order and batch
// independence, Merge, Unlearn, RemoveClass (class_gram) and Save/Load.
func TestRanPACIncremental(t *testing.T) {
	const d = 12
	x, y := ranpacData(5, 5, d, 20)
	test, _ := ranpacData(6, 5, d, 4)
	opts := map[string]string{"M": "64", "lambda": "0.1", "class_gram": "true"}
	fit := func(parts ...[2]int) *RanPAC {
		h := newRanPACT(t, opts)
		for _, p := range parts {
			if err := h.Learn(x[p[0]*d:p[1]*d], y[p[0]:p[1]]); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.EndStage(); err != nil {
			t.Fatal(err)
		}
		return h
	}
	scores := func(h *RanPAC) []float64 {
		s, err := h.Scores(test)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	n := len(y)
	whole := scores(fit([2]int{0, n}))
	assertRanPACClose(t, "batched", scores(fit([2]int{0, 37}, [2]int{37, n})), whole, 1e-9)

	a, b := fit([2]int{0, 40}), fit([2]int{40, n})
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	assertRanPACClose(t, "merged", scores(a), whole, 1e-9)

	// Unlearn rows 60..n of the whole fit = fit of 0..60.
	u := fit([2]int{0, n})
	if err := u.Unlearn(x[60*d:], y[60:]); err != nil {
		t.Fatal(err)
	}
	assertRanPACClose(t, "unlearned", scores(u), scores(fit([2]int{0, 60})), 1e-8)
	many := make([]float32, 0, 100*d)
	for range 100 {
		many = append(many, x[:d]...)
	}
	if err := u.Unlearn(many, slices.Repeat([]int{y[0]}, 100)); err == nil || !strings.Contains(err.Error(), "cannot remove 100") {
		t.Fatalf("unlearning more samples than a class has: %v", err)
	}

	// RemoveClass 2 = never having learned class 2.
	r := fit([2]int{0, n})
	if err := r.RemoveClass(2); err != nil {
		t.Fatal(err)
	}
	xk, yk := subset(x, y, d, func(i int) bool { return y[i] != 2 })
	ref := newRanPACT(t, opts)
	if err := ref.Learn(xk, yk); err != nil {
		t.Fatal(err)
	}
	if err := ref.EndStage(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Classes(), []int{0, 1, 3, 4}) {
		t.Fatalf("classes after RemoveClass: %v", r.Classes())
	}
	assertRanPACClose(t, "removed class", scores(r), scores(ref), 1e-8)

	// Without class_gram RemoveClass is a clear error.
	plain := newRanPACT(t, map[string]string{"M": "64", "lambda": "0.1"})
	if err := plain.Learn(x, y); err != nil {
		t.Fatal(err)
	}
	if err := plain.RemoveClass(1); err == nil || !strings.Contains(err.Error(), "class_gram=true") {
		t.Fatalf("RemoveClass without class_gram: %v", err)
	}

	// Save/Load through the head file, mid-stage buffer included, then keep
	// learning: the same as never saving.
	for _, auto := range []bool{false, true} {
		o := map[string]string{"M": "64", "class_gram": "true"}
		if !auto {
			o["lambda"] = "0.1"
		}
		h1 := newRanPACT(t, o)
		h2 := newRanPACT(t, o)
		for _, h := range []*RanPAC{h1, h2} {
			if err := h.Learn(x[:50*d], y[:50]); err != nil {
				t.Fatal(err)
			}
			if err := h.EndStage(); err != nil {
				t.Fatal(err)
			}
			if err := h.Learn(x[50*d:80*d], y[50:80]); err != nil {
				t.Fatal(err)
			}
		}
		path := filepath.Join(t.TempDir(), "h.safetensors")
		names := []string{"a", "b", "c", "d", "e"}
		if err := Save(path, h1, Info{Classes: names}); err != nil {
			t.Fatal(err)
		}
		loaded, _, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range []Head{loaded, h2} {
			if err := h.Learn(x[80*d:], y[80:]); err != nil {
				t.Fatal(err)
			}
			if err := h.EndStage(); err != nil {
				t.Fatal(err)
			}
		}
		ls, err := loaded.Scores(test)
		if err != nil {
			t.Fatal(err)
		}
		if loaded.(*RanPAC).Lambda() != h2.Lambda() {
			t.Fatalf("λ after load %g, without %g", loaded.(*RanPAC).Lambda(), h2.Lambda())
		}
		assertRanPACClose(t, "after save/load", ls, scores(h2), 0)
	}
}

// TestRanPACScoring checks both scoring rules against a direct computation.
func TestRanPACScoring(t *testing.T) {
	const d = 8
	x, y := ranpacData(9, 3, d, 10)
	for _, scoring := range []string{"cosine", "linear"} {
		h := newRanPACT(t, map[string]string{"M": "20", "lambda": "1", "scoring": scoring, "seed": "42"})
		if err := h.Learn(x, y); err != nil {
			t.Fatal(err)
		}
		if err := h.EndStage(); err != nil {
			t.Fatal(err)
		}
		got, err := h.Scores(x[:d])
		if err != nil {
			t.Fatal(err)
		}
		w := RanPACProjection(42, d, 20)
		hx := make([]float64, 20)
		var hn float64
		for j := range hx {
			for k := 0; k < d; k++ {
				hx[j] += float64(x[k]) * float64(w[k*20+j])
			}
			hx[j] = max(hx[j], 0)
			hn += hx[j] * hx[j]
		}
		for c := 0; c < 3; c++ {
			var dot, wn float64
			for j := range hx {
				dot += hx[j] * h.wo[j*3+c]
				wn += h.wo[j*3+c] * h.wo[j*3+c]
			}
			if scoring == "cosine" {
				dot /= math.Sqrt(hn) * math.Sqrt(wn)
			}
			if math.Abs(dot-got[c]) > 1e-9*(1+math.Abs(dot)) {
				t.Fatalf("%s: class %d score %g, want %g", scoring, c, got[c], dot)
			}
		}
	}
}

// TestRanPACBadInput checks the clear errors.
func TestRanPACBadInput(t *testing.T) {
	spec, _ := Lookup("ranpac")
	if _, err := spec.Parse([][2]string{{"m", "5"}}); err == nil ||
		!strings.Contains(err.Error(), "class_gram (default false), lambda (default auto), ridge (default stable), scoring (default cosine), search (default fast), seed (default 0), split (default shuffled)") {
		t.Fatalf("unknown option: %v", err)
	}
	for k, v := range map[string]string{"M": "-1", "lambda": "0", "scoring": "dot", "split": "x", "search": "eig", "seed": "-3", "class_gram": "yes", "ridge": "exact"} {
		if _, err := spec.Parse([][2]string{{k, v}}); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("option %s=%s: %v", k, v, err)
		}
	}
	if _, err := NewRanPAC(RanPACConfig{M: 5}); err == nil || !strings.Contains(err.Error(), "scoring") {
		t.Errorf("a config without scoring: %v", err)
	}
	h := newRanPACT(t, map[string]string{"M": "16"})
	if err := h.EndStage(); err == nil || !strings.Contains(err.Error(), "no samples") {
		t.Fatalf("empty stage: %v", err)
	}
	x, y := ranpacData(1, 2, 4, 5)
	if _, err := h.Scores(x); err == nil || !strings.Contains(err.Error(), "EndStage") {
		t.Fatalf("Scores before EndStage: %v", err)
	}
	bad := slices.Clone(x)
	bad[3*4+2] = float32(math.NaN())
	if err := h.Learn(bad, y); err == nil || !strings.Contains(err.Error(), "row 3") {
		t.Fatalf("NaN row: %v", err)
	}
	bad[3*4+2] = float32(math.Inf(1))
	if err := h.Learn(bad, y); err == nil || !strings.Contains(err.Error(), "row 3") {
		t.Fatalf("Inf row: %v", err)
	}
	if h.Dim() != 0 {
		t.Fatal("a rejected batch must not fix the dimension")
	}
	if err := h.Learn(x, y); err != nil {
		t.Fatal(err)
	}
	if err := h.Learn(x[:9], y[:3]); err == nil || !strings.Contains(err.Error(), "dimension") {
		t.Fatalf("dimension mismatch: %v", err)
	}
	if err := h.Learn(x[:8], []int{0, -1}); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Fatalf("negative label: %v", err)
	}
	if err := h.EndStage(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Scores(x[:6]); err == nil {
		t.Fatal("Scores with a partial row must fail")
	}
	if err := h.Unlearn(x[:4], []int{7}); err == nil {
		t.Fatal("unlearning an unknown class must fail")
	}
	other := newRanPACT(t, map[string]string{"M": "17"})
	if err := h.Merge(other); err == nil || !strings.Contains(err.Error(), "M") {
		t.Fatalf("merge with another M: %v", err)
	}

	// A head file whose projection hash does not match is refused.
	ts, params, err := h.State()
	if err != nil {
		t.Fatal(err)
	}
	params["projection_fnv64"] = "0"
	if _, err := loadRanPAC(ts, params); err == nil || !strings.Contains(err.Error(), "projection") {
		t.Fatalf("tampered projection hash: %v", err)
	}
	params, _ = maps2(h)
	params["dim"] = "99999999"
	if _, err := loadRanPAC(ts, params); err == nil {
		t.Fatal("implausible dim must fail")
	}
}

func maps2(h *RanPAC) (map[string]string, error) {
	_, p, err := h.State()
	return p, err
}

// ridgeSolveCopy is ridgeSolve as it was before the in-place factorisation:
// Cholesky of a second n×n buffer holding G + λI (upper triangle), LU with
// partial pivoting on a fresh symmetric copy when that fails. g is only read.
func ridgeSolveCopy(g []float64, n int, lam float64, b blas64.General) (blas64.General, string, error) {
	a := make([]float64, n*n)
	fill := func() {
		for i := 0; i < n; i++ {
			copy(a[i*n+i:i*n+n], g[i*n+i:i*n+n])
			a[i*n+i] += lam
		}
	}
	fill()
	w := blas64.General{Rows: n, Cols: b.Cols, Stride: b.Cols, Data: slices.Clone(b.Data)}
	if linalg.CholUpper(a, n) {
		lapack64.Potrs(blas64.Triangular{N: n, Stride: n, Uplo: blas.Upper, Diag: blas.NonUnit, Data: a}, w)
		return w, "cholesky", nil
	}
	fill()
	linalg.Symmetrize(a, n)
	m := blas64.General{Rows: n, Cols: n, Stride: n, Data: a}
	ipiv := make([]int, n)
	if !lapack64.Getrf(m, ipiv) {
		return w, "", errNotPD
	}
	lapack64.Getrs(blas.NoTrans, m, w, ipiv)
	return w, "lu", nil
}

// sameW compares an in-place solve with the copy-based one: bit for bit when
// the registered BLAS is gonum's or fastBLAS (the same operations on the same
// values), within 1e-12 relative (to the largest |w|) under another BLAS.
func sameW(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	var scale float64
	for _, v := range want {
		scale = max(scale, math.Abs(v))
	}
	for i := range got {
		if math.Float64bits(got[i]) == math.Float64bits(want[i]) {
			continue
		}
		if linalg.GonumGemm() || math.Abs(got[i]-want[i]) > 1e-12*scale {
			t.Fatalf("%s: W[%d] = %v, copy-based solve %v", what, i, got[i], want[i])
		}
	}
}

// checkGKept checks that g's upper triangle and diagonal are bit for bit
// those of want (only its upper triangle is read) and that g's strict lower
// triangle mirrors them.
func checkGKept(t *testing.T, what string, g, want []float64, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			if math.Float64bits(g[i*n+j]) != math.Float64bits(want[i*n+j]) {
				t.Fatalf("%s: G[%d,%d] = %v after the solve, %v before", what, i, j, g[i*n+j], want[i*n+j])
			}
			if math.Float64bits(g[j*n+i]) != math.Float64bits(want[i*n+j]) {
				t.Fatalf("%s: G[%d,%d] = %v, not the mirror of G[%d,%d] = %v", what, j, i, g[j*n+i], i, j, want[i*n+j])
			}
		}
	}
}

// TestRidgeSolveInPlace checks that ridgeSolve, which factorises G + λI in
// G's own memory, leaves G's upper triangle bit for bit unchanged (whatever
// was below the diagonal), gives the copy-based solve's W, and does so on
// the LU fallback too.
func TestRidgeSolveInPlace(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, n := range []int{1, 2, 63, 64, 65, 255, 256, 257, 600} {
		for _, indefinite := range []bool{false, true} {
			what := fmt.Sprintf("n=%d indefinite=%v", n, indefinite)
			k := n/2 + 1 // rank-deficient Gram: λ decides the conditioning
			x := randSlice(r, k*n)
			g := make([]float64, n*n)
			gonum.Implementation{}.Dgemm(blas.Trans, blas.NoTrans, n, n, k, 1, x, n, x, n, 0, g, n)
			lam := 1e-3
			if indefinite {
				// G − 2I: indefinite, and λ = 1 leaves G + λI indefinite
				// but (almost surely) nonsingular, so the LU path answers.
				for i := 0; i < n; i++ {
					g[i*n+i] -= 2
				}
				lam = 1
			}
			for i := 0; i < n; i++ {
				for j := 0; j < i; j++ {
					g[i*n+j] = math.NaN() // below the diagonal: not G's, must not matter
				}
			}
			orig := slices.Clone(g)
			b := blas64.General{Rows: n, Cols: 3, Stride: 3, Data: randSlice(r, n*3)}
			bOrig := slices.Clone(b.Data)
			want, wantSolver, wantErr := ridgeSolveCopy(orig, n, lam, b)
			got, solver, err := ridgeSolve(g, n, lam, b)
			if (err != nil) != (wantErr != nil) || solver != wantSolver {
				t.Fatalf("%s: solver %q err %v; copy-based %q err %v", what, solver, err, wantSolver, wantErr)
			}
			// With k < n, G − I has eigenvalue −1 (G's null space).
			if (!indefinite && solver != "cholesky") || (indefinite && k < n && solver != "lu") {
				t.Fatalf("%s: solver %q, err %v", what, solver, err)
			}
			checkGKept(t, what, g, orig, n)
			if !slices.Equal(b.Data, bOrig) {
				t.Fatalf("%s: B changed", what)
			}
			if err == nil {
				sameW(t, what, got.Data, want.Data)
			}
			// A second solve on the restored G (lower triangle now the
			// mirror) gives the same W bit for bit and keeps G again.
			again, _, err := ridgeSolve(g, n, lam, b)
			if err == nil && !slices.Equal(again.Data, got.Data) {
				t.Fatalf("%s: second solve differs", what)
			}
			checkGKept(t, what+" (second solve)", g, orig, n)
		}
	}
}

// TestRanPACSolveKeepsG checks, on a head whose G spans several Cholesky
// panels, that EndStage's in-place solve leaves G bit for bit as Learn left
// it, that W_o is the copy-based solve's, and that solving again changes
// neither W_o nor a byte of the saved head file.
func TestRanPACSolveKeepsG(t *testing.T) {
	const d = 24
	x, y := ranpacData(31, 6, d, 50) // 300 rows
	for _, lam := range []string{"auto", "0.5"} {
		h := newRanPACT(t, map[string]string{"M": "700", "lambda": lam})
		if err := h.Learn(x, y); err != nil {
			t.Fatal(err)
		}
		p := h.Width()
		before := slices.Clone(h.g)
		if err := h.EndStage(); err != nil {
			t.Fatal(err)
		}
		if h.Solver() != "cholesky" {
			t.Fatalf("λ=%s: solver %q", lam, h.Solver())
		}
		checkGKept(t, "λ="+lam, h.g, before, p)

		cls := h.Classes()
		c := len(cls)
		b := blas64.General{Rows: p, Cols: c, Stride: c, Data: make([]float64, p*c)}
		for j, l := range cls {
			for i, v := range h.q[l] {
				b.Data[i*c+j] = v
			}
		}
		want, _, err := ridgeSolveCopy(before, p, h.Lambda(), b)
		if err != nil {
			t.Fatal(err)
		}
		sameW(t, "λ="+lam+" W_o", h.wo, want.Data)

		dir := t.TempDir()
		names := []string{"a", "b", "c", "d", "e", "f"}
		file1, file2 := filepath.Join(dir, "1.safetensors"), filepath.Join(dir, "2.safetensors")
		if err := Save(file1, h, Info{Classes: names}); err != nil {
			t.Fatal(err)
		}
		wo := slices.Clone(h.wo)
		h.wo = nil
		if _, err := h.Scores(x[:d]); err != nil { // solves again
			t.Fatal(err)
		}
		if !slices.Equal(h.wo, wo) {
			t.Fatalf("λ=%s: W_o differs after a second solve", lam)
		}
		checkGKept(t, "λ="+lam+" second solve", h.g, before, p)
		if err := Save(file2, h, Info{Classes: names}); err != nil {
			t.Fatal(err)
		}
		b1, err := os.ReadFile(file1)
		if err != nil {
			t.Fatal(err)
		}
		b2, err := os.ReadFile(file2)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(b1, b2) {
			t.Fatalf("λ=%s: the saved head file changed after a second solve", lam)
		}
	}
}

// TestRanPACRefresh: after Merge, Unlearn or RemoveClass with no new stage,
// Refresh re-solves W_o; with a fixed λ the merged head scores as the head
// that learned both stages, and unlearning a stage gives back the head of
// the other.
func TestRanPACRefresh(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	const d = 12
	data := func(classes []int, per int) ([]float32, []int) {
		var x []float32
		var y []int
		for _, c := range classes {
			for i := 0; i < per; i++ {
				for j := 0; j < d; j++ {
					v := float32(r.NormFloat64())
					if j == c {
						v += 4
					}
					x = append(x, v)
				}
				y = append(y, c)
			}
		}
		return x, y
	}
	xa, ya := data([]int{0, 1, 2}, 20)
	xb, yb := data([]int{3, 4, 5}, 20)
	xt, _ := data([]int{0, 1, 2, 3, 4, 5}, 3)
	opts := map[string]string{"M": "64", "lambda": "0.5", "class_gram": "true"}
	fit := func(stages ...[2]any) *RanPAC {
		h := newHead(t, "ranpac", opts).(*RanPAC)
		for _, s := range stages {
			if err := h.Learn(s[0].([]float32), s[1].([]int)); err != nil {
				t.Fatal(err)
			}
			if err := h.EndStage(); err != nil {
				t.Fatal(err)
			}
		}
		return h
	}
	a, b := [2]any{xa, ya}, [2]any{xb, yb}
	both := fit(a, b)
	merged := fit(a)
	if err := merged.Merge(fit(b)); err != nil {
		t.Fatal(err)
	}
	if err := Refresh(merged); err != nil {
		t.Fatal(err)
	}
	closeScores(t, "merge", solvedScores(t, merged, xt), solvedScores(t, both, xt))

	// Unlearn stage b, or remove its classes: the head of stage a.
	onlyA := fit(a)
	un := fit(a, b)
	if err := un.Unlearn(xb, yb); err != nil {
		t.Fatal(err)
	}
	if err := Refresh(un); err != nil {
		t.Fatal(err)
	}
	closeScores(t, "unlearn", solvedScores(t, un, xt), solvedScores(t, onlyA, xt))
	rm := fit(a, b)
	for _, c := range []int{3, 4, 5} {
		if err := rm.RemoveClass(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := Refresh(rm); err != nil {
		t.Fatal(err)
	}
	closeScores(t, "remove", solvedScores(t, rm, xt), solvedScores(t, onlyA, xt))

	// λ selected by a stage is reused; a head that never selected one and
	// has no fixed λ cannot be refreshed.
	auto := newHead(t, "ranpac", map[string]string{"M": "64"}).(*RanPAC)
	if err := auto.Learn(xa, ya); err != nil {
		t.Fatal(err)
	}
	if err := auto.EndStage(); err != nil {
		t.Fatal(err)
	}
	lam := auto.Lambda()
	other := newHead(t, "ranpac", map[string]string{"M": "64"}).(*RanPAC)
	if err := other.Learn(xb, yb); err != nil {
		t.Fatal(err)
	}
	other.stageX, other.stageY = nil, nil // statistics without a finished stage
	if err := Refresh(other); err == nil || !strings.Contains(err.Error(), "no λ") {
		t.Errorf("Refresh without any λ: %v", err)
	}
	if err := auto.Merge(other); err != nil {
		t.Fatal(err)
	}
	if err := Refresh(auto); err != nil || auto.Lambda() != lam {
		t.Errorf("Refresh after Merge: %v, λ %g (want %g)", err, auto.Lambda(), lam)
	}
}

// closeScores requires two score matrices to agree to 1e-9 relative.
func closeScores(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d scores, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > 1e-9*(1+math.Abs(want[i])) {
			t.Fatalf("%s: score %d is %v, want %v", what, i, got[i], want[i])
		}
	}
}

// solvedScores is Scores without the EndStage that scoresOf runs first.
func solvedScores(t *testing.T, h Head, x []float32) []float64 {
	t.Helper()
	s, err := h.Scores(x)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRanPACSearchBand runs TestRanPACSearchPaths's comparison with the
// native LAPACK's band reduction forced on small matrices (gridBandMin 50,
// half-bandwidth 8): the dual (n = 144) and primal (n = 100) searches then
// reduce to a band, and must agree with PILOT's 17 LU solves as the
// tridiagonal path does; then TestRanPACGoldens with the same setting (λ,
// losses and predictions against numpy). It needs the native LAPACK
// (CL_BLAS=openblas).
func TestRanPACSearchBand(t *testing.T) {
	if linalg.NativeLAPACK() == nil {
		t.Skip("no native LAPACK selected; run with CL_BLAS=openblas (and libopenblas0 installed) to test the band path")
	}
	defer func(m, kd int) { gridBandMin, gridBandKD = m, kd }(gridBandMin, gridBandKD)
	gridBandMin, gridBandKD = 50, 8
	TestRanPACSearchPaths(t)
	TestRanPACGoldens(t)
}

// TestRanPACStageCache checks that the λ search on Learn's kept H (one Learn
// per stage, primal search) gives the losses of the search that projects
// the stage again (the same rows learned in two calls, which keeps no H),
// and that Unlearn drops the kept H.
func TestRanPACStageCache(t *testing.T) {
	const d = 16
	x, y := ranpacData(9, 5, d, 40) // 200 rows: 160 fit ≥ M = 120
	for _, search := range []string{"fast", "solve"} {
		one := newRanPACT(t, map[string]string{"M": "120", "search": search})
		two := newRanPACT(t, map[string]string{"M": "120", "search": search})
		if err := one.Learn(x, y); err != nil {
			t.Fatal(err)
		}
		if one.stageH == nil || one.stageG == nil {
			t.Fatal("one Learn of a primal stage kept no H or no stage Gram")
		}
		half := len(y) / 2
		if err := two.Learn(x[:half*d], y[:half]); err != nil {
			t.Fatal(err)
		}
		if err := two.Learn(x[half*d:], y[half:]); err != nil {
			t.Fatal(err)
		}
		if two.stageH != nil || two.stageG != nil {
			t.Fatal("a second Learn in the stage kept H or the stage Gram")
		}
		// G is the same sum, grouped differently (the kept path adds the
		// stage's Gram to G once).
		p := one.Width()
		for i := 0; i < p; i++ {
			for j := i; j < p; j++ {
				if a, b := one.g[i*p+j], two.g[i*p+j]; math.Abs(a-b) > 1e-12*math.Abs(b) {
					t.Fatalf("%s: G[%d,%d] = %.17g with the kept Gram, %.17g without", search, i, j, a, b)
				}
			}
		}
		for _, h := range []*RanPAC{one, two} {
			if err := h.EndStage(); err != nil {
				t.Fatal(err)
			}
			if h.stageH != nil {
				t.Fatal("EndStage left the kept H")
			}
		}
		if one.Lambda() != two.Lambda() {
			t.Fatalf("%s: λ %g with the kept H, %g without", search, one.Lambda(), two.Lambda())
		}
		for i, l := range one.Losses() {
			if w := two.Losses()[i]; math.Abs(l-w) > 1e-12*math.Abs(w) {
				t.Errorf("%s: loss[%d] = %.17g with the kept H, %.17g without", search, i, l, w)
			}
		}
	}
	h := newRanPACT(t, map[string]string{"M": "120"})
	if err := h.Learn(x, y); err != nil {
		t.Fatal(err)
	}
	if err := h.Unlearn(x[:d], y[:1]); err != nil {
		t.Fatal(err)
	}
	if h.stageH != nil {
		t.Fatal("Unlearn kept H of rows it removed")
	}
	if err := h.EndStage(); err != nil {
		t.Fatal(err)
	}
}

// TestRanPACRepeatable checks that a stage fitted twice on the same path
// gives the same bits: losses, λ and scores (primal and dual searches; on a
// native LAPACK also with the band reduction forced).
func TestRanPACRepeatable(t *testing.T) {
	const d = 16
	x, y := ranpacData(21, 6, d, 50) // 300 rows: 240 fit
	bands := []int{gridBandMin}
	if linalg.NativeLAPACK() != nil {
		bands = append(bands, 50)
	}
	defer func(m, kd int) { gridBandMin, gridBandKD = m, kd }(gridBandMin, gridBandKD)
	for _, bm := range bands {
		gridBandMin, gridBandKD = bm, 8
		for _, m := range []string{"200", "400"} { // primal, dual
			var losses [][]float64
			var scores [][]float64
			for range 2 {
				h := newRanPACT(t, map[string]string{"M": m})
				if err := h.Learn(x, y); err != nil {
					t.Fatal(err)
				}
				if err := h.EndStage(); err != nil {
					t.Fatal(err)
				}
				sc, err := h.Scores(x[:50*d])
				if err != nil {
					t.Fatal(err)
				}
				losses, scores = append(losses, h.Losses()), append(scores, sc)
			}
			if !slices.Equal(losses[0], losses[1]) || !slices.Equal(scores[0], scores[1]) {
				t.Fatalf("M=%s, band from %d: two fits differ (losses %v / %v)", m, bm, losses[0], losses[1])
			}
		}
	}
}

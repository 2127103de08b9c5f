package heads

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"
)

// goldenData is the synthetic set of testdata/make_goldens.py.
type goldenData struct {
	xtr, xte []float32
	ytr, yte []int
	d, c     int
}

func loadGolden(t *testing.T) goldenData {
	t.Helper()
	f32 := func(name string) ([]float32, []int) {
		v, s := readNpy(t, filepath.Join("testdata", name))
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = float32(x)
		}
		return out, s
	}
	ints := func(name string) []int {
		v, _ := readNpy(t, filepath.Join("testdata", name))
		out := make([]int, len(v))
		for i, x := range v {
			out[i] = int(x)
		}
		return out
	}
	var g goldenData
	var shape []int
	g.xtr, shape = f32("train_x.npy")
	g.xte, _ = f32("test_x.npy")
	g.ytr, g.yte = ints("train_y.npy"), ints("test_y.npy")
	g.d = shape[1]
	for _, y := range g.ytr {
		g.c = max(g.c, y+1)
	}
	return g
}

func argmax(s []float64, c int) []int {
	out := make([]int, len(s)/c)
	for i := range out {
		best := 0
		for j := 1; j < c; j++ {
			if s[i*c+j] > s[i*c+best] {
				best = j
			}
		}
		out[i] = best
	}
	return out
}

// fit learns g's training rows in batches of 37 rows and ends the stage.
func fit(t testing.TB, h Head, x []float32, y []int, d int) {
	t.Helper()
	const b = 37
	for i := 0; i < len(y); i += b {
		j := min(i+b, len(y))
		if err := h.Learn(x[i*d:j*d], y[i:j]); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.EndStage(); err != nil {
		t.Fatal(err)
	}
}

func newHead(t testing.TB, method string, opts map[string]string) Head {
	t.Helper()
	spec, ok := Lookup(method)
	if !ok {
		t.Fatalf("method %q not registered", method)
	}
	cfg, err := spec.Parse(sortedPairs(opts))
	if err != nil {
		t.Fatal(err)
	}
	h, err := spec.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// ranpacConfig is the RanPAC configuration of key=value options (through
// the one parser, as the CLI's --set).
func ranpacConfig(t testing.TB, opts map[string]string) RanPACConfig {
	t.Helper()
	cfg := DefaultRanPACConfig()
	if err := ParseInto(&cfg, sortedPairs(opts)); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestGoldens(t *testing.T) {
	g := loadGolden(t)
	cases := []struct {
		golden, method string
		opts           map[string]string
		tol            float64
	}{
		{"simplecil", "simplecil", nil, 1e-12},
		{"simplecil", "aper", nil, 1e-12},
		{"ncm", "ncm", nil, 1e-9},
		{"lda", "lda", nil, 1e-8},
		{"fecam_paper", "fecam", nil, 1e-8},
		{"fecam_paper_g2", "fecam", map[string]string{"gamma2": "1"}, 1e-8},
		{"fecam_pilot", "fecam", map[string]string{"variant": "pilot"}, 1e-8},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%s", tc.golden, tc.method), func(t *testing.T) {
			want, shape := readNpy(t, filepath.Join("testdata", tc.golden+"_scores.npy"))
			wantPred, _ := readNpy(t, filepath.Join("testdata", tc.golden+"_pred.npy"))
			h := newHead(t, tc.method, tc.opts)
			fit(t, h, g.xtr, g.ytr, g.d)
			got, err := h.Scores(g.xte)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) || shape[1] != g.c {
				t.Fatalf("got %d scores, want %d", len(got), len(want))
			}
			var worst float64
			for i := range got {
				worst = max(worst, math.Abs(got[i]-want[i])/(1+math.Abs(want[i])))
			}
			if worst > tc.tol {
				t.Errorf("max relative score difference %.3g > %.3g", worst, tc.tol)
			}
			pred := argmax(got, g.c)
			correct := 0
			for i, p := range pred {
				if p != int(wantPred[i]) {
					t.Errorf("row %d: predicted %d, numpy %d", i, p, int(wantPred[i]))
				}
				if p == g.yte[i] {
					correct++
				}
			}
			t.Logf("accuracy %.3f, max relative score difference %.2g", float64(correct)/float64(len(pred)), worst)
		})
	}
}

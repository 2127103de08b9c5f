package heads

import (
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cl-dev/cl/internal/safetensors"
)

// smallRanPAC is a solved RanPAC head (M = 16, class_gram on) with a
// pending stage, for the loader tests.
func smallRanPAC(t *testing.T) *RanPAC {
	t.Helper()
	x, y := ranpacData(3, 3, 5, 8)
	cfg := DefaultRanPACConfig()
	cfg.M, cfg.ClassGram = 16, true
	h, err := NewRanPAC(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Learn(x, y); err != nil {
		t.Fatal(err)
	}
	if err := h.EndStage(); err != nil {
		t.Fatal(err)
	}
	if err := h.Learn(x[:5*4], y[:4]); err != nil { // pending stage rows
		t.Fatal(err)
	}
	if _, err := h.Scores(x); err != nil { // W_o solved again
		t.Fatal(err)
	}
	return h
}

// TestRanPACLoadRefusesNonFinite poisons one value of every statistic a
// RanPAC head file holds (and the λ parameter) and requires Load to refuse
// the file with an error naming the file and the tensor.
func TestRanPACLoadRefusesNonFinite(t *testing.T) {
	dir := t.TempDir()
	info := Info{Classes: []string{"a", "b", "c"}}
	for _, name := range []string{"G", "Q", "Wo", "class_gram", "stage_x", "losses"} {
		for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
			if name == "losses" && bad > 0 {
				continue // +Inf is a legitimate loss (singular system)
			}
			h := smallRanPAC(t)
			switch name {
			case "G":
				h.g[3] = bad
			case "Q":
				h.q[1][2] = bad
			case "Wo":
				h.wo[4] = bad
			case "class_gram":
				h.gc[2][5] = bad
			case "stage_x":
				h.stageX[7] = float32(bad)
			case "losses":
				h.losses[2] = bad
			}
			path := filepath.Join(dir, "h.safetensors")
			if err := Save(path, h, info); err != nil {
				t.Fatal(err)
			}
			_, _, err := Load(path)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `"`+name+`"`) {
				t.Errorf("%s = %v: Load error %v; want one naming %s and tensor %q", name, bad, err, path, name)
			}
		}
	}
	h := smallRanPAC(t)
	ts, params, err := h.State()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"NaN", "+Inf", "-1"} {
		p := maps.Clone(params)
		p["lambda_selected"] = v
		if _, err := loadRanPAC(ts, p); err == nil || !strings.Contains(err.Error(), "lambda_selected") {
			t.Errorf("lambda_selected=%s: %v", v, err)
		}
	}
	p := maps.Clone(params)
	p["lambda"] = "NaN"
	if _, err := loadRanPAC(ts, p); err == nil || !strings.Contains(err.Error(), "lambda") {
		t.Errorf("lambda=NaN: %v", err)
	}
}

// TestStatHeadsLoadRefuseNonFinite does the same for FeCAM's and LDA's
// statistics (sums, outer products, scatter).
func TestStatHeadsLoadRefuseNonFinite(t *testing.T) {
	g := loadGolden(t)
	dir := t.TempDir()
	for _, tc := range []struct{ method, tensor string }{{"fecam", "sums"}, {"fecam", "outer"}, {"lda", "sums"}, {"lda", "scatter"}} {
		h := newHead(t, tc.method, nil)
		fit(t, h, g.xtr, g.ytr, g.d)
		var st *classStats
		switch v := h.(type) {
		case *FeCAM:
			st = v.st
		case *LDA:
			st = v.st
		}
		switch tc.tensor {
		case "sums":
			st.cls[st.labels()[0]].sum[1] = math.NaN()
		case "outer":
			st.cls[st.labels()[1]].outer[2] = math.Inf(1)
		case "scatter":
			st.scatter[3] = math.NaN()
		}
		names := make([]string, g.c)
		for i := range names {
			names[i] = string(rune('a' + i))
		}
		path := filepath.Join(dir, tc.method+".safetensors")
		if err := Save(path, h, Info{Classes: names}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `"`+tc.tensor+`"`) {
			t.Errorf("%s with a bad %s: Load error %v", tc.method, tc.tensor, err)
		}
	}
}

// withBudget runs f with the memory budget set to b bytes.
func withBudget(t *testing.T, b uint64, f func()) {
	t.Helper()
	saved := memoryBudget
	memoryBudget = func() uint64 { return b }
	defer func() { memoryBudget = saved }()
	f()
}

// TestRanPACMemoryPlan checks that a width or a file whose memory exceeds
// the machine is refused before anything is allocated, naming the option or
// the sizes.
func TestRanPACMemoryPlan(t *testing.T) {
	withBudget(t, 16e9, func() {
		spec, _ := Lookup("ranpac")
		_, err := spec.Parse([][2]string{{"M", "200000"}})
		if err == nil || !strings.Contains(err.Error(), "M=200000") || !strings.Contains(err.Error(), "320 GB") {
			t.Errorf("M=200000: %v", err)
		}
		_, err = spec.Parse([][2]string{{"M", "40000"}})
		if err == nil || !strings.Contains(err.Error(), "M=40000") || !strings.Contains(err.Error(), "12.8 GB") || !strings.Contains(err.Error(), "16 GB") {
			t.Errorf("M=40000 with 16 GB: %v", err)
		}
		if _, err := spec.Parse([][2]string{{"M", "10000"}}); err != nil {
			t.Errorf("M=10000 with 16 GB: %v", err)
		}
		// M = 0 on very wide features: P = D.
		cfg := DefaultRanPACConfig()
		cfg.M = 0
		h, _ := NewRanPAC(cfg)
		if err := h.Learn(make([]float32, 50000), []int{0}); err == nil || !strings.Contains(err.Error(), "50000-dimensional") {
			t.Errorf("M=0, D=50000: %v", err)
		}
		if h.g != nil {
			t.Error("G was allocated before the refusal")
		}
	})
	// A crafted file: tiny G (M = 256) but dim = 2^20, so the projection
	// alone would be 2.1 GB; with a 1 GB budget it is refused before the
	// projection exists.
	h := smallRanPAC(t)
	ts, params, _ := h.State()
	withBudget(t, 1e9, func() {
		p := maps.Clone(params)
		p["dim"] = "1048576"
		p["M"] = "256"
		big := map[string]safetensors.Tensor{}
		for k, v := range ts {
			big[k] = v
		}
		c := int64(len(h.Classes()))
		big["G"] = safetensors.FromFloat64s([]int64{256, 256}, make([]float64, 256*256))
		big["Q"] = safetensors.FromFloat64s([]int64{256, c}, make([]float64, 256*int(c)))
		big["Wo"] = big["Q"]
		big["class_gram"] = safetensors.FromFloat64s([]int64{c, 256, 256}, make([]float64, int(c)*256*256))
		big["stage_x"] = safetensors.FromFloat32s([]int64{4, 1 << 20}, make([]float32, 4<<20))
		_, err := loadRanPAC(big, p)
		if err == nil || !strings.Contains(err.Error(), "projection 2.15 GB") || !strings.Contains(err.Error(), "1 GB") {
			t.Errorf("crafted dim=2^20: %v", err)
		}
	})
	// A tensor whose declared shape its bytes do not back is refused by
	// name before anything is derived from the shape.
	p := maps.Clone(params)
	short := maps.Clone(ts)
	gt := short["G"]
	gt.Data = gt.Data[:64]
	short["G"] = gt
	if _, err := loadRanPAC(short, p); err == nil || !strings.Contains(err.Error(), `"G"`) {
		t.Errorf("G with 64 bytes: %v", err)
	}
}

// TestRanPACProgress checks the phases a stage reports: learning, the λ
// search, the solve, each ending with done == total, in that order.
func TestRanPACProgress(t *testing.T) {
	x, y := ranpacData(5, 4, 6, 30)
	cfg := DefaultRanPACConfig()
	cfg.M = 300
	h, _ := NewRanPAC(cfg)
	var phases []string
	last := map[string][2]int{}
	if !SetProgress(h, func(phase string, done, total int) {
		if len(phases) == 0 || phases[len(phases)-1] != phase {
			phases = append(phases, phase)
		}
		last[phase] = [2]int{done, total}
	}) {
		t.Fatal("RanPAC does not report progress")
	}
	if err := h.Learn(x, y); err != nil {
		t.Fatal(err)
	}
	if err := h.EndStage(); err != nil {
		t.Fatal(err)
	}
	want := []string{"learning rows", "λ search: kernels", "λ search: reduction", "solve (Cholesky of G + λI)"}
	if !slices.Equal(phases, want) {
		t.Fatalf("phases %q, want %q", phases, want)
	}
	for p, dt := range last {
		if dt[0] != dt[1] {
			t.Errorf("%s ended at %d of %d", p, dt[0], dt[1])
		}
	}
	if SetProgress(NewSimpleCIL(), nil) {
		t.Error("SimpleCIL claims to report progress")
	}
}

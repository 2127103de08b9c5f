package heads

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cl-dev/cl/internal/safetensors"
)

// jointData is n rows per class of c Gaussian classes in d dimensions
// (class k's centre 1.2·e_k), labels 5·k: overlapping, so the fit matters.
func jointData(seed uint64, c, n, d int) ([]float32, []int) {
	r := rand.New(rand.NewPCG(seed, 11))
	var x []float32
	var y []int
	for k := 0; k < c; k++ {
		for i := 0; i < n; i++ {
			for j := 0; j < d; j++ {
				v := r.NormFloat64()
				if j == k%d {
					v += 1.2
				}
				x = append(x, float32(v))
			}
			y = append(y, 5*k)
		}
	}
	return x, y
}

func newJoint(t *testing.T, x []float32, y []int) *Joint {
	t.Helper()
	h := NewJoint(DefaultJointConfig())
	if err := h.Learn(x, y); err != nil {
		t.Fatal(err)
	}
	if err := h.EndStage(); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestJointGradientFiniteDifferences: the loss's gradient equals central
// finite differences of the loss (relative error < 1e-6) at a random point.
func TestJointGradientFiniteDifferences(t *testing.T) {
	const c, d = 3, 4
	x, y5 := jointData(1, c, 7, d)
	y := make([]int, len(y5))
	for i, l := range y5 {
		y[i] = l / 5
	}
	mu, sd := standardisation(x, d)
	loss := softmaxLoss(x, d, y, c, mu, sd, 0.03)
	r := rand.New(rand.NewPCG(3, 4))
	theta := make([]float64, d*c+c)
	for i := range theta {
		theta[i] = r.NormFloat64() * 0.5
	}
	_, g := loss(theta)
	const h = 1e-6
	for i := range theta {
		p, m := slices.Clone(theta), slices.Clone(theta)
		p[i] += h
		m[i] -= h
		fp, _ := loss(p)
		fm, _ := loss(m)
		fd := (fp - fm) / (2 * h)
		if math.Abs(fd-g[i]) > 1e-6*math.Max(1, math.Abs(fd)) {
			t.Errorf("∂f/∂θ_%d: analytic %.9g, finite differences %.9g", i, g[i], fd)
		}
	}
}

// TestJointSeparable: well separated classes are all predicted right, and
// Scores' columns follow Classes().
func TestJointSeparable(t *testing.T) {
	const c, d = 4, 6
	var x []float32
	var y []int
	for k := 0; k < c; k++ {
		for i := 0; i < 5; i++ {
			for j := 0; j < d; j++ {
				v := float32((k*7+i*3+j*5)%11) / 100
				if j == k {
					v += 10
				}
				x = append(x, v)
			}
			y = append(y, 10+k)
		}
	}
	h := newJoint(t, x, y)
	if !slices.Equal(h.Classes(), []int{10, 11, 12, 13}) {
		t.Fatalf("classes %v", h.Classes())
	}
	s, err := h.Scores(x)
	if err != nil {
		t.Fatal(err)
	}
	for i := range y {
		row := s[i*c : (i+1)*c]
		if best := slices.Index(row, slices.Max(row)); h.Classes()[best] != y[i] {
			t.Errorf("row %d (class %d) predicted %d", i, y[i], h.Classes()[best])
		}
	}
	if !IsUpperBound(h) || IsUpperBound(NewNCM()) {
		t.Error("IsUpperBound")
	}
}

// TestJointEditsEqualRefit: Unlearn, RemoveClass and Merge leave exactly the
// head fitted on the remaining rows in the same order (bitwise equal scores).
func TestJointEditsEqualRefit(t *testing.T) {
	const c, n, d = 4, 12, 5
	x, y := jointData(2, c, n, d)
	probe, _ := jointData(9, c, 3, d)
	scores := func(h *Joint) []float64 {
		t.Helper()
		s, err := h.Scores(probe)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Unlearn rows 3..9 (class 0) and 20 (class 5).
	full := newJoint(t, x, y)
	gone := []int{3, 4, 5, 6, 7, 8, 9, 20}
	var ux []float32
	var uy []int
	var kx []float32
	var ky []int
	for i := range y {
		if slices.Contains(gone, i) {
			ux, uy = append(ux, x[i*d:(i+1)*d]...), append(uy, y[i])
		} else {
			kx, ky = append(kx, x[i*d:(i+1)*d]...), append(ky, y[i])
		}
	}
	if err := full.Unlearn(ux, uy); err != nil {
		t.Fatal(err)
	}
	if err := Refresh(full); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(scores(full), scores(newJoint(t, kx, ky))) {
		t.Error("Unlearn differs from fitting the remaining rows")
	}
	// RemoveClass 10 (rows 24..35).
	h := newJoint(t, x, y)
	if err := h.RemoveClass(10); err != nil {
		t.Fatal(err)
	}
	Refresh(h)
	rest := slices.Concat(x[:24*d], x[36*d:])
	restY := slices.Concat(y[:24], y[36:])
	if !slices.Equal(scores(h), scores(newJoint(t, rest, restY))) || slices.Contains(h.Classes(), 10) {
		t.Error("RemoveClass differs from fitting without the class")
	}
	// Merge: A then B equals learning A's and B's rows in that order.
	a, b := newJoint(t, x[:20*d], y[:20]), newJoint(t, x[20*d:], y[20:])
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	Refresh(a)
	if !slices.Equal(scores(a), scores(newJoint(t, x, y))) {
		t.Error("Merge differs from fitting both")
	}
}

// TestJointRefusals: rows it never learned, stale scores, other heads.
func TestJointRefusals(t *testing.T) {
	x, y := jointData(4, 3, 5, 4)
	h := newJoint(t, x, y)
	before, _ := h.Scores(x)
	bad := slices.Clone(x[:4])
	bad[0] += 1e-3
	if err := h.Unlearn(bad, y[:1]); err == nil || !strings.Contains(err.Error(), "row 0") {
		t.Errorf("unlearning a row never learned: %v", err)
	}
	if err := h.Unlearn(slices.Concat(x[:4], x[:4]), []int{y[0], y[0]}); err == nil {
		t.Error("unlearned a row twice")
	}
	if after, err := h.Scores(x); err != nil || !slices.Equal(before, after) {
		t.Error("a refused Unlearn changed the head")
	}
	if err := h.Merge(NewNCM()); err == nil {
		t.Error("merged an ncm head")
	}
	other := NewJoint(JointConfig{Lambda: 1, Iterations: 100})
	other.Learn(x, y)
	if err := h.Merge(other); err == nil || !strings.Contains(err.Error(), "options") {
		t.Errorf("merged other options: %v", err)
	}
	h.Learn(x[:4], y[:1])
	if _, err := h.Scores(x); err == nil || !strings.Contains(err.Error(), "EndStage") {
		t.Errorf("scored a stale fit: %v", err)
	}
	if err := h.RemoveClass(99); err == nil {
		t.Error("removed a class it does not have")
	}
	spec, _ := Lookup("joint")
	if _, err := spec.Parse([][2]string{{"lambda", "0"}}); err == nil {
		t.Error("lambda=0 accepted")
	}
}

// TestJointStateRoundTrip: State then Load scores bit for bit the same;
// a stale head loads stale; tampered fits are refused.
func TestJointStateRoundTrip(t *testing.T) {
	x, y := jointData(5, 3, 6, 4)
	h := newJoint(t, x, y)
	spec, _ := Lookup("joint")
	tensors, params, err := h.State()
	if err != nil {
		t.Fatal(err)
	}
	back, err := spec.Load(tensors, params)
	if err != nil {
		t.Fatal(err)
	}
	s1, _ := h.Scores(x)
	s2, err := back.Scores(x)
	if err != nil || !slices.Equal(s1, s2) || back.(*Joint).Iterations() != h.Iterations() {
		t.Fatalf("round trip: %v", err)
	}
	for name, tamper := range map[string]func(map[string]safetensors.Tensor){
		"w NaN": func(m map[string]safetensors.Tensor) {
			w := m["w"].Float64s()
			w[2] = math.NaN()
			m["w"] = safetensors.FromFloat64s(m["w"].Shape, w)
		},
		"sd 0": func(m map[string]safetensors.Tensor) {
			sd := m["sd"].Float64s()
			sd[0] = 0
			m["sd"] = safetensors.FromFloat64s(m["sd"].Shape, sd)
		},
		"cols": func(m map[string]safetensors.Tensor) {
			m["cols"] = safetensors.FromInt64s([]int64{3}, []int64{0, 5, 11})
		},
		"x Inf": func(m map[string]safetensors.Tensor) {
			v := m["x"].Float32s()
			v[7] = float32(math.Inf(1))
			m["x"] = safetensors.FromFloat32s(m["x"].Shape, v)
		},
		"negative label": func(m map[string]safetensors.Tensor) {
			v := m["y"].Int64s()
			v[1] = -1
			m["y"] = safetensors.FromInt64s(m["y"].Shape, v)
		},
	} {
		t2, p2, _ := h.State()
		tamper(t2)
		if _, err := spec.Load(t2, p2); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
	h.Learn(x[:4], y[:1])
	t3, p3, _ := h.State()
	stale, err := spec.Load(t3, p3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stale.Scores(x); err == nil {
		t.Error("a head saved before its fit scores")
	}
	if err := stale.EndStage(); err != nil {
		t.Fatal(err)
	}
}

package learners

import (
	"math"
	"strconv"
	"testing"
)

// TestEASEGolden: against testdata/prompts/make_goldens.py, stage 1 of
// EASE on the tiny ViT: two SGD steps of the new adapter set and the proxy
// cosine head (loss, gradients of every adapter tensor, the head and σ, and
// the updated values within 1e-4), the prototypes of both subspaces
// including the completed ones, and the re-weighted scores of test images
// (within 1e-4); adapter set 0 bit-identical throughout.
func TestEASEGolden(t *testing.T) {
	env := tinyEnv(t)
	g := readGolden(t, "ease.safetensors")
	const tol = 1e-4
	e, err := NewEASE(env, map[string]string{"bottleneck": "8", "lr": "0.025", "momentum": "0.9", "wd": "0.0005", "alpha": "0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	W, C := e.pe.w.Width, 6
	e.names = make([]string, C)
	set := func(i int) easeAdapter {
		var a easeAdapter
		for _, s := range e.specs {
			a = append(a, g.f32("set"+strconv.Itoa(i)+"/"+s.Name))
		}
		return a
	}
	set0 := set(0)
	frozen := make([][]float32, len(set0))
	for k := range set0 {
		frozen[k] = append([]float32(nil), set0[k]...)
	}
	// Stage 0: set 0 given, prototypes of classes 0 and 1.
	e.Adapters = []easeAdapter{set0}
	e.StageClasses = [][]int{{0, 1}}
	e.Protos = [][]float32{make([]float32, C*W)}
	x0 := g.f32("stage0/input")
	f0, err := e.features(0, x0, 4)
	if err != nil {
		t.Fatal(err)
	}
	lab0 := []int{}
	for _, v := range g.i64("stage0/labels") {
		lab0 = append(lab0, int(v))
	}
	e.setPrototypes(0, f0, lab0)

	// Stage 1: train set 1 and the proxy head.
	a1 := set(1)
	tr, err := e.newTrainer(a1, g.f32("init/head.weight"), g.f32("init/head.sigma")[0], 2, 20)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	var x1 []float32
	var y1 []int
	for s := 0; s < 2; s++ {
		ss := strconv.Itoa(s)
		p := "train/" + ss + "/"
		x := g.f32("input/" + ss)
		labels := g.i64("labels/" + ss)
		local := make([]int64, len(labels))
		for i, y := range labels {
			local[i] = y - 2
			y1 = append(y1, int(y))
		}
		x1 = append(x1, x...)
		r, err := e.step(tr, x, local)
		if err != nil {
			t.Fatal(err)
		}
		worst = math.Max(worst, g.check(p+"loss", []float32{float32(r.Loss)}, g.f64(p+"loss"), tol))
		for _, prm := range tr.params {
			worst = math.Max(worst, g.check(p+"grad/"+prm.Name, r.Grads[prm.Name], g.f64(p+"grad/"+prm.Name), tol))
			// The parameters after the step, relative to their magnitude:
			// an SGD step here is ~1e-5 of values up to ~2, below float32's
			// resolution of the difference, so the step itself is not compared.
			worst = math.Max(worst, g.check(p+"param/"+prm.Name, prm.Data, g.f64(p+"param/"+prm.Name), tol))
		}
	}
	e.Adapters = append(e.Adapters, a1)
	e.StageClasses = append(e.StageClasses, []int{2, 3})
	e.Protos = append(e.Protos, make([]float32, C*W))
	for i := 0; i <= 1; i++ {
		f, err := e.features(i, x1, 8)
		if err != nil {
			t.Fatal(err)
		}
		e.setPrototypes(i, f, y1)
	}
	e.complete()
	want := g.f64("protos") // [2,4,W]
	for d := 0; d <= 1; d++ {
		worst = math.Max(worst, g.check("protos subspace "+strconv.Itoa(d), e.Protos[d][:4*W], want[d*4*W:(d+1)*4*W], tol))
	}
	xt := g.f32("test/input")
	z := make([][]float32, 2)
	for i := range z {
		if z[i], err = e.features(i, xt, 4); err != nil {
			t.Fatal(err)
		}
	}
	sc, cols, err := e.scoresFrom(z, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(cols) != 4 || cols[3] != 3 {
		t.Fatalf("columns %v", cols)
	}
	sc32 := make([]float32, len(sc))
	for i, v := range sc {
		sc32[i] = float32(v)
	}
	worst = math.Max(worst, g.check("test/scores", sc32, g.f64("test/scores"), tol))
	for k := range set0 {
		for i, v := range e.Adapters[0][k] {
			if math.Float32bits(v) != math.Float32bits(frozen[k][i]) {
				t.Fatalf("adapter set 0 changed (%s[%d])", e.specs[k].Name, i)
			}
		}
	}
	t.Logf("worst relative difference %.2g", worst)
}

package optim

import (
	"math"
	"testing"
)

// The closed forms of torch's schedulers, written out independently.
func TestScheduleDefinitions(t *testing.T) {
	cos := Schedule{Kind: Cosine, Per: PerEpoch, Length: 20, MinLR: 0}
	for e := int64(0); e <= 20; e++ {
		want := 0.01 * 0.5 * (1 + math.Cos(math.Pi*float64(e)/20))
		if got := cos.LR(0.01, e); math.Abs(got-want) > 1e-18 {
			t.Fatalf("cosine epoch %d: %v, want %v", e, got, want)
		}
	}
	if got := cos.LR(0.01, 20); got > 1e-18 {
		t.Fatalf("cosine ends at %v, want eta_min 0", got)
	}
	// Warm-up ramps from factor·base to base, then the cosine starts at base
	// and reaches MinLR after Length − Warmup more units.
	w := Schedule{Kind: Cosine, Per: PerStep, Length: 14, Warmup: 4, WarmupFactor: 0.2, MinLR: 1e-3}
	for i, want := range []float64{0.2, 0.4, 0.6, 0.8, 1} {
		if got := w.LR(1, int64(i)); math.Abs(got-want) > 1e-15 {
			t.Fatalf("warm-up %d: %v, want %v", i, got, want)
		}
	}
	if got := w.LR(1, 14); math.Abs(got-1e-3) > 1e-15 {
		t.Fatalf("end of cosine: %v, want 1e-3", got)
	}
	// Default factor 1/(W+1): the first warm-up step is not wasted at lr 0.
	d := Schedule{Warmup: 3}
	if got := d.LR(1, 0); got != 0.25 {
		t.Fatalf("default warm-up factor: %v, want 0.25", got)
	}
	if got := d.LR(1, 7); got != 1 {
		t.Fatalf("constant after warm-up: %v", got)
	}
}

// The schedule advances per epoch or per step as configured.
func TestScheduleUnits(t *testing.T) {
	mk := func(per Unit) *Optimizer {
		o, err := New(Config{Kind: SGD, Schedule: Schedule{Kind: Cosine, Per: per, Length: 4}},
			Group{Params: []*Param{{Name: "w", Shape: []int64{1}, Data: []float32{0}}}, LR: 1})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	g := map[string][]float32{"w": {0}}
	ep, st := mk(PerEpoch), mk(PerStep)
	for i := 0; i < 3; i++ {
		ep.Step(g)
		st.Step(g)
	}
	if ep.LR(0) != 1 {
		t.Fatalf("per-epoch lr moved within the epoch: %v", ep.LR(0))
	}
	if want := 0.5 * (1 + math.Cos(math.Pi*3/4)); math.Abs(st.LR(0)-want) > 1e-15 {
		t.Fatalf("per-step lr after 3 steps %v, want %v", st.LR(0), want)
	}
	ep.EndEpoch()
	if want := 0.5 * (1 + math.Cos(math.Pi/4)); math.Abs(ep.LR(0)-want) > 1e-15 {
		t.Fatalf("per-epoch lr after one epoch %v, want %v", ep.LR(0), want)
	}
}

func TestClipGradNorm(t *testing.T) {
	a := []float32{3, 0}
	b := []float32{0, 4}
	n := ClipGradNorm([][]float32{a, b}, 1)
	if n != 5 {
		t.Fatalf("norm %v, want 5", n)
	}
	after := GlobalNorm([][]float32{a, b})
	if want := 5 / (5 + 1e-6); math.Abs(after-want) > 1e-6 {
		t.Fatalf("norm after clipping %v, want %v", after, want)
	}
	c := []float32{0.3, 0.4}
	ClipGradNorm([][]float32{c}, 1)
	if c[0] != 0.3 || c[1] != 0.4 {
		t.Fatalf("a gradient below the limit changed: %v", c)
	}
}

// CODA-Prompt's schedule as PILOT runs it, traced by hand through its
// scheduler: the constructor sets lr = base·cos(0) and leaves
// last_epoch = −1, so the step() after epoch 0 computes e = 0 again; epoch
// t ≥ 1 trains with e = t − 1.
func TestCodaCosine(t *testing.T) {
	s := Schedule{Kind: CodaCosine, Per: PerEpoch, Length: 20}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	want := func(e int) float64 { return 1e-3 * math.Cos(99*math.Pi*float64(e)/(200*19)) }
	if s.LR(1e-3, 0) != 1e-3 || s.LR(1e-3, 1) != 1e-3 {
		t.Fatalf("epochs 0 and 1: %v %v, want the base lr twice", s.LR(1e-3, 0), s.LR(1e-3, 1))
	}
	for e := 2; e < 20; e++ {
		if got := s.LR(1e-3, int64(e)); math.Abs(got-want(e-1)) > 1e-18 {
			t.Fatalf("epoch %d: %v, want %v", e, got, want(e-1))
		}
	}
	if err := (Schedule{Kind: CodaCosine, Length: 1}).Validate(); err == nil {
		t.Fatal("coda-cosine with one epoch accepted (division by K−1 = 0)")
	}
}

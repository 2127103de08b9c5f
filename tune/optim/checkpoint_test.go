package optim

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cl-dev/cl/internal/safetensors"
)

func goldenByName(t *testing.T, name string) golden {
	for _, g := range loadGoldens(t) {
		if g.name == name {
			return g
		}
	}
	t.Fatalf("no golden %s", name)
	return golden{}
}

// runSteps applies steps [from, to) of the golden's gradients.
func runSteps(t *testing.T, g golden, o *Optimizer, params map[string]*Param, from, to int) {
	t.Helper()
	for k := from; k < to; k++ {
		if _, err := o.Step(g.gradsAt(t, params, k)); err != nil {
			t.Fatal(err)
		}
		if (k+1)%g.c.StepsPerEpoch == 0 {
			o.EndEpoch()
		}
	}
}

// A run saved after 10 steps and resumed in a fresh optimizer with fresh
// parameters ends bit-identical to an uninterrupted run, for every golden
// case (SGD buffers, Adam moments, per-parameter steps, the schedule's
// position, frozen groups).
func TestResumeIsBitIdentical(t *testing.T) {
	dir := t.TempDir()
	for _, g := range loadGoldens(t) {
		t.Run(g.name, func(t *testing.T) {
			straight, sp := g.build(t)
			runSteps(t, g, straight, sp, 0, goldenSteps)

			first, fp := g.build(t)
			runSteps(t, g, first, fp, 0, 10)
			path := filepath.Join(dir, g.name+".safetensors")
			if err := first.Save(path); err != nil {
				t.Fatal(err)
			}
			resumed, rp := g.build(t)
			if err := resumed.Load(path); err != nil {
				t.Fatal(err)
			}
			if resumed.Steps() != 10 || resumed.Position() != first.Position() {
				t.Fatalf("resumed at step %d position %d, want 10 and %d", resumed.Steps(), resumed.Position(), first.Position())
			}
			runSteps(t, g, resumed, rp, 10, goldenSteps)
			for n, p := range sp {
				if !slices.Equal(p.Data, rp[n].Data) {
					t.Fatalf("%s differs after resume", n)
				}
			}
			// Same state → same checkpoint bytes.
			var a, b bytes.Buffer
			fa, fb := safetensors.New(), safetensors.New()
			if err := straight.AddTo(fa, ""); err != nil {
				t.Fatal(err)
			}
			if err := resumed.AddTo(fb, ""); err != nil {
				t.Fatal(err)
			}
			fa.WriteTo(&a)
			fb.WriteTo(&b)
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Fatal("checkpoints of the straight and the resumed run differ")
			}
		})
	}
}

func TestLoadRefusesOtherModels(t *testing.T) {
	g := goldenByName(t, "sgd_groups_frozen")
	o, params := g.build(t)
	runSteps(t, g, o, params, 0, 3)
	dir := t.TempDir()
	path := filepath.Join(dir, "ck.safetensors")
	if err := o.Save(path); err != nil {
		t.Fatal(err)
	}
	mk := func(mut func(ps []*Param) []*Param, kind Kind) *Optimizer {
		var ps []*Param
		for _, n := range []string{"blocks.0.adapter.down", "blocks.0.adapter.bias", "head.sigma", "blocks.1.ssf_scale"} {
			p := params[n]
			ps = append(ps, &Param{Name: n, Shape: slices.Clone(p.Shape), Data: make([]float32, len(p.Data))})
		}
		ps = mut(ps)
		cfg := g.c.Config
		if kind != SGD {
			cfg = AdamDefaults(kind)
		}
		o2, err := New(cfg, Group{Params: ps, LR: 0.1})
		if err != nil {
			t.Fatal(err)
		}
		return o2
	}
	cases := []struct {
		name string
		o    *Optimizer
		want []string
	}{
		{"shape", mk(func(ps []*Param) []*Param {
			ps[0].Shape, ps[0].Data = []int64{3, 4}, make([]float32, 12)
			return ps
		}, SGD), []string{`"blocks.0.adapter.down" has shape [4 3] in the checkpoint, [3 4] here`}},
		{"missing and extra", mk(func(ps []*Param) []*Param {
			ps[2] = &Param{Name: "head.scale", Shape: []int64{}, Data: make([]float32, 1)}
			return ps
		}, SGD), []string{`"head.scale" (shape []) is missing`, `"head.sigma" is in the checkpoint but not in this model`}},
		{"kind", mk(func(ps []*Param) []*Param { return ps }, AdamW), []string{"sgd optimizer, this run uses adamw"}},
	}
	for _, c := range cases {
		before := map[string][]float32{}
		for _, gr := range c.o.Groups() {
			for _, p := range gr.Params {
				before[p.Name] = slices.Clone(p.Data)
			}
		}
		err := c.o.Load(path)
		if err == nil {
			t.Fatalf("%s: loaded a mismatched checkpoint", c.name)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) || !strings.Contains(err.Error(), path) {
				t.Fatalf("%s: error %q lacks %q or the path", c.name, err, w)
			}
		}
		for _, gr := range c.o.Groups() {
			for _, p := range gr.Params {
				if !slices.Equal(before[p.Name], p.Data) {
					t.Fatalf("%s: a refused load changed %s", c.name, p.Name)
				}
			}
		}
		if c.o.Steps() != 0 {
			t.Fatalf("%s: a refused load changed the step count", c.name)
		}
	}
	// Not an optimizer checkpoint at all.
	other := filepath.Join(dir, "features.safetensors")
	f := safetensors.New()
	f.Tensors["features"] = safetensors.FromFloat32s([]int64{1}, []float32{1})
	if err := f.WriteFile(other); err != nil {
		t.Fatal(err)
	}
	if err := o.Load(other); err == nil || !strings.Contains(err.Error(), "no optimizer state") {
		t.Fatalf("loading a feature file: %v", err)
	}
	if err := o.Load(filepath.Join(dir, "absent.safetensors")); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("loading a missing file: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		next := u.Unwrap()
		if next == nil {
			return err
		}
		err = next
	}
}

// A checkpoint stored under a prefix next to other tensors round-trips.
func TestAddToWithPrefix(t *testing.T) {
	g := goldenByName(t, "adamw_warmup_cosine_clip")
	o, params := g.build(t)
	runSteps(t, g, o, params, 0, 5)
	f := safetensors.New()
	f.Tensors["head/weights"] = safetensors.FromFloat32s([]int64{2}, []float32{1, 2})
	if err := o.AddTo(f, "tune/"); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Tensors["tune/optim/blocks.0.adapter.down/exp_avg_sq"]; !ok {
		t.Fatal("exp_avg_sq not stored under the prefix")
	}
	o2, p2 := g.build(t)
	if err := o2.RestoreFrom(f, "tune/", "memory"); err != nil {
		t.Fatal(err)
	}
	runSteps(t, g, o, params, 5, 8)
	runSteps(t, g, o2, p2, 5, 8)
	for n := range params {
		if !slices.Equal(params[n].Data, p2[n].Data) {
			t.Fatalf("%s differs", n)
		}
	}
}

func TestStepErrors(t *testing.T) {
	p := &Param{Name: "w", Shape: []int64{2}, Data: []float32{1, 2}}
	fz := &Param{Name: "f", Shape: []int64{1}, Data: []float32{5}}
	o, err := New(Config{Kind: SGD, Momentum: 0.9}, Group{Params: []*Param{p}, LR: 0.1}, Group{Params: []*Param{fz}, LR: 1, Frozen: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Step(map[string][]float32{}); err == nil || !strings.Contains(err.Error(), `no gradient for parameter "w"`) {
		t.Fatalf("missing gradient: %v", err)
	}
	if _, err := o.Step(map[string][]float32{"w": {1}}); err == nil || !strings.Contains(err.Error(), `gradient of "w" has 1 values`) {
		t.Fatalf("short gradient: %v", err)
	}
	nan := float32(math.NaN())
	if _, err := o.Step(map[string][]float32{"w": {1, nan}}); err == nil || !strings.Contains(err.Error(), "NaN or Inf") {
		t.Fatalf("NaN gradient: %v", err)
	}
	if p.Data[0] != 1 || p.Data[1] != 2 || o.Steps() != 0 {
		t.Fatal("a refused step changed something")
	}
	// The frozen parameter's gradient is not needed and is ignored.
	if _, err := o.Step(map[string][]float32{"w": {1, 1}, "f": {100}}); err != nil {
		t.Fatal(err)
	}
	if fz.Data[0] != 5 {
		t.Fatal("frozen parameter updated")
	}
	if got := float32(1 - 0.1); p.Data[0] != got {
		t.Fatalf("w[0] = %v, want %v", p.Data[0], got)
	}
}

func TestConfigErrors(t *testing.T) {
	p := func() *Param { return &Param{Name: "w", Shape: []int64{2}, Data: []float32{1, 2}} }
	bad := []struct {
		cfg    Config
		groups []Group
		want   string
	}{
		{Config{Kind: "rmsprop"}, []Group{{Params: []*Param{p()}}}, `"rmsprop" unknown`},
		{Config{Kind: SGD, Nesterov: true}, []Group{{Params: []*Param{p()}}}, "Nesterov"},
		{Config{Kind: SGD, Momentum: 1}, []Group{{Params: []*Param{p()}}}, "momentum"},
		{Config{Kind: Adam, Beta1: 0.9, Beta2: 0.999}, []Group{{Params: []*Param{p()}}}, "eps"},
		{Config{Kind: SGD, ClipNorm: -1}, []Group{{Params: []*Param{p()}}}, "clipping"},
		{Config{Kind: SGD, Schedule: Schedule{Kind: Cosine, Length: 3, Warmup: 3}}, []Group{{Params: []*Param{p()}}}, "length (3) > warm-up (3)"},
		{Config{Kind: SGD, Schedule: Schedule{Kind: "step"}}, []Group{{Params: []*Param{p()}}}, `schedule "step" unknown`},
		{Config{Kind: SGD, Schedule: Schedule{Kind: MultiStep, Milestones: []int{3}}}, []Group{{Params: []*Param{p()}}}, "gamma 0"},
		{Config{Kind: SGD, Schedule: Schedule{Kind: MultiStep, Gamma: 0.1, Milestones: []int{3, 2}}}, []Group{{Params: []*Param{p()}}}, "increasing"},
		{Config{Kind: SGD}, nil, "no parameter groups"},
		{Config{Kind: SGD}, []Group{{Params: []*Param{p(), p()}}}, `"w" appears twice`},
		{Config{Kind: SGD}, []Group{{Params: []*Param{{Name: "x", Shape: []int64{3}, Data: make([]float32, 2)}}}}, "shape [3] holds 3 values but Data has 2"},
		{Config{Kind: SGD}, []Group{{Name: "head", Params: []*Param{p()}, LR: -1}}, "group head: learning rate -1"},
	}
	for _, b := range bad {
		if _, err := New(b.cfg, b.groups...); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%+v: error %v, want %q", b.cfg, err, b.want)
		}
	}
}

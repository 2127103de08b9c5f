package learners

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cl-dev/cl/internal/safetensors"
	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
	"github.com/cl-dev/cl/tune/grad"
)

const promptGoldens = "../testdata/prompts/"

// golden reads a goldens file of testdata/prompts (make_goldens.py).
type golden struct {
	t *testing.T
	f *safetensors.File
}

func readGolden(t *testing.T, name string) *golden {
	t.Helper()
	f, err := safetensors.ReadFile(filepath.Join(promptGoldens, name))
	if err != nil {
		t.Fatalf("%v (regenerate with /usr/bin/python3 testdata/prompts/make_goldens.py)", err)
	}
	return &golden{t: t, f: f}
}

func (g *golden) f32(name string) []float32 {
	t, ok := g.f.Tensors[name]
	if !ok {
		g.t.Fatalf("golden tensor %q missing", name)
	}
	return t.Float32s()
}

func (g *golden) f64(name string) []float64 {
	t, ok := g.f.Tensors[name]
	if !ok {
		g.t.Fatalf("golden tensor %q missing", name)
	}
	return t.Float64s()
}

func (g *golden) i64(name string) []int64 {
	t, ok := g.f.Tensors[name]
	if !ok {
		g.t.Fatalf("golden tensor %q missing", name)
	}
	return t.Int64s()
}

// maxRel is max |got − want| / max(max |want|, 1e-12).
func maxRel(got []float32, want []float64) float64 {
	var d, m float64
	for i := range want {
		d = math.Max(d, math.Abs(float64(got[i])-want[i]))
		m = math.Max(m, math.Abs(want[i]))
	}
	return d / math.Max(m, 1e-12)
}

// check compares got with want within tol relative to want's largest
// magnitude and reports the measured error.
func (g *golden) check(what string, got []float32, want []float64, tol float64) float64 {
	g.t.Helper()
	if len(got) != len(want) {
		g.t.Fatalf("%s: %d values, golden has %d", what, len(got), len(want))
	}
	r := maxRel(got, want)
	if r > tol || math.IsNaN(r) {
		g.t.Errorf("%s: max relative difference %.3g > %.0g", what, r, tol)
	}
	return r
}

func tinyEnv(t *testing.T) Env {
	t.Helper()
	needORT(t)
	w, err := vit.Load(tinyWeights, 3)
	if err != nil {
		t.Fatal(err)
	}
	return Env{Weights: w, WeightsSHA256: "tiny", Session: ort.SessionOptions{Threads: 1}, Workers: 1, Seed: 1}
}

func f64to32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// TestL2PGolden: one stage, two Adam steps on the tiny ViT, against the
// torch implementation of testdata/prompts/make_goldens.py: the queries,
// the selection (exact), the loss, the gradients of prompts, keys and head
// and the parameters after each step, per-sample and batch-vote selection.
func TestL2PGolden(t *testing.T) {
	env := tinyEnv(t)
	g := readGolden(t, "l2p.safetensors")
	const tol = 1e-4
	for _, mode := range []string{SelectPerSample, SelectBatchVote} {
		t.Run(mode, func(t *testing.T) {
			g.t = t
			l, err := NewL2P(env, map[string]string{"train-select": mode})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			l.Prompts = g.f32(mode + "/init/prompts")
			l.Keys = g.f32(mode + "/init/keys")
			l.HeadW = g.f32(mode + "/init/head.weight")
			l.HeadB = g.f32(mode + "/init/head.bias")
			opt, err := l.newOptimizer()
			if err != nil {
				t.Fatal(err)
			}
			mask := pClassMask(6, []int{2, 3})
			init := map[string][]float32{}
			for _, prm := range l.params() {
				init[prm.Name] = append([]float32(nil), prm.Data...)
			}
			worst := 0.0
			for s := 0; s < 2; s++ {
				p := mode + "/" + string(rune('0'+s)) + "/"
				x := g.f32("input/" + string(rune('0'+s)))
				labels := g.i64("labels/" + string(rune('0'+s)))
				q, err := l.pe.queryOf(x, len(labels))
				if err != nil {
					t.Fatal(err)
				}
				worst = math.Max(worst, g.check(p+"query", q, g.f64(p+"query"), tol))
				r, err := l.step(opt, x, q, labels, mask)
				if err != nil {
					t.Fatal(err)
				}
				want := g.i64(p + "idx")
				k := l.opt.TopK
				for b, row := range r.Idx {
					for j, v := range row {
						if int64(v) != want[b*k+j] {
							t.Fatalf("%sidx: image %d selects %v, torch %v", p, b, row, want[b*k:(b+1)*k])
						}
					}
				}
				worst = math.Max(worst, g.check(p+"loss", []float32{float32(r.Loss)}, g.f64(p+"loss"), tol))
				for _, name := range []string{"prompts", "keys", grad.HeadWeightName, grad.HeadBiasName} {
					worst = math.Max(worst, g.check(p+"grad/"+name, r.Grads[name], g.f64(p+"grad/"+name), tol))
				}
				// The parameters after the update, compared as the change
				// from the initial values (Adam's steps are ~lr = 0.002).
				for _, prm := range l.params() {
					want := g.f64(p + "param/" + prm.Name)
					got := make([]float32, len(want))
					for i := range want {
						want[i] -= float64(init[prm.Name][i])
						got[i] = prm.Data[i] - init[prm.Name][i]
					}
					worst = math.Max(worst, g.check(p+"param/"+prm.Name+" − init", got, want, tol))
				}
			}
			t.Logf("%s: worst relative difference %.2g", mode, worst)
		})
	}
}

func TestL2PBadOptions(t *testing.T) {
	env := tinyEnv(t)
	for _, c := range []struct {
		o    map[string]string
		want string
	}{
		{map[string]string{"top-k": "11"}, "more prompts than the pool"},
		{map[string]string{"length": "0"}, "length"},
		{map[string]string{"train-select": "vote"}, "one of per-sample, batch-vote"},
		{map[string]string{"pool_size": "3"}, "unknown"},
		{map[string]string{"top-k": "100", "pool": "100", "length": "50"}, "at most 4096"},
	} {
		_, err := NewL2P(env, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one containing %q", c.o, err, c.want)
		}
	}
	if _, err := NewL2P(Env{}, nil); err == nil || !strings.Contains(err.Error(), "--weights") {
		t.Errorf("no weights: %v", err)
	}
	_ = context.Background
}

package optim

import (
	"encoding/json"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cl-dev/cl/internal/safetensors"
)

// The goldens are torch.optim's answers (testdata/optim/make_goldens.py,
// torch 1.13): same parameters, 20 gradient sets, hyper-parameters,
// schedules and clipping.
const goldenDir = "../../testdata/optim"

const goldenSteps = 20

type goldenGroup struct {
	Name        string   `json:"name"`
	Params      []string `json:"params"`
	LR          float64  `json:"lr"`
	WeightDecay float64  `json:"weight_decay"`
	Frozen      bool     `json:"frozen"`
}

type goldenCase struct {
	Config        Config        `json:"config"`
	Groups        []goldenGroup `json:"groups"`
	StepsPerEpoch int           `json:"steps_per_epoch"`
}

type golden struct {
	name string
	c    goldenCase
	f    *safetensors.File
}

func loadGoldens(t testing.TB) []golden {
	paths, err := filepath.Glob(filepath.Join(goldenDir, "*.safetensors"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no goldens in %s (run make_goldens.py there): %v", goldenDir, err)
	}
	var out []golden
	for _, p := range paths {
		f, err := safetensors.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var c goldenCase
		if err := json.Unmarshal([]byte(f.Metadata["case"]), &c); err != nil {
			t.Fatalf("%s: case metadata: %v", p, err)
		}
		if c.StepsPerEpoch == 0 {
			c.StepsPerEpoch = 1
		}
		out = append(out, golden{strings.TrimSuffix(filepath.Base(p), ".safetensors"), c, f})
	}
	return out
}

func (g golden) tensor(t testing.TB, name string) safetensors.Tensor {
	t.Helper()
	tt, ok := g.f.Tensors[name]
	if !ok {
		t.Fatalf("%s: golden has no tensor %q", g.name, name)
	}
	return tt
}

// build makes fresh parameters from the golden's initial values and an
// optimizer for its case.
func (g golden) build(t testing.TB) (*Optimizer, map[string]*Param) {
	t.Helper()
	params := map[string]*Param{}
	for name := range g.f.Tensors {
		if n, ok := strings.CutPrefix(name, "init/"); ok {
			tt := g.f.Tensors[name]
			params[n] = &Param{Name: n, Shape: slices.Clone(tt.Shape), Data: tt.Float32s()}
		}
	}
	var groups []Group
	for _, gg := range g.c.Groups {
		grp := Group{Name: gg.Name, LR: gg.LR, WeightDecay: gg.WeightDecay, Frozen: gg.Frozen}
		for _, n := range gg.Params {
			grp.Params = append(grp.Params, params[n])
		}
		groups = append(groups, grp)
	}
	o, err := New(g.c.Config, groups...)
	if err != nil {
		t.Fatalf("%s: %v", g.name, err)
	}
	return o, params
}

// gradsAt returns fresh copies of step k's gradients.
func (g golden) gradsAt(t testing.TB, params map[string]*Param, k int) map[string][]float32 {
	out := map[string][]float32{}
	for n, p := range params {
		all := g.tensor(t, "grads/"+n).Float32s()
		out[n] = slices.Clone(all[k*len(p.Data) : (k+1)*len(p.Data)])
	}
	return out
}

// closeTo is the comparison of the issue: within 1e-6, relative to the
// value where it exceeds 1 in magnitude, absolute below.
func closeTo(got, want float64, tol float64) bool {
	return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want))
}

func TestMatchesTorchOptim(t *testing.T) {
	for _, g := range loadGoldens(t) {
		t.Run(g.name, func(t *testing.T) {
			o, params := g.build(t)
			lrs := g.tensor(t, "lr").Float64s()
			norms := g.tensor(t, "norm").Float64s()
			ng := len(g.tensor(t, "lr").Shape)
			ng = int(g.tensor(t, "lr").Shape[ng-1])
			frozen := map[string][]float32{}
			for _, gr := range o.Groups() {
				if gr.Frozen {
					for _, p := range gr.Params {
						frozen[p.Name] = slices.Clone(p.Data)
					}
				}
			}
			worst := 0.0
			for k := 0; k < goldenSteps; k++ {
				// torch's lr list covers the trainable groups in order.
				gi := 0
				for i, gr := range o.Groups() {
					if gr.Frozen {
						continue
					}
					want := lrs[k*ng+gi]
					if got := o.LR(i); !closeTo(got, want, 1e-12) {
						t.Fatalf("step %d group %s: lr %.17g, torch %.17g", k+1, gr.Name, got, want)
					}
					gi++
				}
				info, err := o.Step(g.gradsAt(t, params, k))
				if err != nil {
					t.Fatal(err)
				}
				if g.c.Config.ClipNorm > 0 && !closeTo(info.GradNorm, norms[k], 1e-6) {
					t.Fatalf("step %d: gradient norm %.9g, torch %.9g", k+1, info.GradNorm, norms[k])
				}
				for n, p := range params {
					after := g.tensor(t, "after/"+n).Float32s()[k*len(p.Data) : (k+1)*len(p.Data)]
					for i, v := range p.Data {
						d := math.Abs(float64(v)-float64(after[i])) / math.Max(1, math.Abs(float64(after[i])))
						worst = math.Max(worst, d)
						if d > 1e-6 {
							t.Fatalf("step %d: %s[%d] = %.9g, torch %.9g", k+1, n, i, v, after[i])
						}
					}
				}
				if (k+1)%g.c.StepsPerEpoch == 0 {
					o.EndEpoch()
				}
			}
			for n, want := range frozen {
				if !slices.Equal(params[n].Data, want) {
					t.Fatalf("frozen parameter %s changed", n)
				}
			}
			// Final state against torch's.
			for gi, gr := range o.Groups() {
				for _, p := range gr.Params {
					st := o.state[gi][p.Name]
					keys := map[string][]float32{"momentum_buffer": nil, "exp_avg": nil, "exp_avg_sq": nil}
					if o.cfg.Kind == SGD {
						keys["momentum_buffer"] = st.buf
					} else {
						keys["exp_avg"], keys["exp_avg_sq"] = st.buf, st.sq
					}
					for key, got := range keys {
						want, ok := g.f.Tensors["state/"+p.Name+"/"+key]
						if !ok {
							if got != nil {
								t.Fatalf("%s: state %s present here, absent in torch", p.Name, key)
							}
							continue
						}
						w := want.Float32s()
						if len(got) != len(w) {
							t.Fatalf("%s: state %s has %d values, torch %d", p.Name, key, len(got), len(w))
						}
						for i := range w {
							if !closeTo(float64(got[i]), float64(w[i]), 1e-6) {
								t.Fatalf("%s: state %s[%d] = %.9g, torch %.9g", p.Name, key, i, got[i], w[i])
							}
						}
					}
					if ws, ok := g.f.Tensors["state/"+p.Name+"/step"]; ok && float64(st.step) != ws.Float64s()[0] {
						t.Fatalf("%s: step %d, torch %v", p.Name, st.step, ws.Float64s()[0])
					}
				}
			}
			t.Logf("max |Δ|/max(1,|torch|) over 20 steps: %.3g", worst)
		})
	}
}

package learners

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
	"github.com/cl-dev/cl/tune/optim"
)

// CODA-Prompt (docs/METHODS.md §2.8, docs/TRAINING.md "Prompt methods"):
// per prefix block l, components P_l,k [length,W] with keys K_l,k and
// attention vectors A_l,k [W]; an image with frozen [CLS] query q gets the
// prompt Σ_k α_k·P_l,k with α_k = cos(q ⊙ A_l,k, K_l,k) (no softmax, no
// top-k); its first length/2 rows are prefix keys, the rest prefix values.
// Components are allotted per task (components/tasks each); stage t trains
// its own slice with the earlier slices in the sum but frozen (they are not
// in the optimizer at all, so they stay bit-identical), and initialises its
// slice by Gram–Schmidt against every earlier component. A linear head on
// the prompted [CLS], cross-entropy over the stage's classes, optional
// orthogonality penalty (off in PILOT). Adam with PILOT's CODA cosine
// schedule, re-created per stage. By default the head is then re-fitted on
// features drawn from stored class Gaussians (align=gaussian,
// codaprompt_align.go).
func init() {
	Register(Spec{Name: "coda-prompt", NeedsImages: true, Options: codaDefaults(),
		Summary: "CODA-Prompt: attention-weighted sums of prompt components as prefixes in blocks 0-4, components allotted per task (Adam); head re-fitted after each stage on stored class Gaussians",
		New:     func(env Env, o map[string]string) (Learner, error) { return NewCODAPrompt(env, o) }})
}

// codaDefaults are PILOT's coda-prompt values, except the classifier
// alignment (docs/TRAINING.md; PILOT: align=none).
func codaDefaults() map[string]string {
	return withAlign(map[string]string{
		"components": "100", "length": "8", "layers": "0,1,2,3,4", "ortho": "0", "tasks": "0",
		"lr": "0.001", "batch": "128", "epochs": "20", "eval-batch": "32",
	})
}

// CODAOptions are the parsed options.
type CODAOptions struct {
	Components, Length int
	Layers             []int
	Ortho, LR          float64
	// Tasks fixes the number of stages that share the components (0 = the
	// run's classes divided by the first stage's, rounded up).
	Tasks                    int
	Batch, Epochs, EvalBatch int
	// AlignOptions: the classifier alignment after every stage
	// (prompt_align.go).
	AlignOptions
}

func parseCODA(o map[string]string, depth int) (CODAOptions, error) {
	p, err := newPopts("coda-prompt", o, codaDefaults())
	if err != nil {
		return CODAOptions{}, err
	}
	r := CODAOptions{Components: p.integer("components", 1, 1<<16), Length: p.integer("length", 1, 4096),
		Layers: p.ints("layers"), Ortho: p.number("ortho", 0), Tasks: p.integer("tasks", 0, 1<<16),
		LR: p.number("lr", 0), Batch: p.size("batch"), Epochs: p.count("epochs"),
		EvalBatch: p.size("eval-batch"), AlignOptions: p.align()}
	if p.err != nil {
		return r, p.err
	}
	if r.Length%2 != 0 {
		return r, fmt.Errorf("coda-prompt: length=%d must be even: the first half of a prompt becomes the prefix keys, the second half the values", r.Length)
	}
	if len(r.Layers) == 0 {
		return r, fmt.Errorf("coda-prompt: layers is empty")
	}
	for i, l := range r.Layers {
		if l >= depth {
			return r, fmt.Errorf("coda-prompt: block %d does not exist (the ViT has blocks 0..%d); set layers", l, depth-1)
		}
		if i > 0 && l <= r.Layers[i-1] {
			return r, fmt.Errorf("coda-prompt: layers must be ascending and distinct")
		}
	}
	if r.Tasks > 0 && r.Components/r.Tasks < 1 {
		return r, fmt.Errorf("coda-prompt: %d components cannot be shared by %d tasks (at least one each)", r.Components, r.Tasks)
	}
	return r, nil
}

// codaStream seeds CODA-Prompt's initial random stream; stage t's
// components draw from codaStream + t + 1.
const codaStream = 0x636f6461

// CODAPrompt is the learner.
type CODAPrompt struct {
	promptBase
	opt CODAOptions

	// Component-major tensors (a task's slice is contiguous): Keys and Attn
	// [components, layers, W], Prompts [components, layers, length, W].
	Keys, Attn, Prompts []float32
	tasks               int
}

// NewCODAPrompt returns an untrained learner.
func NewCODAPrompt(env Env, o map[string]string) (*CODAPrompt, error) {
	return newPrompt(env, "coda-prompt", codaStream, o, parseCODA, newCODA)
}

func newCODA(core learnerCore, opt CODAOptions) *CODAPrompt {
	opt.AlignOptions = opt.AlignOptions.orNone() // files written before the option existed
	g := promptGraph{vit.Options{Variant: vit.Prefix, Tokens: opt.Length / 2, Layers: opt.Layers}, "prefix", vit.OutputName}
	return &CODAPrompt{promptBase: promptBase{learnerCore: core, graph: g}, opt: opt}
}

// perTask is the number of components of each task.
func (c *CODAPrompt) perTask() int { return c.opt.Components / c.tasks }

// span is the slice of components stage t trains, [s, f).
func (c *CODAPrompt) span(t int) (s, f int) { return t * c.perTask(), (t + 1) * c.perTask() }

func (c *CODAPrompt) allocate(C int) {
	P, L, W := c.opt.Components, len(c.opt.Layers), c.pe.w.Width
	c.Keys = make([]float32, P*L*W)
	c.Attn = make([]float32, P*L*W)
	c.Prompts = make([]float32, P*L*c.opt.Length*W)
	// torch.nn.Linear's default init: U(−1/√W, 1/√W) for weight and bias.
	b := 1 / math.Sqrt(float64(W))
	c.HeadW = pUniform(c.rng, W*C, -b, b)
	c.HeadB = pUniform(c.rng, C, -b, b)
	c.allocStats(c.opt.Align, C)
}

// GramSchmidt initialises components [s, f) of every layer of x
// ([components, layers, d] component-major) as unit vectors orthogonal to
// every component before them: for k = s … f−1 a standard normal vector
// minus its projection on the span of components 0 … k−1, scaled to unit
// length. PILOT's CodaPrompt.gram_schmidt subtracts the projections on
// each earlier component separately (classical Gram–Schmidt), which is the
// same when the earlier components are orthogonal (they are at their own
// initialisation) and not orthogonal to them once training has moved them;
// here the span is orthonormalised first (modified Gram–Schmidt on a copy),
// so the new components are orthogonal to the trained ones too.
func GramSchmidt(x []float32, layers, d, s, f int, rng *rand.Rand) {
	row := func(k, l int) []float32 { return x[(k*layers+l)*d : (k*layers+l+1)*d] }
	for l := 0; l < layers; l++ {
		var basis [][]float64 // orthonormal basis of components 0 … k−1
		add := func(v []float64) {
			for _, e := range basis {
				var dot float64
				for i := range v {
					dot += v[i] * e[i]
				}
				for i := range v {
					v[i] -= dot * e[i]
				}
			}
			var n float64
			for _, a := range v {
				n += a * a
			}
			if n = math.Sqrt(n); n > 1e-6 {
				for i := range v {
					v[i] /= n
				}
				basis = append(basis, v)
			}
		}
		for k := 0; k < s; k++ {
			v := make([]float64, d)
			for i, a := range row(k, l) {
				v[i] = float64(a)
			}
			add(v)
		}
		for k := s; k < f; k++ {
			for {
				v := make([]float64, d)
				for i := range v {
					v[i] = rng.NormFloat64()
				}
				n0 := len(basis)
				add(v)
				if len(basis) > n0 { // not in the span (always, unless k ≥ d)
					break
				}
				if n0 >= d {
					panic("coda-prompt: more components than the prompt dimension")
				}
			}
			dst := row(k, l)
			for i, a := range basis[len(basis)-1] {
				dst[i] = float32(a)
			}
		}
	}
}

// weights returns α [n, f, layers] for queries q [n,W] over components
// [0, f), with the normalised vectors needed by the gradient: qa[b,k,l] =
// normalize(q_b ⊙ A_k,l) [W] and its norm, kn[k,l] = normalize(K_k,l) and
// its norm (F.normalize: x / max(‖x‖, 1e-12)).
type codaWeights struct {
	n, f, L, W int
	alpha      []float64 // [n,f,L]
	qa, kn     []float64 // [n,f,L,W], [f,L,W]
	qaN, knN   []float64 // [n,f,L], [f,L]
}

func (c *CODAPrompt) weights(q []float32, f int) *codaWeights {
	L, W := len(c.opt.Layers), c.pe.w.Width
	n := len(q) / W
	cw := &codaWeights{n: n, f: f, L: L, W: W, alpha: make([]float64, n*f*L), qa: make([]float64, n*f*L*W),
		kn: make([]float64, f*L*W), qaN: make([]float64, n*f*L), knN: make([]float64, f*L)}
	for k := 0; k < f; k++ {
		for l := 0; l < L; l++ {
			cw.knN[k*L+l] = unitInto(cw.kn[(k*L+l)*W:][:W], c.Keys[(k*L+l)*W:][:W])
		}
	}
	for b := 0; b < n; b++ {
		qb := q[b*W : (b+1)*W]
		for k := 0; k < f; k++ {
			for l := 0; l < L; l++ {
				av := c.Attn[(k*L+l)*W:][:W]
				u := cw.qa[((b*f+k)*L+l)*W:][:W]
				var ss float64
				for i := range u {
					u[i] = float64(qb[i]) * float64(av[i])
					ss += u[i] * u[i]
				}
				nr := math.Max(math.Sqrt(ss), 1e-12)
				cw.qaN[(b*f+k)*L+l] = nr
				var dot float64
				kn := cw.kn[(k*L+l)*W:][:W]
				for i := range u {
					u[i] /= nr
					dot += u[i] * kn[i]
				}
				cw.alpha[(b*f+k)*L+l] = dot
			}
		}
	}
	return cw
}

// input is the prefix graph input of weights cw:
// [n, layers, 2, length/2, W].
func (c *CODAPrompt) input(cw *codaWeights) ort.Tensor {
	return ort.Tensor{Shape: []int64{int64(cw.n), int64(cw.L), 2, int64(c.opt.Length / 2), int64(cw.W)}, F32: c.compose(cw)}
}

// compose returns the prefix input [n, layers, 2, length/2, W] =
// Σ_k α_k P_k per sample and layer.
func (c *CODAPrompt) compose(cw *codaWeights) []float32 {
	L, W, Lp := cw.L, cw.W, c.opt.Length
	blk := Lp * W
	out := make([]float32, cw.n*L*blk)
	acc := make([]float64, blk)
	for b := 0; b < cw.n; b++ {
		for l := 0; l < L; l++ {
			for i := range acc {
				acc[i] = 0
			}
			for k := 0; k < cw.f; k++ {
				a := cw.alpha[(b*cw.f+k)*L+l]
				p := c.Prompts[(k*L+l)*blk:][:blk]
				for i, v := range p {
					acc[i] += a * float64(v)
				}
			}
			dst := out[(b*L+l)*blk:][:blk]
			for i := range dst {
				dst[i] = float32(acc[i])
			}
		}
	}
	return out
}

// backward maps the prefix gradient g [n,layers,length·W] to the
// components [s,f): prompts, keys and attention vectors (component-major
// slices of the trained span).
func (c *CODAPrompt) backward(cw *codaWeights, q, g []float32, s int) (gp, gk, ga []float32) {
	L, W, blk := cw.L, cw.W, c.opt.Length*cw.W
	m := cw.f - s
	gp = make([]float32, m*L*blk)
	gk64 := make([]float64, m*L*W)
	ga64 := make([]float64, m*L*W)
	for b := 0; b < cw.n; b++ {
		qb := q[b*W : (b+1)*W]
		for l := 0; l < L; l++ {
			gb := g[(b*L+l)*blk:][:blk]
			for k := s; k < cw.f; k++ {
				a := cw.alpha[(b*cw.f+k)*L+l]
				p := c.Prompts[(k*L+l)*blk:][:blk]
				dst := gp[((k-s)*L+l)*blk:][:blk]
				var galpha float64
				for i, v := range gb {
					dst[i] += float32(a * float64(v))
					galpha += float64(v) * float64(p[i])
				}
				// α = q̂a·k̂: ∂α/∂K = (q̂a − α k̂)/‖K‖; ∂α/∂A = q ⊙ (k̂ − α q̂a)/‖q⊙A‖.
				qa := cw.qa[((b*cw.f+k)*L+l)*W:][:W]
				kn := cw.kn[(k*L+l)*W:][:W]
				knN, qaN := cw.knN[k*L+l], cw.qaN[(b*cw.f+k)*L+l]
				dk := gk64[((k-s)*L+l)*W:][:W]
				da := ga64[((k-s)*L+l)*W:][:W]
				for i := 0; i < W; i++ {
					dk[i] += galpha * (qa[i] - a*kn[i]) / knN
					da[i] += galpha * float64(qb[i]) * (kn[i] - a*qa[i]) / qaN
				}
			}
		}
	}
	return gp, f64to32s(gk64), f64to32s(ga64)
}

func f64to32s(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// orthoPenalty adds to the gradients of the trained rows of x ([components,
// layers, d]) the gradient of μ·mean((T Tᵀ − I)²) over the rows [0,f) of
// every layer, and returns the penalty's value.
func orthoPenalty(x []float32, layers, d, s, f int, mu float64, g []float32) float64 {
	var total float64
	row := func(k, l int) []float32 { return x[(k*layers+l)*d:][:d] }
	for l := 0; l < layers; l++ {
		G := make([]float64, f*f)
		for i := 0; i < f; i++ {
			for j := 0; j <= i; j++ {
				var dot float64
				ri, rj := row(i, l), row(j, l)
				for t := range ri {
					dot += float64(ri[t]) * float64(rj[t])
				}
				if i == j {
					dot--
				}
				G[i*f+j], G[j*f+i] = dot, dot
				if i == j {
					total += dot * dot
				} else {
					total += 2 * dot * dot
				}
			}
		}
		scale := 4 * mu / float64(f*f)
		for r := s; r < f; r++ {
			dst := g[((r-s)*layers+l)*d:][:d]
			for j := 0; j < f; j++ {
				gj := G[r*f+j] * scale
				if gj == 0 {
					continue
				}
				for t, v := range row(j, l) {
					dst[t] += float32(gj * float64(v))
				}
			}
		}
	}
	return mu * total / float64(f*f)
}

// trainedParams are the optimizer's parameters for stage t: the stage's
// component slices (views into the tensors) and the head.
func (c *CODAPrompt) trainedParams(t int) []*optim.Param {
	s, f := c.span(t)
	L, W, Lp := int64(len(c.opt.Layers)), int64(c.pe.w.Width), int64(c.opt.Length)
	m := int64(f - s)
	lw := int(L * W)
	return append([]*optim.Param{
		{Name: "prompts", Shape: []int64{m, L, Lp, W}, Data: c.Prompts[s*lw*int(Lp) : f*lw*int(Lp)]},
		{Name: "keys", Shape: []int64{m, L, W}, Data: c.Keys[s*lw : f*lw]},
		{Name: "attention", Shape: []int64{m, L, W}, Data: c.Attn[s*lw : f*lw]},
	}, paramsOf(c.headSlots())...)
}

func (c *CODAPrompt) newOptimizer(t int) (*optim.Optimizer, error) {
	cfg := optim.AdamDefaults(optim.Adam)
	cfg.Schedule = optim.Schedule{Kind: optim.CodaCosine, Per: optim.PerEpoch, Length: max(c.opt.Epochs, 2)}
	return optim.New(cfg, optim.Group{Name: "coda-prompt", Params: c.trainedParams(t), LR: c.opt.LR})
}

// step trains stage t on one batch.
func (c *CODAPrompt) step(opt *optim.Optimizer, t int, x, q []float32, labels []int64, mask []float32) (*stepResult, *codaWeights, error) {
	s, f := c.span(t)
	W, L := c.pe.w.Width, len(c.opt.Layers)
	cw := c.weights(q, f)
	out, err := c.runTrain(x, c.input(cw), labels, mask)
	if err != nil {
		return nil, nil, err
	}
	gp, gk, ga := c.backward(cw, q, out.prompt, s)
	loss := out.loss
	if c.opt.Ortho > 0 {
		loss += orthoPenalty(c.Keys, L, W, s, f, c.opt.Ortho, gk)
		loss += orthoPenalty(c.Attn, L, W, s, f, c.opt.Ortho, ga)
		loss += orthoPenalty(c.Prompts, L, c.opt.Length*W, s, f, c.opt.Ortho, gp)
	}
	out.grads["prompts"], out.grads["keys"], out.grads["attention"] = gp, gk, ga
	res := &stepResult{Loss: loss, Logits: out.logits, Grads: out.grads}
	if res, err = applyStep("coda-prompt", opt, res, labels, c.classes()); err != nil {
		return nil, nil, err
	}
	return res, cw, nil
}

// beginStage fixes the task count at the first stage, checks the pool and
// initialises stage t's components by Gram–Schmidt.
func (c *CODAPrompt) beginStage(s Stage) error {
	if c.names == nil {
		c.tasks = c.opt.Tasks
		if c.tasks == 0 {
			c.tasks = (len(s.Names) + len(s.Classes) - 1) / len(s.Classes)
		}
		if c.opt.Components/c.tasks < 1 {
			return fmt.Errorf("coda-prompt: %d components cannot be shared by %d tasks (%d classes in stages of %d); raise components to at least %d", c.opt.Components, c.tasks, len(s.Names), len(s.Classes), c.tasks)
		}
		c.names = s.Names
		c.allocate(len(s.Names))
	}
	if c.stages >= c.tasks {
		return fmt.Errorf("coda-prompt: stage %d, but the components were allotted to %d tasks; set tasks to the run's number of stages", c.stages+1, c.tasks)
	}
	st, f := c.span(c.stages)
	L, W := len(c.opt.Layers), c.pe.w.Width
	// A stream per stage, so a learner loaded from its file after stage t
	// continues exactly as one that never stopped.
	rng := c.pe.stream(codaStream + uint64(c.stages+1))
	GramSchmidt(c.Keys, L, W, st, f, rng)
	GramSchmidt(c.Attn, L, W, st, f, rng)
	GramSchmidt(c.Prompts, L, c.opt.Length*W, st, f, rng)
	return nil
}

// Learn implements Learner.
func (c *CODAPrompt) Learn(ctx context.Context, s Stage) error {
	if err := promptStageGuard("coda-prompt", s, c.seen, c.names); err != nil {
		return err
	}
	if err := c.beginStage(s); err != nil {
		return err
	}
	t := c.stages
	err := c.trainStage(ctx, s, epochPlan{Epochs: c.opt.Epochs, Batch: c.opt.Batch, LRDigits: 2},
		func() (*optim.Optimizer, error) { return c.newOptimizer(t) },
		func(opt *optim.Optimizer, x, q []float32, labels []int64, mask []float32) (*stepResult, error) {
			r, _, err := c.step(opt, t, x, q, labels, mask)
			return r, err
		})
	if err != nil {
		return err
	}
	return c.alignStage(ctx, s)
}

// Scores implements Learner: components [0, f) of the last stage learned.
func (c *CODAPrompt) Scores(ctx context.Context, e Eval) ([]float64, []int, error) {
	return c.scores(ctx, e, c.opt.EvalBatch, c.prompt)
}

// prompt is the prefix input of images with queries q: the weighted sum of
// the components of every stage learned so far.
func (c *CODAPrompt) prompt(q []float32, _ int) ort.Tensor {
	_, f := c.span(c.stages - 1)
	return c.input(c.weights(q, f))
}

// codaState is the learner file's JSON record: promptState and the number
// of tasks the components are allotted to.
type codaState struct {
	promptState[CODAOptions]
	Tasks int `json:"tasks"`
}

// slots are the tensors of the learner file: the trained ones and, with
// align=gaussian, the class statistics.
func (c *CODAPrompt) slots() []tensorSlot {
	return append(c.trainedSlots(), c.classStatSlots(c.opt.Align)...)
}

// trainedSlots are the trained tensors: every component's prompt, key and
// attention vector, and the head.
func (c *CODAPrompt) trainedSlots() []tensorSlot {
	P, L, W, Lp := int64(c.opt.Components), int64(len(c.opt.Layers)), int64(c.pe.w.Width), int64(c.opt.Length)
	return append([]tensorSlot{
		{"prompts", []int64{P, L, Lp, W}, &c.Prompts},
		{"keys", []int64{P, L, W}, &c.Keys},
		{"attention", []int64{P, L, W}, &c.Attn},
	}, c.headSlots()...)
}

func (c *CODAPrompt) allParams() []*optim.Param { return paramsOf(c.trainedSlots()) }

// Save implements Learner.
func (c *CODAPrompt) Save(path string) error {
	return c.save(path, codaState{stateOf(&c.promptBase, c.opt), c.tasks}, c.slots())
}

// LoadCODAPrompt reads a learner file written by Save.
func LoadCODAPrompt(env Env, path string) (*CODAPrompt, error) {
	var st codaState
	c, err := loadPrompt(env, path, "coda-prompt", codaStream, &st, &st.promptState, newCODA)
	if err != nil {
		return nil, err
	}
	c.tasks = st.Tasks
	return c, nil
}

package learners

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/cl-dev/cl/extract/imageproc"
	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
	"github.com/cl-dev/cl/tune"
	"github.com/cl-dev/cl/tune/grad"
	"github.com/cl-dev/cl/tune/optim"
)

// EASE (expandable subspace ensemble; docs/METHODS.md §2.4,
// docs/TRAINING.md "Prompt methods"): every stage trains a new set of
// AdaptFormer adapters (models/vit's adapter variant) with a cosine proxy
// head over that stage's classes (SGD, cosine schedule per epoch); earlier
// sets stay frozen. Each adapter set i spans a subspace: the [CLS] of the
// ViT with set i. A class of stage t gets real prototypes (class means of
// its training images, test transform) in every subspace i ≤ t; an older
// class's prototype in a later subspace d is completed from the classes
// that have real prototypes in both its own subspace a and d, weighted by
// the softmax of their cosine similarity in a (PILOT's solve_sim_reset).
// Scores: logit_c = Σ_j λ_ij·cos(z_j, P_c,j) for c of stage i, λ_ii = 1,
// λ_ij = α/max(t, 1); t+1 ViT passes per image.
func init() {
	Register(Spec{Name: "ease", NeedsImages: true, Options: easeDefaults(),
		Summary: "EASE: a new adapter set per stage, prototypes in every adapter's subspace, old classes completed by similarity, re-weighted cosine classifier",
		New:     func(env Env, o map[string]string) (Learner, error) { return NewEASE(env, o) }})
}

func easeDefaults() map[string]string {
	return map[string]string{
		"bottleneck": "64", "scale": "0.1", "epochs": "20", "batch": "48", "lr": "0.025", "wd": "0.0005",
		"momentum": "0.9", "sigma": "1", "alpha": "0.1", "augment": "none", "eval-batch": "32",
		"sets-per-call": strconv.Itoa(defaultSetsPerCall),
	}
}

// EASEOptions are the parsed options.
type EASEOptions struct {
	Bottleneck                     int
	Scale                          float64
	Epochs, Batch, EvalBatch       int
	LR, WD, Momentum, Sigma, Alpha float64
	Augment                        string
	// SetsPerCall is how many adapter sets one graph call evaluates
	// (models/vit.BuildAdapterSets); 1 runs one pass per set. Files
	// written before the option existed read 0, taken as the default.
	SetsPerCall int `json:",omitempty"`
}

// defaultSetsPerCall is the sets-per-call default: one pass per set, since
// all sets in one call measured no faster on ONNX Runtime's CPU provider
// (ViT-Ti/16, batch 16, 3 and 5 sets; docs/TRAINING.md, "Speed") and holds
// K times the activations.
const defaultSetsPerCall = 1

func parseEASE(o map[string]string) (EASEOptions, error) {
	p, err := newPopts("ease", o, easeDefaults())
	if err != nil {
		return EASEOptions{}, err
	}
	r := EASEOptions{Bottleneck: p.integer("bottleneck", 1, vit.MaxWidth), Scale: p.number("scale", 0),
		Epochs: p.count("epochs"), Batch: p.size("batch"), EvalBatch: p.size("eval-batch"),
		LR: p.number("lr", 0), WD: p.number("wd", 0), Momentum: p.number("momentum", 0), Sigma: p.number("sigma", 0),
		Alpha: p.number("alpha", 0), Augment: p.str("augment"), SetsPerCall: p.size("sets-per-call")}
	if p.err != nil {
		return r, p.err
	}
	if r.Momentum >= 1 {
		return r, fmt.Errorf("ease: momentum=%v must be < 1", r.Momentum)
	}
	if r.Augment != "none" {
		if _, err := imageproc.TrainPreset(r.Augment); err != nil {
			return r, fmt.Errorf("ease: option augment: %w (or none)", err)
		}
	}
	return r, nil
}

// easeAdapter is one stage's adapter set: the adapter variant's parameters
// in vit.ParamSpecs order (down_w [L,W,r], down_b [L,r], up_w [L,r,W],
// up_b [L,W]).
type easeAdapter [][]float32

// easeStream seeds EASE's initial random stream; stage t's adapter set
// and proxy head draw from easeStream + t + 1.
const easeStream = 0x65617365

// EASE is the learner.
type EASE struct {
	learnerCore
	opt EASEOptions
	// adapter is the adapter variant's recipe (initialisation); specs its
	// parameters.
	adapter tune.Method
	specs   []vit.ParamSpec

	// Adapters[i] is stage i's set (frozen after stage i).
	Adapters []easeAdapter
	// Protos[d] is [C,W]: the prototype of every class in subspace d (rows
	// of classes not learned yet are zero).
	Protos [][]float32
	// StageClasses[i] are the global labels of stage i.
	StageClasses [][]int

	// feats caches the [CLS] of evaluation data sets per adapter set (the
	// sets never change after their stage).
	feats map[*tune.Dataset]map[int][]float32
	// sets runs several adapter sets in one call (opt.SetsPerCall > 1).
	sets *ort.Session
	// Trained proxy head of the last stage [C_t,W] and σ (diagnostics).
	ProxyW   []float32
	ProxySig float32
}

// NewEASE returns an untrained learner.
func NewEASE(env Env, o map[string]string) (*EASE, error) {
	opt, err := parseEASE(o)
	if err != nil {
		return nil, err
	}
	core, err := newCore("ease", env, easeStream)
	if err != nil {
		return nil, err
	}
	m, err := tune.Lookup("aper-adapter")
	if err != nil {
		return nil, err
	}
	m.Name, m.Bottleneck, m.Scale = "ease", opt.Bottleneck, float32(opt.Scale)
	nopt, err := vit.NormalizedOptions(core.pe.w.Config, vit.Options{Variant: vit.Adapter, Bottleneck: m.Bottleneck, Scale: m.Scale})
	if err != nil {
		return nil, fmt.Errorf("ease: %w", err)
	}
	return &EASE{learnerCore: core, opt: opt, adapter: m, specs: vit.ParamSpecs(core.pe.w.Config, nopt), feats: map[*tune.Dataset]map[int][]float32{}}, nil
}

func (e *EASE) sessions(classes int) error {
	if e.fwd == nil {
		m, err := vit.Build(e.pe.w, vit.Options{Variant: vit.Adapter, Bottleneck: e.opt.Bottleneck, Scale: float32(e.opt.Scale)})
		if err != nil {
			return fmt.Errorf("ease: %w", err)
		}
		in := []string{vit.InputName}
		for _, s := range e.specs {
			in = append(in, s.Name)
		}
		if e.fwd, err = e.pe.session("ease adapter forward graph", m, in, []string{vit.OutputName}); err != nil {
			return err
		}
	}
	if e.train == nil && classes > 0 {
		m, err := vit.Build(e.pe.w, vit.Options{Variant: vit.Adapter, Bottleneck: e.opt.Bottleneck, Scale: float32(e.opt.Scale)})
		if err != nil {
			return fmt.Errorf("ease: %w", err)
		}
		var trainable []string
		for _, s := range e.specs {
			trainable = append(trainable, s.Name)
		}
		trainable = append(trainable, grad.HeadWeightName, grad.HeadSigmaName)
		spec := grad.ObjectiveSpec{Features: vit.OutputName, Classes: classes, Head: grad.HeadCosine}
		if e.train, err = e.trainSession(m, spec, trainable); err != nil {
			return err
		}
	}
	return nil
}

func (e *EASE) shapes() [][]int64 {
	var out [][]int64
	for _, s := range e.specs {
		sh := make([]int64, len(s.Shape))
		for i, d := range s.Shape {
			sh[i] = int64(d)
		}
		out = append(out, sh)
	}
	return out
}

// newAdapter is a fresh set: down weights U(±1/√W) (Kaiming-uniform with
// a = √5), up weights and biases zero (PILOT's AdaptFormer init).
func (e *EASE) newAdapter(rng *rand.Rand) easeAdapter {
	var a easeAdapter
	for _, s := range e.specs {
		a = append(a, e.adapter.Init(s, rng))
	}
	return a
}

// easeTrainer holds one stage's trained tensors and optimizer.
type easeTrainer struct {
	params []*optim.Param // adapter tensors, proxy weight [C_t,W], σ [1]
	opt    *optim.Optimizer
	C      int
}

func (e *EASE) newTrainer(a easeAdapter, proxy []float32, sigma float32, C, epochs int) (*easeTrainer, error) {
	tr := &easeTrainer{C: C}
	for i, s := range e.specs {
		tr.params = append(tr.params, &optim.Param{Name: s.Name, Shape: e.shapes()[i], Data: a[i]})
	}
	tr.params = append(tr.params,
		&optim.Param{Name: grad.HeadWeightName, Shape: []int64{int64(C), int64(e.pe.w.Width)}, Data: proxy},
		&optim.Param{Name: grad.HeadSigmaName, Shape: []int64{1}, Data: []float32{sigma}})
	cfg := optim.Config{Kind: optim.SGD, Momentum: e.opt.Momentum,
		Schedule: optim.Schedule{Kind: optim.Cosine, Per: optim.PerEpoch, Length: max(epochs, 1)}}
	var err error
	tr.opt, err = optim.New(cfg, optim.Group{Name: "ease", Params: tr.params, LR: e.opt.LR, WeightDecay: e.opt.WD})
	return tr, err
}

// step: one SGD step on images x [n,3,S,S] with stage-local labels 0..C−1.
func (e *EASE) step(tr *easeTrainer, x []float32, labels []int64) (*stepResult, error) {
	if err := e.sessions(tr.C); err != nil {
		return nil, err
	}
	in := []ort.Tensor{e.pe.images(x, len(labels))}
	for _, p := range tr.params {
		in = append(in, ort.Tensor{Shape: p.Shape, F32: p.Data})
	}
	in = append(in, ort.Tensor{Shape: []int64{int64(len(labels))}, I64: labels})
	out, err := e.train.Run(in)
	if err != nil {
		return nil, err
	}
	res := &stepResult{Loss: float64(out[0].F32[0]), Logits: out[1].F32, Grads: map[string][]float32{}}
	for i, p := range tr.params {
		res.Grads[p.Name] = out[2+i].F32
	}
	return applyStep("ease", tr.opt, res, labels, tr.C)
}

// features runs the ViT with adapter set i on x [n,3,S,S].
func (e *EASE) features(i int, x []float32, n int) ([]float32, error) {
	if err := e.sessions(0); err != nil {
		return nil, err
	}
	in := []ort.Tensor{e.pe.images(x, n)}
	for k, sh := range e.shapes() {
		in = append(in, ort.Tensor{Shape: sh, F32: e.Adapters[i][k]})
	}
	out, err := e.fwd.Run(in)
	if err != nil {
		return nil, err
	}
	return out[0].F32, nil
}

// setsFeatures runs the ViT with each adapter set of sets (indices into
// Adapters, at least two) in one graph call on x [n,3,S,S]: the features
// [n,W] of each, in the order of sets. stacked are the sets' parameters
// stacked by stackSets.
func (e *EASE) setsFeatures(stacked []ort.Tensor, x []float32, n, k int) ([][]float32, error) {
	if e.sets == nil {
		m, err := vit.BuildAdapterSets(e.pe.w, vit.Options{Variant: vit.Adapter, Bottleneck: e.opt.Bottleneck, Scale: float32(e.opt.Scale)})
		if err != nil {
			return nil, fmt.Errorf("ease: %w", err)
		}
		in := []string{vit.InputName}
		for _, s := range e.specs {
			in = append(in, s.Name)
		}
		if e.sets, err = e.pe.session("ease adapter-sets forward graph", m, in, []string{vit.OutputName}); err != nil {
			return nil, err
		}
	}
	out, err := e.sets.Run(append([]ort.Tensor{e.pe.images(x, n)}, stacked...))
	if err != nil {
		return nil, err
	}
	f, per := out[0].F32, n*e.pe.w.Width
	res := make([][]float32, k)
	for i := range res {
		res[i] = f[i*per : (i+1)*per]
	}
	return res, nil
}

// stackSets stacks the parameters of the adapter sets of sets along a
// leading set dimension (BuildAdapterSets' inputs).
func (e *EASE) stackSets(sets []int) []ort.Tensor {
	var out []ort.Tensor
	for k, sh := range e.shapes() {
		var v []float32
		for _, i := range sets {
			v = append(v, e.Adapters[i][k]...)
		}
		out = append(out, ort.Tensor{Shape: append([]int64{int64(len(sets))}, sh...), F32: v})
	}
	return out
}

// datasetFeatures returns the [CLS] of every image of d under each adapter
// set of sets, [d.Len(),W] per set, cached per data set (sets are frozen
// after their stage; set i may only be cached once stage i is done). The
// images are read once; the sets not cached run opt.SetsPerCall to a
// graph call (one pass per set when 1).
func (e *EASE) datasetFeatures(ctx context.Context, d *tune.Dataset, sets []int, cache bool) ([][]float32, error) {
	out := make([][]float32, len(sets))
	var todo []int // positions in sets
	for p, i := range sets {
		if f, ok := e.feats[d][i]; ok {
			out[p] = f
		} else {
			todo = append(todo, p)
			out[p] = make([]float32, 0, d.Len()*e.pe.w.Width)
		}
	}
	if len(todo) == 0 {
		return out, nil
	}
	// Calls of at most SetsPerCall sets; a call of one set is the plain
	// adapter pass.
	per := max(e.opt.SetsPerCall, 1)
	type call struct {
		pos     []int
		stacked []ort.Tensor
	}
	var calls []call
	for lo := 0; lo < len(todo); lo += per {
		c := call{pos: todo[lo:min(lo+per, len(todo))]}
		if len(c.pos) > 1 {
			var ids []int
			for _, p := range c.pos {
				ids = append(ids, sets[p])
			}
			c.stacked = e.stackSets(ids)
		}
		calls = append(calls, c)
	}
	err := e.pe.inOrder(ctx, d, e.opt.EvalBatch, func(b *tune.Batch) error {
		for _, c := range calls {
			if len(c.pos) == 1 {
				f, err := e.features(sets[c.pos[0]], b.X, b.N())
				if err != nil {
					return err
				}
				out[c.pos[0]] = append(out[c.pos[0]], f...)
				continue
			}
			fs, err := e.setsFeatures(c.stacked, b.X, b.N(), len(c.pos))
			if err != nil {
				return err
			}
			for k, p := range c.pos {
				out[p] = append(out[p], fs[k]...)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if cache {
		if e.feats[d] == nil {
			e.feats[d] = map[int][]float32{}
		}
		for _, p := range todo {
			e.feats[d][sets[p]] = out[p]
		}
	}
	return out, nil
}

// upTo is 0, 1, …, t.
func upTo(t int) []int {
	v := make([]int, t+1)
	for i := range v {
		v[i] = i
	}
	return v
}

// DropCache implements CacheDropper: the per-adapter features and frozen
// queries of d.
func (e *EASE) DropCache(d *tune.Dataset) {
	delete(e.feats, d)
	e.learnerCore.DropCache(d)
}

// Close releases the ONNX Runtime sessions.
func (e *EASE) Close() {
	if e.sets != nil {
		e.sets.Close()
		e.sets = nil
	}
	e.learnerCore.Close()
}

// setPrototypes writes the class means of feats [n,W] (labels global) into
// subspace d.
func (e *EASE) setPrototypes(d int, feats []float32, labels []int) {
	W := e.pe.w.Width
	sum := map[int][]float64{}
	cnt := map[int]int{}
	for r, y := range labels {
		if sum[y] == nil {
			sum[y] = make([]float64, W)
		}
		for t, v := range feats[r*W : (r+1)*W] {
			sum[y][t] += float64(v)
		}
		cnt[y]++
	}
	for y, s := range sum {
		dst := e.Protos[d][y*W : (y+1)*W]
		for t := range dst {
			dst[t] = float32(s[t] / float64(cnt[y]))
		}
	}
}

// complete fills the prototypes of old classes in later subspaces (PILOT's
// solve_sim_reset): for every old stage a < t and subspace d ∈ (a, t], the
// classes R of stages d … t have real prototypes in a and d; for i of
// stage a, P[i,d] = Σ_{j∈R} softmax_j(cos(P[i,a], P[j,a]))·P[j,d].
func (e *EASE) complete() {
	W := e.pe.w.Width
	t := len(e.StageClasses) - 1
	row := func(d, c int) []float32 { return e.Protos[d][c*W : (c+1)*W] }
	for a := 0; a < t; a++ {
		for d := a + 1; d <= t; d++ {
			var R []int
			for s := d; s <= t; s++ {
				R = append(R, e.StageClasses[s]...)
			}
			for _, i := range e.StageClasses[a] {
				sim := make([]float64, len(R))
				mx := math.Inf(-1)
				for k, j := range R {
					sim[k] = cosine(row(a, i), row(a, j))
					mx = math.Max(mx, sim[k])
				}
				var z float64
				for k := range sim {
					sim[k] = math.Exp(sim[k] - mx)
					z += sim[k]
				}
				acc := make([]float64, W)
				for k, j := range R {
					wk := sim[k] / z
					for x, v := range row(d, j) {
						acc[x] += wk * float64(v)
					}
				}
				dst := row(d, i)
				for x := range dst {
					dst[x] = float32(acc[x])
				}
			}
		}
	}
}

// cosine is torch.cosine_similarity (eps 1e-8 on each norm).
func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / (math.Max(math.Sqrt(aa), 1e-8) * math.Max(math.Sqrt(bb), 1e-8))
}

// Learn implements Learner.
func (e *EASE) Learn(ctx context.Context, s Stage) error {
	var seen []int
	for _, c := range e.StageClasses {
		seen = append(seen, c...)
	}
	if err := promptStageGuard("ease", s, seen, e.names); err != nil {
		return err
	}
	if e.names == nil {
		e.names = s.Names
	}
	W, C := e.pe.w.Width, len(s.Names)
	t := len(e.Adapters)
	classes := pSortedInts(s.Classes)
	local := map[int]int64{}
	for k, c := range classes {
		local[c] = int64(k)
	}
	// A new adapter set and proxy head; the training graph depends on the
	// stage's class count, so it is rebuilt when that changes.
	// A stream per stage, so a learner loaded from its file after stage t
	// continues exactly as one that never stopped.
	rng := e.pe.stream(easeStream + uint64(t+1))
	a := e.newAdapter(rng)
	b := 1 / math.Sqrt(float64(W))
	proxy := pUniform(rng, len(classes)*W, -b, b)
	if e.train != nil && len(e.ProxyW) != len(proxy) {
		e.train.Close()
		e.train = nil
	}
	tr, err := e.newTrainer(a, proxy, float32(e.opt.Sigma), len(classes), e.opt.Epochs)
	if err != nil {
		return err
	}
	e.ProxyW = proxy
	var tf tune.Transform = e.pe.tf
	if e.opt.Augment != "none" {
		p, _ := imageproc.TrainPreset(e.opt.Augment)
		ag, err := imageproc.NewAugmenter(p.ForModel(e.pe.tf.(tune.EvalTransform).P.Preprocess()))
		if err != nil {
			return err
		}
		tf = tune.AugmentTransform{A: ag}
	}
	plan := epochPlan{Epochs: e.opt.Epochs, Batch: e.opt.Batch, Transform: tf, Opt: tr.opt, LRDigits: 3}
	err = e.runEpochs(ctx, s, plan, func(bt *tune.Batch) (*stepResult, error) {
		lab := make([]int64, len(bt.Labels))
		for i, y := range bt.Labels {
			lab[i] = local[int(y)]
		}
		return e.step(tr, bt.X, lab)
	})
	if err != nil {
		return err
	}
	e.ProxySig = tr.params[len(tr.params)-1].Data[0]
	e.Adapters = append(e.Adapters, a)
	e.StageClasses = append(e.StageClasses, classes)
	e.Protos = append(e.Protos, make([]float32, C*W))
	// Real prototypes of the new classes in every subspace 0 … t.
	fs, err := e.datasetFeatures(ctx, s.Images, upTo(t), false)
	if err != nil {
		return err
	}
	for i, f := range fs {
		e.setPrototypes(i, f, s.Images.Labels)
	}
	e.complete()
	return nil
}

// Scores implements Learner: the re-weighted cosine logits of every class
// learned, from t+1 passes (one per adapter set).
func (e *EASE) Scores(ctx context.Context, ev Eval) ([]float64, []int, error) {
	t := len(e.Adapters) - 1
	if err := evalGuard("ease", t >= 0, ev, "the adapted ViTs"); err != nil {
		return nil, nil, err
	}
	z, err := e.datasetFeatures(ctx, ev.Images, upTo(t), true)
	if err != nil {
		return nil, nil, err
	}
	return e.scoresFrom(z, ev.Images.Len())
}

// scoresFrom computes the logits from the per-subspace features z[j]
// [n,W].
func (e *EASE) scoresFrom(z [][]float32, n int) ([]float64, []int, error) {
	W, t := e.pe.w.Width, len(z)-1
	var cols []int
	stageOf := map[int]int{}
	for i, cs := range e.StageClasses {
		for _, c := range cs {
			stageOf[c] = i
			cols = append(cols, c)
		}
	}
	cols = pSortedInts(cols)
	// Unit prototypes per subspace.
	unit := make([][]float64, t+1)
	for j := 0; j <= t; j++ {
		unit[j] = make([]float64, len(cols)*W)
		for k, c := range cols {
			unitInto(unit[j][k*W:(k+1)*W], e.Protos[j][c*W:(c+1)*W])
		}
	}
	off := e.opt.Alpha / math.Max(float64(t), 1)
	scores := make([]float64, n*len(cols))
	zu := make([]float64, W)
	for j := 0; j <= t; j++ {
		for r := 0; r < n; r++ {
			unitInto(zu, z[j][r*W:(r+1)*W])
			for k, c := range cols {
				var dot float64
				u := unit[j][k*W : (k+1)*W]
				for x := range u {
					dot += zu[x] * u[x]
				}
				lam := off
				if stageOf[c] == j {
					lam = 1
				}
				scores[r*len(cols)+k] += lam * dot
			}
		}
	}
	return scores, cols, nil
}

type easeState struct {
	Options      EASEOptions `json:"options"`
	Names        []string    `json:"names"`
	StageClasses [][]int     `json:"stage_classes"`
}

// slots are the trained tensors: every stage's adapter set and prototypes.
func (e *EASE) slots() []tensorSlot {
	var out []tensorSlot
	W, C := int64(e.pe.w.Width), int64(len(e.names))
	for i, a := range e.Adapters {
		for k, s := range e.specs {
			out = append(out, tensorSlot{fmt.Sprintf("adapter.%d.%s", i, s.Name), e.shapes()[k], &a[k]})
		}
		out = append(out, tensorSlot{fmt.Sprintf("prototypes.%d", i), []int64{C, W}, &e.Protos[i]})
	}
	return out
}

// Save implements Learner: every adapter set and the prototypes.
func (e *EASE) Save(path string) error {
	return e.save(path, easeState{Options: e.opt, Names: e.names, StageClasses: e.StageClasses}, e.slots())
}

// LoadEASE reads a learner file written by Save.
func LoadEASE(env Env, path string) (*EASE, error) {
	var st easeState
	f, err := readState(env, path, "ease", &st)
	if err != nil {
		return nil, err
	}
	e, err := NewEASE(env, map[string]string{"bottleneck": fmt.Sprint(st.Options.Bottleneck), "scale": fmt.Sprint(st.Options.Scale)})
	if err != nil {
		return nil, err
	}
	e.opt, e.names, e.StageClasses = st.Options, st.Names, st.StageClasses
	if e.opt.SetsPerCall == 0 { // a file from before the option
		e.opt.SetsPerCall = defaultSetsPerCall
	}
	e.Adapters = make([]easeAdapter, len(st.StageClasses))
	e.Protos = make([][]float32, len(st.StageClasses))
	for i := range e.Adapters {
		e.Adapters[i] = make(easeAdapter, len(e.specs))
	}
	if err := readSlots(f, path, e.slots()); err != nil {
		return nil, err
	}
	return e, nil
}

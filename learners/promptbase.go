package learners

import (
	"context"
	"fmt"

	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
	"github.com/cl-dev/cl/tune"
	"github.com/cl-dev/cl/tune/grad"
	"github.com/cl-dev/cl/tune/optim"
)

// promptBase is what L2P, DualPrompt and CODA-Prompt share: every image
// gets prompts composed from its frozen [CLS] query (the method's part),
// the ViT runs with them as a prompt graph variant, and a linear head over
// the run's classes reads the result; a stage trains with the logits of
// the other classes masked. Their files hold the trained tensors and a
// promptState.
type promptBase struct {
	learnerCore
	graph promptGraph
	// HeadW [W,C] (x·W orientation) and HeadB [C]: the linear head over
	// the run's C classes.
	HeadW, HeadB []float32
	// AlignMean [C,W] and AlignCov [C,W,W] are the stored class statistics
	// of align=gaussian (prompt_align.go; nil otherwise, zero for classes
	// not yet seen).
	AlignMean, AlignCov []float32
	// seen are the global labels learned, in stage order; stages the
	// number of stages learned.
	seen   []int
	stages int
}

// promptGraph is a prompt learner's graph: the ViT variant, the name of
// its per-image prompt input ("prompt" or "prefix", models/vit's
// ParamSpecs) and the output the head reads ([n,W]).
type promptGraph struct {
	opts     vit.Options
	input    string
	features string
}

func (b *promptBase) classes() int { return len(b.HeadB) }

// sessions builds the training graph (the variant, the linear head on
// graph.features and the masked cross-entropy, differentiated with respect
// to the per-image prompt input and the head) and the forward graph.
func (b *promptBase) sessions() error {
	if b.train != nil {
		return nil
	}
	fwd, err := vit.Build(b.pe.w, b.graph.opts)
	if err != nil {
		return fmt.Errorf("%s: %w", b.method, err)
	}
	in := b.graph.input
	spec := grad.ObjectiveSpec{Features: b.graph.features, Classes: b.classes(), Head: grad.HeadLinear, Mask: grad.MaskInput}
	if b.train, err = b.trainSession(fwd, spec, []string{in, grad.HeadWeightName, grad.HeadBiasName}); err != nil {
		return err
	}
	b.fwd, err = b.pe.session(b.method+" forward graph", fwd, []string{vit.InputName, in}, []string{b.graph.features})
	return err
}

// trainOut is one run of the training graph.
type trainOut struct {
	// loss is the batch's mean masked cross-entropy; logits are [n,C].
	loss   float64
	logits []float32
	// prompt is the gradient of the prompt input (its shape); grads holds
	// the head's gradients by parameter name (weight [W,C], bias [C]), to
	// which the method adds its own.
	prompt []float32
	grads  map[string][]float32
}

// runTrain runs the training graph on images x [n,3,S,S] with the prompt
// input p, mask [C] (1 for the stage's classes) and global labels [n].
func (b *promptBase) runTrain(x []float32, p ort.Tensor, labels []int64, mask []float32) (*trainOut, error) {
	if err := b.sessions(); err != nil {
		return nil, err
	}
	n, W, C := len(labels), int64(b.pe.w.Width), int64(b.classes())
	out, err := b.train.Run([]ort.Tensor{b.pe.images(x, n), p,
		{Shape: []int64{W, C}, F32: b.HeadW},
		{Shape: []int64{C}, F32: b.HeadB},
		{Shape: []int64{C}, F32: mask},
		{Shape: []int64{int64(n)}, I64: labels},
	})
	if err != nil {
		return nil, err
	}
	return &trainOut{loss: float64(out[0].F32[0]), logits: out[1].F32, prompt: out[2].F32,
		grads: map[string][]float32{grad.HeadWeightName: out[3].F32, grad.HeadBiasName: out[4].F32}}, nil
}

// headSlots are the head's tensors in the learner file.
func (b *promptBase) headSlots() []tensorSlot {
	W, C := int64(b.pe.w.Width), int64(b.classes())
	return []tensorSlot{
		{grad.HeadWeightName, []int64{W, C}, &b.HeadW},
		{grad.HeadBiasName, []int64{C}, &b.HeadB},
	}
}

// trainStage trains stage s once the method has set it up (promptStageGuard
// and initialisation are the caller's): the frozen queries of the stage's
// images, the optimizer from newOpt, plan's epochs with step on every batch
// (images x [n,3,S,S], their queries q [n,W], global labels [n], mask [C]
// = 1 on the stage's classes); then the stage's classes count as learned.
func (b *promptBase) trainStage(ctx context.Context, s Stage, plan epochPlan, newOpt func() (*optim.Optimizer, error),
	step func(opt *optim.Optimizer, x, q []float32, labels []int64, mask []float32) (*stepResult, error)) error {
	W := b.pe.w.Width
	q, err := b.pe.datasetQueries(ctx, s.Images, s.Features, s.Dim)
	if err != nil {
		return err
	}
	opt, err := newOpt()
	if err != nil {
		return err
	}
	plan.Opt = opt
	mask := pClassMask(b.classes(), s.Classes)
	err = b.runEpochs(ctx, s, plan, func(bt *tune.Batch) (*stepResult, error) {
		return step(opt, bt.X, gatherRows(q, W, bt.Rows), bt.Labels, mask)
	})
	if err != nil {
		return err
	}
	b.seen = append(b.seen, s.Classes...)
	b.stages++
	return nil
}

// scores is Scores of a prompt learner: the head's logits of the classes
// learned (cols, ascending) for every image of e, row-major
// [e.Images.Len(), len(cols)], from the prompted ViT (features), bs images
// a call. prompt returns the prompt input of n images from their frozen
// queries q [n,W].
func (b *promptBase) scores(ctx context.Context, e Eval, bs int, prompt func(q []float32, n int) ort.Tensor) ([]float64, []int, error) {
	if err := evalGuard(b.method, b.stages > 0, e, "the prompted ViT"); err != nil {
		return nil, nil, err
	}
	f, err := b.features(ctx, e.Images, e.Features, e.Dim, bs, prompt)
	if err != nil {
		return nil, nil, err
	}
	cols := pSortedInts(b.seen)
	return appendLinearScores(make([]float64, 0, e.Images.Len()*len(cols)), f, b.pe.w.Width, b.HeadW, b.HeadB, b.classes(), cols), cols, nil
}

// appendLinearScores appends f·W + b for the columns cols of every row of
// f [n,W] (W [W,C]).
func appendLinearScores(scores []float64, f []float32, W int, hw, hb []float32, C int, cols []int) []float64 {
	for i := 0; i < len(f)/W; i++ {
		row := f[i*W : (i+1)*W]
		for _, c := range cols {
			s := float64(hb[c])
			for t, v := range row {
				s += float64(v) * float64(hw[t*C+c])
			}
			scores = append(scores, s)
		}
	}
	return scores
}

// voteGroup is the number of consecutive test images that select together
// under mode: voteBatch for SelectBatchVote, else 0 (each image alone).
func voteGroup(mode string, voteBatch int) int {
	if mode == SelectBatchVote {
		return voteBatch
	}
	return 0
}

// selections applies sel to the frozen queries of e's images, group rows
// at a time (0: all rows in one call), and returns its rows in order.
func (b *promptBase) selections(ctx context.Context, e Eval, group int, sel func(q []float32) [][]int) ([][]int, error) {
	q, err := b.pe.datasetQueries(ctx, e.Images, e.Features, e.Dim)
	if err != nil {
		return nil, err
	}
	W := b.pe.w.Width
	n := len(q) / W
	if group == 0 {
		group = n
	}
	var out [][]int
	for i := 0; i < n; i += group {
		out = append(out, sel(q[i*W:min(i+group, n)*W])...)
	}
	return out, nil
}

// keyPull is the key term of L2P and DualPrompt for queries q [n,W] and
// the rows idx of keys [pool,W] every image selected: r, the mean over the
// images of Σ cos(query, selected key), and the gradient of −pull·r with
// respect to the keys [pool,W]. The loss adds −pull·r.
func keyPull(q, keys []float32, W int, idx [][]int, pull float64) (float64, []float32) {
	r, g := tune.KeyPull(q, keys, W, idx)
	gk := make([]float32, len(g))
	for i, v := range g {
		gk[i] = float32(-pull * v)
	}
	return r, gk
}

// promptState is the JSON record of a prompt learner's file: the options
// (O's fields under their Go names), the class names, the classes learned
// and the number of stages.
type promptState[O any] struct {
	Options O        `json:"options"`
	Names   []string `json:"names"`
	Seen    []int    `json:"seen"`
	Stages  int      `json:"stages"`
}

// stateOf is b's record with options o.
func stateOf[O any](b *promptBase, o O) promptState[O] {
	return promptState[O]{Options: o, Names: b.names, Seen: b.seen, Stages: b.stages}
}

func (b *promptBase) base() *promptBase { return b }

// newPrompt makes an untrained prompt learner of method whose options
// depend on the ViT: a fresh core (initial stream tag), the options o
// parsed against the ViT's depth (blocks), then build.
func newPrompt[O, L any](env Env, method string, tag uint64, o map[string]string, parse func(map[string]string, int) (O, error), build func(learnerCore, O) L) (L, error) {
	var none L
	core, err := newCore(method, env, tag)
	if err != nil {
		return none, err
	}
	opt, err := parse(o, core.pe.w.Depth)
	if err != nil {
		return none, err
	}
	return build(core, opt), nil
}

// loadPrompt reads the learner file of method at path written by a prompt
// learner's Save: its JSON record into state (st is its promptState part),
// then the learner that build makes from a fresh core (initial stream tag)
// and the recorded options, with the record's classes and stages and the
// file's tensors in its slots. The weights in env must be the ones it was
// trained on.
func loadPrompt[O any, L interface {
	base() *promptBase
	slots() []tensorSlot
}](env Env, path, method string, tag uint64, state any, st *promptState[O], build func(learnerCore, O) L) (L, error) {
	var none L
	f, err := readState(env, path, method, state)
	if err != nil {
		return none, err
	}
	core, err := newCore(method, env, tag)
	if err != nil {
		return none, err
	}
	l := build(core, st.Options)
	b := l.base()
	b.names, b.seen, b.stages = st.Names, st.Seen, st.Stages
	b.HeadB = make([]float32, len(st.Names)) // the head's shape in slots
	if err := readSlots(f, path, l.slots()); err != nil {
		return none, err
	}
	return l, nil
}

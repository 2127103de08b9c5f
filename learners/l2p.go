package learners

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
	"github.com/cl-dev/cl/tune"
	"github.com/cl-dev/cl/tune/grad"
	"github.com/cl-dev/cl/tune/optim"
)

// L2P (Learning to Prompt; docs/METHODS.md §2.6, docs/TRAINING.md "Prompt
// methods"): a pool of prompts with learnable keys; each image selects the
// top-k keys by cosine with its frozen [CLS] query; the selected prompts
// are inserted after [CLS] (models/vit's prompt variant, p = top-k·length
// tokens with the [CLS] position embedding); a linear head reads the mean
// of the prompt outputs. Loss: cross-entropy over the stage's classes (other
// logits at −inf) minus pull·Σ cos(query, selected keys)/B. Adam with a
// constant learning rate, re-created every stage.
func init() {
	Register(Spec{Name: "l2p", NeedsImages: true, Options: l2pDefaults(),
		Summary: "L2P: prompt pool with cosine key matching, prompts after [CLS], linear head on the prompt outputs (Adam)",
		New:     func(env Env, o map[string]string) (Learner, error) { return NewL2P(env, o) }})
}

// l2pDefaults are PILOT's l2p.json values, except the selection (see
// docs/TRAINING.md: batch voting in training collapses on small data).
func l2pDefaults() map[string]string {
	return map[string]string{
		"pool": "10", "length": "5", "top-k": "5", "pull": "0.1",
		"lr": "0.001875", "batch": "16", "epochs": "5",
		"train-select": SelectPerSample, "test-select": SelectPerSample, "vote-batch": "16",
		"eval-batch": "32",
	}
}

// L2POptions are the parsed options.
type L2POptions struct {
	Pool, Length, TopK int
	Pull, LR           float64
	Batch, Epochs      int
	// TrainSelect and TestSelect are SelectPerSample or SelectBatchVote;
	// VoteBatch is the number of consecutive test images that vote together.
	TrainSelect, TestSelect string
	VoteBatch, EvalBatch    int
}

func parseL2P(o map[string]string) (L2POptions, error) {
	p, err := newPopts("l2p", o, l2pDefaults())
	if err != nil {
		return L2POptions{}, err
	}
	r := L2POptions{
		Pool: p.integer("pool", 1, 4096), Length: p.integer("length", 1, 4096), TopK: p.integer("top-k", 1, 4096),
		Pull: p.number("pull", 0), LR: p.number("lr", 0), Batch: p.integer("batch", 1, 1<<20),
		Epochs:      p.integer("epochs", 0, 1<<20),
		TrainSelect: p.choice("train-select", SelectPerSample, SelectBatchVote),
		TestSelect:  p.choice("test-select", SelectPerSample, SelectBatchVote),
		VoteBatch:   p.integer("vote-batch", 1, 1<<20), EvalBatch: p.integer("eval-batch", 1, 1<<20),
	}
	if p.err != nil {
		return r, p.err
	}
	if r.TopK > r.Pool {
		return r, fmt.Errorf("l2p: top-k=%d selects more prompts than the pool holds (pool=%d)", r.TopK, r.Pool)
	}
	if r.TopK*r.Length > 4096 {
		return r, fmt.Errorf("l2p: top-k·length = %d prompt tokens; the prompt variant takes at most 4096", r.TopK*r.Length)
	}
	return r, nil
}

// L2P is the learner.
type L2P struct {
	pe  *promptEnv
	opt L2POptions
	rng *rand.Rand

	// Trained state: Prompts [pool,length,W], Keys [pool,W], HeadW [W,C]
	// (x·W orientation), HeadB [C]; C = the run's number of classes.
	Prompts, Keys, HeadW, HeadB []float32
	names                       []string
	seen                        []int
	stages                      int

	train, fwd *ort.Session
	// Log of the last stage's training: mean loss per epoch.
	EpochLoss []float64
}

// NewL2P returns an untrained L2P learner.
func NewL2P(env Env, o map[string]string) (*L2P, error) {
	opt, err := parseL2P(o)
	if err != nil {
		return nil, err
	}
	pe, err := newPromptEnv("l2p", env)
	if err != nil {
		return nil, err
	}
	return &L2P{pe: pe, opt: opt, rng: rand.New(rand.NewPCG(env.Seed, 0x6c3270))}, nil
}

// Method implements Learner.
func (l *L2P) Method() string { return "l2p" }

// Options returns the parsed options.
func (l *L2P) Options() L2POptions { return l.opt }

func (l *L2P) tokens() int { return l.opt.TopK * l.opt.Length }

// init allocates the pool and the head for C classes: prompts and keys
// U(−1, 1) (PILOT's prompt_init/prompt_key_init "uniform"), head weight
// N(0, 0.02²) truncated, bias 0 (timm's Linear init).
func (l *L2P) init(C int) {
	W := l.pe.w.Width
	l.Prompts = pUniform(l.rng, l.opt.Pool*l.opt.Length*W, -1, 1)
	l.Keys = pUniform(l.rng, l.opt.Pool*W, -1, 1)
	l.HeadW = pTruncNormal(l.rng, W*C, 0.02)
	l.HeadB = make([]float32, C)
}

func (l *L2P) classes() int { return len(l.HeadB) }

// sessions builds the training graph (prompt variant + linear head on
// prompt_mean + masked cross-entropy, differentiated with respect to the
// per-image prompts and the head) and the forward graph.
func (l *L2P) sessions() error {
	if l.train != nil {
		return nil
	}
	fwd, err := vit.Build(l.pe.w, vit.Options{Variant: vit.Prompt, Tokens: l.tokens()})
	if err != nil {
		return fmt.Errorf("l2p: %w", err)
	}
	obj := grad.NewObjective(fwd)
	if err := obj.Classifier(grad.ObjectiveSpec{Features: vit.PromptMeanName, Classes: l.classes(), Head: grad.HeadLinear, Mask: grad.MaskInput}); err != nil {
		return err
	}
	tg, err := grad.Build(obj.Model(), grad.Spec{Trainable: []string{"prompt", grad.HeadWeightName, grad.HeadBiasName}, Loss: grad.LossName, Keep: []string{grad.LogitsName}})
	if err != nil {
		return fmt.Errorf("l2p: differentiating the training graph: %w", err)
	}
	l.train, err = l.pe.session("l2p training graph", tg,
		[]string{vit.InputName, "prompt", grad.HeadWeightName, grad.HeadBiasName, grad.ClassMaskName, grad.LabelsName},
		[]string{grad.LossName, grad.LogitsName, grad.GradName("prompt"), grad.GradName(grad.HeadWeightName), grad.GradName(grad.HeadBiasName)})
	if err != nil {
		return err
	}
	l.fwd, err = l.pe.session("l2p forward graph", fwd, []string{vit.InputName, "prompt"}, []string{vit.PromptMeanName})
	return err
}

// Close releases the ONNX Runtime sessions.
func (l *L2P) Close() {
	for _, s := range []*ort.Session{l.train, l.fwd} {
		if s != nil {
			s.Close()
		}
	}
	l.train, l.fwd = nil, nil
	l.pe.close()
}

// selectRows returns the pool rows of every image of a batch with queries q.
func (l *L2P) selectRows(q []float32, mode string) [][]int {
	idx, _ := tune.CosineTopK(q, l.Keys, l.pe.w.Width, l.opt.TopK)
	if mode == SelectBatchVote {
		idx = tune.VoteTopK(idx, l.opt.TopK)
	}
	return idx
}

// compose returns the per-image prompt input [n, top-k·length, W].
func (l *L2P) compose(idx [][]int) []float32 {
	W, Lp := l.pe.w.Width, l.opt.Length
	out := make([]float32, 0, len(idx)*l.tokens()*W)
	for _, row := range idx {
		for _, j := range row {
			out = append(out, l.Prompts[j*Lp*W:(j+1)*Lp*W]...)
		}
	}
	return out
}

func (l *L2P) params() []*optim.Param {
	W, C := int64(l.pe.w.Width), int64(l.classes())
	return []*optim.Param{
		{Name: "prompts", Shape: []int64{int64(l.opt.Pool), int64(l.opt.Length), W}, Data: l.Prompts},
		{Name: "keys", Shape: []int64{int64(l.opt.Pool), W}, Data: l.Keys},
		{Name: grad.HeadWeightName, Shape: []int64{W, C}, Data: l.HeadW},
		{Name: grad.HeadBiasName, Shape: []int64{C}, Data: l.HeadB},
	}
}

// newOptimizer is PILOT's: Adam (β 0.9, 0.999, ε 1e-8, no weight decay),
// constant learning rate, over prompts, keys and head.
func (l *L2P) newOptimizer() (*optim.Optimizer, error) {
	return optim.New(optim.AdamDefaults(optim.Adam), optim.Group{Name: "l2p", Params: l.params(), LR: l.opt.LR})
}

// step runs one optimiser step on images x [n,3,S,S] with frozen queries q
// [n,W] and global labels; mask [C] allows the stage's classes.
func (l *L2P) step(opt *optim.Optimizer, x, q []float32, labels []int64, mask []float32) (*stepResult, error) {
	if err := l.sessions(); err != nil {
		return nil, err
	}
	n, W, S, C := len(labels), l.pe.w.Width, int64(l.pe.w.Image), l.classes()
	idx := l.selectRows(q, l.opt.TrainSelect)
	out, err := l.train.Run([]ort.Tensor{
		{Shape: []int64{int64(n), 3, S, S}, F32: x},
		{Shape: []int64{int64(n), int64(l.tokens()), int64(W)}, F32: l.compose(idx)},
		{Shape: []int64{int64(W), int64(C)}, F32: l.HeadW},
		{Shape: []int64{int64(C)}, F32: l.HeadB},
		{Shape: []int64{int64(C)}, F32: mask},
		{Shape: []int64{int64(n)}, I64: labels},
	})
	if err != nil {
		return nil, err
	}
	// Prompt gradients scattered back to the pool rows they came from.
	gp := make([]float32, len(l.Prompts))
	blk := l.opt.Length * W
	for b, row := range idx {
		for k, j := range row {
			src := out[2].F32[(b*l.tokens()+k*l.opt.Length)*W:][:blk]
			dst := gp[j*blk : (j+1)*blk]
			for t := range dst {
				dst[t] += src[t]
			}
		}
	}
	r, gk64 := tune.KeyPull(q, l.Keys, W, idx)
	gk := make([]float32, len(gk64))
	for i, v := range gk64 {
		gk[i] = float32(-l.opt.Pull * v)
	}
	res := &stepResult{Loss: float64(out[0].F32[0]) - l.opt.Pull*r, Idx: idx, Logits: out[1].F32,
		Grads: map[string][]float32{"prompts": gp, "keys": gk, grad.HeadWeightName: out[3].F32, grad.HeadBiasName: out[4].F32}}
	return applyStep("l2p", opt, res, labels, C)
}

// Learn implements Learner: one stage of training with a fresh optimizer.
func (l *L2P) Learn(ctx context.Context, s Stage) error {
	if err := promptStageGuard("l2p", s, l.seen, l.names); err != nil {
		return err
	}
	if l.names == nil {
		l.names = s.Names
		l.init(len(s.Names))
	}
	W := l.pe.w.Width
	q, err := l.pe.datasetQueries(ctx, s.Images, s.Features, s.Dim)
	if err != nil {
		return err
	}
	opt, err := l.newOptimizer()
	if err != nil {
		return err
	}
	mask := pClassMask(l.classes(), s.Classes)
	err = l.pe.runEpochs(ctx, "l2p", s, epochPlan{Epochs: l.opt.Epochs, Batch: l.opt.Batch, Opt: opt}, &l.EpochLoss, func(b *tune.Batch) (*stepResult, error) {
		return l.step(opt, b.X, pRows(q, W, b.Rows), b.Labels, mask)
	})
	if err != nil {
		return err
	}
	l.seen = append(l.seen, s.Classes...)
	l.stages++
	return nil
}

// Scores implements Learner: logits of the seen classes, prompts selected
// per test image (or by vote over consecutive groups of vote-batch images
// with test-select=batch-vote).
func (l *L2P) Scores(ctx context.Context, e Eval) ([]float64, []int, error) {
	if err := evalGuard("l2p", l.stages > 0, e, "the prompted ViT"); err != nil {
		return nil, nil, err
	}
	if err := l.sessions(); err != nil {
		return nil, nil, err
	}
	W, C, S := l.pe.w.Width, l.classes(), int64(l.pe.w.Image)
	q, err := l.pe.datasetQueries(ctx, e.Images, e.Features, e.Dim)
	if err != nil {
		return nil, nil, err
	}
	cols := pSortedInts(l.seen)
	bs := l.opt.EvalBatch
	if l.opt.TestSelect == SelectBatchVote {
		bs = l.opt.VoteBatch
	}
	scores := make([]float64, 0, e.Images.Len()*len(cols))
	err = l.pe.inOrder(ctx, e.Images, bs, func(b *tune.Batch) error {
		n := b.N()
		idx := l.selectRows(pRows(q, W, b.Rows), l.opt.TestSelect)
		out, err := l.fwd.Run([]ort.Tensor{{Shape: []int64{int64(n), 3, S, S}, F32: b.X},
			{Shape: []int64{int64(n), int64(l.tokens()), int64(W)}, F32: l.compose(idx)}})
		if err != nil {
			return err
		}
		scores = appendLinearScores(scores, out[0].F32, W, l.HeadW, l.HeadB, C, cols)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return scores, cols, nil
}

// Selections returns the pool rows every image of e selects (per sample,
// or by vote with test-select=batch-vote), for diagnostics.
func (l *L2P) Selections(ctx context.Context, e Eval) ([][]int, error) {
	q, err := l.pe.datasetQueries(ctx, e.Images, e.Features, e.Dim)
	if err != nil {
		return nil, err
	}
	W := l.pe.w.Width
	n := len(q) / W
	var out [][]int
	bs := n
	if l.opt.TestSelect == SelectBatchVote {
		bs = l.opt.VoteBatch
	}
	for i := 0; i < n; i += bs {
		out = append(out, l.selectRows(q[i*W:min(i+bs, n)*W], l.opt.TestSelect)...)
	}
	return out, nil
}

// l2pState is the learner file's JSON record.
type l2pState struct {
	Options L2POptions `json:"options"`
	Names   []string   `json:"names"`
	Seen    []int      `json:"seen"`
	Stages  int        `json:"stages"`
}

// Save implements Learner: prompts, keys and head with the options, the
// classes learned and the pre-trained weights' SHA-256 (learner file
// format in docs/TRAINING.md).
func (l *L2P) Save(path string) error {
	st, _ := json.Marshal(l2pState{Options: l.opt, Names: l.names, Seen: l.seen, Stages: l.stages})
	return saveLearner(path, "l2p", l.pe.env.WeightsSHA256, string(st), l.params())
}

// LoadL2P reads a learner file written by Save; the weights in env must be
// the ones it was trained on.
func LoadL2P(env Env, path string) (*L2P, error) {
	f, state, err := loadLearner(path, "l2p", env.WeightsSHA256)
	if err != nil {
		return nil, err
	}
	var st l2pState
	if err := json.Unmarshal([]byte(state), &st); err != nil {
		return nil, fmt.Errorf("%s: l2p state: %w", path, err)
	}
	pe, err := newPromptEnv("l2p", env)
	if err != nil {
		return nil, err
	}
	l := &L2P{pe: pe, opt: st.Options, names: st.Names, seen: st.Seen, stages: st.Stages, rng: rand.New(rand.NewPCG(env.Seed, 0x6c3270))}
	W, C := pe.w.Width, len(st.Names)
	want := map[string][]int64{
		"prompts": {int64(st.Options.Pool), int64(st.Options.Length), int64(W)}, "keys": {int64(st.Options.Pool), int64(W)},
		grad.HeadWeightName: {int64(W), int64(C)}, grad.HeadBiasName: {int64(C)},
	}
	got, err := learnerTensors(f, path, want)
	if err != nil {
		return nil, err
	}
	l.Prompts, l.Keys, l.HeadW, l.HeadB = got["prompts"], got["keys"], got[grad.HeadWeightName], got[grad.HeadBiasName]
	return l, nil
}

// SetTestSelect switches the test-time selection (SelectPerSample or
// SelectBatchVote) of a trained learner.
func (l *L2P) SetTestSelect(mode string) { l.opt.TestSelect = mode }

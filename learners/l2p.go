package learners

import (
	"context"
	"fmt"

	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
	"github.com/cl-dev/cl/tune"
	"github.com/cl-dev/cl/tune/optim"
)

// L2P (Learning to Prompt; docs/METHODS.md §2.6, docs/TRAINING.md "Prompt
// methods"): a pool of prompts with learnable keys; each image selects the
// top-k keys by cosine with its frozen [CLS] query; the selected prompts
// are inserted after [CLS] (models/vit's prompt variant, p = top-k·length
// tokens with the [CLS] position embedding); a linear head reads the mean
// of the prompt outputs. Loss: cross-entropy over the stage's classes (other
// logits at −inf) minus pull·Σ cos(query, selected keys)/B. Adam with a
// constant learning rate, re-created every stage. By default the pool rows
// a stage used are then frozen (freeze=used, l2p_freeze.go) and the head is
// re-fitted on features drawn from stored class Gaussians (align=gaussian,
// l2p_align.go).
func init() {
	Register(Spec{Name: "l2p", NeedsImages: true, Options: l2pDefaults(),
		Summary: "L2P: prompt pool with cosine key matching, prompts after [CLS], linear head on the prompt outputs (Adam); pool rows frozen once used, head re-fitted after each stage on stored class Gaussians",
		New:     func(env Env, o map[string]string) (Learner, error) { return NewL2P(env, o) }})
}

// l2pDefaults are PILOT's l2p.json values, except the selection, the
// classifier alignment and the frozen pool rows (docs/TRAINING.md: batch
// voting in training collapses on small data, without alignment the head
// favours the last stage's classes, and without freezing later stages
// rewrite the prompts old classes were recorded under; PILOT:
// train-select=batch-vote test-select=batch-vote align=none freeze=none).
func l2pDefaults() map[string]string {
	return map[string]string{
		"pool": "10", "length": "5", "top-k": "5", "pull": "0.1",
		"lr": "0.001875", "batch": "16", "epochs": "5",
		"train-select": SelectPerSample, "test-select": SelectPerSample, "vote-batch": "16",
		"eval-batch": "32",
		"align":      AlignGaussian, "align-samples": "256", "align-steps": "300", "align-lr": "0.01", "align-shrink": "0.1",
		"freeze": FreezeUsed, "head-only": HeadOnlyAuto,
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
	// Align is AlignNone or AlignGaussian (l2p_align.go): after every
	// stage, re-fit the head of all classes seen on AlignSamples features
	// per class drawn from their stored Gaussians (covariance shrunk by
	// AlignShrink), AlignSteps full-batch Adam steps at AlignLR. Files
	// written before the option existed have "" (= none).
	Align                string
	AlignSamples         int
	AlignSteps           int
	AlignLR, AlignShrink float64
	// Freeze is FreezeNone or FreezeUsed (l2p_freeze.go): pool rows a
	// stage selected get no update in later stages.
	Freeze string
	// HeadOnly is HeadOnlyAuto or HeadOnlyOff (l2p_headonly.go): with
	// auto, a stage that starts with every pool row frozen trains the head
	// alone on cached features. Files written before the option existed
	// have "" (= off, the graph path they were trained with).
	HeadOnly string
}

func parseL2P(o map[string]string) (L2POptions, error) {
	p, err := newPopts("l2p", o, l2pDefaults())
	if err != nil {
		return L2POptions{}, err
	}
	r := L2POptions{
		Pool: p.integer("pool", 1, 4096), Length: p.integer("length", 1, 4096), TopK: p.integer("top-k", 1, 4096),
		Pull: p.number("pull", 0), LR: p.number("lr", 0), Batch: p.size("batch"),
		Epochs:      p.count("epochs"),
		TrainSelect: p.choice("train-select", SelectPerSample, SelectBatchVote),
		TestSelect:  p.choice("test-select", SelectPerSample, SelectBatchVote),
		VoteBatch:   p.size("vote-batch"), EvalBatch: p.size("eval-batch"),
		Align:        p.choice("align", AlignNone, AlignGaussian),
		AlignSamples: p.size("align-samples"), AlignSteps: p.count("align-steps"),
		AlignLR: p.number("align-lr", 0), AlignShrink: p.number("align-shrink", 0),
		Freeze:   p.choice("freeze", FreezeNone, FreezeUsed),
		HeadOnly: p.choice("head-only", HeadOnlyAuto, HeadOnlyOff),
	}
	if r.AlignShrink > 1 {
		p.fail("align-shrink", "a number in [0, 1]")
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

// l2pStream seeds L2P's initial random stream.
const l2pStream = 0x6c3270

// L2P is the learner.
type L2P struct {
	promptBase
	opt L2POptions

	// Trained state besides the head: Prompts [pool,length,W], Keys
	// [pool,W].
	Prompts, Keys []float32
	// frozen are the pool rows frozen (freeze=used), ascending; used the
	// rows the stage in training has selected so far.
	frozen []int
	used   map[int]bool
	// cached are the head inputs of the last head-only stage's images
	// (l2p_headonly.go); headOnlyRan tells whether the last stage was one.
	cached      stageFeatures
	headOnlyRan bool
}

// NewL2P returns an untrained L2P learner.
func NewL2P(env Env, o map[string]string) (*L2P, error) {
	opt, err := parseL2P(o)
	if err != nil {
		return nil, err
	}
	core, err := newCore("l2p", env, l2pStream)
	if err != nil {
		return nil, err
	}
	return newL2P(core, opt), nil
}

func newL2P(core learnerCore, opt L2POptions) *L2P {
	if opt.Align == "" { // a file written before the option existed
		opt.Align = AlignNone
	}
	if opt.Freeze == "" {
		opt.Freeze = FreezeNone
	}
	if opt.HeadOnly == "" {
		opt.HeadOnly = HeadOnlyOff
	}
	g := promptGraph{vit.Options{Variant: vit.Prompt, Tokens: opt.TopK * opt.Length}, "prompt", vit.PromptMeanName}
	return &L2P{promptBase: promptBase{learnerCore: core, graph: g}, opt: opt}
}

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
	if l.opt.Align == AlignGaussian {
		l.AlignMean = make([]float32, C*W)
		l.AlignCov = make([]float32, C*W*W)
	}
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

// input is the prompt graph input of the pool rows idx: [n, top-k·length, W].
func (l *L2P) input(idx [][]int) ort.Tensor {
	return ort.Tensor{Shape: []int64{int64(len(idx)), int64(l.tokens()), int64(l.pe.w.Width)}, F32: l.compose(idx)}
}

// slots are the tensors of the learner file: the trained ones and, with
// align=gaussian, the class statistics.
func (l *L2P) slots() []tensorSlot { return append(l.trainedSlots(), l.statSlots()...) }

// trainedSlots are the trained tensors: prompts, keys and head.
func (l *L2P) trainedSlots() []tensorSlot {
	W := int64(l.pe.w.Width)
	return append([]tensorSlot{
		{"prompts", []int64{int64(l.opt.Pool), int64(l.opt.Length), W}, &l.Prompts},
		{"keys", []int64{int64(l.opt.Pool), W}, &l.Keys},
	}, l.headSlots()...)
}

func (l *L2P) params() []*optim.Param { return paramsOf(l.trainedSlots()) }

// newOptimizer is PILOT's: Adam (β 0.9, 0.999, ε 1e-8, no weight decay),
// constant learning rate, over prompts, keys and head.
func (l *L2P) newOptimizer() (*optim.Optimizer, error) {
	return optim.New(optim.AdamDefaults(optim.Adam), optim.Group{Name: "l2p", Params: l.params(), LR: l.opt.LR})
}

// step runs one optimiser step on images x [n,3,S,S] with frozen queries q
// [n,W] and global labels; mask [C] allows the stage's classes.
func (l *L2P) step(opt *optim.Optimizer, x, q []float32, labels []int64, mask []float32) (*stepResult, error) {
	W := l.pe.w.Width
	idx := l.selectRows(q, l.opt.TrainSelect)
	out, err := l.runTrain(x, l.input(idx), labels, mask)
	if err != nil {
		return nil, err
	}
	// Prompt gradients scattered back to the pool rows they came from.
	gp := make([]float32, len(l.Prompts))
	blk := l.opt.Length * W
	for b, row := range idx {
		for k, j := range row {
			src := out.prompt[(b*l.tokens()+k*l.opt.Length)*W:][:blk]
			dst := gp[j*blk : (j+1)*blk]
			for t := range dst {
				dst[t] += src[t]
			}
		}
	}
	r, gk := keyPull(q, l.Keys, W, idx, l.opt.Pull)
	l.zeroFrozen(gp, gk)
	l.noteUsed(idx)
	out.grads["prompts"], out.grads["keys"] = gp, gk
	res := &stepResult{Loss: out.loss - l.opt.Pull*r, Idx: idx, Logits: out.logits, Grads: out.grads}
	return applyStep("l2p", opt, res, labels, l.classes())
}

// Learn implements Learner: one stage of training with a fresh optimizer
// (the head alone on cached features once every pool row is frozen,
// l2p_headonly.go); with align=gaussian, then the stage's class statistics and the head's
// alignment (l2p_align.go).
func (l *L2P) Learn(ctx context.Context, s Stage) error {
	if err := promptStageGuard("l2p", s, l.seen, l.names); err != nil {
		return err
	}
	if l.names == nil {
		l.names = s.Names
		l.init(len(s.Names))
	}
	l.used, l.cached = nil, stageFeatures{}
	plan := epochPlan{Epochs: l.opt.Epochs, Batch: l.opt.Batch}
	l.headOnlyRan = l.headOnly(plan)
	train := func() error { return l.trainStage(ctx, s, plan, l.newOptimizer, l.step) }
	if l.headOnlyRan {
		train = func() error { return l.trainHeadOnly(ctx, s, plan) }
	}
	if err := train(); err != nil {
		return err
	}
	l.freezeUsed()
	if l.opt.Align != AlignGaussian {
		return nil
	}
	if err := l.recordStats(ctx, s); err != nil {
		return err
	}
	return l.alignHead(s.Index)
}

// Scores implements Learner: logits of the seen classes, prompts selected
// per test image (or by vote over consecutive groups of vote-batch images
// with test-select=batch-vote).
func (l *L2P) Scores(ctx context.Context, e Eval) ([]float64, []int, error) {
	bs := l.opt.EvalBatch
	if l.opt.TestSelect == SelectBatchVote {
		bs = l.opt.VoteBatch
	}
	return l.scores(ctx, e, bs, func(q []float32, _ int) ort.Tensor { return l.input(l.selectRows(q, l.opt.TestSelect)) })
}

// Selections returns the pool rows every image of e selects (per sample,
// or by vote with test-select=batch-vote), for diagnostics.
func (l *L2P) Selections(ctx context.Context, e Eval) ([][]int, error) {
	return l.selections(ctx, e, voteGroup(l.opt.TestSelect, l.opt.VoteBatch), func(q []float32) [][]int { return l.selectRows(q, l.opt.TestSelect) })
}

// Save implements Learner: prompts, keys and head with the options, the
// classes learned and the pre-trained weights' SHA-256 (learner file
// format in docs/TRAINING.md).
func (l *L2P) Save(path string) error {
	return l.save(path, l2pState{stateOf(&l.promptBase, l.opt), l.frozen}, l.slots())
}

// LoadL2P reads a learner file written by Save; the weights in env must be
// the ones it was trained on.
func LoadL2P(env Env, path string) (*L2P, error) {
	var st l2pState
	l, err := loadPrompt(env, path, "l2p", l2pStream, &st, &st.promptState, newL2P)
	if err != nil {
		return nil, err
	}
	for _, j := range st.Frozen {
		if j < 0 || j >= l.opt.Pool {
			l.Close()
			return nil, fmt.Errorf("%s: frozen pool row %d outside the pool of %d rows", path, j, l.opt.Pool)
		}
	}
	l.frozen = st.Frozen
	return l, nil
}

// SetTestSelect switches the test-time selection (SelectPerSample or
// SelectBatchVote) of a trained learner.
func (l *L2P) SetTestSelect(mode string) { l.opt.TestSelect = mode }

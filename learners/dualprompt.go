package learners

import (
	"context"
	"fmt"

	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
	"github.com/cl-dev/cl/tune"
	"github.com/cl-dev/cl/tune/optim"
)

// DualPrompt (docs/METHODS.md §2.7, docs/TRAINING.md "Prompt methods"):
// prefix tuning with a G-prompt shared by all tasks (blocks g-layers) and a
// pool of E-prompts, one per task (blocks e-layers), each with a key. In
// training, stage t uses E-prompt t (PILOT's use_prompt_mask); at test time
// each image takes the E-prompt whose key is the most similar to its frozen
// [CLS] query (top-1). Every prompt is length keys and length values
// prepended to K and V of its block's attention (models/vit's prefix
// variant). A linear head reads the prompted [CLS]. Loss as L2P's
// (cross-entropy over the stage's classes minus pull·cos(query, key)).
// Before stage t > 0 the E-prompt of slot t−1 is copied into slot t
// (shared_prompt_pool). Adam, constant learning rate, re-created per stage.
// By default the head is then re-fitted on features drawn from stored class
// Gaussians (align=gaussian, dualprompt_align.go).
func init() {
	Register(Spec{Name: "dualprompt", NeedsImages: true, Options: dualDefaults(),
		Summary: "DualPrompt: shared G-prompt (blocks 0-1) and per-task E-prompts (blocks 2-4) as prefixes, E-prompt chosen by key at test time (Adam); head re-fitted after each stage on stored class Gaussians",
		New:     func(env Env, o map[string]string) (Learner, error) { return NewDualPrompt(env, o) }})
}

// Prefix layouts of the E-prompts.
const (
	// LayoutKeyValue: row 0 of every E-prompt layer is the prefix keys, row
	// 1 the values, per sample (the method as published).
	LayoutKeyValue = "key-value"
	// LayoutPILOT reproduces PILOT's EPrompt.forward, which reshapes the
	// selected prompts from [layers, 2, B, …] to [layers, B, 2, …] without
	// a permute: sample b gets rows (2b)/B and (2b+1)/B of the batch's
	// stacked key/value rows, so with one shared E-prompt the first half
	// of the batch uses the keys as keys and values, the second half the
	// values (LAMDA-PILOT issue #29, dualprompt-pytorch #8).
	LayoutPILOT = "pilot"
)

// dualDefaults are PILOT's dualprompt.json values, except the layout, the
// test selection, the matching and the classifier alignment
// (docs/TRAINING.md; PILOT: layout=pilot test-select=batch-vote match=all
// align=none).
func dualDefaults() map[string]string {
	return withAlign(map[string]string{
		"g-layers": "0,1", "e-layers": "2,3,4", "g-length": "5", "e-length": "5", "pool": "10",
		"pull": "0.1", "lr": "0.001", "batch": "24", "epochs": "5", "shared-pool": "true",
		"layout": LayoutKeyValue, "test-select": SelectPerSample, "vote-batch": "24", "eval-batch": "32",
		"match": "trained",
	})
}

// DualOptions are the parsed options.
type DualOptions struct {
	GLayers, ELayers     []int
	Length, Pool         int
	Pull, LR             float64
	Batch, Epochs        int
	SharedPool           bool
	Layout, TestSelect   string
	VoteBatch, EvalBatch int
	// Match is "trained" (test images match the keys of the E-prompts
	// trained so far) or "all" (every slot of the pool, PILOT's: untrained
	// slots keep their random keys and prompts).
	Match string
	// AlignOptions: the classifier alignment after every stage
	// (prompt_align.go).
	AlignOptions
}

func parseDual(o map[string]string, depth int) (DualOptions, error) {
	p, err := newPopts("dualprompt", o, dualDefaults())
	if err != nil {
		return DualOptions{}, err
	}
	r := DualOptions{GLayers: p.ints("g-layers"), ELayers: p.ints("e-layers"),
		Length: p.integer("e-length", 1, 4096), Pool: p.integer("pool", 1, 4096),
		Pull: p.number("pull", 0), LR: p.number("lr", 0), Batch: p.size("batch"),
		Epochs: p.count("epochs"), SharedPool: p.boolean("shared-pool"),
		Layout:     p.choice("layout", LayoutKeyValue, LayoutPILOT),
		TestSelect: p.choice("test-select", SelectPerSample, SelectBatchVote),
		VoteBatch:  p.size("vote-batch"), EvalBatch: p.size("eval-batch"),
		Match: p.choice("match", "trained", "all"), AlignOptions: p.align()}
	gLen := p.integer("g-length", 0, 4096)
	if p.err != nil {
		return r, p.err
	}
	if len(r.GLayers) > 0 && gLen != r.Length {
		return r, fmt.Errorf("dualprompt: g-length=%d and e-length=%d differ: the prefix graph variant takes one prefix length for every block; set both to the same value", gLen, r.Length)
	}
	if len(r.ELayers) == 0 {
		return r, fmt.Errorf("dualprompt: e-layers is empty; the E-prompts need at least one block")
	}
	seen := map[int]string{}
	for _, l := range append(append([]int(nil), r.GLayers...), r.ELayers...) {
		if l >= depth {
			return r, fmt.Errorf("dualprompt: block %d does not exist (the ViT has blocks 0..%d); set g-layers and e-layers", l, depth-1)
		}
		if seen[l] != "" {
			return r, fmt.Errorf("dualprompt: block %d is listed twice in g-layers/e-layers", l)
		}
		seen[l] = "x"
	}
	for i := 1; i < len(r.GLayers); i++ {
		if r.GLayers[i] <= r.GLayers[i-1] {
			return r, fmt.Errorf("dualprompt: g-layers must be ascending")
		}
	}
	for i := 1; i < len(r.ELayers); i++ {
		if r.ELayers[i] <= r.ELayers[i-1] {
			return r, fmt.Errorf("dualprompt: e-layers must be ascending")
		}
	}
	return r, nil
}

// dualStream seeds DualPrompt's initial random stream.
const dualStream = 0x647561

// DualPrompt is the learner.
type DualPrompt struct {
	promptBase
	opt DualOptions

	// Trained state besides the head: GPrompt [len(g-layers),2,length,W];
	// EPrompts [pool,len(e-layers),2,length,W]; Keys [pool,W].
	GPrompt, EPrompts, Keys []float32

	layers []int // all prefix blocks, ascending
}

// NewDualPrompt returns an untrained DualPrompt learner.
func NewDualPrompt(env Env, o map[string]string) (*DualPrompt, error) {
	return newPrompt(env, "dualprompt", dualStream, o, parseDual, newDual)
}

func newDual(core learnerCore, opt DualOptions) *DualPrompt {
	opt.AlignOptions = opt.AlignOptions.orNone() // files written before the option existed
	layers := pSortedInts(append(append([]int(nil), opt.GLayers...), opt.ELayers...))
	g := promptGraph{vit.Options{Variant: vit.Prefix, Tokens: opt.Length, Layers: layers}, "prefix", vit.OutputName}
	return &DualPrompt{promptBase: promptBase{learnerCore: core, graph: g}, opt: opt, layers: layers}
}

// SetTestSelect switches the test-time selection.
func (d *DualPrompt) SetTestSelect(mode string) { d.opt.TestSelect = mode }

func (d *DualPrompt) blk() int { return 2 * d.opt.Length * d.pe.w.Width } // one layer's keys+values

// init: prompts and keys U(−1, 1), head N(0, 0.02²) truncated, bias 0.
func (d *DualPrompt) init(C int) {
	W := d.pe.w.Width
	d.GPrompt = pUniform(d.rng, len(d.opt.GLayers)*d.blk(), -1, 1)
	d.EPrompts = pUniform(d.rng, d.opt.Pool*len(d.opt.ELayers)*d.blk(), -1, 1)
	d.Keys = pUniform(d.rng, d.opt.Pool*W, -1, 1)
	d.HeadW = pTruncNormal(d.rng, W*C, 0.02)
	d.HeadB = make([]float32, C)
	d.allocStats(d.opt.Align, C)
}

// source says where sample b's row (0 = keys, 1 = values) of an E-prompt
// layer comes from: the E-prompt of sample sb, row sr.
func (d *DualPrompt) source(b, row, n int) (sb, sr int) {
	if d.opt.Layout == LayoutPILOT {
		f := 2*b + row // flat index in the [B,2] view of [2,B] memory
		return f % n, f / n
	}
	return b, row
}

// compose returns the prefix input [n, len(layers), 2, length, W] for
// E-prompt rows e[b].
func (d *DualPrompt) compose(e []int) []float32 {
	n, L, blk := len(e), len(d.layers), d.blk()
	half := blk / 2
	out := make([]float32, n*L*blk)
	for b := 0; b < n; b++ {
		for li, layer := range d.layers {
			dst := out[(b*L+li)*blk:][:blk]
			if g := indexOfInt(d.opt.GLayers, layer); g >= 0 {
				copy(dst, d.GPrompt[g*blk:(g+1)*blk])
				continue
			}
			j := indexOfInt(d.opt.ELayers, layer)
			for row := 0; row < 2; row++ {
				sb, sr := d.source(b, row, n)
				src := d.EPrompts[(e[sb]*len(d.opt.ELayers)+j)*blk+sr*half:][:half]
				copy(dst[row*half:(row+1)*half], src)
			}
		}
	}
	return out
}

// input is the prefix graph input of E-prompt rows e:
// [n, len(layers), 2, length, W].
func (d *DualPrompt) input(e []int) ort.Tensor {
	return ort.Tensor{Shape: []int64{int64(len(e)), int64(len(d.layers)), 2, int64(d.opt.Length), int64(d.pe.w.Width)}, F32: d.compose(e)}
}

// scatter maps the prefix gradient back to the G-prompt and E-prompts.
func (d *DualPrompt) scatter(g []float32, e []int) (gg, ge []float32) {
	n, L, blk := len(e), len(d.layers), d.blk()
	half := blk / 2
	gg = make([]float32, len(d.GPrompt))
	ge = make([]float32, len(d.EPrompts))
	for b := 0; b < n; b++ {
		for li, layer := range d.layers {
			src := g[(b*L+li)*blk:][:blk]
			if gi := indexOfInt(d.opt.GLayers, layer); gi >= 0 {
				addTo(gg[gi*blk:(gi+1)*blk], src)
				continue
			}
			j := indexOfInt(d.opt.ELayers, layer)
			for row := 0; row < 2; row++ {
				sb, sr := d.source(b, row, n)
				addTo(ge[(e[sb]*len(d.opt.ELayers)+j)*blk+sr*half:][:half], src[row*half:(row+1)*half])
			}
		}
	}
	return gg, ge
}

func addTo(dst, src []float32) {
	for i := range dst {
		dst[i] += src[i]
	}
}

func indexOfInt(v []int, x int) int {
	for i, y := range v {
		if y == x {
			return i
		}
	}
	return -1
}

// slots are the tensors of the learner file: the trained ones and, with
// align=gaussian, the class statistics.
func (d *DualPrompt) slots() []tensorSlot {
	return append(d.trainedSlots(), d.classStatSlots(d.opt.Align)...)
}

// trainedSlots are the trained tensors: G-prompt, E-prompts, keys and head.
func (d *DualPrompt) trainedSlots() []tensorSlot {
	W, Lp := int64(d.pe.w.Width), int64(d.opt.Length)
	return append([]tensorSlot{
		{"g-prompt", []int64{int64(len(d.opt.GLayers)), 2, Lp, W}, &d.GPrompt},
		{"e-prompts", []int64{int64(d.opt.Pool), int64(len(d.opt.ELayers)), 2, Lp, W}, &d.EPrompts},
		{"keys", []int64{int64(d.opt.Pool), W}, &d.Keys},
	}, d.headSlots()...)
}

func (d *DualPrompt) params() []*optim.Param { return paramsOf(d.trainedSlots()) }

func (d *DualPrompt) newOptimizer() (*optim.Optimizer, error) {
	var ps []*optim.Param
	for _, p := range d.params() {
		if len(p.Data) > 0 { // no G-prompt when g-layers is empty
			ps = append(ps, p)
		}
	}
	return optim.New(optim.AdamDefaults(optim.Adam), optim.Group{Name: "dualprompt", Params: ps, LR: d.opt.LR})
}

// match returns the top-1 E-prompt of every query (per sample or by vote).
func (d *DualPrompt) match(q []float32, mode string) []int {
	keys := d.Keys
	if d.opt.Match == "trained" && d.stages > 0 {
		keys = keys[:min(d.stages, d.opt.Pool)*d.pe.w.Width]
	}
	idx, _ := tune.CosineTopK(q, keys, d.pe.w.Width, 1)
	if mode == SelectBatchVote {
		idx = tune.VoteTopK(idx, 1)
	}
	e := make([]int, len(idx))
	for i, r := range idx {
		e[i] = r[0]
	}
	return e
}

// step trains on one batch with E-prompt task for every image.
func (d *DualPrompt) step(opt *optim.Optimizer, x, q []float32, labels []int64, mask []float32, task int) (*stepResult, error) {
	n := len(labels)
	e := make([]int, n)
	idx := make([][]int, n)
	for i := range e {
		e[i] = task
		idx[i] = []int{task}
	}
	out, err := d.runTrain(x, d.input(e), labels, mask)
	if err != nil {
		return nil, err
	}
	gg, ge := d.scatter(out.prompt, e)
	r, gk := keyPull(q, d.Keys, d.pe.w.Width, idx, d.opt.Pull)
	out.grads["e-prompts"], out.grads["keys"] = ge, gk
	if len(gg) > 0 { // no G-prompt when g-layers is empty
		out.grads["g-prompt"] = gg
	}
	res := &stepResult{Loss: out.loss - d.opt.Pull*r, Idx: idx, Logits: out.logits, Grads: out.grads}
	return applyStep("dualprompt", opt, res, labels, d.classes())
}

// beginStage checks the pool and copies E-prompt t−1 into slot t
// (shared_prompt_pool).
func (d *DualPrompt) beginStage(t int) error {
	if t >= d.opt.Pool {
		return fmt.Errorf("dualprompt: stage %d needs E-prompt %d but the pool holds %d (one per task): raise pool to the number of stages", t+1, t+1, d.opt.Pool)
	}
	if t > 0 && d.opt.SharedPool {
		sz := len(d.opt.ELayers) * d.blk()
		copy(d.EPrompts[t*sz:(t+1)*sz], d.EPrompts[(t-1)*sz:t*sz])
	}
	return nil
}

// Learn implements Learner.
func (d *DualPrompt) Learn(ctx context.Context, s Stage) error {
	if err := promptStageGuard("dualprompt", s, d.seen, d.names); err != nil {
		return err
	}
	if d.names == nil {
		// The run's stage count, assuming later stages are no larger than
		// the first (PILOT's splits): one E-prompt per stage.
		if tasks := (len(s.Names) + len(s.Classes) - 1) / len(s.Classes); tasks > d.opt.Pool {
			return fmt.Errorf("dualprompt: %d classes in stages of %d make %d stages, but the E-prompt pool holds %d (one per task): set pool=%d", len(s.Names), len(s.Classes), tasks, d.opt.Pool, tasks)
		}
	}
	if err := d.beginStage(d.stages); err != nil {
		return err
	}
	if d.names == nil {
		d.names = s.Names
		d.init(len(s.Names))
	}
	task := d.stages
	err := d.trainStage(ctx, s, epochPlan{Epochs: d.opt.Epochs, Batch: d.opt.Batch}, d.newOptimizer,
		func(opt *optim.Optimizer, x, q []float32, labels []int64, mask []float32) (*stepResult, error) {
			return d.step(opt, x, q, labels, mask, task)
		})
	if err != nil {
		return err
	}
	return d.alignStage(ctx, s)
}

// Scores implements Learner.
func (d *DualPrompt) Scores(ctx context.Context, e Eval) ([]float64, []int, error) {
	return d.scores(ctx, e, d.testBatch(), d.testPrompt)
}

// testBatch is the number of test images a graph call takes.
func (d *DualPrompt) testBatch() int {
	if d.opt.TestSelect == SelectBatchVote || d.opt.Layout == LayoutPILOT {
		return d.opt.VoteBatch // PILOT's layout mixes the samples of a batch
	}
	return d.opt.EvalBatch
}

// testPrompt is the prefix input of test images with queries q: the
// E-prompt matched by key (test-select).
func (d *DualPrompt) testPrompt(q []float32, _ int) ort.Tensor {
	return d.input(d.match(q, d.opt.TestSelect))
}

// Selections returns the E-prompt every image of e selects, as 1-element
// rows (diagnostics).
func (d *DualPrompt) Selections(ctx context.Context, e Eval) ([][]int, error) {
	return d.selections(ctx, e, voteGroup(d.opt.TestSelect, d.opt.VoteBatch), func(q []float32) [][]int {
		var out [][]int
		for _, j := range d.match(q, d.opt.TestSelect) {
			out = append(out, []int{j})
		}
		return out
	})
}

// Save implements Learner.
func (d *DualPrompt) Save(path string) error {
	return d.save(path, stateOf(&d.promptBase, d.opt), d.slots())
}

// LoadDualPrompt reads a learner file written by Save.
func LoadDualPrompt(env Env, path string) (*DualPrompt, error) {
	var st promptState[DualOptions]
	return loadPrompt(env, path, "dualprompt", dualStream, &st, &st, newDual)
}

package learners

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"

	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/tune"
	"github.com/cl-dev/cl/tune/optim"
)

// Classifier alignment of the prompt learners' linear head with stored
// class statistics (option align=gaussian of l2p, dualprompt and
// coda-prompt; docs/TRAINING.md "Classifier alignment of the prompt
// methods", the rule of SLCA and HiDe-Prompt). The three mask the logits of
// earlier classes while a stage trains, so their head columns stop moving
// while the prompts under them change, and the new classes' columns are
// fitted without competitors. After every stage the learner records, for
// each of the stage's classes, the mean and covariance of the head's input
// [W] over its training images, produced as the method produces it in
// training under the prompts as they are then (statFeatures of each
// method); it then re-fits the head columns of every class seen so far by
// softmax regression on features drawn from those Gaussians. Nothing but
// head columns changes, and since the masked training of a later stage
// never reads an old column, the prompts follow the same trajectory with
// or without alignment.

// Alignment modes (option align).
const (
	AlignNone     = "none"
	AlignGaussian = "gaussian"
)

// alignStream tags the random stream of the alignment after stage i
// (alignStream + i + 1, with Env.Seed).
const alignStream = 0x6c3270a1

// AlignOptions are the alignment's options; DualOptions and CODAOptions
// embed them, so a learner file's JSON holds them under the same names as
// L2POptions' fields. Align is AlignNone or AlignGaussian ("" in files
// written before the option existed: none); AlignSamples features per
// class drawn from its Gaussian, its covariance shrunk by AlignShrink
// (shrunk's γ), AlignSteps full-batch Adam steps at AlignLR.
type AlignOptions struct {
	Align                    string
	AlignSamples, AlignSteps int
	AlignLR, AlignShrink     float64
}

// alignDefaults are the alignment's option defaults (align=gaussian;
// PILOT's heads are align=none).
func alignDefaults() map[string]string {
	return map[string]string{"align": AlignGaussian, "align-samples": "256", "align-steps": "300", "align-lr": "0.01", "align-shrink": "0.1"}
}

// withAlign returns def with the alignment's defaults added.
func withAlign(def map[string]string) map[string]string {
	for k, v := range alignDefaults() {
		def[k] = v
	}
	return def
}

// align reads the alignment's options.
func (o *popts) align() AlignOptions {
	r := AlignOptions{Align: o.choice("align", AlignNone, AlignGaussian),
		AlignSamples: o.size("align-samples"), AlignSteps: o.count("align-steps"),
		AlignLR: o.number("align-lr", 0), AlignShrink: o.number("align-shrink", 0)}
	if r.AlignShrink > 1 {
		o.fail("align-shrink", "a number in [0, 1]")
	}
	return r
}

// orNone is o with Align "" (a file written before the option existed)
// read as AlignNone.
func (o AlignOptions) orNone() AlignOptions {
	if o.Align == "" {
		o.Align = AlignNone
	}
	return o
}

// headAligner is what the three prompt learners with a linear head share
// for the alignment (and what the real-data measurement uses to score a
// trained state with and without it).
type headAligner interface {
	base() *promptBase
	alignOptions() AlignOptions
	// setAlign switches the mode of the stages to come.
	setAlign(mode string)
	// alignStage records the statistics of s's classes under the prompts
	// of the stage just learned and re-fits the head (align=gaussian).
	alignStage(ctx context.Context, s Stage) error
	// testFeatures are the head's inputs Scores reads for the images of
	// d (given: their frozen features), [d.Len(),W].
	testFeatures(ctx context.Context, d *tune.Dataset, given []float32, dim int) ([]float32, error)
}

var _ = []headAligner{(*L2P)(nil), (*DualPrompt)(nil), (*CODAPrompt)(nil)}

// gaussianStats returns the mean [W] and the sample covariance [W,W]
// (divided by n−1; zero for n = 1) of the rows x [n,W], in float64.
func gaussianStats(x []float32, W int) (mean []float64, cov *mat.SymDense) {
	n := len(x) / W
	mean = make([]float64, W)
	for i := 0; i < n; i++ {
		for j, v := range x[i*W : (i+1)*W] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(max(n, 1))
	}
	c := mat.NewDense(n, W, nil)
	for i := 0; i < n; i++ {
		for j, v := range x[i*W : (i+1)*W] {
			c.Set(i, j, float64(v)-mean[j])
		}
	}
	cov = mat.NewSymDense(W, nil)
	if n > 1 {
		cov.SymOuterK(1/float64(n-1), c.T())
	}
	return mean, cov
}

// shrunk returns (1−γ)·S + γ·(tr S/W)·I, the covariance the samples are
// drawn from: with fewer images than dimensions S is singular, and the
// shrinkage spreads a fraction γ of its variance evenly over all
// directions (Ledoit and Wolf's target, with a fixed γ).
func shrunk(S *mat.SymDense, gamma float64) *mat.SymDense {
	W := S.SymmetricDim()
	var tr float64
	for i := 0; i < W; i++ {
		tr += S.At(i, i)
	}
	out := mat.NewSymDense(W, nil)
	out.ScaleSym(1-gamma, S)
	for i := 0; i < W; i++ {
		out.SetSym(i, i, out.At(i, i)+gamma*tr/float64(W))
	}
	return out
}

// sampleGaussian draws n rows [n,W] from N(mean, cov) with rng: mean + L·z,
// L the Cholesky factor of cov, z standard normal (drawn row by row). A
// covariance that is not positive definite (all zero: one image) gets a
// ridge of 1e-9·(1 + its largest diagonal) until it factorises.
func sampleGaussian(rng *rand.Rand, mean []float64, cov *mat.SymDense, n int) ([]float64, error) {
	W := len(mean)
	var ch mat.Cholesky
	c := mat.NewSymDense(W, nil)
	c.CopySym(cov)
	var big float64
	for i := 0; i < W; i++ {
		big = math.Max(big, c.At(i, i))
	}
	for ridge := 1e-9 * (1 + big); !ch.Factorize(c); ridge *= 10 {
		if ridge > 1+big {
			return nil, fmt.Errorf("the class covariance does not factorise")
		}
		for i := 0; i < W; i++ {
			c.SetSym(i, i, cov.At(i, i)+ridge)
		}
	}
	var L mat.TriDense
	ch.LTo(&L)
	z := mat.NewDense(n, W, nil)
	zd := z.RawMatrix().Data
	for i := range zd {
		zd[i] = rng.NormFloat64()
	}
	var x mat.Dense
	x.Mul(z, L.T())
	out := x.RawMatrix().Data
	for s := 0; s < n; s++ {
		for i, m := range mean {
			out[s*W+i] += m
		}
	}
	return out, nil
}

// softmaxLoss is the mean cross-entropy of a linear softmax classifier
// and its gradients: features x [n,D], labels y [n] in [0,k), weight w
// [D,k] (x·w orientation), bias b [k]. gw is [D,k], gb [k].
func softmaxLoss(x *mat.Dense, y []int, w *mat.Dense, b []float64) (loss float64, gw *mat.Dense, gb []float64) {
	n, _ := x.Dims()
	_, k := w.Dims()
	var g mat.Dense
	g.Mul(x, w)
	gb = make([]float64, k)
	for i := 0; i < n; i++ {
		row := g.RawRowView(i)
		mx := math.Inf(-1)
		for c := range row {
			row[c] += b[c]
			mx = math.Max(mx, row[c])
		}
		var z float64
		for c := range row {
			row[c] = math.Exp(row[c] - mx)
			z += row[c]
		}
		loss += math.Log(z) - math.Log(row[y[i]])
		for c := range row {
			row[c] /= z
		}
		row[y[i]]--
		for c := range row {
			row[c] /= float64(n)
			gb[c] += row[c]
		}
	}
	gw = &mat.Dense{}
	gw.Mul(x.T(), &g)
	return loss / float64(n), gw, gb
}

// fitHeadColumns re-fits the columns cols of the head hw [W,C] (x·W
// orientation), hb [C] by softmax regression over those columns only, on
// x [n,W] with labels y [n] (positions in cols), starting from the current
// values: o.AlignSteps full-batch Adam steps (β 0.9, 0.999, ε 1e-8) at
// o.AlignLR. Other columns are left as they are. It returns the loss
// before and after.
func fitHeadColumns(hw, hb []float32, C int, cols []int, x []float64, y []int, o AlignOptions) (before, after float64, err error) {
	W, k := len(hw)/C, len(cols)
	X := mat.NewDense(len(y), W, x)
	pw := &optim.Param{Name: "weight", Shape: []int64{int64(W), int64(k)}, Data: make([]float32, W*k)}
	pb := &optim.Param{Name: "bias", Shape: []int64{int64(k)}, Data: make([]float32, k)}
	for j, c := range cols {
		for i := 0; i < W; i++ {
			pw.Data[i*k+j] = hw[i*C+c]
		}
		pb.Data[j] = hb[c]
	}
	opt, err := optim.New(optim.AdamDefaults(optim.Adam), optim.Group{Name: "align", Params: []*optim.Param{pw, pb}, LR: o.AlignLR})
	if err != nil {
		return 0, 0, err
	}
	eval := func() (float64, *mat.Dense, []float64) {
		w := mat.NewDense(W, k, nil)
		for i, v := range pw.Data {
			w.RawMatrix().Data[i] = float64(v)
		}
		b := make([]float64, k)
		for j, v := range pb.Data {
			b[j] = float64(v)
		}
		return softmaxLoss(X, y, w, b)
	}
	for s := 0; s < o.AlignSteps; s++ {
		loss, gw, gb := eval()
		if s == 0 {
			before = loss
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return before, loss, fmt.Errorf("the alignment loss is %v at step %d", loss, s+1)
		}
		g32 := make([]float32, W*k)
		for i, v := range gw.RawMatrix().Data {
			g32[i] = float32(v)
		}
		gb32 := make([]float32, k)
		for j, v := range gb {
			gb32[j] = float32(v)
		}
		if _, err := opt.Step(map[string][]float32{"weight": g32, "bias": gb32}); err != nil {
			return before, loss, err
		}
	}
	after, _, _ = eval()
	if o.AlignSteps == 0 {
		before = after
	}
	for j, c := range cols {
		for i := 0; i < W; i++ {
			hw[i*C+c] = pw.Data[i*k+j]
		}
		hb[c] = pb.Data[j]
	}
	return before, after, nil
}

// features returns the head's input [d.Len(),W] of every image of d
// (given: their frozen features, as Stage.Features and Eval.Features):
// the forward graph's output with the prompt input that prompt composes
// from the frozen queries q [n,W] of a batch of n images, bs images a
// call, in order.
func (b *promptBase) features(ctx context.Context, d *tune.Dataset, given []float32, dim, bs int, prompt func(q []float32, n int) ort.Tensor) ([]float32, error) {
	if err := b.sessions(); err != nil {
		return nil, err
	}
	W := b.pe.w.Width
	q, err := b.pe.datasetQueries(ctx, d, given, dim)
	if err != nil {
		return nil, err
	}
	out := make([]float32, 0, d.Len()*W)
	err = b.pe.inOrder(ctx, d, bs, func(bt *tune.Batch) error {
		n := bt.N()
		r, err := b.fwd.Run([]ort.Tensor{b.pe.images(bt.X, n), prompt(gatherRows(q, W, bt.Rows), n)})
		if err != nil {
			return err
		}
		out = append(out, r[0].F32...)
		return nil
	})
	return out, err
}

// recordClassStats stores the mean and covariance of the head's input f
// [s.Images.Len(),W] (row i of image i) of each of the stage's classes in
// AlignMean [C,W] and AlignCov [C,W,W] (allocated, zero, on first use).
func (b *promptBase) recordClassStats(s Stage, f []float32) error {
	W, C := b.pe.w.Width, b.classes()
	if len(b.AlignMean) != C*W || len(b.AlignCov) != C*W*W {
		b.AlignMean, b.AlignCov = make([]float32, C*W), make([]float32, C*W*W)
	}
	for _, c := range s.Classes {
		rows := labelRows(s.Images.Labels, c)
		if len(rows) == 0 {
			return fmt.Errorf("%s: stage %d has no training image of class %q to record its statistics (align=%s)", b.method, s.Index+1, s.Names[c], AlignGaussian)
		}
		mean, cov := gaussianStats(gatherRows(f, W, rows), W)
		for j, v := range mean {
			b.AlignMean[c*W+j] = float32(v)
		}
		dst := b.AlignCov[c*W*W : (c+1)*W*W]
		for i := 0; i < W; i++ {
			for j := 0; j < W; j++ {
				dst[i*W+j] = float32(cov.At(i, j))
			}
		}
	}
	return nil
}

// refitHead re-fits the head columns of every class seen so far on
// o.AlignSamples features per class drawn from its stored Gaussian
// (covariance shrunk by o.AlignShrink), with the random stream of stage
// index (Env.Seed, alignStream + index + 1), so that a learner loaded
// after a stage aligns the next one as one that never stopped.
func (b *promptBase) refitHead(index int, o AlignOptions) error {
	W, C := b.pe.w.Width, b.classes()
	rng := b.pe.stream(alignStream + uint64(index) + 1)
	cols := pSortedInts(b.seen)
	x := make([]float64, 0, len(cols)*o.AlignSamples*W)
	y := make([]int, 0, len(cols)*o.AlignSamples)
	for j, c := range cols {
		mean := make([]float64, W)
		for i := range mean {
			mean[i] = float64(b.AlignMean[c*W+i])
		}
		S := mat.NewSymDense(W, nil)
		for i := 0; i < W; i++ {
			for k := i; k < W; k++ {
				S.SetSym(i, k, float64(b.AlignCov[(c*W+i)*W+k]))
			}
		}
		smp, err := sampleGaussian(rng, mean, shrunk(S, o.AlignShrink), o.AlignSamples)
		if err != nil {
			return fmt.Errorf("%s: class %q: %w", b.method, b.names[c], err)
		}
		x = append(x, smp...)
		for s := 0; s < o.AlignSamples; s++ {
			y = append(y, j)
		}
	}
	before, after, err := fitHeadColumns(b.HeadW, b.HeadB, C, cols, x, y, o)
	if err != nil {
		return fmt.Errorf("%s: aligning the head after stage %d: %w", b.method, index+1, err)
	}
	b.pe.env.Logf("%s: stage %d: head aligned on %d sampled features of %d classes: loss %.4f → %.4f", b.method, index+1, len(y), len(cols), before, after)
	return nil
}

// alignWith records the statistics of s's classes from their head inputs
// f (statFeatures of the method) and re-fits the head (a no-op unless
// o.Align is AlignGaussian).
func (b *promptBase) alignWith(s Stage, o AlignOptions, f func() ([]float32, error)) error {
	if o.Align != AlignGaussian {
		return nil
	}
	x, err := f()
	if err != nil {
		return err
	}
	if err := b.recordClassStats(s, x); err != nil {
		return err
	}
	return b.refitHead(s.Index, o)
}

// classStatSlots are the stored statistics in the learner file (mode
// AlignGaussian only): align.mean [C,W] and align.cov [C,W,W], zero for
// classes not yet seen.
func (b *promptBase) classStatSlots(mode string) []tensorSlot {
	if mode != AlignGaussian {
		return nil
	}
	W, C := int64(b.pe.w.Width), int64(b.classes())
	return []tensorSlot{
		{"align.mean", []int64{C, W}, &b.AlignMean},
		{"align.cov", []int64{C, W, W}, &b.AlignCov},
	}
}

// allocStats allocates zero statistics for C classes with mode
// AlignGaussian (a learner's first stage; a file of one that has learned
// no stage then still has the slots).
func (b *promptBase) allocStats(mode string, C int) {
	if mode == AlignGaussian {
		W := b.pe.w.Width
		b.AlignMean, b.AlignCov = make([]float32, C*W), make([]float32, C*W*W)
	}
}

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

// Classifier alignment of L2P's head with stored class statistics
// (l2p.align=gaussian; docs/TRAINING.md "L2P's classifier alignment", the
// rule of SLCA and HiDe-Prompt). L2P masks the logits of earlier classes
// while a stage trains, so their head columns stop moving while the shared
// prompts under them are retrained, and the new classes' columns are fitted
// without competitors. After every stage the learner records, for each of
// the stage's classes, the mean and covariance of the head's input (the
// mean of the prompt outputs, [W]) over its training images under the
// prompts as they are then; it then re-fits the head columns of every class
// seen so far by softmax regression on features drawn from those Gaussians.
// The prompts and keys are not touched, and since the masked training of a
// later stage never reads an old column, the prompts follow the same
// trajectory with or without alignment.

// Alignment modes (option align).
const (
	AlignNone     = "none"
	AlignGaussian = "gaussian"
)

// alignStream tags the random stream of the alignment after stage i
// (alignStream + i + 1, with Env.Seed).
const alignStream = 0x6c3270a1

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
// L the Cholesky factor of cov, z standard normal (drawn row by row). A covariance that is
// not positive definite (all zero: one image) gets a ridge of 1e-9·(1 + its
// largest diagonal) until it factorises.
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

// alignOptions are the alignment's settings.
type alignOptions struct {
	// Samples per class, Steps of full-batch Adam at LR, Shrink the γ of
	// shrunk.
	Samples, Steps int
	LR, Shrink     float64
}

// fitHeadColumns re-fits the columns cols of the head hw [W,C] (x·W
// orientation), hb [C] by softmax regression over those columns only, on
// x [n,W] with labels y [n] (positions in cols), starting from the current
// values: Steps full-batch Adam steps (β 0.9, 0.999, ε 1e-8) at LR. Other
// columns are left as they are. It returns the loss before and after.
func fitHeadColumns(hw, hb []float32, C int, cols []int, x []float64, y []int, o alignOptions) (before, after float64, err error) {
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
	opt, err := optim.New(optim.AdamDefaults(optim.Adam), optim.Group{Name: "align", Params: []*optim.Param{pw, pb}, LR: o.LR})
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
	for s := 0; s < o.Steps; s++ {
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
	if o.Steps == 0 {
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

// featuresOf returns the head's input [d.Len(),W] of every image of d
// (given: their frozen features, as Stage.Features and Eval.Features)
// under the current prompts, selected per sample (the methods' rule),
// eval-batch images a call.
func (l *L2P) featuresOf(ctx context.Context, d *tune.Dataset, given []float32, dim int) ([]float32, error) {
	if err := l.sessions(); err != nil {
		return nil, err
	}
	W := l.pe.w.Width
	q, err := l.pe.datasetQueries(ctx, d, given, dim)
	if err != nil {
		return nil, err
	}
	out := make([]float32, 0, d.Len()*W)
	err = l.pe.inOrder(ctx, d, l.opt.EvalBatch, func(bt *tune.Batch) error {
		n := bt.N()
		r, err := l.fwd.Run([]ort.Tensor{l.pe.images(bt.X, n), l.input(l.selectRows(pRows(q, W, bt.Rows), SelectPerSample))})
		if err != nil {
			return err
		}
		out = append(out, r[0].F32...)
		return nil
	})
	return out, err
}

// recordStats stores the mean and covariance of the head's input of each
// of the stage's classes (AlignMean [C,W], AlignCov [C,W,W]).
func (l *L2P) recordStats(ctx context.Context, s Stage) error {
	W, C := l.pe.w.Width, l.classes()
	if len(l.AlignMean) != C*W || len(l.AlignCov) != C*W*W {
		l.AlignMean, l.AlignCov = make([]float32, C*W), make([]float32, C*W*W)
	}
	f, err := l.featuresOf(ctx, s.Images, s.Features, s.Dim)
	if err != nil {
		return err
	}
	for _, c := range s.Classes {
		var rows []int
		for i, y := range s.Images.Labels {
			if y == c {
				rows = append(rows, i)
			}
		}
		if len(rows) == 0 {
			return fmt.Errorf("l2p: stage %d has no training image of class %q to record its statistics (align=%s)", s.Index+1, s.Names[c], AlignGaussian)
		}
		mean, cov := gaussianStats(gatherRows(f, W, rows), W)
		for j, v := range mean {
			l.AlignMean[c*W+j] = float32(v)
		}
		dst := l.AlignCov[c*W*W : (c+1)*W*W]
		for i := 0; i < W; i++ {
			for j := 0; j < W; j++ {
				dst[i*W+j] = float32(cov.At(i, j))
			}
		}
	}
	return nil
}

// alignHead re-fits the head columns of every class seen so far on
// l.opt.AlignSamples features per class drawn from its stored Gaussian
// (covariance shrunk by align-shrink), with the random stream of stage
// index (Env.Seed, alignStream + index + 1), so that a learner loaded
// after a stage aligns the next one as one that never stopped.
func (l *L2P) alignHead(index int) error {
	W, C := l.pe.w.Width, l.classes()
	o := alignOptions{Samples: l.opt.AlignSamples, Steps: l.opt.AlignSteps, LR: l.opt.AlignLR, Shrink: l.opt.AlignShrink}
	rng := l.pe.stream(alignStream + uint64(index) + 1)
	cols := pSortedInts(l.seen)
	x := make([]float64, 0, len(cols)*o.Samples*W)
	y := make([]int, 0, len(cols)*o.Samples)
	for j, c := range cols {
		mean := make([]float64, W)
		for i := range mean {
			mean[i] = float64(l.AlignMean[c*W+i])
		}
		S := mat.NewSymDense(W, nil)
		for i := 0; i < W; i++ {
			for k := i; k < W; k++ {
				S.SetSym(i, k, float64(l.AlignCov[(c*W+i)*W+k]))
			}
		}
		smp, err := sampleGaussian(rng, mean, shrunk(S, o.Shrink), o.Samples)
		if err != nil {
			return fmt.Errorf("l2p: class %q: %w", l.names[c], err)
		}
		x = append(x, smp...)
		for s := 0; s < o.Samples; s++ {
			y = append(y, j)
		}
	}
	before, after, err := fitHeadColumns(l.HeadW, l.HeadB, C, cols, x, y, o)
	if err != nil {
		return fmt.Errorf("l2p: aligning the head after stage %d: %w", index+1, err)
	}
	l.pe.env.Logf("l2p: stage %d: head aligned on %d sampled features of %d classes: loss %.4f → %.4f", index+1, len(y), len(cols), before, after)
	return nil
}

// statSlots are the stored statistics in the learner file (align=gaussian
// only): align.mean [C,W] and align.cov [C,W,W], zero for classes not yet
// seen.
func (l *L2P) statSlots() []tensorSlot {
	if l.opt.Align != AlignGaussian {
		return nil
	}
	W, C := int64(l.pe.w.Width), int64(l.classes())
	return []tensorSlot{
		{"align.mean", []int64{C, W}, &l.AlignMean},
		{"align.cov", []int64{C, W, W}, &l.AlignCov},
	}
}

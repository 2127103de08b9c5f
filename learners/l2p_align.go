package learners

import (
	"context"

	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/tune"
)

// L2P's classifier alignment (l2p.align=gaussian; the shared rule is in
// prompt_align.go, docs/TRAINING.md "Classifier alignment of the prompt
// methods"). The statistics are of the head's input, the mean of the
// prompt outputs [W], with the prompts selected per sample (the methods'
// rule, whatever train-select is).

func (l *L2P) alignOptions() AlignOptions {
	return AlignOptions{Align: l.opt.Align, AlignSamples: l.opt.AlignSamples, AlignSteps: l.opt.AlignSteps,
		AlignLR: l.opt.AlignLR, AlignShrink: l.opt.AlignShrink}
}

func (l *L2P) setAlign(mode string) { l.opt.Align = mode }

// featuresOf returns the head's input [d.Len(),W] of every image of d
// (given: their frozen features, as Stage.Features and Eval.Features)
// under the current prompts, selected per sample, eval-batch images a call.
func (l *L2P) featuresOf(ctx context.Context, d *tune.Dataset, given []float32, dim int) ([]float32, error) {
	return l.features(ctx, d, given, dim, l.opt.EvalBatch, func(q []float32, _ int) ort.Tensor {
		return l.input(l.selectRows(q, SelectPerSample))
	})
}

// testFeatures are the head's inputs Scores reads (test-select).
func (l *L2P) testFeatures(ctx context.Context, d *tune.Dataset, given []float32, dim int) ([]float32, error) {
	bs := l.opt.EvalBatch
	if l.opt.TestSelect == SelectBatchVote {
		bs = l.opt.VoteBatch
	}
	return l.features(ctx, d, given, dim, bs, func(q []float32, _ int) ort.Tensor { return l.input(l.selectRows(q, l.opt.TestSelect)) })
}

// recordStats stores the mean and covariance of the head's input of each
// of the stage's classes (AlignMean [C,W], AlignCov [C,W,W]), from the
// features a head-only stage computed if it ran (statFeatures).
func (l *L2P) recordStats(ctx context.Context, s Stage) error {
	f, err := l.statFeatures(ctx, s)
	if err != nil {
		return err
	}
	return l.recordClassStats(s, f)
}

// alignHead re-fits the head columns of every class seen so far
// (refitHead with L2P's options).
func (l *L2P) alignHead(index int) error { return l.refitHead(index, l.alignOptions()) }

// alignStage records s's statistics (statFeatures) and re-fits the head.
func (l *L2P) alignStage(ctx context.Context, s Stage) error {
	return l.alignWith(s, l.alignOptions(), func() ([]float32, error) { return l.statFeatures(ctx, s) })
}

// statSlots are the stored statistics in the learner file (align=gaussian
// only): align.mean [C,W] and align.cov [C,W,W], zero for classes not yet
// seen.
func (l *L2P) statSlots() []tensorSlot { return l.classStatSlots(l.opt.Align) }

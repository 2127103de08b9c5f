package learners

import (
	"context"

	"github.com/cl-dev/cl/tune"
)

// CODA-Prompt's classifier alignment (coda-prompt.align=gaussian; the
// shared rule is in prompt_align.go, docs/TRAINING.md "Classifier
// alignment of the prompt methods"). The statistics are of the head's
// input as training and Scores produce it: the prompted [CLS] with the
// weighted sum of the components of every stage learned so far.

func (c *CODAPrompt) alignOptions() AlignOptions { return c.opt.AlignOptions }

func (c *CODAPrompt) setAlign(mode string) { c.opt.Align = mode }

// testFeatures are the head's inputs Scores reads, [d.Len(),W]; after a
// stage they are also the features its statistics are recorded from.
func (c *CODAPrompt) testFeatures(ctx context.Context, d *tune.Dataset, given []float32, dim int) ([]float32, error) {
	return c.features(ctx, d, given, dim, c.opt.EvalBatch, c.prompt)
}

// alignStage records the statistics of s's classes under the components
// of the stages learned (the stage just learned included) and re-fits the
// head.
func (c *CODAPrompt) alignStage(ctx context.Context, s Stage) error {
	return c.alignWith(s, c.opt.AlignOptions, func() ([]float32, error) {
		return c.testFeatures(ctx, s.Images, s.Features, s.Dim)
	})
}

package learners

import (
	"context"

	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/tune"
)

// DualPrompt's classifier alignment (dualprompt.align=gaussian; the shared
// rule is in prompt_align.go, docs/TRAINING.md "Classifier alignment of
// the prompt methods"). The statistics are of the head's input as training
// produces it: the prompted [CLS] with the G-prompt and the stage's own
// E-prompt forced for every image (not the E-prompt a key match would
// pick), under the prompts as the stage left them.

func (d *DualPrompt) alignOptions() AlignOptions { return d.opt.AlignOptions }

func (d *DualPrompt) setAlign(mode string) { d.opt.Align = mode }

// statFeatures returns the head's input [d.Len(),W] of the images of ds
// (given: their frozen features) with E-prompt task forced for all of them,
// the test batch size a call (PILOT's layout makes the features depend on
// the batch).
func (d *DualPrompt) statFeatures(ctx context.Context, ds *tune.Dataset, given []float32, dim, task int) ([]float32, error) {
	return d.features(ctx, ds, given, dim, d.testBatch(), func(_ []float32, n int) ort.Tensor {
		e := make([]int, n)
		for i := range e {
			e[i] = task
		}
		return d.input(e)
	})
}

// testFeatures are the head's inputs Scores reads.
func (d *DualPrompt) testFeatures(ctx context.Context, ds *tune.Dataset, given []float32, dim int) ([]float32, error) {
	return d.features(ctx, ds, given, dim, d.testBatch(), d.testPrompt)
}

// alignStage records the statistics of s's classes under E-prompt
// stages−1 (the stage just learned) and re-fits the head.
func (d *DualPrompt) alignStage(ctx context.Context, s Stage) error {
	return d.alignWith(s, d.opt.AlignOptions, func() ([]float32, error) {
		return d.statFeatures(ctx, s.Images, s.Features, s.Dim, d.stages-1)
	})
}

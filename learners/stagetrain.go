package learners

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/cl-dev/cl/tune"
	"github.com/cl-dev/cl/tune/optim"
)

// stepResult is what one training step computed (before the update).
type stepResult struct {
	// Loss is the batch's mean loss (with the method's extra terms).
	Loss float64
	// Idx are the pool rows every image used (L2P, DualPrompt).
	Idx [][]int
	// Grads are the gradients by parameter name, shaped like the
	// parameters the optimizer holds.
	Grads map[string][]float32
	// Logits are [n,C]; Correct the images whose top logit is their label.
	Logits  []float32
	Correct int
}

// applyStep finishes a step of method: it refuses a non-finite loss,
// counts the correct predictions of res.Logits [n,C] against labels [n]
// and updates the parameters of opt with res.Grads.
func applyStep(method string, opt *optim.Optimizer, res *stepResult, labels []int64, C int) (*stepResult, error) {
	if math.IsNaN(res.Loss) || math.IsInf(res.Loss, 0) {
		return nil, fmt.Errorf("%s: the loss is %v at step %d", method, res.Loss, opt.Steps()+1)
	}
	res.Correct = tune.Correct(res.Logits, labels, C)
	if _, err := opt.Step(res.Grads); err != nil {
		return nil, err
	}
	return res, nil
}

// epochPlan is how one stage trains.
type epochPlan struct {
	// Epochs passes over the stage's images, Batch images a step, in an
	// order shuffled by the learner's seed and the stage index.
	Epochs, Batch int
	// Transform prepares the training images (nil: the test transform).
	Transform tune.Transform
	// Opt is the stage's optimizer: told of every epoch's end (its
	// per-epoch schedule), its learning rate logged with LRDigits
	// significant digits (0: not logged).
	Opt      *optim.Optimizer
	LRDigits int
}

// runEpochs trains stage s: step on every batch, a progress line per
// epoch (mean loss, training accuracy, images/s) through Env.Log, and the
// mean loss of every epoch in EpochLoss (reset first).
func (c *learnerCore) runEpochs(ctx context.Context, s Stage, plan epochPlan, step func(b *tune.Batch) (*stepResult, error)) error {
	p, method, epochLoss := c.pe, c.method, &c.EpochLoss
	tf := plan.Transform
	if tf == nil {
		tf = p.tf
	}
	seed := p.env.Seed ^ uint64(s.Index+1)*0x9e3779b97f4a7c15
	*epochLoss = nil
	var sum float64
	var n, right, epoch int
	t0 := time.Now()
	flush := func() {
		if n > 0 {
			*epochLoss = append(*epochLoss, sum/float64(n))
			lr := ""
			if plan.LRDigits > 0 {
				lr = fmt.Sprintf(", lr %.*g", plan.LRDigits, plan.Opt.LR(0))
			}
			p.env.Logf("%s: stage %d epoch %d/%d: loss %.4f, train accuracy %.1f%%%s, %.1f images/s", method, s.Index+1, epoch+1, plan.Epochs, sum/float64(n), 100*float64(right)/float64(n), lr, float64(n)/time.Since(t0).Seconds())
		}
		sum, n, right, t0 = 0, 0, 0, time.Now()
	}
	err := tune.ForEpochs(ctx, s.Images, plan.Epochs, plan.Batch, seed, tf, p.env.Workers, func(e int, b *tune.Batch) error {
		if e != epoch {
			flush()
			plan.Opt.EndEpoch()
			epoch = e
		}
		r, err := step(b)
		if err != nil {
			return err
		}
		sum += r.Loss * float64(b.N())
		n += b.N()
		right += r.Correct
		return nil
	})
	if err != nil {
		return err
	}
	flush()
	return nil
}

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
	tf := plan.Transform
	if tf == nil {
		tf = c.pe.tf
	}
	t := c.newTally(s, plan)
	err := tune.ForEpochs(ctx, s.Images, plan.Epochs, plan.Batch, c.stageSeed(s), tf, c.pe.env.Workers, func(e int, b *tune.Batch) error {
		if e != t.epoch {
			t.flush()
			plan.Opt.EndEpoch()
			t.epoch = e
		}
		r, err := step(b)
		if err != nil {
			return err
		}
		t.add(r, b.N())
		return nil
	})
	if err != nil {
		return err
	}
	t.flush()
	return nil
}

// stageSeed seeds the epoch orders of stage s (tune.EpochOrder).
func (c *learnerCore) stageSeed(s Stage) uint64 {
	return c.pe.env.Seed ^ uint64(s.Index+1)*0x9e3779b97f4a7c15
}

// epochTally sums one epoch's steps; flush records the epoch's mean loss
// in EpochLoss and logs the epoch's progress line.
type epochTally struct {
	c        *learnerCore
	s        Stage
	plan     epochPlan
	epoch    int
	sum      float64
	n, right int
	t0       time.Time
}

// newTally starts stage s's tally (EpochLoss emptied).
func (c *learnerCore) newTally(s Stage, plan epochPlan) *epochTally {
	c.EpochLoss = nil
	return &epochTally{c: c, s: s, plan: plan, t0: time.Now()}
}

// add counts a step of n images.
func (t *epochTally) add(r *stepResult, n int) {
	t.sum += r.Loss * float64(n)
	t.n += n
	t.right += r.Correct
}

func (t *epochTally) flush() {
	if t.n > 0 {
		c, p := t.c, t.plan
		c.EpochLoss = append(c.EpochLoss, t.sum/float64(t.n))
		lr := ""
		if p.LRDigits > 0 {
			lr = fmt.Sprintf(", lr %.*g", p.LRDigits, p.Opt.LR(0))
		}
		c.pe.env.Logf("%s: stage %d epoch %d/%d: loss %.4f, train accuracy %.1f%%%s, %.1f images/s", c.method, t.s.Index+1, t.epoch+1, p.Epochs, t.sum/float64(t.n), 100*float64(t.right)/float64(t.n), lr, float64(t.n)/time.Since(t.t0).Seconds())
	}
	t.sum, t.n, t.right, t.t0 = 0, 0, 0, time.Now()
}

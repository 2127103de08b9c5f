package learners

import (
	"context"
	"math"

	"github.com/cl-dev/cl/tune"
	"github.com/cl-dev/cl/tune/grad"
)

// L2P's head-only stages (l2p.head-only=auto, the default; docs/TRAINING.md
// "Prompt methods"). Once every pool row is frozen (freeze=used), a stage
// trains nothing but the linear head: each image's head input, the mean of
// the prompt outputs [W], depends only on its frozen query, the frozen
// keys (per-sample selection) and the frozen prompts, and the key-pull
// term has no gradient. Such a stage then computes every image's head
// input once with the prompted forward pass (featuresOf, the pass the
// classifier alignment records its statistics from, which reuses them)
// and runs the same optimizer steps as the graph path on them in Go: the
// same batches in the same order, the masked cross-entropy over the
// stage's classes, Adam over prompts, keys and head with zero gradients
// for the (frozen) prompts and keys, the same per-epoch log. The loss it
// logs includes −pull·Σcos(q, selected keys)/B of each batch, computed as
// the graph path computes it (a constant per image, since queries and
// keys are frozen). head-only=off always runs the prompted ViT forward and
// backward (the graph path).

// Head-only modes (option head-only).
const (
	HeadOnlyAuto = "auto"
	HeadOnlyOff  = "off"
)

// headOnly reports whether a stage trained with plan runs on cached head
// inputs: head-only=auto, every pool row frozen, per-sample selection in
// training (with batch-vote an image's prompts depend on its batch) and
// the deterministic test transform (plan.Transform nil: with an
// augmentation the head input would change every epoch).
func (l *L2P) headOnly(plan epochPlan) bool {
	return l.opt.HeadOnly == HeadOnlyAuto && l.opt.Freeze == FreezeUsed && len(l.frozen) == l.opt.Pool &&
		l.opt.TrainSelect == SelectPerSample && plan.Transform == nil
}

// stageFeatures are the head inputs [n,W] of the images of a data set
// computed by a head-only stage, valid until the prompts or keys change
// (the next Learn): the classifier alignment reads them instead of a
// second pass.
type stageFeatures struct {
	d *tune.Dataset
	f []float32
}

// statFeatures returns the head inputs of s's images for the class
// statistics: the head-only stage's if it computed them, else featuresOf.
func (l *L2P) statFeatures(ctx context.Context, s Stage) ([]float32, error) {
	if l.cached.d != nil && l.cached.d == s.Images {
		return l.cached.f, nil
	}
	return l.featuresOf(ctx, s.Images, s.Features, s.Dim)
}

// trainHeadOnly trains stage s's head on the head inputs of its images
// (featuresOf), plan's epochs and batches as runEpochs draws them.
func (l *L2P) trainHeadOnly(ctx context.Context, s Stage, plan epochPlan) error {
	W, C := l.pe.w.Width, l.classes()
	l.pe.env.Logf("l2p: stage %d: every pool row is frozen: training the head alone on the prompted features (head-only=%s)", s.Index+1, l.opt.HeadOnly)
	q, err := l.pe.datasetQueries(ctx, s.Images, s.Features, s.Dim)
	if err != nil {
		return err
	}
	f, err := l.featuresOf(ctx, s.Images, s.Features, s.Dim)
	if err != nil {
		return err
	}
	l.cached = stageFeatures{s.Images, f}
	opt, err := l.newOptimizer()
	if err != nil {
		return err
	}
	plan.Opt = opt
	mask := pClassMask(C, s.Classes)
	zp, zk := make([]float32, len(l.Prompts)), make([]float32, len(l.Keys))
	err = l.runEpochsCached(ctx, s, plan, func(rows []int, labels []int64) (*stepResult, error) {
		qb := gatherRows(q, W, rows)
		idx := l.selectRows(qb, l.opt.TrainSelect)
		ce, logits, gw, gb := maskedLinearCE(gatherRows(f, W, rows), W, l.HeadW, l.HeadB, C, mask, labels)
		r, _ := keyPull(qb, l.Keys, W, idx, l.opt.Pull)
		l.noteUsed(idx)
		res := &stepResult{Loss: ce - l.opt.Pull*r, Idx: idx, Logits: logits,
			Grads: map[string][]float32{"prompts": zp, "keys": zk, grad.HeadWeightName: gw, grad.HeadBiasName: gb}}
		return applyStep("l2p", opt, res, labels, C)
	})
	if err != nil {
		return err
	}
	l.seen = append(l.seen, s.Classes...)
	l.stages++
	return nil
}

// runEpochsCached is runEpochs without images: the same epoch orders
// (tune.EpochOrder with the stage's seed), batches of plan.Batch rows (the
// last one smaller), step on every batch's rows and labels, the same
// progress line per epoch and EpochLoss.
func (l *L2P) runEpochsCached(ctx context.Context, s Stage, plan epochPlan, step func(rows []int, labels []int64) (*stepResult, error)) error {
	d := s.Images
	t := l.newTally(s, plan)
	for e := 0; e < plan.Epochs; e++ {
		if e > 0 {
			plan.Opt.EndEpoch()
		}
		t.epoch = e
		order := tune.EpochOrder(d.Len(), l.stageSeed(s), e, true)
		for start := 0; start < len(order); start += plan.Batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			rows := order[start:min(start+plan.Batch, len(order))]
			labels := make([]int64, len(rows))
			for j, r := range rows {
				labels[j] = int64(d.Labels[r])
			}
			r, err := step(rows, labels)
			if err != nil {
				return err
			}
			t.add(r, len(rows))
		}
		t.flush()
	}
	return ctx.Err()
}

// maskedLinearCE is the training graph's objective on head inputs f [n,W]
// in float64: logits f·hw + hb (hw [W,C]) with the classes outside mask
// [C] at −inf, the mean cross-entropy over the n images (labels [n],
// global) and its gradients with respect to hw [W,C] and hb [C] (exactly
// zero in the masked columns). logits [n,C] are returned in float32, the
// masked ones −inf, as the graph returns them.
func maskedLinearCE(f []float32, W int, hw, hb []float32, C int, mask []float32, labels []int64) (loss float64, logits, gw, gb []float32) {
	n := len(labels)
	logits = make([]float32, n*C)
	dz := make([]float64, C)
	gw64, gb64 := make([]float64, W*C), make([]float64, C)
	z := make([]float64, C)
	for i := 0; i < n; i++ {
		row := f[i*W : (i+1)*W]
		for c := 0; c < C; c++ {
			z[c] = float64(hb[c])
		}
		for t, v := range row {
			x := float64(v)
			w := hw[t*C : (t+1)*C]
			for c := range z {
				z[c] += x * float64(w[c])
			}
		}
		mx := math.Inf(-1)
		for c := range z {
			if mask[c] == 0 {
				z[c] = math.Inf(-1)
			}
			mx = math.Max(mx, z[c])
			logits[i*C+c] = float32(z[c])
		}
		var se float64
		for c := range z {
			if mask[c] != 0 {
				se += math.Exp(z[c] - mx)
			}
		}
		lse := mx + math.Log(se)
		y := int(labels[i])
		loss -= z[y] - lse
		for c := range z {
			dz[c] = 0
			if mask[c] != 0 {
				dz[c] = math.Exp(z[c]-lse) / float64(n)
			}
		}
		dz[y] -= 1 / float64(n)
		for c, g := range dz {
			gb64[c] += g
		}
		for t, v := range row {
			x := float64(v)
			g := gw64[t*C : (t+1)*C]
			for c, d := range dz {
				g[c] += x * d
			}
		}
	}
	gw, gb = make([]float32, W*C), make([]float32, C)
	for i, v := range gw64 {
		gw[i] = float32(v)
	}
	for i, v := range gb64 {
		gb[i] = float32(v)
	}
	return loss / float64(n), logits, gw, gb
}

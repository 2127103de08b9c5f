package tune

import (
	"context"
	"math"
	"sort"
)

// Prompt selection for the prompt-based learners (L2P, DualPrompt,
// CODA-Prompt; docs/TRAINING.md "Prompt methods"). Selection is discrete and
// cheap, so it runs in Go on the frozen backbone's [CLS] queries; the graphs
// receive the composed per-image prompts and return their gradients, which
// the learners scatter back to the pools.

// keyNormEps2 is PILOT's Prompt.l2_normalize epsilon: x·rsqrt(max(Σx², 1e-12)).
const keyNormEps2 = 1e-12

// L2Rows returns the rows of x [n,d] divided by their L2 norm, PILOT's way
// (x·rsqrt(max(Σx², 10⁻¹²))), in float64, and the norms used.
func L2Rows(x []float32, d int) (unit []float64, norms []float64) {
	n := len(x) / d
	unit = make([]float64, len(x))
	norms = make([]float64, n)
	for i := 0; i < n; i++ {
		var ss float64
		for _, v := range x[i*d : (i+1)*d] {
			ss += float64(v) * float64(v)
		}
		nr := math.Sqrt(math.Max(ss, keyNormEps2))
		norms[i] = nr
		for j, v := range x[i*d : (i+1)*d] {
			unit[i*d+j] = float64(v) / nr
		}
	}
	return unit, norms
}

// CosineTopK returns, for every query row of q [n,d], the k rows of keys
// [m,d] with the largest cosine similarity, in descending order of
// similarity (ties: the lower row first), and the similarities [n,m].
func CosineTopK(q, keys []float32, d, k int) (idx [][]int, sim []float64) {
	qu, _ := L2Rows(q, d)
	ku, _ := L2Rows(keys, d)
	n, m := len(q)/d, len(keys)/d
	sim = make([]float64, n*m)
	idx = make([][]int, n)
	for i := 0; i < n; i++ {
		for j := 0; j < m; j++ {
			var s float64
			for t := 0; t < d; t++ {
				s += qu[i*d+t] * ku[j*d+t]
			}
			sim[i*m+j] = s
		}
		row := sim[i*m : (i+1)*m]
		order := make([]int, m)
		for j := range order {
			order[j] = j
		}
		sort.SliceStable(order, func(a, b int) bool { return row[order[a]] > row[order[b]] })
		idx[i] = order[:min(k, m)]
	}
	return idx, sim
}

// VoteTopK is PILOT's batchwise_prompt: the k pool rows chosen most often
// over all rows of idx (ties: the lower row first; torch.topk leaves their
// order unspecified), the same for every sample of the batch.
func VoteTopK(idx [][]int, k int) [][]int {
	count := map[int]int{}
	for _, r := range idx {
		for _, j := range r {
			count[j]++
		}
	}
	ids := make([]int, 0, len(count))
	for j := range count {
		ids = append(ids, j)
	}
	sort.Slice(ids, func(a, b int) bool {
		if count[ids[a]] != count[ids[b]] {
			return count[ids[a]] > count[ids[b]]
		}
		return ids[a] < ids[b]
	})
	ids = ids[:min(k, len(ids))]
	out := make([][]int, len(idx))
	for i := range out {
		out[i] = ids
	}
	return out
}

// KeyPull is L2P's and DualPrompt's surrogate loss term: the mean over the
// batch of the summed cosine similarity between each query q_b and the keys
// it selected, R = Σ_b Σ_j cos(q_b, K[idx_bj]) / B, and its gradient with
// respect to the keys [m,d] (queries are frozen): for row r,
// ∂R/∂K_r = Σ_{(b,j): idx_bj = r} (q̂_b − (k̂_r·q̂_b)·k̂_r)/‖K_r‖ / B.
// The learners subtract coeff·R from the loss (PILOT's pull constraint).
func KeyPull(q, keys []float32, d int, idx [][]int) (r float64, grad []float64) {
	qu, _ := L2Rows(q, d)
	ku, kn := L2Rows(keys, d)
	B := float64(len(idx))
	grad = make([]float64, len(keys))
	for b, row := range idx {
		for _, j := range row {
			var c float64
			for t := 0; t < d; t++ {
				c += qu[b*d+t] * ku[j*d+t]
			}
			r += c
			if kn[j]*kn[j] <= keyNormEps2 {
				// rsqrt(max(Σk², ε)) is constant here: ∂k̂/∂k = I/√ε.
				for t := 0; t < d; t++ {
					grad[j*d+t] += qu[b*d+t] / kn[j] / B
				}
				continue
			}
			for t := 0; t < d; t++ {
				grad[j*d+t] += (qu[b*d+t] - c*ku[j*d+t]) / kn[j] / B
			}
		}
	}
	return r / B, grad
}

// ForEpochs runs fn on the mini-batches of epochs passes over d (shuffled
// by seed and epoch, batch images each, the last one smaller), prepared by
// workers goroutines with tf. It stops at the first error of fn, of a
// sample, or of ctx.
func ForEpochs(ctx context.Context, d *Dataset, epochs, batch int, seed uint64, tf Transform, workers int, fn func(epoch int, b *Batch) error) error {
	for e := 0; e < epochs; e++ {
		order := EpochOrder(d.Len(), seed, e, true)
		batches, berr := Batches(ctx, d, order, batch, false, tf, seed, e, workers)
		for b := range batches {
			if err := ctx.Err(); err != nil {
				drain(batches)
				return err
			}
			if err := fn(e, b); err != nil {
				drain(batches)
				return err
			}
		}
		if err := berr(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

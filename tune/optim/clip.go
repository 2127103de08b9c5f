package optim

import "math"

// GlobalNorm is the L2 norm of all the gradients together,
// √(Σ_tensors Σ_i g_i²), accumulated in float64 in the order given.
func GlobalNorm(grads [][]float32) float64 {
	s := 0.0
	for _, g := range grads {
		for _, v := range g {
			s += float64(v) * float64(v)
		}
	}
	return math.Sqrt(s)
}

// ClipGradNorm scales grads in place so that their global L2 norm is at
// most maxNorm, as torch.nn.utils.clip_grad_norm_(max_norm, norm_type=2):
// every value is multiplied by min(1, maxNorm/(norm + 1e-6)). It returns the
// norm before clipping; a non-finite norm leaves grads unchanged.
func ClipGradNorm(grads [][]float32, maxNorm float64) float64 {
	n := GlobalNorm(grads)
	if !math.IsNaN(n) && !math.IsInf(n, 0) {
		scaleToNorm(grads, n, maxNorm)
	}
	return n
}

// scaleToNorm multiplies grads by min(1, maxNorm/(norm+1e-6)) in float32
// and reports whether the factor was below 1.
func scaleToNorm(grads [][]float32, norm, maxNorm float64) bool {
	coef := maxNorm / (norm + 1e-6)
	if coef >= 1 {
		return false
	}
	c := float32(coef)
	for _, g := range grads {
		for i := range g {
			g[i] *= c
		}
	}
	return true
}

package learners

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// Tests of the alignment's shared parts (prompt_align.go): the loss and
// its gradient, the statistics and the sampling, the column re-fit. The
// learners' use of them is tested per method (l2p_align_test.go,
// dualprompt_align_test.go covering DualPrompt and CODA-Prompt).

// TestSoftmaxLossGradient checks softmaxLoss against its definition
// (−mean log softmax, computed directly) and its gradients against central
// finite differences of that definition.
func TestSoftmaxLossGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 1))
	n, D, k := 9, 5, 4
	x := mat.NewDense(n, D, nil)
	y := make([]int, n)
	for i := 0; i < n; i++ {
		for j := 0; j < D; j++ {
			x.Set(i, j, rng.NormFloat64()*2)
		}
		y[i] = rng.IntN(k)
	}
	w := mat.NewDense(D, k, nil)
	for i := 0; i < D; i++ {
		for j := 0; j < k; j++ {
			w.Set(i, j, rng.NormFloat64())
		}
	}
	b := []float64{0.3, -0.2, 0.1, 0.5}
	direct := func(w *mat.Dense, b []float64) float64 {
		var loss float64
		for i := 0; i < n; i++ {
			z := make([]float64, k)
			var sum float64
			for c := 0; c < k; c++ {
				z[c] = b[c]
				for j := 0; j < D; j++ {
					z[c] += x.At(i, j) * w.At(j, c)
				}
				sum += math.Exp(z[c])
			}
			loss -= z[y[i]] - math.Log(sum)
		}
		return loss / float64(n)
	}
	loss, gw, gb := softmaxLoss(x, y, w, b)
	if d := math.Abs(loss - direct(w, b)); d > 1e-12 {
		t.Fatalf("loss %v, definition %v", loss, direct(w, b))
	}
	const h = 1e-6
	for i := 0; i < D; i++ {
		for c := 0; c < k; c++ {
			v := w.At(i, c)
			w.Set(i, c, v+h)
			up := direct(w, b)
			w.Set(i, c, v-h)
			down := direct(w, b)
			w.Set(i, c, v)
			if fd := (up - down) / (2 * h); math.Abs(fd-gw.At(i, c)) > 1e-7 {
				t.Fatalf("∂loss/∂w[%d,%d] = %v, finite difference %v", i, c, gw.At(i, c), fd)
			}
		}
	}
	for c := 0; c < k; c++ {
		v := b[c]
		b[c] = v + h
		up := direct(w, b)
		b[c] = v - h
		down := direct(w, b)
		b[c] = v
		if fd := (up - down) / (2 * h); math.Abs(fd-gb[c]) > 1e-7 {
			t.Fatalf("∂loss/∂b[%d] = %v, finite difference %v", c, gb[c], fd)
		}
	}
}

// TestGaussianStatsAndSampling: gaussianStats is the mean and the
// unbiased covariance by definition; shrunk keeps the trace; the samples
// of sampleGaussian have the mean and covariance asked for (within the
// sampling error of 40000 draws) and are the same for the same stream.
func TestGaussianStatsAndSampling(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	n, W := 6, 4
	x := make([]float32, n*W)
	for i := range x {
		x[i] = float32(rng.NormFloat64() + float64(i%W))
	}
	mean, S := gaussianStats(x, W)
	for j := 0; j < W; j++ {
		var m float64
		for i := 0; i < n; i++ {
			m += float64(x[i*W+j])
		}
		m /= float64(n)
		if math.Abs(m-mean[j]) > 1e-12 {
			t.Fatalf("mean[%d] = %v, want %v", j, mean[j], m)
		}
	}
	for a := 0; a < W; a++ {
		for c := 0; c < W; c++ {
			var s float64
			for i := 0; i < n; i++ {
				s += (float64(x[i*W+a]) - mean[a]) * (float64(x[i*W+c]) - mean[c])
			}
			if want := s / float64(n-1); math.Abs(S.At(a, c)-want) > 1e-12 {
				t.Fatalf("cov[%d,%d] = %v, want %v", a, c, S.At(a, c), want)
			}
		}
	}
	if _, one := gaussianStats(x[:W], W); mat.Norm(one, 1) != 0 {
		t.Fatalf("the covariance of one row is not zero")
	}
	Sg := shrunk(S, 0.3)
	if d := math.Abs(mat.Trace(Sg) - mat.Trace(S)); d > 1e-12 {
		t.Fatalf("shrinking changed the trace by %v", d)
	}
	const N = 40000
	smp, err := sampleGaussian(rand.New(rand.NewPCG(5, 6)), mean, Sg, N)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := sampleGaussian(rand.New(rand.NewPCG(5, 6)), mean, Sg, N)
	for i := range smp {
		if smp[i] != again[i] {
			t.Fatalf("the same stream drew different samples")
		}
	}
	f := make([]float32, len(smp))
	for i, v := range smp {
		f[i] = float32(v)
	}
	gm, gS := gaussianStats(f, W)
	for a := 0; a < W; a++ {
		sd := math.Sqrt(Sg.At(a, a))
		if d := math.Abs(gm[a] - mean[a]); d > 5*sd/math.Sqrt(N) {
			t.Errorf("sample mean[%d] off by %v (σ %v)", a, d, sd)
		}
		for c := 0; c < W; c++ {
			tol := 6 * math.Sqrt((Sg.At(a, a)*Sg.At(c, c)+Sg.At(a, c)*Sg.At(a, c))/N)
			if d := math.Abs(gS.At(a, c) - Sg.At(a, c)); d > tol {
				t.Errorf("sample cov[%d,%d] = %v, want %v ± %v", a, c, gS.At(a, c), Sg.At(a, c), tol)
			}
		}
	}
	// A zero covariance (one image) draws the mean.
	z, err := sampleGaussian(rng, mean, mat.NewSymDense(W, nil), 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range z {
		if math.Abs(v-mean[i%W]) > 1e-3 {
			t.Fatalf("zero covariance drew %v, mean %v", v, mean[i%W])
		}
	}
}

// TestFitHeadColumns: the re-fit touches only the columns asked for, and
// on overlapping classes (a finite optimum) it ends at a stationary point
// of the cross-entropy over those columns (gradient ≈ 0) with a lower loss.
func TestFitHeadColumns(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	W, C := 3, 5
	cols := []int{0, 2, 3}
	var x []float64
	var y []int
	for j := range cols {
		for s := 0; s < 200; s++ {
			for i := 0; i < W; i++ {
				v := rng.NormFloat64()
				if i == j {
					v += 1
				}
				x = append(x, v)
			}
			y = append(y, j)
		}
	}
	hw := pTruncNormal(rng, W*C, 0.5)
	hb := []float32{0.1, 0.2, 0.3, 0.4, 0.5}
	w0, b0 := append([]float32(nil), hw...), append([]float32(nil), hb...)
	before, after, err := fitHeadColumns(hw, hb, C, cols, x, y, AlignOptions{AlignSteps: 3000, AlignLR: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	if !(after < before) {
		t.Fatalf("loss %v → %v", before, after)
	}
	for _, c := range []int{1, 4} {
		if hb[c] != b0[c] {
			t.Fatalf("bias of column %d changed", c)
		}
		for i := 0; i < W; i++ {
			if hw[i*C+c] != w0[i*C+c] {
				t.Fatalf("weight [%d,%d] changed", i, c)
			}
		}
	}
	w := mat.NewDense(W, len(cols), nil)
	b := make([]float64, len(cols))
	for j, c := range cols {
		b[j] = float64(hb[c])
		for i := 0; i < W; i++ {
			w.Set(i, j, float64(hw[i*C+c]))
		}
	}
	loss, gw, gb := softmaxLoss(mat.NewDense(len(y), W, x), y, w, b)
	if math.Abs(loss-after) > 1e-6 {
		t.Fatalf("reported loss %v, loss of the written head %v", after, loss)
	}
	g := mat.Norm(gw, 2)
	for _, v := range gb {
		g = math.Max(g, math.Abs(v))
	}
	if g > 1e-3 {
		t.Fatalf("gradient norm %v after the fit: not at the optimum", g)
	}
}

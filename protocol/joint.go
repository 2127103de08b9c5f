package protocol

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/optimize"
)

// JointConfig sets up the joint (non-incremental) linear upper bound.
type JointConfig struct {
	// Lambda is the L2 penalty on the weights (in standardised feature
	// space) added to the mean cross-entropy; default 1e-4.
	Lambda float64
	// Iterations caps the L-BFGS iterations per fit; default 100.
	Iterations int
}

// JointResult is the joint linear probe's outcome: at every stage b, a
// multinomial logistic regression is fitted from scratch on the training
// rows of all classes seen so far and evaluated like the heads, so its
// metrics line up with MethodResult's (Ā, A_B).
type JointResult struct {
	Method string `json:"method"`
	Metrics
	Lambda     float64 `json:"lambda"`
	Iterations int     `json:"iterations"`
	Seconds    float64 `json:"seconds"`
}

// softmaxReg is a fitted logistic regression on standardised features:
// z = ((x−mu)/sd)·W + b, W [D, C] row-major.
type softmaxReg struct {
	d, c   int
	mu, sd []float64
	w, b   []float64
}

const jointChunk = 2048

// standardise writes (x−mu)/sd of rows [lo, hi) into dst (float64).
func (r *softmaxReg) standardise(dst []float64, x []float32, lo, hi int) {
	d := r.d
	for i := lo; i < hi; i++ {
		src := x[i*d : (i+1)*d]
		row := dst[(i-lo)*d : (i-lo+1)*d]
		for j, v := range src {
			row[j] = (float64(v) - r.mu[j]) / r.sd[j]
		}
	}
}

// fitSoftmax fits the regression on x [n, d] with labels y in [0, c).
func fitSoftmax(ctx context.Context, x []float32, d int, y []int, c int, cfg JointConfig) (*softmaxReg, int, error) {
	n := len(y)
	r := &softmaxReg{d: d, c: c, mu: make([]float64, d), sd: make([]float64, d)}
	for i := 0; i < n; i++ {
		for j, v := range x[i*d : (i+1)*d] {
			r.mu[j] += float64(v)
		}
	}
	for j := range r.mu {
		r.mu[j] /= float64(n)
	}
	for i := 0; i < n; i++ {
		for j, v := range x[i*d : (i+1)*d] {
			e := float64(v) - r.mu[j]
			r.sd[j] += e * e
		}
	}
	for j := range r.sd {
		r.sd[j] = math.Sqrt(r.sd[j] / float64(n))
		if r.sd[j] < 1e-8 {
			r.sd[j] = 1 // constant column: leave as is (it is centred to 0)
		}
	}
	nw := d * c
	xs := make([]float64, jointChunk*d)
	z := make([]float64, jointChunk*c)
	var lastX, lastG []float64
	var lastF float64
	eval := func(theta []float64) (float64, []float64) {
		if lastX != nil && slices.Equal(lastX, theta) {
			return lastF, lastG
		}
		w, b := theta[:nw], theta[nw:]
		g := make([]float64, len(theta))
		gw, gb := g[:nw], g[nw:]
		var f float64
		for lo := 0; lo < n; lo += jointChunk {
			hi := min(lo+jointChunk, n)
			m := hi - lo
			r.standardise(xs, x, lo, hi)
			X := blas64.General{Rows: m, Cols: d, Stride: d, Data: xs[:m*d]}
			Z := blas64.General{Rows: m, Cols: c, Stride: c, Data: z[:m*c]}
			for i := 0; i < m; i++ {
				copy(Z.Data[i*c:(i+1)*c], b)
			}
			blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, X, blas64.General{Rows: d, Cols: c, Stride: c, Data: w}, 1, Z)
			for i := 0; i < m; i++ {
				row := Z.Data[i*c : (i+1)*c]
				mx := slices.Max(row)
				var s float64
				for k := range row {
					row[k] = math.Exp(row[k] - mx)
					s += row[k]
				}
				f -= math.Log(row[y[lo+i]] / s)
				for k := range row {
					row[k] /= s
				}
				row[y[lo+i]] -= 1
				for k := range row {
					gb[k] += row[k]
				}
			}
			blas64.Gemm(blas.Trans, blas.NoTrans, 1, X, Z, 1, blas64.General{Rows: d, Cols: c, Stride: c, Data: gw})
		}
		f /= float64(n)
		for k := range g {
			g[k] /= float64(n)
		}
		for k, v := range w {
			f += cfg.Lambda / 2 * v * v
			gw[k] += cfg.Lambda * v
		}
		lastX, lastF, lastG = slices.Clone(theta), f, g
		return f, g
	}
	prob := optimize.Problem{
		Func: func(t []float64) float64 { f, _ := eval(t); return f },
		Grad: func(grad, t []float64) { _, g := eval(t); copy(grad, g) },
	}
	settings := &optimize.Settings{
		GradientThreshold: 1e-6,
		MajorIterations:   cfg.Iterations,
		Converger:         &optimize.FunctionConverge{Absolute: 1e-9, Iterations: 20},
	}
	theta0 := make([]float64, nw+c)
	stop := context.AfterFunc(ctx, func() {})
	defer stop()
	res, err := optimize.Minimize(prob, theta0, settings, &optimize.LBFGS{})
	if ctx.Err() != nil {
		return nil, 0, ctx.Err()
	}
	if err != nil && res == nil {
		return nil, 0, fmt.Errorf("joint logistic regression: %w", err)
	}
	r.w = slices.Clone(res.X[:nw])
	r.b = slices.Clone(res.X[nw:])
	return r, res.Stats.MajorIterations, nil
}

// predict returns the argmax class of each row of x [n, d].
func (r *softmaxReg) predict(x []float32) []int {
	n := len(x) / r.d
	out := make([]int, n)
	xs := make([]float64, jointChunk*r.d)
	z := make([]float64, jointChunk*r.c)
	for lo := 0; lo < n; lo += jointChunk {
		hi := min(lo+jointChunk, n)
		m := hi - lo
		r.standardise(xs, x, lo, hi)
		Z := blas64.General{Rows: m, Cols: r.c, Stride: r.c, Data: z[:m*r.c]}
		for i := 0; i < m; i++ {
			copy(Z.Data[i*r.c:(i+1)*r.c], r.b)
		}
		blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, blas64.General{Rows: m, Cols: r.d, Stride: r.d, Data: xs[:m*r.d]},
			blas64.General{Rows: r.d, Cols: r.c, Stride: r.c, Data: r.w}, 1, Z)
		for i := 0; i < m; i++ {
			row := Z.Data[i*r.c : (i+1)*r.c]
			best := 0
			for k := range row {
				if row[k] > row[best] {
					best = k
				}
			}
			out[lo+i] = best
		}
	}
	return out
}

// RunJoint computes the joint linear upper bound over the same stages as
// Run: at stage b a multinomial logistic regression (features standardised
// with the training mean and standard deviation, L2 penalty Lambda, L-BFGS)
// is fitted on the training rows of every class seen so far and evaluated on
// their test rows. It is not incremental: each stage refits from scratch on
// all data, which no class-incremental method may do.
func RunJoint(ctx context.Context, cfg Config, jc JointConfig, train, test Data) (*JointResult, error) {
	if jc.Lambda == 0 {
		jc.Lambda = 1e-4
	}
	if jc.Iterations == 0 {
		jc.Iterations = 100
	}
	if jc.Lambda < 0 || jc.Iterations < 0 {
		return nil, fmt.Errorf("joint: lambda %g and iterations %d must be ≥ 0", jc.Lambda, jc.Iterations)
	}
	p, err := prepare(cfg, train, test)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	B := p.split.Stages()
	correct := make([][]int, B)
	total := make([]int, B)
	for i := range correct {
		correct[i] = make([]int, B)
		total[i] = len(p.testRows[i])
	}
	var seenTrain, seenTest []int
	iters := 0
	for t := range B {
		seenTrain = append(seenTrain, p.trainRows[t]...)
		seenTest = append(seenTest, p.testRows[t]...)
		y := make([]int, len(seenTrain))
		for j, i := range seenTrain {
			y[j] = p.trainLabel[i]
		}
		_, hi := p.split.Range(t)
		reg, it, err := fitSoftmax(ctx, gather(train, seenTrain), train.D, y, hi, jc)
		if err != nil {
			return nil, fmt.Errorf("joint: stage %d: %w", t+1, err)
		}
		iters += it
		pred := reg.predict(gather(test, seenTest))
		for j, i := range seenTest {
			if k := p.testLabel[i]; pred[j] == k {
				correct[p.split.Stage(k)][t]++
			}
		}
		if cfg.Log != nil {
			cfg.Log.Info("joint stage done", "stage", fmt.Sprintf("%d/%d", t+1, B), "iterations", it,
				"seconds", fmt.Sprintf("%.1f", time.Since(start).Seconds()))
		}
	}
	return &JointResult{Method: "joint-logreg", Metrics: ComputeMetrics(correct, total), Lambda: jc.Lambda,
		Iterations: iters, Seconds: time.Since(start).Seconds()}, nil
}

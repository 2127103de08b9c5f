package heads

import (
	"context"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/optimize"

	"github.com/cl-dev/cl/internal/safetensors"
)

// JointConfig is the joint head's configuration.
type JointConfig struct {
	// Lambda is the L2 penalty on the weights (in standardised feature
	// space) added to the mean cross-entropy.
	Lambda float64 `opt:"lambda" help:"L2 penalty (λ/2)‖W‖² on the weights, in (0, 1e6]"`
	// Iterations caps the L-BFGS iterations of each fit.
	Iterations int `opt:"iterations" help:"L-BFGS iterations per fit, in [1, 100000]"`
}

// DefaultJointConfig is lambda=1e-4, iterations=100.
func DefaultJointConfig() JointConfig { return JointConfig{Lambda: 1e-4, Iterations: 100} }

// Method implements Config.
func (c *JointConfig) Method() string { return "joint" }

// Validate implements Config.
func (c *JointConfig) Validate() error {
	if err := inRange("joint", "lambda", c.Lambda, math.SmallestNonzeroFloat64, 1e6); err != nil {
		return err
	}
	return inRange("joint", "iterations", float64(c.Iterations), 1, 100000)
}

func init() {
	Register(Spec{
		Name: "joint",
		Summary: "joint upper bound: multinomial logistic regression refitted from scratch on every learned row " +
			"at each stage (keeps all rows; a reference, not class-incremental)",
		Config:  func() Config { c := DefaultJointConfig(); return &c },
		NewHead: func(c Config) (Head, error) { return NewJoint(*c.(*JointConfig)), nil },
		Load:    loadJoint,
	})
}

// Joint is the joint (non-incremental) linear upper bound of the protocol
// (docs/PROTOCOL.md, "Joint upper bound"): it keeps every row it learned
// and, at each EndStage, fits a multinomial logistic regression from scratch
// on all of them — what no class-incremental method may do, so its accuracy
// is a reference: what a linear classifier on these frozen features reaches
// when nothing has to be learned incrementally.
//
// The fit: features standardised with the mean and standard deviation of
// the learned rows (a constant column keeps sd 1), loss = mean cross-entropy
// + (λ/2)‖W‖² (bias not penalised), L-BFGS (gonum/optimize) from zero for at
// most Iterations iterations; deterministic. score(x, c) = z_c =
// ((x−μ)/σ)·W_c + b_c, the logit (higher = more likely).
//
// Merge appends the other head's rows, Unlearn removes exactly the given
// rows (equal bits and label), RemoveClass a class's rows; each is exactly
// the head fitted on the remaining rows in the same order after EndStage
// (or Refresh). The file keeps all rows: float32 [n, D] plus labels.
type Joint struct {
	cfg   JointConfig
	d     int
	x     []float32 // learned rows [n, d]
	y     []int     // their labels
	fit   *softmaxReg
	cols  []int // labels of fit's columns, ascending
	stale bool  // rows changed since the last fit
	iters int   // L-BFGS iterations of the last fit
}

// NewJoint returns an empty joint head.
func NewJoint(cfg JointConfig) *Joint { return &Joint{cfg: cfg} }

// IsUpperBound reports whether h is a reference bound rather than a
// class-incremental method (the joint head); reports set it apart.
func IsUpperBound(h Head) bool { _, ok := h.(*Joint); return ok }

// Method implements Head.
func (h *Joint) Method() string { return "joint" }

// Dim implements Head.
func (h *Joint) Dim() int { return h.d }

// Iterations is the number of L-BFGS iterations of the last fit.
func (h *Joint) Iterations() int { return h.iters }

// Classes implements Head: the labels of the learned rows, ascending.
func (h *Joint) Classes() []int {
	if !h.stale && h.fit != nil {
		return slices.Clone(h.cols)
	}
	return sortedLabels(h.y)
}

// sortedLabels is the distinct values of y, ascending.
func sortedLabels(y []int) []int {
	seen := map[int]bool{}
	var out []int
	for _, l := range y {
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

// checkLearn validates rows and labels as every head's Learn does.
func (h *Joint) checkLearn(x []float32, y []int) error {
	d := h.d
	if d == 0 {
		if len(y) == 0 || len(x)%len(y) != 0 || len(x) == 0 {
			return fmt.Errorf("joint: %d feature values for %d labels", len(x), len(y))
		}
		d = len(x) / len(y)
	}
	if len(x) != len(y)*d {
		return fmt.Errorf("joint: %d feature values for %d labels of dimension %d", len(x), len(y), d)
	}
	for i, l := range y {
		if l < 0 {
			return fmt.Errorf("joint: row %d has the negative label %d", i, l)
		}
	}
	return checkFinite("joint", x, d)
}

// Learn implements Head: the rows are kept; EndStage fits.
func (h *Joint) Learn(x []float32, y []int) error {
	if len(y) == 0 && len(x) == 0 {
		return nil
	}
	if err := h.checkLearn(x, y); err != nil {
		return err
	}
	if h.d == 0 {
		h.d = len(x) / len(y)
	}
	h.x = append(h.x, x...)
	h.y = append(h.y, y...)
	h.stale = true
	return nil
}

// EndStage implements Head: the regression is fitted from scratch on every
// learned row.
func (h *Joint) EndStage() error {
	if len(h.y) == 0 {
		h.fit, h.cols, h.stale = nil, nil, false
		return nil
	}
	cols := sortedLabels(h.y)
	c := len(cols)
	if err := checkMemory(fmt.Sprintf("joint: fitting %d classes × %d features", c, h.d), 8*float64(h.d*c+c)*40); err != nil {
		return err
	}
	colOf := make(map[int]int, c)
	for j, l := range cols {
		colOf[l] = j
	}
	yc := make([]int, len(h.y))
	for i, l := range h.y {
		yc[i] = colOf[l]
	}
	fit, iters, err := fitSoftmax(context.Background(), h.x, h.d, yc, c, h.cfg)
	if err != nil {
		return err
	}
	h.fit, h.cols, h.iters, h.stale = fit, cols, iters, false
	return nil
}

// Scores implements Head: the logits [n, len(Classes())].
func (h *Joint) Scores(x []float32) ([]float64, error) {
	if h.fit == nil || h.stale {
		return nil, fmt.Errorf("joint: the head changed since its last fit; call EndStage (or Refresh) first")
	}
	if _, err := checkRows("joint", x, h.d); err != nil {
		return nil, err
	}
	return h.fit.logits(x), nil
}

// rowKey identifies a row by its label and exact bits.
func rowKey(label int, row []float32) string {
	b := make([]byte, 8+4*len(row))
	for k := 0; k < 8; k++ {
		b[k] = byte(uint64(label) >> (8 * k))
	}
	for j, v := range row {
		u := math.Float32bits(v)
		b[8+4*j], b[9+4*j], b[10+4*j], b[11+4*j] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	return string(b)
}

// Unlearn implements Head: every given row must be a learned row (same
// label, same bits), counted with multiplicity; otherwise nothing changes
// and the first missing row is named.
func (h *Joint) Unlearn(x []float32, y []int) error {
	if len(y) == 0 && len(x) == 0 {
		return nil
	}
	if h.d == 0 || len(x) != len(y)*h.d {
		return fmt.Errorf("joint: unlearn: %d feature values for %d labels of the head's dimension %d", len(x), len(y), h.d)
	}
	where := map[string][]int{}
	for i, l := range h.y {
		k := rowKey(l, h.x[i*h.d:(i+1)*h.d])
		where[k] = append(where[k], i)
	}
	drop := make([]bool, len(h.y))
	for i, l := range y {
		k := rowKey(l, x[i*h.d:(i+1)*h.d])
		idx := where[k]
		if len(idx) == 0 {
			return fmt.Errorf("joint: unlearn: row %d (label %d) is not a row the head learned (or is given more often than learned)", i, l)
		}
		drop[idx[0]], where[k] = true, idx[1:]
	}
	h.keep(func(i int) bool { return !drop[i] })
	return nil
}

// RemoveClass implements Head.
func (h *Joint) RemoveClass(label int) error {
	if !slices.Contains(h.y, label) {
		return fmt.Errorf("joint: no class %d to remove", label)
	}
	h.keep(func(i int) bool { return h.y[i] != label })
	return nil
}

// keep retains the rows i with ok(i), in order.
func (h *Joint) keep(ok func(i int) bool) {
	x, y := h.x[:0], h.y[:0]
	for i := range h.y {
		if ok(i) {
			x = append(x, h.x[i*h.d:(i+1)*h.d]...)
			y = append(y, h.y[i])
		}
	}
	h.x, h.y, h.stale = x, y, true
}

// Merge implements Head: other's rows are appended.
func (h *Joint) Merge(other Head) error {
	o, ok := other.(*Joint)
	if !ok {
		return fmt.Errorf("joint: cannot merge a %s head", other.Method())
	}
	if o.cfg != h.cfg {
		return fmt.Errorf("joint: cannot merge heads with different options (lambda %g, iterations %d vs lambda %g, iterations %d)",
			h.cfg.Lambda, h.cfg.Iterations, o.cfg.Lambda, o.cfg.Iterations)
	}
	if h.d != 0 && o.d != 0 && h.d != o.d {
		return fmt.Errorf("joint: cannot merge dimension %d into %d", o.d, h.d)
	}
	if len(o.y) == 0 {
		return nil
	}
	if h.d == 0 {
		h.d = o.d
	}
	h.x = append(h.x, o.x...)
	h.y = append(h.y, o.y...)
	h.stale = true
	return nil
}

// relabel implements Relabel's interface.
func (h *Joint) relabel(to map[int]int) {
	for i, l := range h.y {
		h.y[i] = to[l]
	}
	h.stale = true
}

// State implements Head: the rows ("x" F32 [n, D], "y" I64 [n], "dim") and,
// when fitted, the fit ("mu", "sd" F64 [D], "w" F64 [D, C], "b" F64 [C],
// "cols" I64 [C], "fit_iterations" I64 [1]).
func (h *Joint) State() (map[string]safetensors.Tensor, map[string]string, error) {
	n := int64(len(h.y))
	y := make([]int64, n)
	for i, l := range h.y {
		y[i] = int64(l)
	}
	x := h.x
	if x == nil {
		x = []float32{}
	}
	t := map[string]safetensors.Tensor{
		"dim": safetensors.FromInt64s([]int64{1}, []int64{int64(h.d)}),
		"x":   safetensors.FromFloat32s([]int64{n, int64(h.d)}, x),
		"y":   safetensors.FromInt64s([]int64{n}, y),
	}
	if h.fit != nil && !h.stale {
		c := int64(len(h.cols))
		cols := make([]int64, c)
		for j, l := range h.cols {
			cols[j] = int64(l)
		}
		d := int64(h.d)
		t["mu"] = safetensors.FromFloat64s([]int64{d}, h.fit.mu)
		t["sd"] = safetensors.FromFloat64s([]int64{d}, h.fit.sd)
		t["w"] = safetensors.FromFloat64s([]int64{d, c}, h.fit.w)
		t["b"] = safetensors.FromFloat64s([]int64{c}, h.fit.b)
		t["cols"] = safetensors.FromInt64s([]int64{c}, cols)
		t["fit_iterations"] = safetensors.FromInt64s([]int64{1}, []int64{int64(h.iters)})
	}
	return t, Params(&h.cfg), nil
}

// loadJoint rebuilds a joint head from State's tensors, validating shapes
// and values (finite rows and fit, labels ≥ 0, sd > 0, the fit's classes
// equal to the rows' classes).
func loadJoint(t map[string]safetensors.Tensor, p map[string]string) (Head, error) {
	cfg := DefaultJointConfig()
	if err := ParseInto(&cfg, sortedPairs(p)); err != nil {
		return nil, err
	}
	h := NewJoint(cfg)
	get := func(name string, dt safetensors.DType, shape ...int64) (safetensors.Tensor, error) {
		v, ok := t[name]
		if !ok {
			return v, fmt.Errorf("joint: missing tensor %q", name)
		}
		if v.DType != dt || !slices.Equal(v.Shape, shape) {
			return v, fmt.Errorf("joint: tensor %q is %s %v, want %s %v", name, v.DType, v.Shape, dt, shape)
		}
		return v, nil
	}
	dimT, err := get("dim", safetensors.I64, 1)
	if err != nil {
		return nil, err
	}
	d := dimT.Int64s()[0]
	if d < 0 || d > maxDim {
		return nil, fmt.Errorf("joint: dimension %d out of range", d)
	}
	yt, ok := t["y"]
	if !ok || len(yt.Shape) != 1 {
		return nil, fmt.Errorf("joint: missing or malformed tensor \"y\"")
	}
	n := yt.Shape[0]
	if _, err := get("y", safetensors.I64, n); err != nil {
		return nil, err
	}
	xt, err := get("x", safetensors.F32, n, d)
	if err != nil {
		return nil, err
	}
	if n > 0 && d == 0 {
		return nil, fmt.Errorf("joint: %d rows of dimension 0", n)
	}
	h.d = int(d)
	h.x = xt.Float32s()
	if err := checkFinite("joint", h.x, max(h.d, 1)); err != nil {
		return nil, err
	}
	for i, v := range yt.Int64s() {
		if v < 0 || v > math.MaxInt32 {
			return nil, fmt.Errorf("joint: row %d has label %d", i, v)
		}
		h.y = append(h.y, int(v))
	}
	if _, fitted := t["w"]; !fitted {
		h.stale = len(h.y) > 0
		return h, nil
	}
	cols := sortedLabels(h.y)
	c := int64(len(cols))
	ct, err := get("cols", safetensors.I64, c)
	if err != nil {
		return nil, err
	}
	for j, v := range ct.Int64s() {
		if int(v) != cols[j] {
			return nil, fmt.Errorf("joint: the fit's classes %v are not the rows' classes %v", ct.Int64s(), cols)
		}
	}
	reg := &softmaxReg{d: h.d, c: int(c)}
	for _, f := range []struct {
		name  string
		dst   *[]float64
		shape []int64
	}{{"mu", &reg.mu, []int64{d}}, {"sd", &reg.sd, []int64{d}}, {"w", &reg.w, []int64{d, c}}, {"b", &reg.b, []int64{c}}} {
		v, err := get(f.name, safetensors.F64, f.shape...)
		if err != nil {
			return nil, err
		}
		*f.dst = v.Float64s()
		for i, e := range *f.dst {
			if math.IsNaN(e) || math.IsInf(e, 0) || (f.name == "sd" && e <= 0) {
				return nil, fmt.Errorf("joint: tensor %q value %d is %g", f.name, i, e)
			}
		}
	}
	it, err := get("fit_iterations", safetensors.I64, 1)
	if err != nil {
		return nil, err
	}
	h.fit, h.cols, h.iters = reg, cols, int(it.Int64s()[0])
	return h, nil
}

// softmaxReg is a fitted logistic regression on standardised features:
// z = ((x−mu)/sd)·W + b, W [d, c] row-major.
type softmaxReg struct {
	d, c   int
	mu, sd []float64
	w, b   []float64
}

// jointChunk is the number of rows standardised and multiplied at a time.
const jointChunk = 2048

// standardise writes (x−mu)/sd of rows [lo, hi) into dst (float64).
func standardise(dst []float64, x []float32, d, lo, hi int, mu, sd []float64) {
	for i := lo; i < hi; i++ {
		src := x[i*d : (i+1)*d]
		row := dst[(i-lo)*d : (i-lo+1)*d]
		for j, v := range src {
			row[j] = (float64(v) - mu[j]) / sd[j]
		}
	}
}

// standardisation returns the column means and standard deviations of x
// [n, d]; a column with sd < 1e-8 gets sd 1 (it is only centred).
func standardisation(x []float32, d int) (mu, sd []float64) {
	n := len(x) / d
	mu, sd = make([]float64, d), make([]float64, d)
	for i := 0; i < n; i++ {
		for j, v := range x[i*d : (i+1)*d] {
			mu[j] += float64(v)
		}
	}
	for j := range mu {
		mu[j] /= float64(n)
	}
	for i := 0; i < n; i++ {
		for j, v := range x[i*d : (i+1)*d] {
			e := float64(v) - mu[j]
			sd[j] += e * e
		}
	}
	for j := range sd {
		sd[j] = math.Sqrt(sd[j] / float64(n))
		if sd[j] < 1e-8 {
			sd[j] = 1
		}
	}
	return mu, sd
}

// softmaxLoss returns the objective of the fit and its gradient at theta =
// [W (d×c, row-major); b (c)]: mean over the n rows of −log softmax(z)_y
// plus (λ/2)‖W‖², z = ((x−mu)/sd)·W + b.
func softmaxLoss(x []float32, d int, y []int, c int, mu, sd []float64, lambda float64) func(theta []float64) (float64, []float64) {
	n := len(y)
	nw := d * c
	xs := make([]float64, jointChunk*d)
	z := make([]float64, jointChunk*c)
	return func(theta []float64) (float64, []float64) {
		w, b := theta[:nw], theta[nw:]
		g := make([]float64, len(theta))
		gw, gb := g[:nw], g[nw:]
		var f float64
		for lo := 0; lo < n; lo += jointChunk {
			hi := min(lo+jointChunk, n)
			m := hi - lo
			standardise(xs, x, d, lo, hi, mu, sd)
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
			f += lambda / 2 * v * v
			gw[k] += lambda * v
		}
		return f, g
	}
}

// fitSoftmax fits the regression on x [n, d] with labels y in [0, c) and
// returns it with the number of L-BFGS iterations run.
func fitSoftmax(ctx context.Context, x []float32, d int, y []int, c int, cfg JointConfig) (*softmaxReg, int, error) {
	r := &softmaxReg{d: d, c: c}
	r.mu, r.sd = standardisation(x, d)
	loss := softmaxLoss(x, d, y, c, r.mu, r.sd, cfg.Lambda)
	var lastX, lastG []float64
	var lastF float64
	eval := func(theta []float64) (float64, []float64) {
		if lastX != nil && slices.Equal(lastX, theta) {
			return lastF, lastG
		}
		f, g := loss(theta)
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
	nw := d * c
	res, err := optimize.Minimize(prob, make([]float64, nw+c), settings, &optimize.LBFGS{})
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

// logits returns z = ((x−mu)/sd)·W + b for the rows of x [n, d], [n, c].
func (r *softmaxReg) logits(x []float32) []float64 {
	n := len(x) / r.d
	out := make([]float64, n*r.c)
	xs := make([]float64, jointChunk*r.d)
	for lo := 0; lo < n; lo += jointChunk {
		hi := min(lo+jointChunk, n)
		m := hi - lo
		standardise(xs, x, r.d, lo, hi, r.mu, r.sd)
		Z := blas64.General{Rows: m, Cols: r.c, Stride: r.c, Data: out[lo*r.c : hi*r.c]}
		for i := 0; i < m; i++ {
			copy(Z.Data[i*r.c:(i+1)*r.c], r.b)
		}
		blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, blas64.General{Rows: m, Cols: r.d, Stride: r.d, Data: xs[:m*r.d]},
			blas64.General{Rows: r.d, Cols: r.c, Stride: r.c, Data: r.w}, 1, Z)
	}
	return out
}

package heads

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/cl-dev/cl/internal/linalg"
	"github.com/cl-dev/cl/internal/safetensors"
)

// params returns the configuration as strings (Params of the config).
func (h *RanPAC) params() map[string]string { return Params(&h.cfg) }

// State returns the head's tensors and parameters:
//
//	G        F64 [P, P]  Σ hᵀh, symmetric (kept in float64: further Learn,
//	                     Unlearn and Merge stay exact; 800 MB at M = 10000)
//	Q        F64 [P, C]  Σ hᵀ·onehot, columns in classes order
//	classes  I64 [C]     labels, ascending
//	counts   I64 [C]     samples per class
//	Wo       F64 [P, C]  the solved weights (absent when stale)
//	losses   F64 [17]    validation MSE per RidgeGrid λ at the last selection
//	stage_x  F32 [n, D]  and stage_y I64 [n]: rows buffered for the current
//	                     stage (absent when empty)
//	class_gram F64 [C, P, P] with class_gram=true
//
// and parameters: the options, plus dim, lambda_selected, stages, solver and
// projection_fnv64 (a hash of W that the loader checks, so that a build whose
// random generator differs refuses the file instead of scoring garbage).
// W itself is not stored: it is regenerated from seed, dim and M.
func (h *RanPAC) State() (map[string]safetensors.Tensor, map[string]string, error) {
	params := h.params()
	params["dim"] = strconv.Itoa(h.d)
	params["lambda_selected"] = strconv.FormatFloat(h.lambda, 'g', -1, 64)
	params["stages"] = strconv.Itoa(h.stages)
	params["solver"] = h.solver
	if h.proj != nil {
		params["projection_fnv64"] = projectionHash64(h.proj)
	}
	t := map[string]safetensors.Tensor{}
	if h.d == 0 {
		return t, params, nil
	}
	p := h.Width()
	cls := h.Classes()
	c := len(cls)
	// G's lower triangle is scratch: mirror the upper one into it in place
	// (no P×P clone; FromFloat64s makes the one byte copy).
	linalg.Symmetrize(h.g, p)
	t["G"] = safetensors.FromFloat64s([]int64{int64(p), int64(p)}, h.g)
	q := make([]float64, p*c)
	cl := make([]int64, c)
	cn := make([]int64, c)
	for j, l := range cls {
		cl[j], cn[j] = int64(l), h.counts[l]
		for i, v := range h.q[l] {
			q[i*c+j] = v
		}
	}
	t["Q"] = safetensors.FromFloat64s([]int64{int64(p), int64(c)}, q)
	t["classes"] = safetensors.FromInt64s([]int64{int64(c)}, cl)
	t["counts"] = safetensors.FromInt64s([]int64{int64(c)}, cn)
	if h.wo != nil {
		t["Wo"] = safetensors.FromFloat64s([]int64{int64(p), int64(c)}, h.wo)
	}
	if h.losses != nil {
		t["losses"] = safetensors.FromFloat64s([]int64{int64(len(h.losses))}, h.losses)
	}
	if len(h.stageY) > 0 {
		sy := make([]int64, len(h.stageY))
		for i, v := range h.stageY {
			sy[i] = int64(v)
		}
		t["stage_x"] = safetensors.FromFloat32s([]int64{int64(len(h.stageY)), int64(h.d)}, h.stageX)
		t["stage_y"] = safetensors.FromInt64s([]int64{int64(len(sy))}, sy)
	}
	if h.cfg.ClassGram {
		all := make([]float64, 0, c*p*p)
		for _, l := range cls {
			linalg.Symmetrize(h.gc[l], p) // lower triangle is scratch, as G's
			all = append(all, h.gc[l]...)
		}
		t["class_gram"] = safetensors.FromFloat64s([]int64{int64(c), int64(p), int64(p)}, all)
	}
	return t, params, nil
}

// loadRanPAC rebuilds a RanPAC head from State's output. Before it
// allocates anything from the sizes the file declares it checks every tensor
// (dtype, shape, byte length), the memory the head implies (the projection
// D×M, G) and the projection's hash (streamed, no allocation); every loaded
// statistic must be finite. Errors name the tensor or parameter.
func loadRanPAC(t map[string]safetensors.Tensor, params map[string]string) (Head, error) {
	h, err := newRanPACFromParams(params)
	if err != nil {
		return nil, err
	}
	d, err := strconv.Atoi(params["dim"])
	if err != nil || d < 0 || d > 1<<20 {
		return nil, fmt.Errorf("ranpac: parameter dim=%q: want a dimension in [0, 2^20]", params["dim"])
	}
	if h.lambda, err = strconv.ParseFloat(params["lambda_selected"], 64); err != nil || !(h.lambda >= 0) || math.IsInf(h.lambda, 0) {
		return nil, fmt.Errorf("ranpac: parameter lambda_selected=%q: want a finite λ ≥ 0", params["lambda_selected"])
	}
	if h.stages, err = strconv.Atoi(params["stages"]); err != nil || h.stages < 0 {
		return nil, fmt.Errorf("ranpac: parameter stages=%q: want a count ≥ 0", params["stages"])
	}
	h.solver = params["solver"]
	if d == 0 {
		return h, nil
	}
	p := d
	if h.cfg.M > 0 {
		p = h.cfg.M
	}
	get := func(name string, dt safetensors.DType, shape ...int64) (safetensors.Tensor, error) {
		x, ok := t[name]
		if !ok {
			return x, fmt.Errorf("ranpac: missing tensor %q", name)
		}
		if x.DType != dt || !slices.Equal(x.Shape, shape) || int64(len(x.Data)) != x.NumElements()*int64(dt.Size()) {
			return x, fmt.Errorf("ranpac: tensor %q is %s %v (%d bytes), want %s %v", name, x.DType, x.Shape, len(x.Data), dt, shape)
		}
		return x, nil
	}
	// Sizes and dtypes of everything first: each tensor's bytes are in the
	// file, so a small file cannot declare a large G.
	cl, ok := t["classes"]
	if !ok || len(cl.Shape) != 1 {
		return nil, errors.New("ranpac: missing or malformed tensor \"classes\"")
	}
	c := cl.Shape[0]
	if cl, err = get("classes", safetensors.I64, c); err != nil {
		return nil, err
	}
	g, err := get("G", safetensors.F64, int64(p), int64(p))
	if err != nil {
		return nil, err
	}
	q, err := get("Q", safetensors.F64, int64(p), c)
	if err != nil {
		return nil, err
	}
	cn, err := get("counts", safetensors.I64, c)
	if err != nil {
		return nil, err
	}
	var wo, losses, sx, sy, cg safetensors.Tensor
	_, hasWo := t["Wo"]
	if hasWo {
		if wo, err = get("Wo", safetensors.F64, int64(p), c); err != nil {
			return nil, err
		}
	}
	_, hasLosses := t["losses"]
	if hasLosses {
		if losses, err = get("losses", safetensors.F64, int64(len(RidgeGrid))); err != nil {
			return nil, err
		}
	}
	_, hasStage := t["stage_y"]
	if hasStage {
		if sy = t["stage_y"]; len(sy.Shape) != 1 {
			return nil, errors.New("ranpac: malformed tensor \"stage_y\"")
		}
		n := sy.Shape[0]
		if sy, err = get("stage_y", safetensors.I64, n); err != nil {
			return nil, err
		}
		if sx, err = get("stage_x", safetensors.F32, n, int64(d)); err != nil {
			return nil, err
		}
	}
	if h.cfg.ClassGram {
		if cg, err = get("class_gram", safetensors.F64, c, int64(p), int64(p)); err != nil {
			return nil, err
		}
	}
	// Then the memory the head implies beyond the file: the float64
	// projection D×M and the room to fit (G again).
	if err := checkMemory(fmt.Sprintf("this RanPAC head (D=%d, M=%d: projection %s, Gram matrix %s)",
		d, h.cfg.M, byteSize(8*float64(d)*float64(h.cfg.M)), byteSize(gramBytes(p))),
		8*float64(d)*float64(h.cfg.M)+ranpacPeakBytes(p)); err != nil {
		return nil, fmt.Errorf("ranpac: %v", err)
	}
	if h.cfg.M > 0 {
		if got, want := projectionHashOf(h.cfg.Seed, d, h.cfg.M), params["projection_fnv64"]; got != want {
			return nil, fmt.Errorf("ranpac: the regenerated projection (hash %s) differs from the one this head was built with (%s); "+
				"the head was written by a build with another random generator — refit it with this build", got, want)
		}
	}
	// Values: every statistic finite.
	h.g = g.Float64s()
	if err := finiteTensor("G", h.g, p); err != nil {
		return nil, err
	}
	qs := q.Float64s()
	if err := finiteTensor("Q", qs, int(c)); err != nil {
		return nil, err
	}
	labels, counts := cl.Int64s(), cn.Int64s()
	for j, l := range labels {
		if l < 0 || counts[j] <= 0 || (j > 0 && l <= labels[j-1]) {
			return nil, fmt.Errorf("ranpac: classes/counts malformed at index %d", j)
		}
		col := make([]float64, p)
		for i := range col {
			col[i] = qs[i*int(c)+j]
		}
		h.q[int(l)] = col
		h.counts[int(l)] = counts[j]
	}
	if hasWo {
		h.wo = wo.Float64s()
		if err := finiteTensor("Wo", h.wo, int(c)); err != nil {
			return nil, err
		}
		h.woCls = h.Classes()
		h.woNorms = columnNorms(h.wo, p, int(c))
	}
	if hasLosses {
		h.losses = losses.Float64s()
		for i, v := range h.losses {
			if math.IsNaN(v) || math.IsInf(v, -1) || v < 0 {
				return nil, fmt.Errorf("ranpac: tensor \"losses\" [%d] is %v; want a loss ≥ 0 (or +Inf for a singular system)", i, v)
			}
		}
	}
	if hasStage {
		h.stageX = sx.Float32s()
		if err := ranpacFinite("load", h.stageX, d); err != nil {
			return nil, fmt.Errorf("ranpac: tensor \"stage_x\": %v", err)
		}
		for _, v := range sy.Int64s() {
			if v < 0 || h.counts[int(v)] == 0 {
				return nil, fmt.Errorf("ranpac: stage_y has label %d that is not a class of the head", v)
			}
			h.stageY = append(h.stageY, int(v))
		}
	}
	if h.cfg.ClassGram {
		v := cg.Float64s()
		if err := finiteTensor("class_gram", v, p); err != nil {
			return nil, err
		}
		for j, l := range labels {
			h.gc[int(l)] = v[j*p*p : (j+1)*p*p]
		}
	}
	h.setProjection(d)
	return h, nil
}

// finiteTensor returns an error naming the tensor and the first NaN or ±Inf
// entry of v (row-major with cols columns).
func finiteTensor(name string, v []float64, cols int) error {
	for i, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("ranpac: tensor %q holds %v at [%d, %d]: the head file is corrupt; refit it from its features", name, x, i/cols, i%cols)
		}
	}
	return nil
}

// columnNorms returns ‖W[:,j]‖ for the p×c row-major w.
func columnNorms(w []float64, p, c int) []float64 {
	out := make([]float64, c)
	for j := range out {
		var s float64
		for i := 0; i < p; i++ {
			s += w[i*c+j] * w[i*c+j]
		}
		out[j] = math.Sqrt(s)
	}
	return out
}

// newRanPACFromParams builds an empty RanPAC from the configuration keys a
// head file's parameters carry (the others are ignored here).
func newRanPACFromParams(params map[string]string) (*RanPAC, error) {
	cfg := DefaultRanPACConfig()
	var pairs [][2]string
	for _, o := range Options(&cfg) {
		if v, ok := params[o.Key]; ok {
			pairs = append(pairs, [2]string{o.Key, v})
		}
	}
	if err := ParseInto(&cfg, pairs); err != nil {
		return nil, err
	}
	return NewRanPAC(cfg)
}

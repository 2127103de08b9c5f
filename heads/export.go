package heads

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/cl-dev/cl/internal/safetensors"
)

// InferenceOnlyKey is the head-file metadata key that marks a head exported
// for inference only (cl export); its value is InferenceOnlyValue.
const (
	InferenceOnlyKey   = "inference_only"
	InferenceOnlyValue = "cl export"
)

// ErrInferenceOnly is what every learning method of an exported head
// returns (wrapped with the method and the operation).
var ErrInferenceOnly = errors.New("inference-only head exported by cl export: learn with the full head file")

// readOnly is a head that scores but refuses to learn, unlearn, merge,
// remove classes or end stages. Scores (and TopK, through readOnlyRanker)
// run the inner head's own code, so they are bit for bit those of the full
// head the export came from.
type readOnly struct {
	Head
	// state returns the tensors and parameters written to the file; for
	// RanPAC they are not the inner head's State (that needs G and Q).
	state func() (map[string]safetensors.Tensor, map[string]string, error)
}

// readOnlyRanker is a readOnly head whose inner head ranks with TopK.
type readOnlyRanker struct{ *readOnly }

func (r readOnlyRanker) TopK(x []float32, k int, dst []int) error {
	return r.Head.(Ranker).TopK(x, k, dst)
}

func (r *readOnly) refuse(op string) error {
	return fmt.Errorf("%s: %s: %w", r.Method(), op, ErrInferenceOnly)
}

func (r *readOnly) Learn([]float32, []int) error   { return r.refuse("Learn") }
func (r *readOnly) Unlearn([]float32, []int) error { return r.refuse("Unlearn") }
func (r *readOnly) RemoveClass(int) error          { return r.refuse("RemoveClass (forget)") }
func (r *readOnly) Merge(Head) error               { return r.refuse("Merge") }
func (r *readOnly) EndStage() error                { return r.refuse("EndStage") }
func (r *readOnly) State() (map[string]safetensors.Tensor, map[string]string, error) {
	return r.state()
}

func (r *readOnly) inferenceOnly() {}

func (r readOnlyRanker) inferenceOnly() {}

// InferenceOnly reports whether h is an exported, inference-only head.
func InferenceOnly(h Head) bool {
	_, ok := h.(interface{ inferenceOnly() })
	return ok
}

func wrapReadOnly(inner Head, state func() (map[string]safetensors.Tensor, map[string]string, error)) Head {
	r := &readOnly{Head: inner, state: state}
	if _, ok := inner.(Ranker); ok {
		return readOnlyRanker{r}
	}
	return r
}

// Export returns the inference-only form of h: it scores bit for bit as h
// and refuses to learn (ErrInferenceOnly). Save writes it marked
// inference-only in the file's metadata, with only what prediction needs:
//
//   - ranpac: W_o [P, C] (float64), the class labels and counts, λ, the
//     scoring, the projection's seed and FNV-64 hash (the projection is
//     regenerated at load); not the Gram matrix G [P, P], Q [P, C], the
//     λ-search losses, buffered stage rows or per-class Gram matrices.
//     h must be solved (an EndStage since its last change).
//   - lda: the solved w [C, D] and b [C] ("lda_w", "lda_b") and the class
//     sums and counts; not the D × D scatter matrix. h must be solved.
//   - every other method: its state as is. SimpleCIL, APER and NCM keep
//     C × D prototype sums and counts (already the size of their
//     classifier); FeCAM keeps its per-class statistics (its solved
//     precisions are as large) and joint its rows, from which they solve at
//     load — exporting them only makes the file read-only.
//
// h itself is unchanged; the result shares no mutable state with it except
// read-only slices.
func Export(h Head) (Head, error) {
	if InferenceOnly(h) {
		return h, nil
	}
	if len(h.Classes()) == 0 {
		return nil, fmt.Errorf("export: the %s head has no classes: fit it first", h.Method())
	}
	if r, ok := h.(*RanPAC); ok {
		return exportRanPAC(r)
	}
	if l, ok := h.(*LDA); ok {
		return exportLDA(l)
	}
	// Clone through the file encoding so the export shares nothing.
	f, err := encode(h, Info{Classes: placeholderNames(h)})
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	var buf bytes.Buffer
	if _, err := f.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	c, _, err := decode(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return wrapReadOnly(c, c.State), nil
}

func placeholderNames(h Head) []string {
	cls := h.Classes()
	n := cls[len(cls)-1] + 1
	names := make([]string, n)
	for i := range names {
		names[i] = "c" + strconv.Itoa(i)
	}
	return names
}

// exportRanPAC builds a RanPAC that holds only the projection and W_o.
func exportRanPAC(h *RanPAC) (Head, error) {
	if h.lambda == 0 || h.wo == nil {
		return nil, errors.New("export: the ranpac head is not solved (no W_o since its last change): end its stage (cl fit does) or refresh it (cl merge, cl forget do) first")
	}
	if len(h.stageY) > 0 {
		return nil, fmt.Errorf("export: the ranpac head holds %d learned rows of an unfinished stage: end the stage first", len(h.stageY))
	}
	e := &RanPAC{cfg: h.cfg, d: h.d, proj: h.proj, q: map[int][]float64{}, counts: map[int]int64{}, gc: map[int][]float64{},
		stages: h.stages, lambda: h.lambda, solver: h.solver,
		wo: slices.Clone(h.wo), woCls: slices.Clone(h.woCls), woNorms: slices.Clone(h.woNorms)}
	for l, n := range h.counts {
		if n > 0 {
			e.counts[l] = n
		}
	}
	if !slices.Equal(e.Classes(), e.woCls) {
		return nil, errors.New("export: the ranpac head's W_o is stale (its classes changed since the last solve): refresh it first")
	}
	return wrapReadOnly(e, e.inferenceState), nil
}

// inferenceState is the exported file's content of a solved RanPAC: params
// as State's (dim, lambda_selected, stages, solver, projection_fnv64 and
// the options), tensors "Wo" F64 [P, C], "classes" and "counts" I64 [C].
func (h *RanPAC) inferenceState() (map[string]safetensors.Tensor, map[string]string, error) {
	params := h.params()
	params["dim"] = strconv.Itoa(h.d)
	params["lambda_selected"] = strconv.FormatFloat(h.lambda, 'g', -1, 64)
	params["stages"] = strconv.Itoa(h.stages)
	params["solver"] = h.solver
	if h.proj != nil {
		params["projection_fnv64"] = projectionHash64(h.proj)
	}
	p, c := h.Width(), len(h.woCls)
	cl := make([]int64, c)
	cn := make([]int64, c)
	for j, l := range h.woCls {
		cl[j], cn[j] = int64(l), h.counts[l]
	}
	return map[string]safetensors.Tensor{
		"Wo":      safetensors.FromFloat64s([]int64{int64(p), int64(c)}, h.wo),
		"classes": safetensors.FromInt64s([]int64{int64(c)}, cl),
		"counts":  safetensors.FromInt64s([]int64{int64(c)}, cn),
	}, params, nil
}

// loadInference is the loader of files marked inference-only: RanPAC's
// own (W_o and the regenerated projection), the method's usual loader for
// the others; the head is wrapped read-only.
func loadInference(spec Spec) Loader {
	return func(t map[string]safetensors.Tensor, params map[string]string) (Head, error) {
		switch spec.Name {
		case "ranpac":
			return loadRanPACInference(t, params)
		case "lda":
			return loadLDAInference(t, params)
		}
		h, err := spec.Load(t, params)
		if err != nil {
			return nil, err
		}
		return wrapReadOnly(h, h.State), nil
	}
}

func loadRanPACInference(t map[string]safetensors.Tensor, params map[string]string) (Head, error) {
	h, err := newRanPACFromParams(params)
	if err != nil {
		return nil, err
	}
	d, err := strconv.Atoi(params["dim"])
	if err != nil || d <= 0 || d > 1<<20 {
		return nil, fmt.Errorf("ranpac: parameter dim=%q: want a dimension in [1, 2^20]", params["dim"])
	}
	if h.lambda, err = strconv.ParseFloat(params["lambda_selected"], 64); err != nil || !(h.lambda > 0) || math.IsInf(h.lambda, 0) {
		return nil, fmt.Errorf("ranpac: parameter lambda_selected=%q: want a finite λ > 0 (an exported head is solved)", params["lambda_selected"])
	}
	if h.stages, err = strconv.Atoi(params["stages"]); err != nil || h.stages < 0 {
		return nil, fmt.Errorf("ranpac: parameter stages=%q: want a count ≥ 0", params["stages"])
	}
	h.solver = params["solver"]
	p := d
	if h.cfg.M > 0 {
		p = h.cfg.M
	}
	cl, ok := t["classes"]
	if !ok || len(cl.Shape) != 1 || cl.DType != safetensors.I64 || int64(len(cl.Data)) != cl.NumElements()*8 {
		return nil, errors.New("ranpac: missing or malformed tensor \"classes\" (want I64 [C])")
	}
	c := cl.Shape[0]
	cn, ok := t["counts"]
	if !ok || cn.DType != safetensors.I64 || !slices.Equal(cn.Shape, []int64{c}) || int64(len(cn.Data)) != c*8 {
		return nil, fmt.Errorf("ranpac: missing or malformed tensor \"counts\" (want I64 [%d])", c)
	}
	wo, ok := t["Wo"]
	if !ok || wo.DType != safetensors.F64 || !slices.Equal(wo.Shape, []int64{int64(p), c}) || int64(len(wo.Data)) != int64(p)*c*8 {
		return nil, fmt.Errorf("ranpac: missing or malformed tensor \"Wo\" (want F64 [%d, %d])", p, c)
	}
	if err := checkMemory(fmt.Sprintf("this exported RanPAC head (D=%d, M=%d: projection %s)", d, h.cfg.M,
		byteSize(8*float64(d)*float64(h.cfg.M))), 8*float64(d)*float64(h.cfg.M)+8*float64(p)*float64(c)); err != nil {
		return nil, fmt.Errorf("ranpac: %v", err)
	}
	if h.cfg.M > 0 {
		if got, want := projectionHashOf(h.cfg.Seed, d, h.cfg.M), params["projection_fnv64"]; got != want {
			return nil, fmt.Errorf("ranpac: the regenerated projection (hash %s) differs from the one this head was built with (%s); "+
				"the head was written by a build with another random generator — export it again from the full head with this build", got, want)
		}
	}
	labels, counts := cl.Int64s(), cn.Int64s()
	for j, l := range labels {
		if l < 0 || counts[j] <= 0 || (j > 0 && l <= labels[j-1]) {
			return nil, fmt.Errorf("ranpac: classes/counts malformed at index %d", j)
		}
		h.counts[int(l)] = counts[j]
	}
	h.wo = wo.Float64s()
	if err := finiteTensor("Wo", h.wo, int(c)); err != nil {
		return nil, err
	}
	h.woCls = h.Classes()
	h.woNorms = columnNorms(h.wo, p, int(c))
	h.setProjection(d)
	return wrapReadOnly(h, h.inferenceState), nil
}

// exportLDA builds an LDA that holds the class sums and the solved w, b but
// no scatter matrix.
func exportLDA(h *LDA) (Head, error) {
	if err := h.checkSolved(); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	cfg := DefaultLDAConfig()
	if err := ParseInto(&cfg, sortedPairs(h.params)); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	e, err := NewLDA(cfg)
	if err != nil {
		return nil, err
	}
	e.st.shared = false
	e.st.d = h.st.d
	for l, cs := range h.st.cls {
		e.st.cls[l] = &classStat{n: cs.n, sum: slices.Clone(cs.sum)}
	}
	e.labels, e.w, e.b = slices.Clone(h.labels), slices.Clone(h.w), slices.Clone(h.b)
	e.solved, e.version = true, e.st.version
	return wrapReadOnly(e, e.inferenceState), nil
}

// inferenceState is the exported file's content of a solved LDA: the class
// statistics without the scatter ("labels", "counts" I64 [C], "sums" F64
// [C, D], "dim") and "lda_w" F64 [C, D], "lda_b" F64 [C].
func (h *LDA) inferenceState() (map[string]safetensors.Tensor, map[string]string, error) {
	t := h.st.tensors()
	c, d := int64(len(h.labels)), int64(h.st.d)
	t["lda_w"] = safetensors.FromFloat64s([]int64{c, d}, h.w)
	t["lda_b"] = safetensors.FromFloat64s([]int64{c}, h.b)
	return t, copyParams(h.params), nil
}

func loadLDAInference(t map[string]safetensors.Tensor, params map[string]string) (Head, error) {
	cfg := DefaultLDAConfig()
	if err := ParseInto(&cfg, sortedPairs(params)); err != nil {
		return nil, err
	}
	h, err := NewLDA(cfg)
	if err != nil {
		return nil, err
	}
	h.st.shared = false
	wt, okw := t["lda_w"]
	bt, okb := t["lda_b"]
	if !okw || !okb {
		return nil, errors.New("lda: an inference-only file needs the tensors \"lda_w\" and \"lda_b\"; export it again from the full head")
	}
	if err := h.st.loadTensors(t); err != nil {
		return nil, fmt.Errorf("lda: %w", err)
	}
	h.labels = h.st.labels()
	c, d := int64(len(h.labels)), int64(h.st.d)
	if c == 0 {
		return nil, errors.New("lda: an inference-only file with no classes")
	}
	if wt.DType != safetensors.F64 || !slices.Equal(wt.Shape, []int64{c, d}) || int64(len(wt.Data)) != c*d*8 {
		return nil, fmt.Errorf("lda: tensor \"lda_w\" is %s %v, want F64 [%d, %d]", wt.DType, wt.Shape, c, d)
	}
	if bt.DType != safetensors.F64 || !slices.Equal(bt.Shape, []int64{c}) || int64(len(bt.Data)) != c*8 {
		return nil, fmt.Errorf("lda: tensor \"lda_b\" is %s %v, want F64 [%d]", bt.DType, bt.Shape, c)
	}
	h.w, h.b = wt.Float64s(), bt.Float64s()
	for i, v := range append(slices.Clone(h.w), h.b...) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("lda: the solved scores hold %v at %d: the file is corrupt; export it again from the full head", v, i)
		}
	}
	h.solved, h.version = true, h.st.version
	return wrapReadOnly(h, h.inferenceState), nil
}

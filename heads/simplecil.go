package heads

import (
	"github.com/cl-dev/cl/internal/safetensors"
)

func init() {
	Register(Spec{
		Name:    "simplecil",
		Summary: "SimpleCIL: class-mean prototypes of raw features, cosine similarity (Zhou et al. 2023)",
		Config:  func() Config { return &noConfig{"simplecil"} },
		NewHead: func(Config) (Head, error) { return newProtoHead("simplecil", true), nil },
		Load: func(t map[string]safetensors.Tensor, p map[string]string) (Head, error) {
			return loadProtoHead("simplecil", true, t, p)
		},
	})
}

// NewSimpleCIL returns an empty SimpleCIL head (docs/METHODS.md §2.1): prototype
// p_c = mean of the raw feature rows of class c; score(x, c) =
// ⟨x/max(‖x‖,1e-12), p_c/max(‖p_c‖,1e-12)⟩ in [−1, 1].
func NewSimpleCIL() Head {
	return newProtoHead("simplecil", true)
}

// protoHead is a class-mean head: SimpleCIL and APER (cosine) or NCM
// (negative squared Euclidean distance). Prototypes are rebuilt after every
// change, so Scores never mutates and is safe for concurrent use.
type protoHead struct {
	statHead
	cosine bool
	// labels are the scored classes; p [C, D] the prototype rows
	// (unit-norm for cosine); bias [C] (NCM: −‖μ_c‖²).
	labels []int
	p      []float64
	bias   []float64
	// fast caches the scorer of Scores and TopK (predict.go).
	fast scorerCache
}

func newProtoHead(method string, cosine bool) *protoHead {
	return &protoHead{statHead: statHead{method: method, params: map[string]string{}, st: newClassStats(false, false)}, cosine: cosine}
}

func loadProtoHead(method string, cosine bool, t map[string]safetensors.Tensor, p map[string]string) (Head, error) {
	if err := ParseInto(&noConfig{method}, sortedPairs(p)); err != nil {
		return nil, err
	}
	h := newProtoHead(method, cosine)
	if err := h.st.loadTensors(t); err != nil {
		return nil, err
	}
	h.rebuild()
	return h, nil
}

func (h *protoHead) rebuild() {
	ls := h.st.labels()
	d := h.st.d
	h.labels = ls
	h.p = make([]float64, len(ls)*d)
	h.bias = make([]float64, len(ls))
	for i, l := range ls {
		row := h.p[i*d : (i+1)*d]
		copy(row, h.st.mean(l))
		if h.cosine {
			normalizeRow(row)
		} else {
			var ss float64
			for _, v := range row {
				ss += v * v
			}
			h.bias[i] = -ss
		}
	}
}

// Learn implements Head: a label seen before adds to that class's sums, so
// its prototype becomes the mean over all of its samples.
func (h *protoHead) Learn(x []float32, y []int) error {
	if err := h.learn(x, y, 1); err != nil {
		return err
	}
	h.rebuild()
	return nil
}

// EndStage implements Head; prototype heads have nothing to solve.
func (h *protoHead) EndStage() error { return nil }

// Unlearn implements Head.
func (h *protoHead) Unlearn(x []float32, y []int) error {
	if err := h.learn(x, y, -1); err != nil {
		return err
	}
	h.rebuild()
	return nil
}

// RemoveClass implements Head.
func (h *protoHead) RemoveClass(label int) error {
	if err := h.st.remove(h.method, label); err != nil {
		return err
	}
	h.rebuild()
	return nil
}

// Merge implements Head.
func (h *protoHead) Merge(other Head) error {
	if err := h.merge(other); err != nil {
		return err
	}
	h.rebuild()
	return nil
}

// State implements Head: the class statistics (see classStats.tensors) and
// the options.
func (h *protoHead) State() (map[string]safetensors.Tensor, map[string]string, error) {
	return h.st.tensors(), copyParams(h.params), nil
}

// Scores implements Head: cosine similarities (SimpleCIL, APER) or
// −‖x − μ_c‖² = 2⟨x, μ_c⟩ − ‖μ_c‖² − ‖x‖² (NCM), [n, C] row-major, every dot
// product by kernel.Dot (predict.go).
func (h *protoHead) Scores(x []float32) ([]float64, error) {
	if len(h.labels) == 0 {
		return nil, errEmpty(h.method)
	}
	if _, err := checkRows(h.method, x, h.st.d); err != nil {
		return nil, err
	}
	return h.scorer().scores(x), nil
}

func (h *protoHead) relabel(to map[int]int) {
	h.st.relabel(to)
	h.rebuild()
}

// Package heads implements classifiers on frozen feature vectors that learn new
// classes without forgetting old ones (docs/METHODS.md §2): SimpleCIL, NCM, RanPAC,
// APER's merged prototypes, FeCAM and streaming LDA.
//
// Every head keeps sufficient statistics only (sums, Gram matrices, counts), so
// learning is exact and incremental: the same samples give the same head
// whatever their order and grouping, up to floating-point rounding. Two heads
// with the same method and configuration merge by adding statistics, and the
// contribution of given samples, or of a whole class, is removed exactly.
//
// Shapes: features are row-major float32 [n, D]; labels are class indices
// ≥ 0 into the class list that the caller (the feature file, the head file)
// keeps; scores are row-major float64 [n, len(Classes())] with columns in
// Classes() order, higher meaning more likely.
//
// This package is pure Go (gonum) and never imports models or cgo.
package heads

import (
	"fmt"
	"reflect"
	"sort"

	"github.com/cl-dev/cl/internal/safetensors"
)

// Head is a classifier whose state is sufficient statistics.
type Head interface {
	// Method is the registry name ("simplecil", "ranpac", …).
	Method() string
	// Dim is the feature dimension D, 0 until the first Learn.
	Dim() int
	// Learn adds samples x [n, D] with labels y [n]. New labels become new
	// classes; a label seen before updates that class's statistics.
	Learn(x []float32, y []int) error
	// EndStage is called once all samples of a stage have been learned; heads
	// that solve systems or choose hyper-parameters per stage (RanPAC's ridge
	// λ, LDA's shared covariance) do it here. Scores before the first
	// EndStage is an error for such heads.
	EndStage() error
	// Classes lists the labels the head scores, ascending.
	Classes() []int
	// Scores returns row-major [n, len(Classes())] scores for x [n, D].
	Scores(x []float32) ([]float64, error)
	// Unlearn removes the exact contribution of samples learned before.
	Unlearn(x []float32, y []int) error
	// RemoveClass removes every statistic of one class.
	RemoveClass(label int) error
	// Merge adds the statistics of another head of the same method and
	// configuration; it refuses anything else with an error.
	Merge(other Head) error
	// State returns the tensors and string parameters that reconstruct the
	// head through the method's loader (see Register).
	State() (map[string]safetensors.Tensor, map[string]string, error)
}

// Loader rebuilds a head from what State returned.
type Loader func(tensors map[string]safetensors.Tensor, params map[string]string) (Head, error)

// Factory builds an empty head from a validated configuration of its method
// (the type Spec.Config returns).
type Factory func(cfg Config) (Head, error)

// Spec describes one registered method.
type Spec struct {
	Name    string
	Summary string
	// Config returns a new default configuration of the method.
	Config func() Config
	// NewHead builds an empty head; use New, which validates first.
	NewHead Factory
	Load    Loader
}

// New builds an empty head from cfg; nil means the defaults. A configuration
// of another method, or an invalid one, is an error.
func (s Spec) New(cfg Config) (Head, error) {
	if cfg == nil {
		cfg = s.Config()
	}
	if want := s.Config(); reflect.TypeOf(cfg) != reflect.TypeOf(want) || cfg.Method() != want.Method() {
		return nil, fmt.Errorf("%s: got a configuration for %s", s.Name, cfg.Method())
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return s.NewHead(cfg)
}

// Parse returns the method's default configuration with pairs applied in
// order (ParseInto: unknown keys are an error listing the known ones).
func (s Spec) Parse(pairs [][2]string) (Config, error) {
	cfg := s.Config()
	if err := ParseInto(cfg, pairs); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Options lists the method's option keys with their defaults.
func (s Spec) Options() []Option { return Options(s.Config()) }

var registry = map[string]Spec{}

// Register adds a method; it panics on a duplicate name (a programming error).
func Register(s Spec) {
	if _, dup := registry[s.Name]; dup {
		panic("heads: duplicate method " + s.Name)
	}
	registry[s.Name] = s
}

// Lookup returns the spec of a registered method.
func Lookup(name string) (Spec, bool) {
	s, ok := registry[name]
	return s, ok
}

// Methods lists registered method names, sorted.
func Methods() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// refresher is implemented by heads whose EndStage needs a new stage of
// samples (RanPAC) but which can recompute their solved state from their
// statistics alone.
type refresher interface{ Refresh() error }

// Refresh recomputes what a head derives from its statistics (a solved
// system, class precisions, prototypes) after Merge, Unlearn or RemoveClass
// when no new stage of samples follows, as in cl merge and cl forget. RanPAC
// re-solves W_o with the λ it selected last (see RanPAC.Refresh); the other
// heads run EndStage.
func Refresh(h Head) error {
	if r, ok := h.(refresher); ok {
		return r.Refresh()
	}
	return h.EndStage()
}

// relabeler is implemented by every head: renumber classes (see Relabel).
type relabeler interface{ relabel(to map[int]int) }

// Relabel renumbers a head's classes in place: class l becomes class to[l].
// to must map every label of h.Classes() to distinct labels ≥ 0 (labels of
// classes the head does not have are ignored). Solved state is recomputed
// by the next EndStage or Refresh (RanPAC, LDA, FeCAM); cl merge uses it to
// merge heads whose files number the same class names differently.
func Relabel(h Head, to map[int]int) error {
	r, ok := h.(relabeler)
	if !ok {
		return fmt.Errorf("%s heads cannot renumber their classes", h.Method())
	}
	seen := map[int]int{}
	for _, l := range h.Classes() {
		t, ok := to[l]
		if !ok {
			return fmt.Errorf("%s: Relabel: no new label for class %d", h.Method(), l)
		}
		if t < 0 {
			return fmt.Errorf("%s: Relabel: class %d would get the negative label %d", h.Method(), l, t)
		}
		if o, dup := seen[t]; dup {
			return fmt.Errorf("%s: Relabel: classes %d and %d would both become %d", h.Method(), o, l, t)
		}
		seen[t] = l
	}
	r.relabel(to)
	return nil
}

// Package learners is the continual-learner abstraction that frozen heads
// and trained methods share: learn a stage, score evaluation data, save. It
// holds a registry and one file per method (simplecil and the other frozen
// heads through heads; aper-*, ranpac-phase1, l2p, dualprompt, coda-prompt,
// ease), so `cl bench` and the other commands handle any method by name.
//
// Labels are global: the remapped labels of the benchmark's class order
// (stage 0 owns 0..m−1, stage 1 the next classes, …). Images are held as
// the source stores them (tune.Dataset) and features as float32 rows.
package learners

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
	"github.com/cl-dev/cl/tune"
)

// Stage is one stage's training data.
type Stage struct {
	// Index is the 0-based stage number.
	Index int
	// Classes are the global labels new in this stage, ascending.
	Classes []int
	// Names[l] is the name of global label l, for every label of the run.
	Names []string
	// Images are the stage's training images; Images.Labels are global
	// labels (Images.Classes = Names). Nil for feature-only runs.
	Images *tune.Dataset
	// Features are the frozen pre-trained backbone's features of the same
	// rows, row-major [len, Dim] (nil when not extracted). Learners that
	// need the frozen [CLS] (frozen heads, L2P's query) read them instead of
	// running the backbone again.
	Features []float32
	// Labels are the global labels of the Features rows (feature-only runs;
	// equal to Images.Labels otherwise).
	Labels []int
	// IDs identify the rows (sample ids), for ledgers and errors.
	IDs []string
	// Dim is the feature width D.
	Dim int
}

// Eval is data to score: test images and/or their frozen features.
type Eval struct {
	Images   *tune.Dataset
	Features []float32
	Dim      int
	// N is the number of rows.
	N int
}

// Learner is a continual learner.
type Learner interface {
	// Method is the registry name.
	Method() string
	// Learn learns one stage; stages come in order, each with new classes.
	Learn(ctx context.Context, s Stage) error
	// Scores returns row-major [e.N, len(cols)] scores (higher = more
	// likely) and the global labels of the columns.
	Scores(ctx context.Context, e Eval) (scores []float64, cols []int, err error)
	// Save writes the learner's state to path atomically.
	Save(path string) error
}

// Env is what learners may use besides their options.
type Env struct {
	// Weights is the pre-trained ViT (methods that train or run variant
	// graphs); nil for frozen-feature runs. WeightsSHA256 fingerprints it.
	Weights       *vit.Weights
	WeightsSHA256 string
	// Session chooses library, device and threads of the graphs a learner
	// runs; Workers decode and augment images.
	Session ort.SessionOptions
	Workers int
	// Seed fixes a learner's randomness (initialisation, shuffling).
	Seed uint64
	// Log, when set, receives progress lines.
	Log func(format string, args ...any)
	// CacheDir, when set, is where learners may cache what is costly and
	// determined by its inputs (a first-stage adaptation, keyed by weights,
	// method, recipe, seeds and images), so reruns do not redo it.
	CacheDir string
}

// Logf logs through Env.Log when it is set.
func (e Env) Logf(format string, args ...any) {
	if e.Log != nil {
		e.Log(format, args...)
	}
}

// Spec describes a registered method.
type Spec struct {
	Name    string
	Summary string
	// NeedsImages is true for methods that train or run variant graphs:
	// they need Stage.Images and Env.Weights.
	NeedsImages bool
	// Options lists the `key=value` options New accepts, with defaults.
	Options map[string]string
	// New builds an empty learner; unknown option keys are an error listing
	// the known ones.
	New func(env Env, options map[string]string) (Learner, error)
}

var registry = map[string]Spec{}

// Register adds a method; a duplicate name panics (a programming error).
func Register(s Spec) {
	if _, dup := registry[s.Name]; dup {
		panic("learners: duplicate method " + s.Name)
	}
	registry[s.Name] = s
}

// Lookup returns a registered method.
func Lookup(name string) (Spec, error) {
	s, ok := registry[name]
	if !ok {
		return Spec{}, fmt.Errorf("method %q unknown: use one of %s", name, strings.Join(Names(), ", "))
	}
	return s, nil
}

// Names lists the registered methods, sorted.
func Names() []string {
	var s []string
	for n := range registry {
		s = append(s, n)
	}
	sort.Strings(s)
	return s
}

// CheckOptions returns an error naming the first key of got that known
// does not list.
func CheckOptions(method string, got, known map[string]string) error {
	for k := range got {
		if _, ok := known[k]; !ok {
			var ks []string
			for k := range known {
				ks = append(ks, k)
			}
			sort.Strings(ks)
			return fmt.Errorf("%s: option %q unknown (known: %s)", method, k, strings.Join(ks, ", "))
		}
	}
	return nil
}

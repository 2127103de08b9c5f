// Package features reads and writes cl's feature files (docs/FORMATS.md): a
// safetensors file with tensor "features" F32 [N,D], tensor "labels" I64 [N]
// and string metadata: format "cl.features/1", classes (JSON array, index =
// label), ids (JSON array of sample identifiers, one per row), model,
// model_sha256, fingerprint, preprocess (JSON), source.
//
// A Python user reads it with numpy and json alone (see docs/FORMATS.md).
//
// Besides the file format the package holds the operations on feature sets
// that heads and the command line share: the feature space and its
// fingerprint (Space, Same), class lists (ValidateClasses, MapClasses), and
// row and column set operations (Select, Concat, ConcatByID).
package features

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/cl-dev/cl/internal/safetensors"
)

// Format is the value of the "format" metadata key.
const Format = "cl.features/1"

// Unlabelled is the label of every row of an unlabelled feature file (cl
// extract of unlabelled images, for prediction), whose class list is empty.
const Unlabelled = -1

// ErrUnlabelled is wrapped by Read's error for an unlabelled file.
var ErrUnlabelled = errors.New("the rows are unlabelled (cl extract of unlabelled images): only cl predict takes them; fitting, evaluating and benchmarking need labelled features")

// Set is a feature file in memory.
type Set struct {
	// X is row-major [N, D].
	X []float32
	N int
	D int
	// Labels are class indices into Classes, one per row; all Unlabelled
	// when Classes is empty (an unlabelled file).
	Labels []int
	// Classes are the class names; index = label. Empty when unlabelled.
	Classes []string
	// IDs identify each row's sample (a path, "train:123", …).
	IDs []string
	// Model is the backbone file's base name; ModelSHA256 its content hash.
	Model       string
	ModelSHA256 string
	// Preprocess is the JSON of the preprocessing that produced the rows.
	Preprocess string
	// Fingerprint identifies what determines the features (see Space); ""
	// in files written before it existed.
	Fingerprint string
	// Source describes the data (the --data spec).
	Source string
}

// Labelled reports whether the rows have labels (the file has classes).
func (s *Set) Labelled() bool { return len(s.Classes) > 0 || s.N == 0 }

// Row returns row i of X (a view, not a copy).
func (s *Set) Row(i int) []float32 { return s.X[i*s.D : (i+1)*s.D] }

// Validate checks shapes, class names (ValidateClasses), labels and
// finiteness; errors name the row.
func (s *Set) Validate() error {
	if s.N < 0 || s.D <= 0 || len(s.X) != s.N*s.D {
		return fmt.Errorf("features: %d values for %d rows of dimension %d", len(s.X), s.N, s.D)
	}
	if len(s.Labels) != s.N {
		return fmt.Errorf("features: %d labels for %d rows", len(s.Labels), s.N)
	}
	if s.IDs != nil && len(s.IDs) != s.N {
		return fmt.Errorf("features: %d ids for %d rows", len(s.IDs), s.N)
	}
	if err := ValidateClasses(s.Classes); err != nil {
		return fmt.Errorf("features: %w", err)
	}
	for i, y := range s.Labels {
		if (y < 0 || y >= len(s.Classes)) && !(y == Unlabelled && len(s.Classes) == 0) {
			return fmt.Errorf("features: row %d has label %d outside the %d classes", i, y, len(s.Classes))
		}
	}
	for i, v := range s.X {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("features: row %d (%s) column %d is %v", i/s.D, s.id(i/s.D), i%s.D, v)
		}
	}
	return nil
}

func (s *Set) id(i int) string {
	if i < len(s.IDs) {
		return s.IDs[i]
	}
	return fmt.Sprintf("#%d", i)
}

// Write stores the set atomically at path.
func (s *Set) Write(path string) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	f := safetensors.New()
	f.Tensors["features"] = safetensors.FromFloat32s([]int64{int64(s.N), int64(s.D)}, s.X)
	labels := make([]int64, s.N)
	for i, y := range s.Labels {
		labels[i] = int64(y)
	}
	f.Tensors["labels"] = safetensors.FromInt64s([]int64{int64(s.N)}, labels)
	classes, _ := json.Marshal(nonNil(s.Classes))
	ids, _ := json.Marshal(nonNil(s.IDs))
	f.Metadata = map[string]string{
		"format":       Format,
		"classes":      string(classes),
		"ids":          string(ids),
		"model":        s.Model,
		"model_sha256": s.ModelSHA256,
		"fingerprint":  s.Fingerprint,
		"preprocess":   s.Preprocess,
		"source":       s.Source,
	}
	return f.WriteFile(path)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Read loads and validates a labelled feature file; errors name the path.
// An unlabelled file is refused (the error wraps ErrUnlabelled).
func Read(path string) (*Set, error) {
	s, err := ReadAny(path)
	if err != nil {
		return nil, err
	}
	if !s.Labelled() {
		return nil, fmt.Errorf("%s: %w", path, ErrUnlabelled)
	}
	return s, nil
}

// ReadAny is Read that also accepts an unlabelled file (no classes, every
// label Unlabelled), for prediction.
func ReadAny(path string) (*Set, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading features: %w", err)
	}
	s, err := fromFile(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

func fromFile(f *safetensors.File) (*Set, error) {
	if got := f.Metadata["format"]; got != Format {
		return nil, fmt.Errorf("not a cl feature file (format %q, want %q)", got, Format)
	}
	x, err := f.Get("features", safetensors.F32, 2)
	if err != nil {
		return nil, err
	}
	y, err := f.Get("labels", safetensors.I64, 1)
	if err != nil {
		return nil, err
	}
	s := &Set{
		N: int(x.Shape[0]), D: int(x.Shape[1]),
		Model: f.Metadata["model"], ModelSHA256: f.Metadata["model_sha256"],
		Fingerprint: f.Metadata["fingerprint"],
		Preprocess:  f.Metadata["preprocess"], Source: f.Metadata["source"],
	}
	if y.Shape[0] != x.Shape[0] {
		return nil, fmt.Errorf("features has %d rows but labels has %d", x.Shape[0], y.Shape[0])
	}
	if err := json.Unmarshal([]byte(f.Metadata["classes"]), &s.Classes); err != nil {
		return nil, fmt.Errorf("metadata classes: %v", err)
	}
	if ids := f.Metadata["ids"]; ids != "" {
		if err := json.Unmarshal([]byte(ids), &s.IDs); err != nil {
			return nil, fmt.Errorf("metadata ids: %v", err)
		}
	}
	if len(s.IDs) == 0 && s.N > 0 {
		s.IDs = nil
	}
	s.X = x.Float32s()
	for _, v := range y.Int64s() {
		s.Labels = append(s.Labels, int(v))
	}
	if s.Labels == nil {
		s.Labels = []int{}
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

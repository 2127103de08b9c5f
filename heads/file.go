package heads

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"

	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/internal/safetensors"
)

// FileFormat is the "format" metadata value of head files.
const FileFormat = "cl.head/1"

// Info is what a head file records besides the head's state: the class
// names (index = label) and the fingerprint of the feature space the head
// was fitted in.
type Info struct {
	// Classes are the class names; index = label.
	Classes []string
	// Model is the backbone file's base name; ModelSHA256 its content hash.
	Model       string
	ModelSHA256 string
	// Preprocess is the JSON of the preprocessing that produced the features.
	Preprocess string
	// Fingerprint identifies the feature space (features.Space); "" in head
	// files written before it existed.
	Fingerprint string
	// Dim is the feature dimension D (set by Load; Save takes it from the head).
	Dim int
	// Ledger lists the rows the head learned (see Ledger); nil when the file
	// has none (written before ledgers, or by a program that keeps none).
	Ledger *Ledger
}

// Space is the feature space the head was fitted in.
func (i Info) Space() features.Space {
	return features.Space{Model: i.Model, ModelSHA256: i.ModelSHA256, Preprocess: i.Preprocess, Fingerprint: i.Fingerprint}
}

// InfoFrom returns the Info of a feature set (its classes, model,
// fingerprint and preprocessing, dimension).
func InfoFrom(s *features.Set) Info {
	return Info{Classes: append([]string(nil), s.Classes...), Model: s.Model, ModelSHA256: s.ModelSHA256,
		Preprocess: s.Preprocess, Fingerprint: s.Fingerprint, Dim: s.D}
}

// CheckFeatures refuses a feature set that the head described by info cannot
// score: another feature space (features.Same) or another dimension.
func CheckFeatures(info Info, set *features.Set) error {
	if !features.Same(info.Space(), set.Space()) {
		return fmt.Errorf("features come from %s but the head was fitted on %s: extract features with the head's model and preprocessing",
			set.Space(), info.Space())
	}
	if info.Dim != 0 && set.D != info.Dim {
		return fmt.Errorf("features have dimension %d but the head expects %d", set.D, info.Dim)
	}
	return nil
}

// Save writes h atomically to path as a safetensors file: the tensors of
// h.State() plus metadata format "cl.head/1", method, params (JSON object of
// the options), classes (JSON array, index = label), model, model_sha256,
// fingerprint, preprocess and dim, and the ledger when info has one (see
// Ledger). Every label the head scores must have a class name; class names
// must be valid UTF-8 and unique.
func Save(path string, h Head, info Info) error {
	f, err := encode(h, info)
	if err != nil {
		return fmt.Errorf("saving head %s: %w", path, err)
	}
	return f.WriteFile(path)
}

func encode(h Head, info Info) (*safetensors.File, error) {
	tensors, params, err := h.State()
	if err != nil {
		return nil, err
	}
	for _, l := range h.Classes() {
		if l >= len(info.Classes) {
			return nil, fmt.Errorf("class label %d has no name (%d class names given)", l, len(info.Classes))
		}
	}
	if err := features.ValidateClasses(info.Classes); err != nil {
		return nil, err
	}
	if info.Dim != 0 && h.Dim() != 0 && info.Dim != h.Dim() {
		return nil, fmt.Errorf("info says dimension %d but the head has %d", info.Dim, h.Dim())
	}
	f := safetensors.New()
	f.Tensors = tensors
	if params == nil {
		params = map[string]string{}
	}
	pj, _ := json.Marshal(params)
	classes := info.Classes
	if classes == nil {
		classes = []string{}
	}
	cj, _ := json.Marshal(classes)
	f.Metadata = map[string]string{
		"format":       FileFormat,
		"method":       h.Method(),
		"params":       string(pj),
		"classes":      string(cj),
		"model":        info.Model,
		"model_sha256": info.ModelSHA256,
		"fingerprint":  info.Fingerprint,
		"preprocess":   info.Preprocess,
		"dim":          strconv.Itoa(h.Dim()),
	}
	if InferenceOnly(h) { // see Export
		f.Metadata[InferenceOnlyKey] = InferenceOnlyValue
	}
	if err := info.Ledger.encode(f, h); err != nil {
		return nil, err
	}
	return f, nil
}

// Load reads a head file written by Save. A truncated, tampered or foreign
// file is an error naming the path, never a panic.
func Load(path string) (Head, Info, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Info{}, fmt.Errorf("reading head: %w", err)
	}
	h, info, err := decode(data)
	if err != nil {
		return nil, Info{}, fmt.Errorf("%s: %w", path, err)
	}
	return h, info, nil
}

func decode(data []byte) (h Head, info Info, err error) {
	f, err := safetensors.Parse(data)
	if err != nil {
		return nil, Info{}, err
	}
	md := f.Metadata
	if md["format"] != FileFormat {
		return nil, Info{}, fmt.Errorf("not a cl head file (format %q, want %q)", md["format"], FileFormat)
	}
	spec, ok := Lookup(md["method"])
	if !ok {
		return nil, Info{}, fmt.Errorf("unknown head method %q (known: %v)", md["method"], Methods())
	}
	var params map[string]string
	if err := json.Unmarshal([]byte(md["params"]), &params); err != nil {
		return nil, Info{}, fmt.Errorf("metadata params: %v", err)
	}
	if err := json.Unmarshal([]byte(md["classes"]), &info.Classes); err != nil {
		return nil, Info{}, fmt.Errorf("metadata classes: %v", err)
	}
	info.Model, info.ModelSHA256, info.Preprocess = md["model"], md["model_sha256"], md["preprocess"]
	info.Fingerprint = md["fingerprint"]
	if err := features.ValidateClasses(info.Classes); err != nil {
		return nil, Info{}, err
	}
	if info.Ledger, err = DecodeLedger(f); err != nil {
		return nil, Info{}, err
	}
	dim, err := strconv.Atoi(md["dim"])
	if err != nil || dim < 0 {
		return nil, Info{}, fmt.Errorf("metadata dim %q: want a dimension ≥ 0", md["dim"])
	}
	// Copy tensor data: Parse aliases the file bytes.
	tensors := make(map[string]safetensors.Tensor, len(f.Tensors))
	names := make([]string, 0, len(f.Tensors))
	for n := range f.Tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if isLedgerTensor(n) {
			continue
		}
		t := f.Tensors[n]
		t.Data = append([]byte(nil), t.Data...)
		tensors[n] = t
	}
	defer func() {
		// A loader written by another engineer must not crash the program on
		// a tampered file either.
		if r := recover(); r != nil {
			h, err = nil, fmt.Errorf("corrupt %s head: %v", md["method"], r)
		}
	}()
	load := spec.Load
	if v, ok := md[InferenceOnlyKey]; ok { // see Export
		if v != InferenceOnlyValue {
			return nil, Info{}, fmt.Errorf("metadata %s=%q: want %q", InferenceOnlyKey, v, InferenceOnlyValue)
		}
		load = loadInference(spec)
	}
	h, err = load(tensors, params)
	if err != nil {
		return nil, Info{}, fmt.Errorf("%s head: %w", md["method"], err)
	}
	if h.Dim() != dim {
		return nil, Info{}, fmt.Errorf("metadata dim %d but the %s head has dimension %d", dim, md["method"], h.Dim())
	}
	for _, l := range h.Classes() {
		if l >= len(info.Classes) {
			return nil, Info{}, fmt.Errorf("class label %d has no name (%d class names)", l, len(info.Classes))
		}
	}
	if err := info.Ledger.check(h, dim); err != nil {
		return nil, Info{}, err
	}
	info.Dim = dim
	return h, info, nil
}

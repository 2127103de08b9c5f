package heads

import (
	"encoding/json"
	"fmt"

	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/internal/safetensors"
)

func init() {
	Register(Spec{
		Name: "aper",
		Summary: "APER: SimpleCIL prototypes on the concatenation [f_PTM(x); f_adapted(x)] of two feature files " +
			"(build the input with ConcatByID)",
		Options: map[string]string{},
		New:     func(o map[string]string) (Head, error) { return newProtoHead("aper", true, o) },
		Load: func(t map[string]safetensors.Tensor, p map[string]string) (Head, error) {
			return loadProtoHead("aper", true, t, p)
		},
	})
}

// NewAPER returns an empty APER head (METHODS §2.2). It is SimpleCIL on the
// concatenated features φ(x) = [a(x); b(x)] of dimension D_a + D_b (plain
// concatenation, no per-branch normalisation; the cosine normalises the whole
// vector). Build φ with ConcatByID.
func NewAPER() Head {
	h, _ := newProtoHead("aper", true, nil)
	return h
}

// ConcatByID returns the row-wise concatenation [a | b] of two feature sets
// of the same samples, shape [N, D_a + D_b], in a's row order. Rows are
// matched by sample id; both sets need ids. A missing id on either side, a
// duplicate id, or a sample whose class name differs between a and b is an
// error naming the id. The result keeps a's class list; its model, hash and
// preprocessing join both sides' ("a+b", preprocess as a JSON array) so that
// its fingerprint is reproducible for test features concatenated alike.
func ConcatByID(a, b *features.Set) (*features.Set, error) {
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("first feature set: %w", err)
	}
	if err := b.Validate(); err != nil {
		return nil, fmt.Errorf("second feature set: %w", err)
	}
	if a.IDs == nil && a.N > 0 || b.IDs == nil && b.N > 0 {
		return nil, fmt.Errorf("concatenating features needs sample ids in both files (re-extract with a current cl)")
	}
	index := make(map[string]int, b.N)
	for j, id := range b.IDs {
		if _, dup := index[id]; dup {
			return nil, fmt.Errorf("second feature set: duplicate sample id %q", id)
		}
		index[id] = j
	}
	seen := make(map[string]bool, a.N)
	d := a.D + b.D
	out := &features.Set{
		X: make([]float32, a.N*d), N: a.N, D: d,
		Labels:      append([]int(nil), a.Labels...),
		Classes:     append([]string(nil), a.Classes...),
		IDs:         append([]string(nil), a.IDs...),
		Model:       a.Model + "+" + b.Model,
		ModelSHA256: a.ModelSHA256 + "+" + b.ModelSHA256,
		Source:      a.Source + " + " + b.Source,
	}
	pp, _ := json.Marshal([]string{a.Preprocess, b.Preprocess})
	out.Preprocess = string(pp)
	for i, id := range a.IDs {
		if seen[id] {
			return nil, fmt.Errorf("first feature set: duplicate sample id %q", id)
		}
		seen[id] = true
		j, ok := index[id]
		if !ok {
			return nil, fmt.Errorf("sample id %q is in the first feature set but not in the second", id)
		}
		ca, cb := a.Classes[a.Labels[i]], b.Classes[b.Labels[j]]
		if ca != cb {
			return nil, fmt.Errorf("sample id %q has class %q in the first feature set but %q in the second", id, ca, cb)
		}
		copy(out.X[i*d:i*d+a.D], a.Row(i))
		copy(out.X[i*d+a.D:(i+1)*d], b.Row(j))
	}
	if b.N != a.N {
		for _, id := range b.IDs {
			if !seen[id] {
				return nil, fmt.Errorf("sample id %q is in the second feature set but not in the first", id)
			}
		}
	}
	return out, nil
}

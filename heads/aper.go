package heads

import (
	"github.com/cl-dev/cl/internal/safetensors"
)

func init() {
	Register(Spec{
		Name: "aper",
		Summary: "APER: SimpleCIL prototypes on the concatenation [f_PTM(x); f_adapted(x)] of two feature files " +
			"(build the input with features.ConcatByID)",
		Config:  func() Config { return &noConfig{"aper"} },
		NewHead: func(Config) (Head, error) { return newProtoHead("aper", true), nil },
		Load: func(t map[string]safetensors.Tensor, p map[string]string) (Head, error) {
			return loadProtoHead("aper", true, t, p)
		},
	})
}

// NewAPER returns an empty APER head (docs/METHODS.md §2.2). It is SimpleCIL on the
// concatenated features φ(x) = [a(x); b(x)] of dimension D_a + D_b (plain
// concatenation, no per-branch normalisation; the cosine normalises the whole
// vector). Build φ with features.ConcatByID.
func NewAPER() Head {
	return newProtoHead("aper", true)
}

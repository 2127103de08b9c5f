package heads

import "github.com/cl-dev/cl/internal/safetensors"

func init() {
	Register(Spec{
		Name:    "ncm",
		Summary: "NCM: nearest class mean, score = −squared Euclidean distance",
		Options: map[string]string{},
		New:     func(o map[string]string) (Head, error) { return newProtoHead("ncm", false, o) },
		Load: func(t map[string]safetensors.Tensor, p map[string]string) (Head, error) {
			return loadProtoHead("ncm", false, t, p)
		},
	})
}

// NewNCM returns an empty nearest-class-mean head: μ_c = mean of the raw
// feature rows of class c; score(x, c) = −‖x − μ_c‖² (squared feature units).
func NewNCM() Head {
	h, _ := newProtoHead("ncm", false, nil)
	return h
}

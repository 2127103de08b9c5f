package heads

import "github.com/cl-dev/cl/internal/safetensors"

func init() {
	Register(Spec{
		Name:    "ncm",
		Summary: "NCM: nearest class mean, score = −squared Euclidean distance",
		Config:  func() Config { return &noConfig{"ncm"} },
		NewHead: func(Config) (Head, error) { return newProtoHead("ncm", false), nil },
		Load: func(t map[string]safetensors.Tensor, p map[string]string) (Head, error) {
			return loadProtoHead("ncm", false, t, p)
		},
	})
}

// NewNCM returns an empty nearest-class-mean head: μ_c = mean of the raw
// feature rows of class c; score(x, c) = −‖x − μ_c‖² (squared feature units).
func NewNCM() Head {
	return newProtoHead("ncm", false)
}

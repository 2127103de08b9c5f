package ort

import (
	"errors"

	"github.com/cl-dev/cl/models"
)

// Options choose the ONNX Runtime library, device and threads of a Backbone.
type Options struct {
	// ORTLib is the --ort-lib value; "" = $CL_ORT_LIB, then the default
	// install location (see FindLib).
	ORTLib string
	// Device is "cpu" (default when ""), "cuda" or "cuda:N".
	Device string
	// Threads is the intra-op thread count; 0 = ONNX Runtime's default (all
	// physical cores).
	Threads int
	// Manifest, when set, overrides the manifest stored in the model.
	Manifest *models.Manifest
	// NoSpinning stops ONNX Runtime's idle threads from spin-waiting for
	// work (session.intra_op/inter_op.allow_spinning = 0): slower for one
	// caller alone, but it leaves the CPU to other work between runs (the
	// server's decoding and HTTP).
	NoSpinning bool
}

// Tensor is a named-graph value passed to or returned by Session.Run: a
// row-major array of Shape, with exactly one of the data slices set (its
// element type is the tensor's). len(data) must equal the product of Shape.
type Tensor struct {
	Shape []int64
	F32   []float32
	F64   []float64
	I64   []int64
	U8    []uint8
	Bool  []bool
}

// Len is the number of elements Shape implies.
func (t Tensor) Len() int {
	n := 1
	for _, d := range t.Shape {
		n *= int(d)
	}
	return n
}

// SessionOptions choose the library, device and threads of a Session.
type SessionOptions struct {
	// ORTLib is the --ort-lib value ("" = $CL_ORT_LIB, then the default location).
	ORTLib string
	// Device is "cpu" (default when ""), "cuda" or "cuda:N".
	Device string
	// Threads is the intra-op thread count; 0 = ONNX Runtime's default.
	Threads int
	// NoOptimization turns ONNX Runtime's graph rewrites off. Needed for
	// float64 graphs: its fusions (FusedMatMul) have float32 kernels only.
	NoOptimization bool
	// NoMemPattern turns ONNX Runtime's memory pattern off (the one block
	// it plans from the first run's allocations and reuses while the input
	// shapes stay the same). Training graphs want it off: the ViT-Ti/16
	// training step at batch 32 peaked at 2,041 MiB RSS with it and
	// 1,128–1,236 MiB without, and ran no slower (docs/PERFORMANCE.md,
	// "Training step").
	NoMemPattern bool
	// Profile, when set, makes ONNX Runtime write a per-operator profile
	// (Chrome trace JSON) to Profile + "_<date>.json" when the session is
	// closed. For measurements only: it slows every run.
	Profile string
	// NoSpinning stops ONNX Runtime's idle threads from spin-waiting for
	// work (session.intra_op/inter_op.allow_spinning = 0): slower for one
	// caller alone, but it leaves the CPU to other work between runs (the
	// server's decoding and HTTP).
	NoSpinning bool
}

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("backbone is closed")

// ErrNoCgo is what every call that needs ONNX Runtime returns in a build
// without cgo: onnxruntime_go loads the library through cgo. Everything
// else (feature files, heads, protocol, serve's HTTP side) works in such a
// build; the graphs do not.
var ErrNoCgo = errors.New("this cl was built without cgo (CGO_ENABLED=0), so it cannot load ONNX Runtime: rebuild with CGO_ENABLED=1 and a C compiler (go build ./cmd/cl)")

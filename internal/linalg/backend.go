package linalg

import (
	"fmt"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/blas/gonum"
)

// Backend names of the BLAS implementations cl selects.
const (
	// Gonum is gonum's own pure-Go BLAS: what runs when nothing was selected.
	Gonum = "gonum"
	// PureGo is FastBLAS, the default of the cl binary.
	PureGo = "pure-go"
	// OpenBLAS is libopenblas through gonum's netlib wrapper (cgo).
	OpenBLAS = "openblas"
)

var (
	mu       sync.Mutex
	selected string
	impl     blas.Float64
)

// Select makes impl the BLAS of the whole process (blas64.Use, which gonum's
// LAPACK reads too) and records its name for Backend. Programs call it once
// at start-up, before any head computes; it is not meant to be switched
// while heads are working.
func Select(name string, b blas.Float64) {
	mu.Lock()
	defer mu.Unlock()
	blas64.Use(b)
	selected, impl = name, b
}

// UsePureGo selects FastBLAS (PureGo) and gonum's pure-Go LAPACK (no
// Native).
func UsePureGo() {
	Select(PureGo, FastBLAS{})
	SelectNative("", nil)
}

// Backend reports the BLAS in use: the name given to Select, Gonum when
// nothing was selected, or "other (TYPE)" when something else called
// blas64.Use directly.
func Backend() string {
	mu.Lock()
	defer mu.Unlock()
	cur := blas64.Implementation()
	if impl != nil && cur == impl {
		return selected
	}
	switch cur.(type) {
	case gonum.Implementation:
		return Gonum
	case FastBLAS:
		return PureGo
	}
	return fmt.Sprintf("other (%T)", cur)
}

// GonumGemm reports whether the BLAS in use computes Dgemm with gonum's
// native code (gonum's own or FastBLAS, which keeps it), so that results
// bit-for-bit equal to gonum's Dgemm can be relied on.
func GonumGemm() bool {
	switch blas64.Implementation().(type) {
	case gonum.Implementation, FastBLAS:
		return true
	}
	return false
}

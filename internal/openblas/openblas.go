//go:build openblas

// Package openblas registers OpenBLAS (through gonum's cgo netlib wrapper,
// gonum.org/v1/netlib/blas/netlib) as the BLAS of gonum's blas64 and
// lapack/gonum packages, so that every float64 matrix product and every
// factorisation in the process (RanPAC's Gram accumulation, Cholesky and
// tridiagonal reduction, …) runs on OpenBLAS instead of gonum's pure-Go
// kernels. Importing it is the whole API; it only builds with the `openblas`
// build tag and needs libopenblas (Debian: apt-get install libopenblas-dev,
// found through pkg-config):
//
//	go build -tags openblas ./cmd/cl
//
// Results of the BLAS-based heads (RanPAC, FeCAM, LDA's solve) then differ
// from the pure-Go build in the last bits of rounding; prototype and LDA
// scores and TopK use heads' own kernel.Dot and are the same in both builds.
package openblas

// #cgo pkg-config: openblas
import "C"

import (
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/netlib/blas/netlib"
)

func init() { blas64.Use(netlib.Implementation{}) }

// Registered reports that the package is linked in: always true (the file
// only builds with the openblas tag).
func Registered() bool { return true }

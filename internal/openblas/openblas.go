//go:build openblas

// Package openblas offers OpenBLAS (through gonum's cgo netlib wrapper,
// gonum.org/v1/netlib/blas/netlib) as the BLAS of gonum's blas64 and
// lapack/gonum packages, so that every float64 matrix product and every
// factorisation in the process (RanPAC's Gram accumulation, Cholesky and
// tridiagonal reduction, …) runs on OpenBLAS instead of cl's pure-Go
// kernels. Nothing happens on import: the program chooses it with Use
// (cmd/cl does, next to its pure-Go default). It is linked only with the
// `openblas` build tag and needs libopenblas (Debian: apt-get install
// libopenblas-dev, found through pkg-config):
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
	"gonum.org/v1/netlib/blas/netlib"

	"github.com/cl-dev/cl/internal/linalg"
)

// Use selects OpenBLAS as the process's BLAS (linalg.Select) and reports
// true: this build links it.
func Use() bool {
	linalg.Select(linalg.OpenBLAS, netlib.Implementation{})
	return true
}

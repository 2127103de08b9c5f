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

/*
#cgo pkg-config: openblas
#cgo LDFLAGS: -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include "lapack.h"

// cl_lapack_linked resolves the LAPACK routines of Lapack in the linked
// library; 1 when all are there.
static int cl_lapack_linked(void) { return cl_lapack_load(RTLD_DEFAULT); }
*/
import "C"

import (
	"os"

	"gonum.org/v1/netlib/blas/netlib"

	"github.com/cl-dev/cl/internal/linalg"
)

// Use selects OpenBLAS as the process's BLAS (linalg.Select) and, when the
// linked library has the LAPACK routines Lapack needs and CL_LAPACK is not
// "gonum", its LAPACK as the heads' native LAPACK (linalg.SelectNative), as
// Load does for the run-time library; it reports true: this build links it.
func Use() bool {
	linalg.Select(linalg.OpenBLAS, netlib.Implementation{})
	if C.cl_lapack_linked() != 0 && os.Getenv("CL_LAPACK") != "gonum" {
		linalg.SelectNative(linalg.OpenBLAS+" LAPACK (linked)", Lapack{})
	} else {
		linalg.SelectNative("", nil)
	}
	return true
}

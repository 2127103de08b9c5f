package main

import (
	"fmt"
	"os"

	"github.com/cl-dev/cl/internal/linalg"
	"github.com/cl-dev/cl/internal/openblas"
)

// selectBLAS chooses the BLAS of every head in the process, once, before
// anything computes (`cl version` prints the choice, linalg.Backend):
//
//   - built with -tags openblas: the linked OpenBLAS;
//   - otherwise OpenBLAS opened at run time (libopenblas.so.0, or the file
//     in CL_OPENBLAS_LIB) when the machine has it;
//   - otherwise, or with CL_BLAS=purego, cl's pure-Go linalg.FastBLAS.
//
// The paths agree to rounding (docs/PERFORMANCE.md states the tolerance).
func selectBLAS() {
	if openblas.Use() {
		return
	}
	if os.Getenv("CL_BLAS") != "purego" {
		lib := os.Getenv("CL_OPENBLAS_LIB")
		err := openblas.Load(lib)
		if err == nil {
			return
		}
		if lib != "" {
			fmt.Fprintf(os.Stderr, "cl: CL_OPENBLAS_LIB=%s: %v; using the pure-Go BLAS\n", lib, err)
		}
	}
	linalg.UsePureGo()
}

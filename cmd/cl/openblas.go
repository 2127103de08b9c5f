package main

import (
	"github.com/cl-dev/cl/internal/linalg"
	"github.com/cl-dev/cl/internal/openblas"
)

// selectBLAS chooses the BLAS of every head in the process, once, before
// anything computes: OpenBLAS when the binary was built with -tags openblas,
// otherwise cl's parallel pure-Go BLAS (linalg.FastBLAS). `cl version` prints
// the choice (linalg.Backend).
func selectBLAS() {
	if !openblas.Use() {
		linalg.UsePureGo()
	}
}

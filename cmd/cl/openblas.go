//go:build openblas

package main

// Built with -tags openblas: register OpenBLAS as gonum's BLAS.
import _ "github.com/cl-dev/cl/internal/openblas"

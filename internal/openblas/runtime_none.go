//go:build !cgo || openblas

package openblas

import (
	"errors"

	"github.com/cl-dev/cl/internal/linalg"
)

// Load reports that this build cannot open OpenBLAS at run time (built
// without cgo, or with -tags openblas, which links it instead: Use).
func Load(lib string) error {
	return errors.New("openblas: this build cannot load OpenBLAS at run time (no cgo, or linked with -tags openblas)")
}

// Config names the heads' LAPACK when a native one is selected (the build
// with -tags openblas: Use), "" otherwise.
func Config() string {
	if linalg.NativeLAPACK() == nil {
		return ""
	}
	return "LAPACK: " + linalg.LAPACKBackend()
}

//go:build !cgo || openblas

package openblas

import "errors"

// Load reports that this build cannot open OpenBLAS at run time (built
// without cgo, or with -tags openblas, which links it instead: Use).
func Load(lib string) error {
	return errors.New("openblas: this build cannot load OpenBLAS at run time (no cgo, or linked with -tags openblas)")
}

// Config is "" in this build.
func Config() string { return "" }

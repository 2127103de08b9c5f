//go:build !openblas

package openblas

// Use reports false and selects nothing: this build does not link OpenBLAS
// (build with -tags openblas for it).
func Use() bool { return false }

//go:build openblas

package linalg_test

import (
	"testing"

	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/netlib/blas/netlib"

	"github.com/cl-dev/cl/internal/linalg"
	"github.com/cl-dev/cl/internal/openblas"
)

// TestOpenBLASSelected checks that under the openblas tag openblas.Use
// selects OpenBLAS and its LAPACK and that Backend and LAPACKBackend report
// them.
func TestOpenBLASSelected(t *testing.T) {
	prev := blas64.Implementation()
	defer blas64.Use(prev)
	if !openblas.Use() {
		t.Fatal("openblas.Use() = false under the openblas tag")
	}
	if _, ok := blas64.Implementation().(netlib.Implementation); !ok {
		t.Fatalf("blas64 implementation is %T, want netlib.Implementation", blas64.Implementation())
	}
	if linalg.GonumGemm() {
		t.Fatal("GonumGemm() is true under OpenBLAS")
	}
	if got := linalg.Backend(); got != linalg.OpenBLAS {
		t.Fatalf("Backend() = %q, want %q", got, linalg.OpenBLAS)
	}
	if linalg.NativeLAPACK() == nil || linalg.LAPACKBackend() != "openblas LAPACK (linked)" {
		t.Fatalf("the linked OpenBLAS's LAPACK is not selected: %q", linalg.LAPACKBackend())
	}
	defer linalg.SelectNative("", nil)
}

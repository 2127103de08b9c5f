//go:build openblas

package heads

import (
	"testing"

	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/netlib/blas/netlib"

	_ "github.com/cl-dev/cl/internal/openblas" // registers OpenBLAS before heads' init runs
)

// TestOpenBLASRegistered checks that under the openblas tag the heads
// package keeps OpenBLAS registered (useFastBLAS must not replace it).
func TestOpenBLASRegistered(t *testing.T) {
	if _, ok := blas64.Implementation().(netlib.Implementation); !ok {
		t.Fatalf("blas64 implementation is %T, want netlib.Implementation", blas64.Implementation())
	}
	if gonumGemm() {
		t.Fatal("gonumGemm() is true under OpenBLAS")
	}
}

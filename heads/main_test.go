package heads

import (
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/cl-dev/cl/internal/linalg"
	"github.com/cl-dev/cl/internal/openblas"
)

// TestMain selects OpenBLAS under the openblas build tag, linalg's pure-Go
// FastBLAS otherwise.
//
// CL_BLAS=openblas selects OpenBLAS opened at run time instead (as the cl
// binary does where the machine has it; CL_OPENBLAS_LIB names the file),
// for benchmarks: the goldens and bit-for-bit tests are written for FastBLAS.
func TestMain(m *testing.M) {
	switch {
	case openblas.Use():
	case os.Getenv("CL_BLAS") == "openblas":
		if err := openblas.Load(os.Getenv("CL_OPENBLAS_LIB")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	default:
		linalg.UsePureGo()
	}
	os.Exit(m.Run())
}

// randSlice returns n values uniform in [−1, 1).
func randSlice(r *rand.Rand, n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = r.Float64()*2 - 1
	}
	return s
}

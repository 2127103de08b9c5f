package heads

import (
	"math/rand/v2"
	"os"
	"testing"

	"github.com/cl-dev/cl/internal/linalg"
	"github.com/cl-dev/cl/internal/openblas"
)

// TestMain selects the BLAS the cl binary would (cmd/cl): OpenBLAS under the
// openblas build tag, linalg's pure-Go FastBLAS otherwise.
func TestMain(m *testing.M) {
	if !openblas.Use() {
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

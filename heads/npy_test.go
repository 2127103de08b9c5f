package heads

import (
	"testing"

	"github.com/cl-dev/cl/internal/npy"
)

// readNpy reads a golden .npy file (float32, float64 or int64, as
// make_goldens.py writes them) into float64 values and its shape.
func readNpy(t *testing.T, path string) ([]float64, []int) {
	t.Helper()
	v, shape, err := npy.ReadFloat64(path)
	if err != nil {
		t.Fatalf("golden %s: %v (regenerate with: cd heads/testdata && /usr/bin/python3 make_goldens.py)", path, err)
	}
	return v, shape
}

package tune

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestKeyPullGradient checks KeyPull's key gradient against central
// differences of its value, including a key selected by several queries
// and a key selected by none.
func TestKeyPullGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const d, m = 6, 4
	q := make([]float32, 3*d)
	keys := make([]float32, m*d)
	for i := range q {
		q[i] = float32(rng.NormFloat64())
	}
	for i := range keys {
		keys[i] = float32(rng.NormFloat64())
	}
	idx := [][]int{{0, 2}, {2, 1}, {0, 2}} // key 3 unselected
	_, g := KeyPull(q, keys, d, idx)
	for i := range keys {
		const h = 1e-3
		k := append([]float32(nil), keys...)
		k[i] += h
		up, _ := KeyPull(q, k, d, idx)
		k[i] -= 2 * h
		dn, _ := KeyPull(q, k, d, idx)
		fd := (up - dn) / (2 * h)
		if math.Abs(fd-g[i]) > 1e-3*math.Max(1, math.Abs(fd)) {
			t.Fatalf("key element %d: gradient %v, central difference %v", i, g[i], fd)
		}
		if i >= 3*d && g[i] != 0 {
			t.Fatalf("unselected key has gradient %v", g[i])
		}
	}
}

// TestSelection: CosineTopK orders by similarity (ties: lower row), and
// VoteTopK picks the most frequent rows (ties: lower row) for every sample.
func TestSelection(t *testing.T) {
	keys := []float32{1, 0, 0, 1, 1, 1, 1, 0} // rows: e1, e2, (1,1), e1 again
	idx, sim := CosineTopK([]float32{2, 0.1}, keys, 2, 3)
	if idx[0][0] != 0 || idx[0][1] != 3 || idx[0][2] != 2 {
		t.Fatalf("top-3 %v (similarities %v), want [0 3 2]", idx[0], sim)
	}
	v := VoteTopK([][]int{{4, 1}, {1, 2}, {2, 4}, {3, 0}}, 2)
	if len(v) != 4 || v[0][0] != 1 || v[0][1] != 2 || v[3][1] != 2 {
		t.Fatalf("vote %v, want [1 2] for every sample", v)
	}
}

package heads

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// withEigenvalues returns Q diag(lams) Qᵀ [d, d] (both triangles) for a
// random orthogonal Q.
func withEigenvalues(r *rand.Rand, lams []float64) []float64 {
	d := len(lams)
	g := mat.NewDense(d, d, nil)
	for i := 0; i < d; i++ {
		for j := 0; j < d; j++ {
			g.Set(i, j, r.NormFloat64())
		}
	}
	var qr mat.QR
	qr.Factorize(g)
	var q mat.Dense
	qr.QTo(&q)
	var a mat.Dense
	a.Mul(&q, mat.NewDiagDense(d, lams))
	a.Mul(&a, q.T())
	out := make([]float64, d*d)
	for i := 0; i < d; i++ {
		for j := i; j < d; j++ {
			v := (a.At(i, j) + a.At(j, i)) / 2
			out[i*d+j], out[j*d+i] = v, v
		}
	}
	return out
}

// TestClearlyAboveCut checks the test that lets pinvSym skip the
// eigenvalues: true for a well-conditioned positive definite matrix, false
// when the smallest eigenvalue is above pinvSym's cut but less than twice it,
// at or below the cut, zero or negative; and that pinvSym then returns the
// pseudo-inverse either way (against pinvEigen, the definition).
func TestClearlyAboveCut(t *testing.T) {
	const d = 40
	r := rand.New(rand.NewPCG(3, 4))
	cut := float64(d) * math.Pow(2, -23) * 10 // the cut for max|λ| = 10
	for _, c := range []struct {
		name string
		min  float64
		want bool
	}{
		{"well conditioned", 0.5, true},
		{"1.5 × the cut", 1.5 * cut, false},
		{"at half the cut", 0.5 * cut, false},
		{"singular", 0, false},
		{"indefinite", -0.3, false},
	} {
		lams := make([]float64, d)
		for i := range lams {
			lams[i] = 1 + 9*float64(i)/float64(d-1) // 1 … 10
		}
		lams[0] = c.min
		a := withEigenvalues(r, lams)
		if got := clearlyAboveCut(a, d); got != c.want {
			t.Errorf("%s: clearlyAboveCut = %v, want %v", c.name, got, c.want)
		}
		got, want := pinvSym(a, d, nil), pinvEigen(a, d)
		var diff, norm float64
		for i := range got {
			diff = max(diff, math.Abs(got[i]-want[i]))
			norm = max(norm, math.Abs(want[i]))
		}
		if diff > 1e-8*max(norm, 1) {
			t.Errorf("%s: pinvSym differs from the eigen-decomposition by %g (max |entry| %g)", c.name, diff, norm)
		}
	}
}

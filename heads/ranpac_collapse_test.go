package heads

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// collapseData returns realistic synthetic features for the RanPAC collapse: c
// classes in D dimensions as a backbone's pooled features look (a common
// offset shared by every row, class means around it, within-class noise),
// per rows per class for training and test rows per class for testing.
func collapseData(seed uint64, c, d, per, test int) (xtr []float32, ytr []int, xte []float32, yte []int) {
	r := rand.New(rand.NewPCG(seed, 7))
	// Real pooled features (ViT-Ti/16 on Fashion-MNIST): a common offset of
	// norm ≈ 44, class means ≈ 20 from the global mean, within-class noise of
	// rms ≈ 29 concentrated in few directions (singular values decaying).
	offset := make([]float64, d)
	for j := range offset {
		offset[j] = 44 / math.Sqrt(float64(d)) * (1 + 0.3*r.NormFloat64())
	}
	means := make([][]float64, c)
	for k := range means {
		means[k] = make([]float64, d)
		for j := range means[k] {
			means[k][j] = offset[j] + 20/math.Sqrt(float64(d))*r.NormFloat64()
		}
	}
	// noise = Σ_k z_k·s_k·u_k with s_k decaying like the real spectrum.
	basis := make([][]float64, d)
	scale := make([]float64, d)
	var tot float64
	for k := range basis {
		basis[k] = make([]float64, d)
		for j := range basis[k] {
			basis[k][j] = r.NormFloat64() / math.Sqrt(float64(d))
		}
		scale[k] = math.Exp(-float64(k) / 12)
		tot += scale[k] * scale[k]
	}
	for k := range scale {
		scale[k] *= 29 / math.Sqrt(tot)
	}
	gen := func(n int) ([]float32, []int) {
		x := make([]float32, 0, n*c*d)
		var y []int
		row := make([]float64, d)
		for k := 0; k < c; k++ {
			for i := 0; i < n; i++ {
				copy(row, means[k])
				for b := range basis {
					z := r.NormFloat64() * scale[b]
					for j := range row {
						row[j] += z * basis[b][j]
					}
				}
				for j := range row {
					x = append(x, float32(row[j]))
				}
				y = append(y, k)
			}
		}
		return x, y
	}
	xtr, ytr = gen(per)
	xte, yte = gen(test)
	return
}

// dualRidge returns the ridge solution W = Hᵀ(HHᵀ + λI)⁻¹Y [P, C] for the
// rows x [n, D] with labels y (Y one-hot over cls), computed in the dual
// form from the rows themselves: with n < P the n×n system is well
// conditioned where the primal P×P one is singular, so it is the reference
// for the head's W_o.
func dualRidge(t *testing.T, h *RanPAC, x []float32, y []int, cls []int, lam float64) []float64 {
	t.Helper()
	n, p, c := len(y), h.Width(), len(cls)
	hm := h.project(x, n)
	k := mat.NewSymDense(n, nil)
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			var s float64
			for q := 0; q < p; q++ {
				s += hm.Data[i*p+q] * hm.Data[j*p+q]
			}
			if i == j {
				s += lam
			}
			k.SetSym(i, j, s)
		}
	}
	col := map[int]int{}
	for j, l := range cls {
		col[l] = j
	}
	yy := mat.NewDense(n, c, nil)
	for i, l := range y {
		yy.Set(i, col[l], 1)
	}
	var ch mat.Cholesky
	if !ch.Factorize(k) {
		t.Fatal("HHᵀ + λI is not positive definite")
	}
	var a mat.Dense
	if err := ch.SolveTo(&a, yy); err != nil {
		t.Fatal(err)
	}
	w := make([]float64, p*c)
	for q := 0; q < p; q++ {
		for j := 0; j < c; j++ {
			var s float64
			for i := 0; i < n; i++ {
				s += hm.Data[i*p+q] * a.At(i, j)
			}
			w[q*c+j] = s
		}
	}
	return w
}

// relDiff is ‖a − b‖ / ‖b‖ (Frobenius).
func relDiff(a, b []float64) float64 {
	var num, den float64
	for i := range a {
		num += (a[i] - b[i]) * (a[i] - b[i])
		den += b[i] * b[i]
	}
	return math.Sqrt(num / den)
}

// TestRanPACCollapse is the collapse of issue 8 on realistic synthetic
// features (collapseData: a backbone's offset, class spread and decaying
// noise spectrum), with fewer rows learned than the projection is wide
// (M = 1000, 120 rows per stage). PILOT's rule (ridge=pilot) selects
// λ = 10⁻⁸ at stage 2 on the stage's own split, and the primal solve of
// G + λI at that λ has lost all precision: W_o is far from the exact ridge
// solution (the dual form from the rows, dualRidge) and top-1 falls
// (measured 67 % with FastBLAS, 87 % with OpenBLAS: the noise differs). The default (ridge=stable) never goes below the floor,
// solves by Cholesky, matches the dual reference at every stage and keeps
// top-1 (measured 100 %).
func TestRanPACCollapse(t *testing.T) {
	const c, d, per, test = 6, 64, 60, 60
	xtr, ytr, xte, yte := collapseData(1, c, d, per, test)
	for _, ridge := range []string{"pilot", "stable"} {
		cfg := DefaultRanPACConfig()
		cfg.M, cfg.Ridge = 1000, ridge
		h, err := NewRanPAC(cfg)
		if err != nil {
			t.Fatal(err)
		}
		collapsed := false
		for s := 0; s < c/2; s++ {
			x, y := stageRows(xtr, ytr, d, []int{2 * s, 2*s + 1})
			if err := h.Learn(x, y); err != nil {
				t.Fatal(err)
			}
			if err := h.EndStage(); err != nil {
				t.Fatal(err)
			}
			xt, yt := stageRows(xte, yte, d, seq(2*s+2))
			sc, err := h.Scores(xt)
			if err != nil {
				t.Fatal(err)
			}
			cls := h.Classes()
			ok := 0
			for i := range yt {
				if cls[argmaxRow(sc[i*len(cls):(i+1)*len(cls)])] == yt[i] {
					ok++
				}
			}
			acc := float64(ok) / float64(len(yt))
			xa, ya := stageRows(xtr, ytr, d, seq(2*s+2))
			diff := relDiff(h.wo, dualRidge(t, h, xa, ya, cls, h.solveLambda()))
			t.Logf("ridge=%s stage %d: λ=%g floor=%.3g solver=%s top-1 %.3f, ‖W_o − W_dual‖/‖W_dual‖ = %.2g",
				ridge, s+1, h.Lambda(), h.RidgeFloor(), h.Solver(), acc, diff)
			switch ridge {
			case "pilot":
				if h.Lambda() == RidgeGrid[0] {
					collapsed = true
					// How wrong the noise makes W_o, and the scores, depends on
					// the BLAS's rounding (pure Go: 190 × off, top-1 67 %;
					// OpenBLAS: 47 ×, 87 %); far off it is on every path.
					if diff < 10 || acc > 0.95 {
						t.Errorf("pilot stage %d at λ = 1e-8: W_o off by %.2g, top-1 %.3f; want the collapse (≥ 10 × off, top-1 < 0.95)", s+1, diff, acc)
					}
				}
			case "stable":
				if h.Lambda() < h.RidgeFloor() || h.Solver() != "cholesky" || diff > 1e-6 || acc < 0.99 {
					t.Errorf("stable stage %d: λ %g (floor %g), solver %s, W_o off by %.2g, top-1 %.3f; want λ ≥ floor, Cholesky, W_o within 1e-6, top-1 ≥ 0.99",
						s+1, h.Lambda(), h.RidgeFloor(), h.Solver(), diff, acc)
				}
			}
		}
		if ridge == "pilot" && !collapsed {
			t.Error("ridge=pilot never selected λ = 1e-8: the data no longer reproduces the collapse")
		}
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

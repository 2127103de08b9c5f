package kernel

import (
	"math"
	"math/rand/v2"
	"testing"
)

// refDot is the float64 reference Σ_l x[i,l]·w[j,l] and its error scale
// Σ_l |x[i,l]·w[j,l]|.
func refDot(x, w []float32, i, j, d int) (float64, float64) {
	var s, a float64
	for l := 0; l < d; l++ {
		p := float64(x[i*d+l]) * float64(w[j*d+l])
		s += p
		a += math.Abs(p)
	}
	return s, a
}

// check runs Dot on random n×d features against c classes and compares every
// entry with the float64 reference within the float32 summation bound
// (d+2)·2⁻²⁴·Σ|x·w|; padding columns must be zero.
func check(t *testing.T, r *rand.Rand, n, c, d int) {
	t.Helper()
	x := make([]float32, n*d)
	w := make([]float32, c*d)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	for i := range w {
		w[i] = float32(r.NormFloat64())
	}
	p := Pack(w, c, d)
	st := p.Stride()
	dst := make([]float32, n*st)
	for i := range dst {
		dst[i] = float32(math.NaN())
	}
	Dot(dst, x, n, p)
	for i := 0; i < n; i++ {
		for j := 0; j < st; j++ {
			got := float64(dst[i*st+j])
			if j >= c {
				if got != 0 {
					t.Fatalf("n=%d c=%d d=%d: padding [%d,%d] = %v", n, c, d, i, j, got)
				}
				continue
			}
			want, scale := refDot(x, w, i, j, d)
			if tol := float64(d+2) * 0x1p-24 * scale; math.Abs(got-want) > tol {
				t.Fatalf("n=%d c=%d d=%d [%d,%d]: got %v want %v (tol %g, asm %v)", n, c, d, i, j, got, want, tol, useAsm)
			}
		}
	}
}

func TestDotShapes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 5, 6, 7, 12, 13, 31} {
		for _, c := range []int{1, 3, 15, 16, 17, 33, 100} {
			for _, d := range []int{0, 1, 2, 3, 4, 5, 7, 8, 63, 64, 65, 130} {
				check(t, r, n, c, d)
			}
		}
	}
}

// TestAsmMatchesGo compares the assembly tiles with the portable kernel on
// the same inputs (skipped where the assembly is not used).
func TestAsmMatchesGo(t *testing.T) {
	if !useAsm {
		t.Skip("assembly kernel not in use on this CPU/build")
	}
	r := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 200; trial++ {
		n, c, d := r.IntN(20), 1+r.IntN(70), 1+r.IntN(300)
		x := make([]float32, n*d)
		w := make([]float32, c*d)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		for i := range w {
			w[i] = float32(r.NormFloat64())
		}
		p := Pack(w, c, d)
		a := make([]float32, n*p.Stride())
		g := make([]float32, n*p.Stride())
		Dot(a, x, n, p)
		dotGo(g, x, n, p)
		for i := range a {
			row, col := i/p.Stride(), i%p.Stride()
			if col >= c {
				continue
			}
			_, scale := refDot(x, w, row, col, d)
			if math.Abs(float64(a[i]-g[i])) > 2*float64(d+2)*0x1p-24*scale {
				t.Fatalf("trial %d n=%d c=%d d=%d [%d,%d]: asm %v go %v", trial, n, c, d, row, col, a[i], g[i])
			}
		}
	}
}

func FuzzDot(f *testing.F) {
	f.Add(uint8(7), uint8(17), uint8(9), uint64(1))
	f.Add(uint8(1), uint8(1), uint8(1), uint64(2))
	f.Fuzz(func(t *testing.T, n, c, d uint8, seed uint64) {
		check(t, rand.New(rand.NewPCG(seed, 5)), int(n%40), 1+int(c%120), int(d))
	})
}

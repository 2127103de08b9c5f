package kernel

import (
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
)

// exactDot is Σ x·w in exact (big.Float) arithmetic and Σ|x·w|.
func exactDot(x, w []float64) (float64, float64) {
	s := new(big.Float).SetPrec(2000)
	var a float64
	for l := range x {
		p := new(big.Float).SetPrec(2000).SetFloat64(x[l])
		p.Mul(p, new(big.Float).SetPrec(2000).SetFloat64(w[l]))
		s.Add(s, p)
		a += math.Abs(x[l] * w[l])
	}
	f, _ := s.Float64()
	return f, a
}

// withAsm runs f with the assembly on and, where it exists, off.
func withAsm(t *testing.T, f func(t *testing.T, asm bool)) {
	fma, vnni, z, a2 := useFMA, useVNNI, use512, useAVX2i8
	defer func() { useFMA, useVNNI, use512, useAVX2i8 = fma, vnni, z, a2 }()
	if fma || vnni {
		f(t, true)
	} else {
		t.Log("no assembly on this machine: portable code only")
	}
	useFMA, useVNNI, use512, useAVX2i8 = false, false, false, false
	f(t, false)
}

// eachConv runs f once per way of running the int8 products: the assembly
// paths this machine has and portable Go with each path's layout (named
// "go-" + the path's name).
func eachConv(t *testing.T, f func(t *testing.T, name string)) {
	defer func() { convOverride = nil }()
	for _, p := range paths {
		if *p.on {
			cv := p.cv
			convOverride = &cv
			f(t, p.name)
		} else {
			t.Logf("%s: not on this machine", p.name)
		}
		cv := p.cv
		cv.mode = modeGo
		convOverride = &cv
		f(t, "go-"+p.name)
	}
	convOverride = nil
}

// TestDotFixedOrder: Dot is the same bits with and without the assembly, is
// close to the exact sum, and follows its documented order (a scalar
// re-implementation of the lanes and the tree).
func TestDotFixedOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 5, 31, 32, 33, 64, 100, 767, 768, 1280, 4099} {
		x := make([]float64, n)
		w := make([]float64, n+3)
		for i := range x {
			x[i] = float64(float32(r.NormFloat64() * math.Exp(3*r.NormFloat64())))
		}
		for i := range w {
			w[i] = r.NormFloat64()
		}
		var got [2]float64
		withAsm(t, func(t *testing.T, asm bool) {
			b := 0
			if asm {
				b = 1
			}
			got[b] = Dot(x, w)
			if asm && use512 { // the AVX2 form too
				use512 = false
				if v := Dot(x, w); math.Float64bits(v) != math.Float64bits(got[1]) {
					t.Fatalf("n=%d: AVX-512 %v, AVX2 %v", n, got[1], v)
				}
				use512 = true
			}
		})
		if useFMA && math.Float64bits(got[0]) != math.Float64bits(got[1]) {
			t.Fatalf("n=%d: assembly %v, Go %v", n, got[1], got[0])
		}
		// The documented order, written out independently.
		lanes := make([]float64, 32)
		for l := range x {
			lanes[l%32] = math.FMA(x[l], w[l], lanes[l%32])
		}
		for h := 16; h >= 1; h /= 2 {
			for t := 0; t < h; t++ {
				lanes[t] += lanes[t+h]
			}
		}
		if math.Float64bits(lanes[0]) != math.Float64bits(got[0]) {
			t.Fatalf("n=%d: Dot %v, documented order %v", n, got[0], lanes[0])
		}
		want, scale := exactDot(x, w[:n])
		if tol := float64(n/32+6) * 0x1p-53 * scale; math.Abs(got[0]-want) > tol {
			t.Fatalf("n=%d: Dot %v, exact %v (tolerance %g)", n, got[0], want, tol)
		}
	}
}

// quantRef quantises v (float64 arithmetic, independent of the kernels) with
// scale s, as the package documents: q = clamp(round-to-even(v/s), ±127).
func quantRef(v, s float64) int64 {
	return int64(max(-127, min(127, math.RoundToEven(v/s))))
}

// TestInt8Exact: the int8 products equal integer products of independently
// quantised rows, with and without the assembly, for shapes around every
// block edge; the error bound the statistics give holds.
func TestInt8Exact(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct{ n, c, d int }{
		{1, 1, 1}, {2, 16, 16}, {4, 100, 768}, {7, 113, 33}, {200, 7, 260}, {5, 250, 1280}, {3, 112, 300},
		{4, 40, 50}, {5, 64, 100}, {6, 80, 20}, {3, 96, 17}, {2, 30, 8},
	} {
		w := make([]float64, tc.c*tc.d)
		for i := range w {
			w[i] = r.NormFloat64() * float64(1+i%7)
		}
		for l := 0; l < tc.d; l++ {
			w[(tc.c-1)*tc.d+l] = 0 // a class of zeros
		}
		x := make([]float32, tc.n*tc.d)
		for i := range x {
			x[i] = float32(r.NormFloat64() * math.Exp(r.NormFloat64()))
		}
		outs := map[string][]int32{}
		eachConv(t, func(t *testing.T, asm string) {
			p := QuantizeClasses(w, tc.c, tc.d)
			if p == nil {
				t.Fatal("QuantizeClasses refused finite classes")
			}
			qmax := float64(p.cv.qmax)
			dst := make([]int32, tc.n*(tc.c+3))
			st := make([]RowQuant, tc.n)
			p.Dot(dst, tc.c+3, st, x, tc.n, p.NewScratch())
			outs[asm] = dst
			// In place (stride Stride()): the same sums.
			ld := p.Stride()
			inPlace := make([]int32, tc.n*ld)
			p.Dot(inPlace, ld, make([]RowQuant, tc.n), x, tc.n, p.NewScratch())
			for i := 0; i < tc.n; i++ {
				for c := 0; c < tc.c; c++ {
					if inPlace[i*ld+c] != dst[i*(tc.c+3)+c] {
						t.Fatalf("%+v %s [%d,%d]: in place %d, copied %d", tc, asm, i, c, inPlace[i*ld+c], dst[i*(tc.c+3)+c])
					}
				}
			}
			for i := 0; i < tc.n; i++ {
				xr := x[i*tc.d : (i+1)*tc.d]
				if !st[i].OK {
					t.Fatalf("%+v row %d not quantised", tc, i)
				}
				var m float64
				var ss float64
				for _, v := range xr {
					m = max(m, math.Abs(float64(v)))
					ss += float64(v) * float64(v)
				}
				s := float64(float32(m) / float32(qmax))
				if st[i].Scale != s {
					t.Fatalf("%+v row %d: scale %v, want %v", tc, i, st[i].Scale, s)
				}
				if math.Abs(st[i].SumSq-ss) > 1e-5*ss {
					t.Fatalf("%+v row %d: SumSq %v, want %v", tc, i, st[i].SumSq, ss)
				}
				inv := float64(float32(qmax) / float32(m))
				var rs float64
				qx := make([]int64, tc.d)
				for l, v := range xr {
					qx[l] = int64(max(-qmax, min(qmax, math.RoundToEven(float64(float32(float64(v)*inv))))))
					e := float64(v) - s*float64(qx[l])
					rs += e * e
				}
				if math.Abs(st[i].ResidSq-rs) > 1e-5*rs+1e-300 {
					t.Fatalf("%+v row %d: ResidSq %v, want %v", tc, i, st[i].ResidSq, rs)
				}
				for c := 0; c < tc.c; c++ {
					var want int64
					var exact float64
					for l := 0; l < tc.d; l++ {
						if p.Scale[c] != 0 {
							want += qx[l] * quantRef(w[c*tc.d+l], p.Scale[c])
						}
						exact += float64(xr[l]) * w[c*tc.d+l]
					}
					got := dst[i*(tc.c+3)+c]
					if int64(got) != want {
						t.Fatalf("%+v asm=%v [%d,%d]: %d, want %d", tc, asm, i, c, got, want)
					}
					approx := s * p.Scale[c] * float64(got)
					bound := math.Sqrt(rs)*p.Norm[c] + (math.Sqrt(ss)+math.Sqrt(rs))*p.ResidNorm[c]
					if math.Abs(exact-approx) > bound*(1+1e-9)+1e-12 {
						t.Fatalf("%+v [%d,%d]: |%v − %v| above the bound %v", tc, i, c, exact, approx, bound)
					}
				}
			}
		})
		for _, p := range paths {
			if a, ok := outs[p.name]; ok {
				for i := range a {
					if a[i] != outs["go-"+p.name][i] {
						t.Fatalf("%+v: %s and its Go twin differ at %d", tc, p.name, i)
					}
				}
			}
		}
	}
}

// TestInt8Degenerate: rows the int8 path cannot bound are flagged, not
// quantised; classes it cannot bound make QuantizeClasses return nil.
func TestInt8Degenerate(t *testing.T) {
	const d = 40
	w := make([]float64, 2*d)
	for i := range w {
		w[i] = float64(i%5) - 2
	}
	rows := [][]float32{make([]float32, d), make([]float32, d), make([]float32, d), make([]float32, d), make([]float32, d)}
	rows[1][3] = float32(math.NaN())
	rows[2][7] = float32(math.Inf(-1))
	rows[3][0] = 1e-20
	for l := range rows[4] {
		rows[4][l] = 1e20 // Σx² overflows float32
	}
	var x []float32
	for _, r := range rows {
		x = append(x, r...)
	}
	eachConv(t, func(t *testing.T, asm string) {
		p := QuantizeClasses(w, 2, d)
		st := make([]RowQuant, len(rows))
		p.Dot(make([]int32, 2*len(rows)), 2, st, x, len(rows), p.NewScratch())
		for i, s := range st {
			if s.OK {
				t.Errorf("%s: degenerate row %d quantised: %+v", asm, i, s)
			}
		}
	})
	for _, bad := range []float64{math.NaN(), math.Inf(1), 1e200, 1e-200} {
		w2 := append([]float64(nil), w...)
		w2[d+1] = bad
		if bad == 1e-200 { // only a row whose largest value is tiny
			for l := d; l < 2*d; l++ {
				w2[l] = bad
			}
		}
		if QuantizeClasses(w2, 2, d) != nil {
			t.Errorf("class value %v accepted", bad)
		}
	}
	if QuantizeClasses(make([]float64, 2*d), 2, d) == nil {
		t.Error("classes of zeros refused")
	}
}

// TestBounds: the assembly intervals equal the Go ones to a few ulps, the
// maximum is exact, and −Inf padding never wins.
func TestBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{8, 16, 104, 256} {
		dots := make([]int32, n)
		scale, norm, resid, bias := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
		for j := range dots {
			dots[j] = int32(r.IntN(1<<24) - 1<<23)
			scale[j], norm[j], resid[j], bias[j] = r.Float64(), r.Float64(), 0.01*r.Float64(), r.NormFloat64()
		}
		scale[n-1], bias[n-1] = 0, math.Inf(-1)
		p := [4]float64{1e-4, 0.3, 2, 1e-9}
		type res struct {
			lo, hi []float64
			best   float64
		}
		got := map[bool]res{}
		var avx2 *res
		withAsm(t, func(t *testing.T, asm bool) {
			lo, hi := make([]float64, n), make([]float64, n)
			got[asm] = res{lo, hi, Bounds(dots, scale, norm, resid, bias, &p, lo, hi)}
			if asm && use512 && useAVX2i8 {
				use512 = false
				lo, hi := make([]float64, n), make([]float64, n)
				avx2 = &res{lo, hi, Bounds(dots, scale, norm, resid, bias, &p, lo, hi)}
				use512 = true
			}
		})
		g := got[false]
		if g.lo[n-1] != math.Inf(-1) || g.hi[n-1] != math.Inf(-1) {
			t.Fatalf("padding gives [%v, %v]", g.lo[n-1], g.hi[n-1])
		}
		want := math.Inf(-1)
		for _, v := range g.lo {
			want = max(want, v)
		}
		if g.best != want {
			t.Fatalf("best %v, want %v", g.best, want)
		}
		if avx2 != nil {
			a := got[true]
			for j := range a.lo {
				if a.lo[j] != avx2.lo[j] || a.hi[j] != avx2.hi[j] {
					t.Fatalf("n=%d class %d: AVX-512 [%v, %v], AVX2 [%v, %v]", n, j, a.lo[j], a.hi[j], avx2.lo[j], avx2.hi[j])
				}
			}
		}
		if a, ok := got[true]; ok {
			for j := 0; j < n-1; j++ {
				if math.Abs(a.lo[j]-g.lo[j]) > 1e-14*math.Abs(g.lo[j])+1e-300 || math.Abs(a.hi[j]-g.hi[j]) > 1e-14*math.Abs(g.hi[j]) {
					t.Fatalf("n=%d class %d: asm [%v, %v], Go [%v, %v]", n, j, a.lo[j], a.hi[j], g.lo[j], g.hi[j])
				}
			}
			if math.Abs(a.best-g.best) > 1e-14*math.Abs(g.best) {
				t.Fatalf("best: asm %v, Go %v", a.best, g.best)
			}
		}
	}
}

// TestAtLeast: the candidate masks of every path agree with a plain loop,
// NaN never qualifies, padding (−Inf) never does.
func TestAtLeast(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{8, 16, 104, 256} {
		hi := make([]float64, n)
		for j := range hi {
			hi[j] = float64(r.IntN(7)) / 2 // many exact ties with the threshold
		}
		hi[0], hi[n-1] = math.NaN(), math.Inf(-1)
		for _, th := range []float64{-1, 0, 1.5, 3, 4} {
			var want []int
			for j, v := range hi {
				if v >= th {
					want = append(want, j)
				}
			}
			check := func(name string) {
				got := AtLeast(nil, hi, th, make([]uint8, n/8))
				if !slices.Equal(got, want) {
					t.Fatalf("%s n=%d t=%v: %v, want %v", name, n, th, got, want)
				}
			}
			z, a2 := use512, useAVX2i8
			if z {
				check("avx512")
			}
			use512 = false
			if a2 {
				check("avx2")
			}
			useAVX2i8 = false
			check("go")
			use512, useAVX2i8 = z, a2
		}
	}
}

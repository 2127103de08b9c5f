// Package kernel computes approximate float32 dot products of feature rows
// with a packed matrix of class rows: the inner loop of prototype-head
// prediction. heads uses the result only to shortlist classes and re-scores
// the shortlist in float64, so the kernels may sum in any order.
//
// On amd64 with AVX2 and FMA (detected at run time) the tiles are computed by
// Go assembly; elsewhere, or when built with the tag purego, by portable Go.
package kernel

// Lanes is the number of classes in one panel of a packed matrix.
const Lanes = 16

// Packed is a class matrix W [C, D] repacked for the kernels: panels of
// Lanes classes, each stored [D][Lanes] (so one row of features meets Lanes
// classes per loaded vector), the last panel padded with zero classes.
type Packed struct {
	C, D   int
	panels int
	data   []float32 // [panels][D][Lanes]
}

// Pack repacks w, row-major float32 [c, d], into panels.
func Pack(w []float32, c, d int) *Packed {
	np := (c + Lanes - 1) / Lanes
	p := &Packed{C: c, D: d, panels: np, data: make([]float32, np*d*Lanes)}
	for j := 0; j < c; j++ {
		panel := p.data[(j/Lanes)*d*Lanes:]
		lane := j % Lanes
		for l, v := range w[j*d : (j+1)*d] {
			panel[l*Lanes+lane] = v
		}
	}
	return p
}

// Stride is the row stride of the output of Dot: C rounded up to a whole
// number of panels.
func (p *Packed) Stride() int { return p.panels * Lanes }

// MR is the number of feature rows one assembly tile handles.
const MR = 6

// Dot writes dst[i*p.Stride()+j] = Σ_l x[i*D+l]·W[j,l] for the n rows of
// x [n, D] (float32 products, float32 sums in an unspecified order); the
// columns j ≥ C of each output row are zero padding. len(dst) must be at
// least n·Stride().
func Dot(dst []float32, x []float32, n int, p *Packed) {
	d, st := p.D, p.Stride()
	if len(x) < n*d || len(dst) < n*st {
		panic("kernel: short slice")
	}
	if n == 0 {
		return
	}
	if d == 0 {
		clear(dst[:n*st])
		return
	}
	if !useAsm {
		dotGo(dst, x, n, p)
		return
	}
	var tile [MR * Lanes]float32
	i := 0
	for ; i+MR <= n; i += MR {
		for q := 0; q < p.panels; q++ {
			w := p.data[q*d*Lanes:]
			dot6x16(d, &x[i*d], d, &w[0], &tile[0])
			for r := 0; r < MR; r++ {
				copy(dst[(i+r)*st+q*Lanes:(i+r)*st+(q+1)*Lanes], tile[r*Lanes:(r+1)*Lanes])
			}
		}
	}
	for ; i < n; i++ {
		for q := 0; q < p.panels; q++ {
			dot1x16(d, &x[i*d], &p.data[q*d*Lanes], &dst[i*st+q*Lanes])
		}
	}
}

// dotGo is the portable kernel: one row against one panel at a time, Lanes
// independent accumulators.
func dotGo(dst []float32, x []float32, n int, p *Packed) {
	d, st := p.D, p.Stride()
	for i := 0; i < n; i++ {
		xr := x[i*d : (i+1)*d]
		for q := 0; q < p.panels; q++ {
			w := p.data[q*d*Lanes : (q+1)*d*Lanes]
			var a [Lanes]float32
			for l, v := range xr {
				wl := w[l*Lanes : l*Lanes+Lanes : l*Lanes+Lanes]
				a[0] += v * wl[0]
				a[1] += v * wl[1]
				a[2] += v * wl[2]
				a[3] += v * wl[3]
				a[4] += v * wl[4]
				a[5] += v * wl[5]
				a[6] += v * wl[6]
				a[7] += v * wl[7]
				a[8] += v * wl[8]
				a[9] += v * wl[9]
				a[10] += v * wl[10]
				a[11] += v * wl[11]
				a[12] += v * wl[12]
				a[13] += v * wl[13]
				a[14] += v * wl[14]
				a[15] += v * wl[15]
			}
			copy(dst[i*st+q*Lanes:], a[:])
		}
	}
}

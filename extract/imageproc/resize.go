package imageproc

import (
	"fmt"
	"strings"
)

// Filter is a resampling filter of Pillow's Image.resize.
type Filter int

const (
	// Bicubic is Pillow's BICUBIC: the Keys cubic convolution kernel with
	// a = −0.5, support 2 input pixels (scaled by the reduction factor when
	// down-scaling, i.e. antialiased).
	Bicubic Filter = iota
	// Bilinear is Pillow's BILINEAR: the triangle kernel, support 1 (scaled
	// likewise).
	Bilinear
)

// String returns "bicubic" or "bilinear", the names used in manifests.
func (f Filter) String() string {
	switch f {
	case Bicubic:
		return "bicubic"
	case Bilinear:
		return "bilinear"
	}
	return fmt.Sprintf("Filter(%d)", int(f))
}

// ParseFilter maps a manifest interpolation name ("bicubic", "bilinear") to a
// Filter.
func ParseFilter(s string) (Filter, error) {
	switch strings.ToLower(s) {
	case "bicubic":
		return Bicubic, nil
	case "bilinear":
		return Bilinear, nil
	}
	return 0, fmt.Errorf("interpolation %q unknown (use bicubic or bilinear)", s)
}

func (f Filter) support() float64 {
	if f == Bilinear {
		return 1
	}
	return 2
}

// eval is the filter kernel at x (in filter units). The explicit float64
// conversions forbid fused multiply-adds, which would change the last bit on
// arm64 and break parity with Pillow's C, which never fuses on x86-64.
func (f Filter) eval(x float64) float64 {
	if x < 0 {
		x = -x
	}
	if f == Bilinear {
		if x < 1 {
			return 1 - x
		}
		return 0
	}
	// Keys cubic, a = −0.5: (a+2)|x|³ − (a+3)|x|² + 1 on [0,1),
	// a|x|³ − 5a|x|² + 8a|x| − 4a on [1,2), evaluated in Horner form.
	const a = -0.5
	if x < 1 {
		t := float64((a+2)*x) - (a + 3)
		return float64(float64(t*x)*x) + 1
	}
	if x < 2 {
		t := float64((x-5)*x) + 8
		t = float64(t*x) - 4
		return t * a
	}
	return 0
}

// precisionBits is the fixed-point precision of the 8-bit resampler:
// 32 bits − 8 for the pixel − 2 for overshoot of the negative lobes.
const precisionBits = 32 - 8 - 2

// coeffs are the fixed-point weights of one axis: output index i reads n[i]
// input samples starting at first[i], with weights k[i*ksize : i*ksize+n[i]].
type coeffs struct {
	ksize int
	first []int32
	n     []int32
	k     []int32
}

// makeCoeffs computes the weights for resampling inSize samples to outSize,
// in double precision, normalised to sum 1, then rounded half away from zero
// to fixed point with precisionBits fraction bits.
func makeCoeffs(inSize, outSize int, f Filter) coeffs {
	scale := float64(inSize) / float64(outSize)
	filterScale := scale
	if filterScale < 1 {
		filterScale = 1
	}
	support := f.support() * filterScale
	ksize := int(ceil(support))*2 + 1
	c := coeffs{
		ksize: ksize,
		first: make([]int32, outSize),
		n:     make([]int32, outSize),
		k:     make([]int32, outSize*ksize),
	}
	w := make([]float64, ksize)
	ss := 1 / filterScale
	for xx := 0; xx < outSize; xx++ {
		center := (float64(xx) + 0.5) * scale
		// Truncation towards zero of (value + 0.5), as C's (int) cast does.
		xmin := int(center - support + 0.5)
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		n := xmax - xmin
		if n > ksize {
			n = ksize // cannot happen; guards the slice below
		}
		sum := 0.0
		for x := 0; x < n; x++ {
			v := f.eval((float64(x+xmin) - center + 0.5) * ss)
			w[x] = v
			sum += v
		}
		kk := c.k[xx*ksize : xx*ksize+ksize]
		for x := 0; x < n; x++ {
			v := w[x]
			if sum != 0 {
				v /= sum
			}
			v = float64(v * (1 << precisionBits))
			if v < 0 {
				kk[x] = int32(v - 0.5)
			} else {
				kk[x] = int32(v + 0.5)
			}
		}
		c.first[xx] = int32(xmin)
		c.n[xx] = int32(n)
	}
	return c
}

func ceil(x float64) float64 {
	t := float64(int64(x))
	if t < x {
		t++
	}
	return t
}

// clip8 turns a fixed-point accumulator into a byte, clamping to 0..255.
func clip8(s int32) uint8 {
	v := s >> precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// Resize resamples src to w×h with filter exactly as Pillow 9's
// Image.resize((w, h), filter) does for an "RGB" image: a horizontal pass,
// then a vertical pass, each with antialiased fixed-point weights and
// rounding to 8 bits in between. It returns a new image; src is not changed.
// w and h must be positive.
func Resize(src *RGB, w, h int, filter Filter) *RGB {
	dst := &RGB{}
	var tmp []uint8
	resizeWindow(dst, &tmp, src, w, h, 0, 0, w, h, filter)
	return dst
}

// resizeWindow computes the window [x0,x0+cw)×[y0,y0+ch) of src resized to
// w×h into dst (cw×ch), using *tmp as scratch. The pixels are exactly those
// of Resize(src, w, h)'s window; only the work outside it is skipped.
func resizeWindow(dst *RGB, tmp *[]uint8, src *RGB, w, h, x0, y0, cw, ch int, filter Filter) {
	dst.resize(cw, ch)
	needH := w != src.W
	needV := h != src.H
	if !needH && !needV {
		copyWindow(dst, src, x0, y0)
		return
	}
	// Rows of src the vertical pass reads (all of the window's rows when
	// there is no vertical pass).
	var cv coeffs
	rowFirst, rowEnd := y0, y0+ch
	if needV {
		cv = makeCoeffs(src.H, h, filter)
		rowFirst = int(cv.first[y0])
		rowEnd = 0
		for yy := y0; yy < y0+ch; yy++ {
			if e := int(cv.first[yy] + cv.n[yy]); e > rowEnd {
				rowEnd = e
			}
		}
	}
	// Horizontal pass into an intermediate image of cw × (rowEnd−rowFirst),
	// or straight into dst when there is no vertical pass.
	mid := src
	midOff := 0 // row of src that mid's row 0 is
	if needH {
		ch0 := makeCoeffs(src.W, w, filter)
		rows := rowEnd - rowFirst
		var m *RGB
		if needV {
			n := cw * rows * 3
			if cap(*tmp) < n {
				*tmp = make([]uint8, n)
			}
			m = &RGB{W: cw, H: rows, Pix: (*tmp)[:n]}
		} else {
			m = dst
		}
		horizontal(m, src, rowFirst, rows, &ch0, x0, cw)
		if !needV {
			return
		}
		mid, midOff = m, rowFirst
	} else {
		// No horizontal pass: the vertical pass reads src's columns x0…
		midOff = 0
	}
	colOff := 0
	if !needH {
		colOff = x0
	}
	vertical(dst, mid, midOff, colOff, &cv, y0, ch)
}

func copyWindow(dst, src *RGB, x0, y0 int) {
	for y := 0; y < dst.H; y++ {
		s := ((y+y0)*src.W + x0) * 3
		copy(dst.Pix[y*dst.W*3:(y+1)*dst.W*3], src.Pix[s:s+dst.W*3])
	}
}

// horizontal resamples rows [row0, row0+rows) of src along x into dst
// (cw × rows), output columns x0 … x0+cw−1.
func horizontal(dst, src *RGB, row0, rows int, c *coeffs, x0, cw int) {
	const half = 1 << (precisionBits - 1)
	for y := 0; y < rows; y++ {
		in := src.Pix[(y+row0)*src.W*3 : (y+row0+1)*src.W*3]
		out := dst.Pix[y*cw*3 : (y+1)*cw*3]
		for xx := 0; xx < cw; xx++ {
			o := xx + x0
			first, n := int(c.first[o]), int(c.n[o])
			k := c.k[o*c.ksize : o*c.ksize+n]
			p := in[first*3 : (first+n)*3]
			s0, s1, s2 := int32(half), int32(half), int32(half)
			for i, kv := range k {
				q := p[i*3 : i*3+3 : i*3+3]
				s0 += int32(q[0]) * kv
				s1 += int32(q[1]) * kv
				s2 += int32(q[2]) * kv
			}
			out[xx*3] = clip8(s0)
			out[xx*3+1] = clip8(s1)
			out[xx*3+2] = clip8(s2)
		}
	}
}

// vertical resamples src along y into dst (dst.W × ch), output rows
// y0 … y0+ch−1; src's row 0 is input row srcOff and its column 0 is input
// column colOff.
func vertical(dst, src *RGB, srcOff, colOff int, c *coeffs, y0, ch int) {
	const half = 1 << (precisionBits - 1)
	rowLen := dst.W * 3
	acc := make([]int32, rowLen)
	for yy := 0; yy < ch; yy++ {
		o := yy + y0
		first, n := int(c.first[o])-srcOff, int(c.n[o])
		k := c.k[o*c.ksize : o*c.ksize+n]
		for x := range acc {
			acc[x] = half
		}
		for i, kv := range k {
			s := ((first+i)*src.W + colOff) * 3
			in := src.Pix[s : s+rowLen]
			for x, v := range in {
				acc[x] += int32(v) * kv
			}
		}
		out := dst.Pix[yy*rowLen : (yy+1)*rowLen]
		for x, s := range acc {
			out[x] = clip8(s)
		}
	}
}

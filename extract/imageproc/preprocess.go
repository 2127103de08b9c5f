package imageproc

import (
	"fmt"
	"image"
	"sync"

	"github.com/cl-dev/cl/models"
)

// ShorterSideSize is torchvision 0.14's Resize(size) output for a w×h image:
// the shorter side becomes size and the longer int(size·long/short)
// (truncated); a square stays square. It returns the new width and height.
func ShorterSideSize(w, h, size int) (nw, nh int) {
	short, long := w, h
	if w > h {
		short, long = h, w
	}
	// Python's size * long / short: exact integer product, then one
	// correctly rounded float64 division, then truncation.
	newLong := int(float64(size*long) / float64(short))
	if w <= h {
		return size, newLong
	}
	return newLong, size
}

// CenterCropOffset is torchvision 0.14's CenterCrop offset along one axis of
// length n for a crop of c: int(round((n − c) / 2.0)) with Python's round
// (half to even) when n ≥ c. When n < c torchvision pads with zeros, putting
// (c − n) // 2 before the image; the offset is then −(c − n)/2 (negative).
func CenterCropOffset(n, c int) int {
	if n < c {
		return -((c - n) / 2)
	}
	d := n - c
	t := d / 2
	if d%2 == 1 && t%2 == 1 { // x.5 rounds to the even neighbour
		t++
	}
	return t
}

// Preprocessor turns images into a model's float32 input following a
// models.Preprocess: convert to RGB (Pillow), resize the shorter side
// (Pillow's antialiased resampler), centre-crop Crop×Crop (torchvision,
// zero padding when the image is smaller), scale to [0,1], then
// (x − Mean)/Std per channel when set. It is safe for concurrent use.
type Preprocessor struct {
	p      models.Preprocess
	filter Filter
	// lut[c][v] is the output value of channel c for byte v, computed with
	// the same float32 operations torchvision does (v/255, −mean, /std).
	lut  [3][256]float32
	pool sync.Pool // *scratch
}

type scratch struct {
	rgb, out RGB
	tmp      []uint8
}

// maxPooled is the largest buffer a scratch keeps between images (16 MiB,
// a 2,300 × 2,300 RGB image): one very large image must not leave its RGB
// copy held by the pool for the rest of a run.
const maxPooled = 16 << 20

// put returns s to the pool without its oversized buffers.
func (pp *Preprocessor) put(s *scratch) {
	if cap(s.rgb.Pix) > maxPooled {
		s.rgb.Pix = nil
	}
	if cap(s.tmp) > maxPooled {
		s.tmp = nil
	}
	pp.pool.Put(s)
}

// NewPreprocessor validates p and builds a Preprocessor.
func NewPreprocessor(p models.Preprocess) (*Preprocessor, error) {
	if p.Interpolation == "" && p.Resize == 0 {
		p.Interpolation = "bicubic" // unused without a resize
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	f, err := ParseFilter(p.Interpolation)
	if err != nil {
		return nil, err
	}
	pp := &Preprocessor{p: p, filter: f}
	for c := 0; c < 3; c++ {
		for v := 0; v < 256; v++ {
			x := float32(v) / 255
			if len(p.Mean) == 3 {
				x = float32(x-p.Mean[c]) / p.Std[c]
			}
			pp.lut[c][v] = x
		}
	}
	pp.pool.New = func() any { return new(scratch) }
	return pp, nil
}

// Size is the side of the output in pixels (Crop): Apply writes
// 3·Size·Size float32 values.
func (pp *Preprocessor) Size() int { return pp.p.Crop }

// Len is the number of float32 values Apply writes: 3·Crop·Crop.
func (pp *Preprocessor) Len() int { return 3 * pp.p.Crop * pp.p.Crop }

// Preprocess returns the settings the Preprocessor carries out.
func (pp *Preprocessor) Preprocess() models.Preprocess { return pp.p }

// Apply converts img to RGB as Pillow's convert("RGB") does (see ToRGB) and
// writes the preprocessed CHW tensor [3, Crop, Crop] into dst[:Len()].
func (pp *Preprocessor) Apply(img image.Image, dst []float32) error {
	if img == nil {
		return fmt.Errorf("preprocess: no image")
	}
	if b := img.Bounds(); b.Dx() <= 0 || b.Dy() <= 0 {
		return fmt.Errorf("preprocess: empty image %dx%d", b.Dx(), b.Dy())
	}
	if len(dst) < pp.Len() {
		return fmt.Errorf("preprocess: output has room for %d values, need 3×%d×%d = %d", len(dst), pp.p.Crop, pp.p.Crop, pp.Len())
	}
	s := pp.pool.Get().(*scratch)
	defer pp.put(s)
	if m, ok := img.(*RGB); ok {
		return pp.apply(s, m, dst)
	}
	toRGBInto(&s.rgb, img)
	return pp.apply(s, &s.rgb, dst)
}

// ApplyRGB writes the preprocessed CHW tensor [3, Crop, Crop] of an RGB
// image (raw pixels, e.g. CIFAR) into dst[:Len()]. src is not changed.
func (pp *Preprocessor) ApplyRGB(src *RGB, dst []float32) error {
	if src == nil || src.W <= 0 || src.H <= 0 || len(src.Pix) != src.W*src.H*3 {
		return fmt.Errorf("preprocess: invalid RGB image")
	}
	if len(dst) < pp.Len() {
		return fmt.Errorf("preprocess: output has room for %d values, need 3×%d×%d = %d", len(dst), pp.p.Crop, pp.p.Crop, pp.Len())
	}
	s := pp.pool.Get().(*scratch)
	defer pp.put(s)
	return pp.apply(s, src, dst)
}

// Crop returns the RGB image after resize and centre crop (before the
// float conversion): what torchvision's Resize + CenterCrop give as a PIL
// image.
func (pp *Preprocessor) Crop(img image.Image) *RGB {
	src, ok := img.(*RGB)
	if !ok {
		src = ToRGB(img)
	}
	out := &RGB{}
	var tmp []uint8
	pp.crop(out, &tmp, src)
	return out
}

// crop resizes (only the window that survives the crop) and crops src into
// out, which is Crop×Crop; padding is zero.
func (pp *Preprocessor) crop(out *RGB, tmp *[]uint8, src *RGB) {
	c := pp.p.Crop
	w, h := src.W, src.H
	if pp.p.Resize > 0 {
		w, h = ShorterSideSize(src.W, src.H, pp.p.Resize)
	}
	x0, y0 := CenterCropOffset(w, c), CenterCropOffset(h, c)
	// The part of the crop window inside the resized image.
	ix0, iy0 := max(x0, 0), max(y0, 0)
	ix1, iy1 := min(x0+c, w), min(y0+c, h)
	if ix0 == x0 && iy0 == y0 && ix1 == x0+c && iy1 == y0+c {
		if w == src.W && h == src.H {
			out.resize(c, c)
			copyWindow(out, src, x0, y0)
			return
		}
		resizeWindow(out, tmp, src, w, h, x0, y0, c, c, pp.filter)
		return
	}
	// Padding: resize the visible part, then place it in a zeroed square.
	var vis RGB
	if w == src.W && h == src.H {
		vis.resize(ix1-ix0, iy1-iy0)
		copyWindow(&vis, src, ix0, iy0)
	} else {
		resizeWindow(&vis, tmp, src, w, h, ix0, iy0, ix1-ix0, iy1-iy0, pp.filter)
	}
	out.resize(c, c)
	clear(out.Pix)
	for y := 0; y < vis.H; y++ {
		d := ((y+iy0-y0)*c + (ix0 - x0)) * 3
		copy(out.Pix[d:d+vis.W*3], vis.Pix[y*vis.W*3:(y+1)*vis.W*3])
	}
}

func (pp *Preprocessor) apply(s *scratch, src *RGB, dst []float32) error {
	pp.crop(&s.out, &s.tmp, src)
	n := pp.p.Crop * pp.p.Crop
	r, g, b := dst[:n], dst[n:2*n], dst[2*n:3*n]
	pix := s.out.Pix[:3*n]
	for i := 0; i < n; i++ {
		p := pix[3*i : 3*i+3 : 3*i+3]
		r[i] = pp.lut[0][p[0]]
		g[i] = pp.lut[1][p[1]]
		b[i] = pp.lut[2][p[2]]
	}
	return nil
}

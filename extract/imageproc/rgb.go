// Package imageproc decodes images and turns them into model input tensors
// exactly as the Python reference pipeline does: Pillow 9's
// Image.open(f).convert("RGB"), torchvision 0.14's Resize (Pillow's
// antialiased resampler) and CenterCrop, ToTensor and Normalize
// (docs/METHODS.md §3.3, docs/PREPROCESSING.md).
//
// Resampling and the conversion of every PNG, GIF, BMP and lossless WebP
// mode to RGB are bit-exact with Pillow. Baseline JPEG differs from libjpeg
// only by the inverse DCT (Go's image/jpeg), measured at a few levels per
// pixel before the resize and at most about 1/255 after it; the chroma
// upsampling and colour conversion follow libjpeg-turbo exactly.
package imageproc

import (
	"image"
	"image/color"
)

// RGB is a packed 8-bit RGB image: pixel (x, y) channel c (0 = R, 1 = G,
// 2 = B) is Pix[(y*W+x)*3+c]. It is what Pillow calls mode "RGB". *RGB
// implements image.Image (opaque).
type RGB struct {
	// W and H are the width and height in pixels.
	W, H int
	// Pix holds W*H*3 bytes, rows top to bottom, no padding.
	Pix []uint8
}

// NewRGB allocates a black w×h image.
func NewRGB(w, h int) *RGB {
	return &RGB{W: w, H: h, Pix: make([]uint8, w*h*3)}
}

// ColorModel implements image.Image (color.RGBAModel, always opaque).
func (m *RGB) ColorModel() color.Model { return color.RGBAModel }

// Bounds implements image.Image: (0,0)–(W,H).
func (m *RGB) Bounds() image.Rectangle { return image.Rect(0, 0, m.W, m.H) }

// At implements image.Image; outside the bounds it is transparent black.
func (m *RGB) At(x, y int) color.Color {
	if x < 0 || y < 0 || x >= m.W || y >= m.H {
		return color.RGBA{}
	}
	i := (y*m.W + x) * 3
	return color.RGBA{m.Pix[i], m.Pix[i+1], m.Pix[i+2], 255}
}

// resize makes m a w×h image, reusing Pix's storage when it is big enough.
// The pixel values are left undefined.
func (m *RGB) resize(w, h int) {
	m.W, m.H = w, h
	n := w * h * 3
	if cap(m.Pix) < n {
		m.Pix = make([]uint8, n)
	}
	m.Pix = m.Pix[:n]
}

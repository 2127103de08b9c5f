package imageproc

import (
	"image"
	"image/color"
)

// ToRGB converts img to packed 8-bit RGB the way Pillow 9's
// Image.open(f).convert("RGB") does for the same file:
//
//   - grey (L, 1-, 2-, 4-bit): the value is copied to R, G and B;
//   - 16-bit grey (Pillow mode "I"): values above 255 are clipped to 255,
//     not scaled (Pillow's I → RGB conversion clips);
//   - 16-bit RGB / RGBA / grey+alpha: the high byte of each sample;
//   - alpha (LA, RGBA, tRNS, WebP alpha): dropped, no compositing; the
//     colour samples are taken as stored (straight, not premultiplied);
//   - palette: looked up, transparency ignored;
//   - CMYK (Adobe JPEG): Pillow's cmyk2rgb, R = (255−K) − round((255−K)·C/255);
//   - YCbCr (JPEG): libjpeg-turbo's "fancy" triangle upsampling of 4:2:0,
//     4:2:2 and 4:4:0 chroma and its fixed-point ITU-R BT.601 full-range
//     conversion.
//
// Images this package decodes arrive with the sample values as stored in
// the file; a premultiplied *image.RGBA with translucent pixels from
// elsewhere is un-premultiplied first (it has lost the stored values). The
// result is a new image of img.Bounds().Size().
func ToRGB(img image.Image) *RGB {
	dst := &RGB{}
	toRGBInto(dst, img)
	return dst
}

// toRGBInto is ToRGB writing into dst, reusing dst.Pix's storage.
func toRGBInto(dst *RGB, img image.Image) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	dst.resize(w, h)
	out := dst.Pix
	switch m := img.(type) {
	case *RGB:
		copy(out, m.Pix)
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := m.Pix[(y)*m.Stride : y*m.Stride+w]
			o := out[y*w*3 : (y+1)*w*3]
			for x, v := range row {
				o[3*x], o[3*x+1], o[3*x+2] = v, v, v
			}
		}
	case *image.Gray16:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+2*w]
			o := out[y*w*3 : (y+1)*w*3]
			for x := 0; x < w; x++ {
				v := uint8(255)
				if row[2*x] == 0 {
					v = row[2*x+1]
				}
				o[3*x], o[3*x+1], o[3*x+2] = v, v, v
			}
		}
	case *image.NRGBA:
		copy4to3(out, m.Pix, m.Stride, w, h, 4)
	case *image.NRGBA64:
		copy4to3(out, m.Pix, m.Stride, w, h, 8)
	case *image.RGBA64:
		// Only opaque RGBA64 images come from the decoders (16-bit RGB PNG).
		copy4to3(out, m.Pix, m.Stride, w, h, 8)
	case *image.RGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+4*w]
			o := out[y*w*3 : (y+1)*w*3]
			for x := 0; x < w; x++ {
				p := row[4*x : 4*x+4 : 4*x+4]
				if p[3] == 255 || p[3] == 0 {
					o[3*x], o[3*x+1], o[3*x+2] = p[0], p[1], p[2]
					continue
				}
				c := color.NRGBAModel.Convert(color.RGBA{p[0], p[1], p[2], p[3]}).(color.NRGBA)
				o[3*x], o[3*x+1], o[3*x+2] = c.R, c.G, c.B
			}
		}
	case *image.Paletted:
		var lut [256][3]uint8
		for i, c := range m.Palette {
			if i >= 256 {
				break
			}
			lut[i] = straightRGB(c)
		}
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			o := out[y*w*3 : (y+1)*w*3]
			for x, v := range row {
				c := lut[v]
				o[3*x], o[3*x+1], o[3*x+2] = c[0], c[1], c[2]
			}
		}
	case *image.CMYK:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+4*w]
			o := out[y*w*3 : (y+1)*w*3]
			for x := 0; x < w; x++ {
				p := row[4*x : 4*x+4 : 4*x+4]
				nk := 255 - int(p[3])
				o[3*x] = clampByte(nk - mulDiv255(int(p[0]), nk))
				o[3*x+1] = clampByte(nk - mulDiv255(int(p[1]), nk))
				o[3*x+2] = clampByte(nk - mulDiv255(int(p[2]), nk))
			}
		}
	case *image.YCbCr:
		ycbcrToRGB(out, m)
	case *image.NYCbCrA:
		ycbcrToRGB(out, &m.YCbCr)
	default:
		i := 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := straightRGB(img.At(x, y))
				out[i], out[i+1], out[i+2] = c[0], c[1], c[2]
				i += 3
			}
		}
	}
}

// copy4to3 copies the first three samples' high bytes of w×h pixels of
// bpp bytes (4: 8-bit RGBA, 8: 16-bit big-endian RGBA).
func copy4to3(out, pix []uint8, stride, w, h, bpp int) {
	step := bpp / 4
	for y := 0; y < h; y++ {
		row := pix[y*stride : y*stride+bpp*w]
		o := out[y*w*3 : (y+1)*w*3]
		for x := 0; x < w; x++ {
			p := row[bpp*x:]
			o[3*x], o[3*x+1], o[3*x+2] = p[0], p[step], p[2*step]
		}
	}
}

// straightRGB returns the stored (non-premultiplied) 8-bit RGB of c.
func straightRGB(c color.Color) [3]uint8 {
	switch v := c.(type) {
	case color.NRGBA:
		return [3]uint8{v.R, v.G, v.B}
	case color.RGBA:
		if v.A == 255 || v.A == 0 {
			return [3]uint8{v.R, v.G, v.B}
		}
	case color.Gray:
		return [3]uint8{v.Y, v.Y, v.Y}
	case color.NRGBA64:
		return [3]uint8{uint8(v.R >> 8), uint8(v.G >> 8), uint8(v.B >> 8)}
	}
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	return [3]uint8{n.R, n.G, n.B}
}

// mulDiv255 is round(a·b/255) for a, b in 0..255, as Pillow's MULDIV255.
func mulDiv255(a, b int) int {
	t := a*b + 128
	return ((t >> 8) + t) >> 8
}

func clampByte(v int) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

package imageproc

import "image"

// webpToRGB converts a lossy WebP's YCbCr 4:2:0 planes (BT.601 limited
// range, VP8) as libwebp does by default: "fancy" upsampling of the chroma
// (9/16, 3/16, 3/16, 1/16 weights) and its 14-bit fixed-point conversion.
// Other images are returned unchanged.
func webpToRGB(img image.Image) image.Image {
	var m *image.YCbCr
	switch v := img.(type) {
	case *image.YCbCr:
		m = v
	case *image.NYCbCrA:
		m = &v.YCbCr
	default:
		return img
	}
	if m.SubsampleRatio != image.YCbCrSubsampleRatio420 {
		return img
	}
	w, h := m.Rect.Dx(), m.Rect.Dy()
	out := NewRGB(w, h)
	cw := (w + 1) / 2
	row := func(p []uint8, cy int) []uint8 {
		o := m.COffset(m.Rect.Min.X, m.Rect.Min.Y+2*cy)
		return p[o : o+cw]
	}
	yrow := func(y int) []uint8 {
		o := m.YOffset(m.Rect.Min.X, m.Rect.Min.Y+y)
		return m.Y[o : o+w]
	}
	dst := func(y int) []uint8 { return out.Pix[y*w*3 : (y+1)*w*3] }
	// First row: chroma row 0 against itself.
	u0, v0 := row(m.Cb, 0), row(m.Cr, 0)
	webpUpsamplePair(yrow(0), nil, u0, v0, u0, v0, dst(0), nil, w)
	// Row pairs (2k−1, 2k) between chroma rows k−1 and k.
	for y := 1; y+1 < h; y += 2 {
		k := (y + 1) / 2
		webpUpsamplePair(yrow(y), yrow(y+1), row(m.Cb, k-1), row(m.Cr, k-1), row(m.Cb, k), row(m.Cr, k), dst(y), dst(y+1), w)
	}
	// Even height: the last row uses the last chroma row against itself.
	if h > 1 && h%2 == 0 {
		k := (h - 1) / 2
		u, v := row(m.Cb, k), row(m.Cr, k)
		webpUpsamplePair(yrow(h-1), nil, u, v, u, v, dst(h-1), nil, w)
	}
	return out
}

// webpUpsamplePair writes one or two output rows: top (near chroma row
// tu/tv) and bottom (near chroma row cu/cv); bottom may be nil.
func webpUpsamplePair(topY, botY, tu, tv, cu, cv, topDst, botDst []uint8, n int) {
	last := (n - 1) >> 1
	tlU, tlV := int(tu[0]), int(tv[0])
	lU, lV := int(cu[0]), int(cv[0])
	webpPixel(topDst[0:3], topY[0], (3*tlU+lU+2)>>2, (3*tlV+lV+2)>>2)
	if botY != nil {
		webpPixel(botDst[0:3], botY[0], (3*lU+tlU+2)>>2, (3*lV+tlV+2)>>2)
	}
	for x := 1; x <= last; x++ {
		tU, tV := int(tu[x]), int(tv[x])
		U, V := int(cu[x]), int(cv[x])
		avgU := tlU + tU + lU + U + 8
		avgV := tlV + tV + lV + V + 8
		d12U, d12V := (avgU+2*(tU+lU))>>3, (avgV+2*(tV+lV))>>3
		d03U, d03V := (avgU+2*(tlU+U))>>3, (avgV+2*(tlV+V))>>3
		i0, i1 := 2*x-1, 2*x
		webpPixel(topDst[3*i0:3*i0+3], topY[i0], (d12U+tlU)>>1, (d12V+tlV)>>1)
		if i1 < n {
			webpPixel(topDst[3*i1:3*i1+3], topY[i1], (d03U+tU)>>1, (d03V+tV)>>1)
		}
		if botY != nil {
			webpPixel(botDst[3*i0:3*i0+3], botY[i0], (d03U+lU)>>1, (d03V+lV)>>1)
			if i1 < n {
				webpPixel(botDst[3*i1:3*i1+3], botY[i1], (d12U+U)>>1, (d12V+V)>>1)
			}
		}
		tlU, tlV, lU, lV = tU, tV, U, V
	}
	if n&1 == 0 {
		i := n - 1
		webpPixel(topDst[3*i:3*i+3], topY[i], (3*tlU+lU+2)>>2, (3*tlV+lV+2)>>2)
		if botY != nil {
			webpPixel(botDst[3*i:3*i+3], botY[i], (3*lU+tlU+2)>>2, (3*lV+tlV+2)>>2)
		}
	}
}

// webpPixel is libwebp's VP8YuvToRgb (14-bit fixed point, limited range).
func webpPixel(o []uint8, y uint8, u, v int) {
	mulHi := func(a, c int) int { return (a * c) >> 8 }
	yy := mulHi(int(y), 19077)
	o[0] = webpClip(yy + mulHi(v, 26149) - 14234)
	o[1] = webpClip(yy - mulHi(u, 6419) - mulHi(v, 13320) + 8708)
	o[2] = webpClip(yy + mulHi(u, 33050) - 17685)
}

func webpClip(v int) uint8 {
	if v&^((256<<6)-1) == 0 {
		return uint8(v >> 6)
	}
	if v < 0 {
		return 0
	}
	return 255
}

package imageproc

import "image"

// libjpeg's YCbCr → RGB tables (jdcolor.c semantics, 16 fraction bits):
// R = Y + round(1.402·Cr'), B = Y + round(1.772·Cb'),
// G = Y + ((−0.34414·Cb' − 0.71414·Cr' + ½) >> 16) with Cb' = Cb − 128.
var crR, cbB, crG, cbG [256]int32

func init() {
	const scaleBits = 16
	const half = 1 << (scaleBits - 1)
	fix := func(x float64) int32 { return int32(x*(1<<scaleBits) + 0.5) }
	for i := 0; i < 256; i++ {
		x := int32(i - 128)
		crR[i] = (fix(1.40200)*x + half) >> scaleBits
		cbB[i] = (fix(1.77200)*x + half) >> scaleBits
		crG[i] = -fix(0.71414) * x
		cbG[i] = -fix(0.34414)*x + half
	}
}

func clamp32(v int32) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// ycbcrToRGB converts a decoded JPEG's planes as libjpeg-turbo does with its
// defaults (do_fancy_upsampling): chroma subsampled 2× horizontally and/or
// vertically is upsampled with the 3/4–1/4 triangle filter and libjpeg's
// rounding biases, edges replicated; other ratios are replicated.
func ycbcrToRGB(out []uint8, m *image.YCbCr) {
	b := m.Rect
	w, h := b.Dx(), b.Dy()
	if w == 0 || h == 0 {
		return
	}
	// Chroma plane size in samples, as libjpeg's downsampled_width/height.
	cw, chh := w, h
	hs, vs := 1, 1
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio444:
	case image.YCbCrSubsampleRatio422:
		hs = 2
	case image.YCbCrSubsampleRatio420:
		hs, vs = 2, 2
	case image.YCbCrSubsampleRatio440:
		vs = 2
	case image.YCbCrSubsampleRatio411:
		hs = 4
	case image.YCbCrSubsampleRatio410:
		hs, vs = 4, 2
	}
	cw = (w + hs - 1) / hs
	chh = (h + vs - 1) / vs
	fancyH := hs == 2 && cw > 2
	fancyV := vs == 2 && hs <= 2 && (hs == 1 || cw > 2)
	// Chroma row cy as a slice of cw samples (sample x at index x).
	cbRowAt := func(cy int) []uint8 {
		o := m.COffset(b.Min.X, b.Min.Y+cy*vs)
		return m.Cb[o : o+cw]
	}
	crRowAt := func(cy int) []uint8 {
		o := m.COffset(b.Min.X, b.Min.Y+cy*vs)
		return m.Cr[o : o+cw]
	}
	// Per output row: vertically interpolated chroma rows, as 3·near + far
	// sums (fancyV) or plain samples.
	cbRow := make([]int32, cw)
	crRow := make([]int32, cw)
	cbUp := make([]uint8, w)
	crUp := make([]uint8, w)
	for y := 0; y < h; y++ {
		cy := y / vs
		if fancyV {
			// Nearest chroma row and the next nearest (above for even
			// output rows, below for odd), replicated at the edges.
			far := cy - 1
			if y%2 == 1 {
				far = cy + 1
			}
			far = max(0, min(far, chh-1))
			nb, nr := cbRowAt(cy), crRowAt(cy)
			fb, fr := cbRowAt(far), crRowAt(far)
			for x := 0; x < cw; x++ {
				cbRow[x] = 3*int32(nb[x]) + int32(fb[x])
				crRow[x] = 3*int32(nr[x]) + int32(fr[x])
			}
		} else {
			nb, nr := cbRowAt(cy), crRowAt(cy)
			for x := 0; x < cw; x++ {
				cbRow[x] = int32(nb[x])
				crRow[x] = int32(nr[x])
			}
		}
		switch {
		case fancyV && fancyH:
			upsampleH2V2(cbUp, cbRow, w)
			upsampleH2V2(crUp, crRow, w)
		case fancyV: // h1v2: bias 1 for the row above, 2 for the row below
			bias := int32(1)
			if y%2 == 1 {
				bias = 2
			}
			for x := 0; x < w; x++ {
				cbUp[x] = uint8((cbRow[x] + bias) >> 2)
				crUp[x] = uint8((crRow[x] + bias) >> 2)
			}
		case fancyH && vs == 1:
			upsampleH2V1(cbUp, cbRow, w)
			upsampleH2V1(crUp, crRow, w)
		default:
			for x := 0; x < w; x++ {
				cbUp[x] = uint8(cbRow[x/hs])
				crUp[x] = uint8(crRow[x/hs])
			}
		}
		yo := m.YOffset(b.Min.X, b.Min.Y+y)
		yRow := m.Y[yo : yo+w]
		o := out[y*w*3 : (y+1)*w*3]
		cbU, crU := cbUp[:w], crUp[:w]
		for x, yv := range yRow {
			yy, cb, cr := int32(yv), cbU[x], crU[x]
			p := o[3*x : 3*x+3 : 3*x+3]
			p[0] = clamp32(yy + crR[cr])
			p[1] = clamp32(yy + (cbG[cb]+crG[cr])>>16)
			p[2] = clamp32(yy + cbB[cb])
		}
	}
}

// upsampleH2V2 doubles a row of column sums s (3·near + far, 4× scale)
// horizontally: outputs (3·this + neighbour + 8 or 7) >> 4, the end columns
// using 4·this.
func upsampleH2V2(dst []uint8, s []int32, w int) {
	n := len(s)
	put := func(i int, v int32) {
		if i < w {
			dst[i] = uint8(v)
		}
	}
	put(0, (s[0]*4+8)>>4)
	put(1, (s[0]*3+s[1]+7)>>4)
	for c := 1; c < n-1; c++ {
		put(2*c, (s[c]*3+s[c-1]+8)>>4)
		put(2*c+1, (s[c]*3+s[c+1]+7)>>4)
	}
	put(2*(n-1), (s[n-1]*3+s[n-2]+8)>>4)
	put(2*(n-1)+1, (s[n-1]*4+7)>>4)
}

// upsampleH2V1 doubles a row of samples horizontally with the 3/4–1/4
// triangle: (3·this + left + 1) >> 2, (3·this + right + 2) >> 2, ends copied.
func upsampleH2V1(dst []uint8, s []int32, w int) {
	n := len(s)
	put := func(i int, v int32) {
		if i < w {
			dst[i] = uint8(v)
		}
	}
	put(0, s[0])
	put(1, (s[0]*3+s[1]+2)>>2)
	for c := 1; c < n-1; c++ {
		put(2*c, (s[c]*3+s[c-1]+1)>>2)
		put(2*c+1, (s[c]*3+s[c+1]+2)>>2)
	}
	put(2*(n-1), (s[n-1]*3+s[n-2]+1)>>2)
	put(2*(n-1)+1, s[n-1])
}

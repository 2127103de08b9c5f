package ljpeg

// This file is new (not from Go): an inverse DCT that gives the same
// samples as libjpeg's default "ISLOW" method, which Pillow uses, so that
// decoded planes match libjpeg(-turbo) bit for bit. It is the
// Loeffler–Ligtenberg–Moschytz factorisation with 13-bit fixed-point
// constants, 2 extra bits kept between the column and the row pass, and
// libjpeg's post-IDCT range limiting.

type block [blockSize]int32

const blockSize = 8 * 8

const (
	constBits = 13
	pass1Bits = 2
)

// Constants c·2^13 rounded, for c = √2·cos-derived rotation factors.
const (
	fix0_298631336 = 2446
	fix0_390180644 = 3196
	fix0_541196100 = 4433
	fix0_765366865 = 6270
	fix0_899976223 = 7373
	fix1_175875602 = 9633
	fix1_501321110 = 12299
	fix1_847759065 = 15137
	fix1_961570560 = 16069
	fix2_053119869 = 16819
	fix2_562915447 = 20995
	fix3_072711026 = 25172
)

// descale is x / 2^n rounded half up (arithmetic shift).
func descale(x int32, n uint) int32 { return (x + 1<<(n-1)) >> n }

// rangeLimit maps a descaled IDCT output v (masked to 10 bits, as libjpeg
// does) to a sample: v+128 clamped to 0..255 for v in −512..511.
func rangeLimit(v int32) uint8 {
	x := v & 1023
	switch {
	case x < 128:
		return uint8(x + 128)
	case x < 512:
		return 255
	case x < 896:
		return 0
	}
	return uint8(x - 896)
}

// idct8 is the 1-D 8-point transform shared by both passes: in[k] are the
// 8 inputs along one line (already scaled), the results are written
// through out(i, value) before descaling.
func idct8(i0, i1, i2, i3, i4, i5, i6, i7 int32) (o [8]int32) {
	// Even part.
	z2, z3 := i2, i6
	z1 := (z2 + z3) * fix0_541196100
	t2 := z1 + z3*(-fix1_847759065)
	t3 := z1 + z2*fix0_765366865
	t0 := (i0 + i4) << constBits
	t1 := (i0 - i4) << constBits
	t10, t13 := t0+t3, t0-t3
	t11, t12 := t1+t2, t1-t2
	// Odd part.
	t0, t1, t2, t3 = i7, i5, i3, i1
	z1 = t0 + t3
	z2 = t1 + t2
	z3 = t0 + t2
	z4 := t1 + t3
	z5 := (z3 + z4) * fix1_175875602
	t0 *= fix0_298631336
	t1 *= fix2_053119869
	t2 *= fix3_072711026
	t3 *= fix1_501321110
	z1 *= -fix0_899976223
	z2 *= -fix2_562915447
	z3 *= -fix1_961570560
	z4 *= -fix0_390180644
	z3 += z5
	z4 += z5
	t0 += z1 + z3
	t1 += z2 + z4
	t2 += z2 + z3
	t3 += z1 + z4
	o[0], o[7] = t10+t3, t10-t3
	o[1], o[6] = t11+t2, t11-t2
	o[2], o[5] = t12+t1, t12-t1
	o[3], o[4] = t13+t0, t13-t0
	return o
}

// idctISLOW transforms the dequantised coefficients b (natural order) and
// writes the 8×8 samples to dst with the given stride.
func idctISLOW(b *block, dst []byte, stride int) {
	var ws [blockSize]int32
	// Pass 1: columns, keeping pass1Bits extra bits.
	for c := 0; c < 8; c++ {
		if b[8+c] == 0 && b[16+c] == 0 && b[24+c] == 0 && b[32+c] == 0 &&
			b[40+c] == 0 && b[48+c] == 0 && b[56+c] == 0 {
			dc := b[c] << pass1Bits
			for r := 0; r < 8; r++ {
				ws[8*r+c] = dc
			}
			continue
		}
		o := idct8(b[c], b[8+c], b[16+c], b[24+c], b[32+c], b[40+c], b[48+c], b[56+c])
		for r := 0; r < 8; r++ {
			ws[8*r+c] = descale(o[r], constBits-pass1Bits)
		}
	}
	// Pass 2: rows, removing the pass-1 bits and the 8× DCT scale.
	for r := 0; r < 8; r++ {
		w := ws[8*r : 8*r+8 : 8*r+8]
		d := dst[r*stride : r*stride+8 : r*stride+8]
		o := idct8(w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7])
		for i := 0; i < 8; i++ {
			d[i] = rangeLimit(descale(o[i], constBits+pass1Bits+3))
		}
	}
}

//go:build !purego

package kernel

import "golang.org/x/sys/cpu"

var (
	// useFMA selects the AVX2+FMA accumulation of Dot.
	useFMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA
	// useVNNI selects the AVX-512 quantisation and VNNI products.
	useVNNI = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512VNNI
)

// dotAcc runs Dot's accumulation over blocks·Lanes elements of x and w.
//
//go:noescape
func dotAcc(acc *[Lanes]float64, x, w *float64, blocks int)

//go:noescape
func absMaxSumSqAsm(x *float32, n16 int) (m, ss float32)

//go:noescape
func quantRowAsm(x *float32, n16 int, inv, s float32, xu *uint8) (r2 float32)

//go:noescape
func dotU8x3x7(steps int, xu *uint8, ldx int, w *int8, acc *int32, lda int)

func absMaxSumSq(x []float32, n16 int) (m, ss float32) {
	if useVNNI {
		return absMaxSumSqAsm(&x[0], n16)
	}
	return absMaxSumSqGo(x, n16)
}

func quantRow(x []float32, n16 int, inv, s float32, xu []uint8) float32 {
	if useVNNI {
		_ = xu[n16*16-1]
		return quantRowAsm(&x[0], n16, inv, s, &xu[0])
	}
	return quantRowGo(x, n16, inv, s, xu)
}

func dotU8(steps int, xu []uint8, ldx int, w []int8, acc []int32, lda int) {
	if useVNNI {
		_ = xu[2*ldx+4*steps-1]
		_ = w[steps*GroupClasses*4-1]
		_ = acc[2*lda+GroupClasses-1]
		dotU8x3x7(steps, &xu[0], ldx, &w[0], &acc[0], lda)
		return
	}
	dotU8Go(steps, xu, ldx, w, acc, lda)
}

//go:noescape
func boundsAsm(n8 int, dots *int32, scale, norm, resid, bias *float64, p *[4]float64, lo, hi *float64) (best float64)

func bounds(dots []int32, scale, norm, resid, bias []float64, p *[4]float64, lo, hi []float64) float64 {
	if useVNNI && len(lo) > 0 {
		n := len(lo)
		_, _, _, _, _, _ = dots[n-1], scale[n-1], norm[n-1], resid[n-1], bias[n-1], hi[n-1]
		return boundsAsm(n/8, &dots[0], &scale[0], &norm[0], &resid[0], &bias[0], p, &lo[0], &hi[0])
	}
	return boundsGo(dots, scale, norm, resid, bias, p, lo, hi)
}

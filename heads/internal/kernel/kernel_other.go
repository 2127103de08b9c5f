//go:build purego || !(amd64 || arm64)

package kernel

// Without the assembly, Dot accumulates in Go and the int8 kernel is not
// offered (Int8Available reports false): portable int8 code is slower than
// exact float64 scoring.
var (
	useFMA     = false
	useVNNI    = false
	useAVX2i8  = false
	useAVXVNNI = false
	useSDOT    = false
)

var use512 = false

func dotAccAsm(acc *[Lanes]float64, x, w *float64, blocks int) { panic("unreachable") }

func absMaxSumSq(cv conv, x []float32) (m, ss float32) { return absMaxSumSqGo(x) }

func quantRow(cv conv, x []float32, inv, s float32, xu []uint8) float32 {
	return quantRowGo(cv, x, inv, s, xu)
}

func dotU8(cv conv, rows, panels, steps int, xu []uint8, ldx int, w []int8, acc []int32, lda int) {
	dotU8Go(cv.signed, rows, panels, steps, xu, ldx, w, acc, lda)
}

func bounds(dots []int32, scale, norm, resid, bias []float64, p *[4]float64, lo, hi []float64) float64 {
	return boundsGo(dots, scale, norm, resid, bias, p, lo, hi)
}

func atLeast(hi []float64, t float64, mask []uint8) { atLeastGo(hi, t, mask) }

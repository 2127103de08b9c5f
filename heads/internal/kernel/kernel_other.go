//go:build purego || !amd64

package kernel

// Without the assembly, Dot accumulates in Go and the int8 kernel is not
// offered (Int8Available reports false): portable int8 code is slower than
// exact float64 scoring.
var (
	useFMA  = false
	useVNNI = false
)

var use512 = false

func dotAccAsm(acc *[Lanes]float64, x, w *float64, blocks int) { panic("unreachable") }

func absMaxSumSq(x []float32, n16 int) (m, ss float32) { return absMaxSumSqGo(x, n16) }

func quantRow(x []float32, n16 int, inv, s float32, xu []uint8) float32 {
	return quantRowGo(x, n16, inv, s, xu)
}

func dotU8(panels, steps int, xu []uint8, ldx int, w []int8, acc []int32, lda int) {
	dotU8Go(panels, steps, xu, ldx, w, acc, lda)
}

func bounds(dots []int32, scale, norm, resid, bias []float64, p *[4]float64, lo, hi []float64) float64 {
	return boundsGo(dots, scale, norm, resid, bias, p, lo, hi)
}

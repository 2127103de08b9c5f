package vit

import "math"

// quantizeColumns quantizes a torch-layout Linear weight w [out,in] for
// DynamicQuantizeMatMul: it returns the int8 matrix B [in,out] (MatMul
// orientation, row-major, as raw bytes) and one symmetric scale per output
// column, scale_j = max_i |w_ji| / 127, so that w ≈ B·scale (zero point 0).
func quantizeColumns(w []float32, out, in int) (q []byte, scale []float32) {
	q = make([]byte, out*in)
	scale = make([]float32, out)
	for j := 0; j < out; j++ {
		row := w[j*in : (j+1)*in]
		var m float32
		for _, x := range row {
			if a := float32(math.Abs(float64(x))); a > m {
				m = a
			}
		}
		s := m / 127
		if s == 0 {
			s = 1
		}
		scale[j] = s
		for i, x := range row {
			v := math.RoundToEven(float64(x / s))
			if v > 127 {
				v = 127
			} else if v < -127 {
				v = -127
			}
			q[i*out+j] = byte(int8(v))
		}
	}
	return q, scale
}

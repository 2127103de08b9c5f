package heads

import (
	"math"
	"strings"
	"testing"
)

// TestAllFinite checks the bit test of allFinite against math.IsNaN and
// math.IsInf on every kind of float32 (NaNs with other payloads and signs,
// ±Inf, the largest finite value, subnormals, ±0) at every position of
// slices of lengths 1–11 (the unrolled body and the tail), and that
// checkFinite still names the first bad row and column.
func TestAllFinite(t *testing.T) {
	specials := []float32{
		float32(math.NaN()), math.Float32frombits(0x7f800001), math.Float32frombits(0xffc00000),
		math.Float32frombits(0x7fffffff), float32(math.Inf(1)), float32(math.Inf(-1)),
	}
	finite := []float32{0, float32(math.Copysign(0, -1)), math.MaxFloat32, -math.MaxFloat32,
		math.SmallestNonzeroFloat32, math.Float32frombits(0x7f7fffff), math.Float32frombits(0x00800000), 1, -2.5}
	for n := 1; n <= 11; n++ {
		x := make([]float32, n)
		for i := range x {
			x[i] = finite[i%len(finite)]
		}
		if !allFinite(x) {
			t.Fatalf("allFinite(%v) = false", x)
		}
		for pos := 0; pos < n; pos++ {
			for _, f := range finite {
				x[pos] = f
				if !allFinite(x) {
					t.Fatalf("allFinite with %v at %d of %d = false", f, pos, n)
				}
			}
			for _, s := range specials {
				x[pos] = s
				if allFinite(x) {
					t.Fatalf("allFinite with %v (%#x) at %d of %d = true", s, math.Float32bits(s), pos, n)
				}
			}
			x[pos] = 0
		}
	}
	x := make([]float32, 5*3)
	x[7] = float32(math.Inf(-1))
	x[11] = float32(math.NaN())
	err := checkFinite("lda", x, 3)
	if err == nil || !strings.Contains(err.Error(), "row 2 column 1 is -Inf") {
		t.Fatalf("checkFinite = %v, want row 2 column 1 is -Inf", err)
	}
}

package ljpeg

import "testing"

// A DC-only block decodes to a flat block of round(DC/8)+128, clamped; the
// JPEG-level parity with libjpeg-turbo is tested in package imageproc
// against Pillow goldens (0 difference on every test JPEG).
func TestISLOWFlat(t *testing.T) {
	for _, c := range []struct {
		dc   int32
		want uint8
	}{{0, 128}, {80, 138}, {-80, 118}, {84, 139} /* 10.5 rounds up */, {-1100, 0}, {1100, 255}} {
		var b block
		b[0] = c.dc
		dst := make([]byte, 64)
		idctISLOW(&b, dst, 8)
		for i, v := range dst {
			if v != c.want {
				t.Fatalf("DC %d: sample %d = %d, want %d", c.dc, i, v, c.want)
			}
		}
	}
}

func TestRangeLimit(t *testing.T) {
	for v, want := range map[int32]uint8{-512: 0, -129: 0, -128: 0, -1: 127, 0: 128, 127: 255, 511: 255} {
		if got := rangeLimit(v); got != want {
			t.Errorf("rangeLimit(%d) = %d, want %d", v, got, want)
		}
	}
}

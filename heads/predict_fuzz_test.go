package heads

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/cl-dev/cl/heads/internal/kernel"
)

// FuzzTopK: for any small data set the fuzzer makes (values of every
// magnitude, repeated rows, exact ties), TopK on every int8 path equals the
// ranking of Scores. The bytes give D, C, a value scale per class and the
// raw float32 values.
func FuzzTopK(f *testing.F) {
	seed := func(d, c byte, vals ...float32) []byte {
		b := []byte{d, c}
		for _, v := range vals {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
		return b
	}
	f.Add(seed(3, 2, 1, 2, 3, 1, 2, 3.0000002, 0.5, 0.5, 0.5))
	f.Add(seed(4, 3, 1e-10, 1, 0, 0, 0, 1, 1e10, 0, 5, 5, 5, 5, 1e-20, 2e-20, 3e-20, 0))
	f.Add(seed(2, 2, -1, 1, 1, -1, 3e-38, 1e-45, 1e30, -1e30))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		d, c := int(data[0])%40+1, int(data[1])%20+2
		var vals []float32
		for b := data[2:]; len(b) >= 4; b = b[4:] {
			v := math.Float32frombits(binary.LittleEndian.Uint32(b))
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || math.Abs(float64(v)) > 1e18 {
				v = 0
			}
			vals = append(vals, v)
		}
		if len(vals) < d {
			return
		}
		// Training rows: one per class, cycling through the values; test
		// rows: the training rows, their halves and their sums (ties and
		// near ties), plus the raw values again.
		row := func(i int) []float32 {
			r := make([]float32, d)
			for l := range r {
				r[l] = vals[(i*d+l)%len(vals)]
			}
			return r
		}
		var xtr, xte []float32
		var ytr []int
		for j := 0; j < c; j++ {
			xtr = append(xtr, row(j)...)
			ytr = append(ytr, j)
		}
		for j := 0; j < c; j++ {
			a, b := row(j), row(j+1)
			xte = append(xte, a...)
			for l := range a {
				xte = append(xte, a[l]/2)
			}
			for l := range a {
				xte = append(xte, a[l]+b[l])
			}
		}
		for _, p := range kernel.Paths() {
			restore, err := kernel.UsePath(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range []string{"simplecil", "ncm"} {
				h := newHead(t, m, nil)
				if err := h.Learn(xtr, ytr); err != nil {
					continue
				}
				s, err := h.Scores(xte)
				if err != nil {
					t.Fatal(err)
				}
				cls := len(h.Classes())
				for _, k := range []int{1, min(3, cls)} {
					got := make([]int, len(xte)/d*k)
					if err := h.(Ranker).TopK(xte, k, got); err != nil {
						t.Fatal(err)
					}
					want := rankOf(s, cls, k)
					for i := range got {
						if got[i] != want[i] {
							t.Fatalf("path %s %s d=%d c=%d k=%d: row %d rank %d: TopK %d, Scores %d (%v vs %v)",
								p, m, d, cls, k, i/k, i%k, got[i], want[i], s[i/k*cls+got[i]], s[i/k*cls+want[i]])
						}
					}
				}
			}
			restore()
		}
	})
}

package protocol

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cl-dev/cl/heads"
)

// scoresOnly hides a head's Ranker fast path, so Predict ranks Scores.
type scoresOnly struct{ heads.Head }

// TestPredictFastPathSame: Predict through heads.Ranker gives exactly the
// labels of Predict through Scores and a sort, top-1 and top-5.
func TestPredictFastPathSame(t *testing.T) {
	const d, c, n = 40, 12, 700
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, n*d)
	y := make([]int, n)
	for i := range y {
		y[i] = 3 * (i % c) // labels not equal to column indices
		for l := 0; l < d; l++ {
			x[i*d+l] = float32(r.NormFloat64() + float64((i%c)*l%5))
		}
	}
	for _, m := range []string{"simplecil", "ncm", "lda"} {
		spec, _ := heads.Lookup(m)
		h, err := spec.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Learn(x[:400*d], y[:400]); err != nil {
			t.Fatal(err)
		}
		if err := h.EndStage(); err != nil {
			t.Fatal(err)
		}
		if _, ok := h.(heads.Ranker); !ok {
			t.Fatalf("%s is not a heads.Ranker", m)
		}
		for _, k := range []int{1, 5} {
			fast, _, err := Predict(context.Background(), h, x, d, k, 300)
			if err != nil {
				t.Fatal(err)
			}
			slow, _, err := Predict(context.Background(), scoresOnly{h}, x, d, k, 300)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(fast, slow) {
				t.Fatalf("%s top-%d: fast path differs from Scores", m, k)
			}
		}
	}
}

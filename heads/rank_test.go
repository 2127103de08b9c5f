package heads

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// scoresOnly hides a head's Ranker fast path, so Rank sorts Scores.
type scoresOnly struct{ Head }

// rankData is n rows of dimension d around c class centres, with labels
// 3·class (labels that are not column indices).
func rankData(n, d, c int) ([]float32, []int) {
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, n*d)
	y := make([]int, n)
	for i := range y {
		y[i] = 3 * (i % c)
		for l := 0; l < d; l++ {
			x[i*d+l] = float32(r.NormFloat64() + float64((i%c)*l%5))
		}
	}
	return x, y
}

func learned(t *testing.T, method string, x []float32, y []int) Head {
	t.Helper()
	spec, ok := Lookup(method)
	if !ok {
		t.Fatalf("no method %s", method)
	}
	h, err := spec.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Learn(x, y); err != nil {
		t.Fatal(err)
	}
	if err := h.EndStage(); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestRankFastPathSame: Rank through Ranker gives exactly the labels of Rank
// through Scores and a stable sort (the definition), top-1 and top-5.
func TestRankFastPathSame(t *testing.T) {
	const d, c, n = 40, 12, 700
	x, y := rankData(n, d, c)
	for _, m := range []string{"simplecil", "ncm", "lda"} {
		h := learned(t, m, x[:400*d], y[:400])
		if _, ok := h.(Ranker); !ok {
			t.Fatalf("%s is not a Ranker", m)
		}
		for _, k := range []int{1, 5} {
			fast, kf, err := Rank(context.Background(), h, x, d, k, 300)
			if err != nil {
				t.Fatal(err)
			}
			slow, ks, err := Rank(context.Background(), scoresOnly{h}, x, d, k, 300)
			if err != nil {
				t.Fatal(err)
			}
			if kf != k || ks != k || !slices.Equal(fast, slow) {
				t.Fatalf("%s top-%d: fast path differs from Scores", m, k)
			}
			for _, l := range fast {
				if l%3 != 0 || l >= 3*c {
					t.Fatalf("%s: label %d is not one the head learned", m, l)
				}
			}
		}
	}
}

// TestRankParallelSame: splitting the rows across goroutines changes
// nothing, whatever the number of threads (chunks of ≥ 1024 rows, so 5000
// rows make up to 5 chunks, the last one short).
func TestRankParallelSame(t *testing.T) {
	const d, c, n = 16, 7, 5000
	x, y := rankData(n, d, c)
	for _, m := range []string{"ncm", "fecam"} {
		h := learned(t, m, x, y)
		want, _, err := Rank(context.Background(), h, x, d, 3, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, threads := range []int{0, 1, 2, 3, 8} {
			got, k, err := RankParallel(context.Background(), h, x, d, 3, threads)
			if err != nil {
				t.Fatal(err)
			}
			if k != 3 || !slices.Equal(got, want) {
				t.Fatalf("%s, %d threads: differs from Rank", m, threads)
			}
		}
	}
}

// TestRankClampsK: k beyond the number of classes ranks all of them, k < 1
// ranks one.
func TestRankClampsK(t *testing.T) {
	const d, c = 8, 4
	x, y := rankData(40, d, c)
	h := learned(t, "ncm", x, y)
	for _, tc := range []struct{ k, want int }{{0, 1}, {-3, 1}, {4, 4}, {9, 4}} {
		p, k, err := RankParallel(context.Background(), h, x, d, tc.k, 2)
		if err != nil || k != tc.want || len(p) != 40*tc.want {
			t.Errorf("k=%d: got k'=%d, %d labels, %v; want k'=%d", tc.k, k, len(p), err, tc.want)
		}
	}
}

// TestRankStopsWhenCancelled: a cancelled context stops the ranking with
// the context's error and no result.
func TestRankStopsWhenCancelled(t *testing.T) {
	const d, c, n = 8, 3, 5000
	x, y := rankData(n, d, c)
	h := learned(t, "ncm", x[:300*d], y[:300])
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if p, _, err := Rank(ctx, h, x, d, 1, 0); !errors.Is(err, context.Canceled) || p != nil {
		t.Errorf("Rank: %v", err)
	}
	if p, _, err := RankParallel(ctx, h, x, d, 1, 4); !errors.Is(err, context.Canceled) || p != nil {
		t.Errorf("RankParallel: %v", err)
	}
}

// TestRankRefusesBadShapes: rows that do not divide, or a head without
// classes, are errors naming the problem.
func TestRankRefusesBadShapes(t *testing.T) {
	x, y := rankData(10, 4, 2)
	h := learned(t, "ncm", x, y)
	if _, _, err := Rank(context.Background(), h, x[:7], 4, 1, 0); err == nil {
		t.Error("7 values of dimension 4 accepted")
	}
	spec, _ := Lookup("ncm")
	empty, _ := spec.New(nil)
	if _, _, err := RankParallel(context.Background(), empty, x, 4, 1, 0); err == nil {
		t.Error("a head without classes ranked")
	}
}

// TestRankByHand: NCM scores −‖x − μ_c‖², so for x = (1.2, 0) the order of
// the means (0,0), (1,0), (3,0) learned as labels 0, 5, 7 is 5, 0, 7, and
// for (2.9, 0) it is 7, 5, 0; k = 5 is clamped to the 3 classes.
func TestRankByHand(t *testing.T) {
	h := learned(t, "ncm", []float32{0, 0, 1, 0, 3, 0}, []int{0, 5, 7})
	got, k, err := Rank(context.Background(), h, []float32{1.2, 0, 2.9, 0}, 2, 5, 1)
	if err != nil || k != 3 {
		t.Fatal(k, err)
	}
	if want := []int{5, 0, 7, 7, 5, 0}; !slices.Equal(got, want) {
		t.Errorf("top-k %v, want %v", got, want)
	}
}

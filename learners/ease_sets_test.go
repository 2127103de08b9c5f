package learners

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// TestEASESetsPerCall: on the tiny ViT with three random adapter sets
// (non-zero up projections, so the subspaces differ), the features of a data
// set (10 images, eval batches of 4: the last one smaller) and the scores
// are the same with every set in one graph call (sets-per-call 3), in calls
// of two and one set (2), and one pass per set (1): within 1e-5 of the
// per-set passes. A cached set is not run again.
func TestEASESetsPerCall(t *testing.T) {
	env := tinyEnv(t)
	ctx := context.Background()
	d := patterns(3, 9)
	d = d.Subset([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	learner := func(per string) *EASE {
		e, err := NewEASE(env, map[string]string{"bottleneck": "8", "eval-batch": "4", "sets-per-call": per})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
		rng := rand.New(rand.NewPCG(5, 6))
		W := e.pe.w.Width
		e.names = d.Classes
		for i := 0; i < 3; i++ {
			var a easeAdapter
			for _, s := range e.specs {
				a = append(a, pUniform(rng, len(e.adapter.Init(s, rng)), -0.3, 0.3))
			}
			e.Adapters = append(e.Adapters, a)
			e.Protos = append(e.Protos, pUniform(rng, 4*W, -1, 1))
		}
		e.StageClasses = [][]int{{0, 1}, {2}, {3}}
		return e
	}
	ref := learner("1")
	want, err := ref.datasetFeatures(ctx, d, upTo(2), false)
	if err != nil {
		t.Fatal(err)
	}
	wantS, cols, err := ref.Scores(ctx, Eval{Images: d, N: d.Len()})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 3; i++ {
		if maxDiff32(want[0], want[i]) < 1e-3 {
			t.Fatalf("sets 0 and %d give the same features: the test does not tell them apart", i)
		}
	}
	for _, per := range []string{"3", "2"} {
		e := learner(per)
		got, err := e.datasetFeatures(ctx, d, upTo(2), false)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if len(got[i]) != len(want[i]) {
				t.Fatalf("sets-per-call %s, set %d: %d values, want %d", per, i, len(got[i]), len(want[i]))
			}
			df := maxDiff32(got[i], want[i])
			t.Logf("sets-per-call %s, set %d: max |Δ| = %.3g against its own pass", per, i, df)
			if df > 1e-5 {
				t.Errorf("sets-per-call %s, set %d: max |Δ| = %.3g, want ≤ 1e-5", per, i, df)
			}
		}
		gotS, gcols, err := e.Scores(ctx, Eval{Images: d, N: d.Len()})
		if err != nil {
			t.Fatal(err)
		}
		var ds float64
		for i := range gotS {
			ds = math.Max(ds, math.Abs(gotS[i]-wantS[i]))
		}
		if len(gcols) != len(cols) || ds > 1e-5 {
			t.Errorf("sets-per-call %s: scores differ by %.3g (columns %v, want %v)", per, ds, gcols, cols)
		}
		if e.sets == nil {
			t.Errorf("sets-per-call %s: the adapter-sets graph was not used", per)
		}
		// Cached: set 1's features are not recomputed.
		e.feats[d][1][0] = 42
		again, err := e.datasetFeatures(ctx, d, []int{1}, true)
		if err != nil || again[0][0] != 42 {
			t.Errorf("sets-per-call %s: cached set recomputed (err %v)", per, err)
		}
		e.DropCache(d)
		if _, ok := e.feats[d]; ok {
			t.Errorf("DropCache left the features of d")
		}
	}
}

func maxDiff32(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

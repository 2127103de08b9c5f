//go:build cgo

package vit

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestAdapterSets: BuildAdapterSets with K stacked adapter sets gives, for
// every set k, the features of Build's adapter graph run with set k alone
// (within 1e-5), for K = 1 and 3, both attention forms, adapters in every
// block and in later blocks only (the tiling point moves); random non-zero
// sets, so the sets' features differ.
func TestAdapterSets(t *testing.T) {
	_, rc := loadGolden(t)
	w, err := Load(stPath, rc.Heads)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 3
	S := w.Config.Image
	x := make([]float32, n*3*S*S)
	for i := range x {
		x[i] = rng.Float32()
	}
	for _, att := range []string{AttentionONNX, AttentionMHA} {
		for _, layers := range [][]int{nil, {1, 2}} {
			for _, K := range []int{1, 3} {
				t.Run(fmt.Sprintf("%s/layers%v/K%d", att, layers, K), func(t *testing.T) {
					o := Options{Variant: Adapter, Bottleneck: 4, Scale: 0.5, Layers: layers, Attention: att}
					one, err := Build(w, o)
					if err != nil {
						t.Fatal(err)
					}
					all, err := BuildAdapterSets(w, o)
					if err != nil {
						t.Fatal(err)
					}
					no, _ := NormalizedOptions(w.Config, o)
					specs := ParamSpecs(w.Config, no)
					sets := make([][][]float32, K) // [set][param] values
					stacked := make([]feed, len(specs))
					for p, s := range specs {
						size := 1
						for _, d := range s.Shape {
							size *= d
						}
						stacked[p] = feed{name: s.Name, shape: append([]int64{int64(K)}, toInt64(s.Shape)...)}
						for k := range sets {
							v := make([]float32, size)
							for i := range v {
								v[i] = (rng.Float32() - 0.5) * 0.6
							}
							sets[k] = append(sets[k], v)
							stacked[p].data = append(stacked[p].data, v...)
						}
					}
					img := feed{name: InputName, shape: []int64{n, 3, int64(S), int64(S)}, data: x}
					got := newSession(t, all, 1).run(t, append([]feed{img}, stacked...)...)[OutputName]
					W := w.Config.Width
					if len(got) != K*n*W {
						t.Fatalf("%d features, want K·N·W = %d", len(got), K*n*W)
					}
					single := newSession(t, one, 1)
					var prev []float32
					for k := range sets {
						feeds := []feed{img}
						for p, s := range specs {
							feeds = append(feeds, feed{name: s.Name, shape: toInt64(s.Shape), data: sets[k][p]})
						}
						want := single.run(t, feeds...)[OutputName]
						if d := maxAbsDiff(t, got[k*n*W:(k+1)*n*W], want); d > 1e-5 {
							t.Errorf("set %d: max |Δ| = %.3g against its own pass, want ≤ 1e-5", k, d)
						} else {
							t.Logf("set %d: max |Δ| = %.3g against its own pass", k, d)
						}
						if prev != nil && maxAbsDiff(t, prev, want) < 1e-3 {
							t.Errorf("sets %d and %d give the same features: the test does not tell the sets apart", k-1, k)
						}
						prev = want
					}
				})
			}
		}
	}
	if _, err := BuildAdapterSets(w, Options{Variant: Prefix}); err == nil {
		t.Error("BuildAdapterSets accepted the prefix variant")
	}
}

func toInt64(v []int) []int64 {
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(x)
	}
	return out
}

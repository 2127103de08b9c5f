//go:build cgo

package vit

import (
	"testing"
)

// BenchmarkTinyViT runs the test model's graphs (batch 2, one thread) with
// each attention implementation and int8 weights.
func BenchmarkTinyViT(b *testing.B) {
	g, rc := loadGolden(b)
	w, err := Load(stPath, rc.Heads)
	if err != nil {
		b.Fatal(err)
	}
	in := tensorFeed(InputName, g.Tensors["input"])
	for _, c := range []struct {
		name string
		o    Options
	}{{"onnx", Options{Attention: AttentionONNX}}, {"mha", Options{Attention: AttentionMHA}},
		{"mha-int8", Options{Attention: AttentionMHA, Quantize: "int8"}}} {
		b.Run(c.name, func(b *testing.B) {
			m, err := Build(w, c.o)
			if err != nil {
				b.Fatal(err)
			}
			s := newSession(b, m, 1)
			s.run(b, in)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s.run(b, in)
			}
		})
	}
}

// BenchmarkBuildTiny measures reading the .npz and building the graph.
func BenchmarkBuildTiny(b *testing.B) {
	for i := 0; i < b.N; i++ {
		w, err := Load(npzPath, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Build(w, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

package heads

import (
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cl-dev/cl/features"
)

// benchData is a synthetic 50,000 × 768 feature set (100 classes), shared
// by the benchmarks.
var benchData struct {
	once sync.Once
	set  *features.Set
}

func benchSet() *features.Set {
	benchData.once.Do(func() {
		const n, d, c = 50000, 768, 100
		r := rand.New(rand.NewPCG(7, 8))
		s := &features.Set{N: n, D: d, X: make([]float32, n*d), Labels: make([]int, n), Classes: make([]string, c),
			Model: "bench.onnx", ModelSHA256: "0", Preprocess: "{}"}
		for i := range s.Classes {
			s.Classes[i] = "c"
		}
		for i := range s.X {
			s.X[i] = float32(r.NormFloat64())
		}
		for i := range s.Labels {
			s.Labels[i] = i % c
		}
		benchData.set = s
	})
	return benchData.set
}

// BenchmarkFit compares fitting SimpleCIL/NCM on 50,000 × 768 features with
// reading the same features from a feature file in the page cache.
func BenchmarkFit(b *testing.B) {
	s := benchSet()
	path := filepath.Join(b.TempDir(), "bench.safetensors")
	if err := s.Write(path); err != nil {
		b.Fatal(err)
	}
	b.Run("read-features-file", func(b *testing.B) {
		b.SetBytes(int64(len(s.X) * 4))
		for b.Loop() {
			if _, err := features.Read(path); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, m := range []string{"simplecil", "ncm"} {
		b.Run(m, func(b *testing.B) {
			b.SetBytes(int64(len(s.X) * 4))
			for b.Loop() {
				h := newHead(b, m, nil)
				if err := h.Learn(s.X, s.Labels); err != nil {
					b.Fatal(err)
				}
				if err := h.EndStage(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScores measures prediction throughput for 100 classes of
// dimension 768 (samples/s on one goroutine per benchmark; gonum's Dgemm may
// use more cores — run with GOMAXPROCS=1 for a per-core figure).
func BenchmarkScores(b *testing.B) {
	s := benchSet()
	const rows = 4096
	x := s.X[:rows*s.D]
	for _, m := range []string{"simplecil", "ncm", "lda"} {
		b.Run(m, func(b *testing.B) {
			h := newHead(b, m, nil)
			if err := h.Learn(s.X[:20000*s.D], s.Labels[:20000]); err != nil {
				b.Fatal(err)
			}
			if err := h.EndStage(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := h.Scores(x); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// BenchmarkFeCAM measures EndStage (one class: covariance, normalisation and
// a 768 × 768 pseudo-inverse) and scoring against 10 classes at D = 768.
func BenchmarkFeCAM(b *testing.B) {
	s := benchSet()
	const per = 500
	for _, variant := range []string{"paper", "pilot"} {
		b.Run(variant+"/endstage-per-class", func(b *testing.B) {
			for b.Loop() {
				c := DefaultFeCAMConfig()
				c.Variant = variant
				h, _ := NewFeCAM(c)
				if err := h.Learn(s.X[:per*s.D], make([]int, per)); err != nil {
					b.Fatal(err)
				}
				if err := h.EndStage(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("paper/scores-10-classes", func(b *testing.B) {
		y := make([]int, 5000)
		for i := range y {
			y[i] = i % 10
		}
		h, _ := NewFeCAM(DefaultFeCAMConfig())
		if err := h.Learn(s.X[:5000*s.D], y); err != nil {
			b.Fatal(err)
		}
		if err := h.EndStage(); err != nil {
			b.Fatal(err)
		}
		const rows = 512
		b.ResetTimer()
		for b.Loop() {
			if _, err := h.Scores(s.X[:rows*s.D]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
	})
}

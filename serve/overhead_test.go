package serve

import (
	"bytes"
	"image"
	"image/png"
	"net/http/httptest"
	"testing"

	"github.com/cl-dev/cl/models"
)

// zeroBackbone answers every image with zero features at once: it stands
// in for the backbone only to measure what the server adds around it.
type zeroBackbone struct{ d int }

func (z zeroBackbone) Run(x []float32, n int) ([]float32, error) { return make([]float32, n*z.d), nil }
func (z zeroBackbone) Dim() int                                  { return z.d }

// BenchmarkPredictOverhead is the time one image predict spends outside the
// backbone (routing, body, PNG decode, ImageNet preprocessing to 224²,
// batcher hand-off, scoring 10 SimpleCIL classes of 1280 features, JSON,
// metrics) on a 28×28 grey PNG as scripts/loadgen sends:
// go test ./serve -run '^$' -bench PredictOverhead -benchtime 2000x
func BenchmarkPredictOverhead(b *testing.B) {
	pre, err := models.PreprocessPreset("imagenet")
	if err != nil {
		b.Fatal(err)
	}
	bb := zeroBackbone{1280}
	s, err := New(Config{StateDir: b.TempDir(), Insecure: true}, bb, BackboneInfo{Name: "zero", SHA256: "0", Fingerprint: "zero", Preprocess: pre},
		newHead(b, "simplecil"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var ss []newSample
	for c := 0; c < 10; c++ {
		x := make([]float32, 1280)
		x[c] = 1
		ss = append(ss, newSample{ID: string(rune('a' + c)), Class: string(rune('A' + c)), X: x})
	}
	if _, err := s.learn(ss); err != nil {
		b.Fatal(err)
	}
	img := image.NewGray(image.Rect(0, 0, 28, 28))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	var buf bytes.Buffer
	png.Encode(&buf, img)
	body := buf.Bytes()
	h := s.Handler()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest("POST", "/v1/predict?top=1", bytes.NewReader(body))
		req.Header.Set("Content-Type", "image/png")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}

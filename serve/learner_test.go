package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cl-dev/cl/extract/imageproc"
	"github.com/cl-dev/cl/models"
)

// channelMeans is a Scorer whose classes are the colour channels: the score
// of "red" is the image's mean red value, and so on. (The real learners run
// ONNX Runtime and are served end to end in cli's TestServeLearner.)
type channelMeans struct{ calls int }

func (c *channelMeans) Classes() []string { return []string{"red", "green", "blue"} }

func (c *channelMeans) Score(ctx context.Context, imgs []*imageproc.RGB) ([]float64, error) {
	c.calls++
	var out []float64
	for _, m := range imgs {
		var s [3]float64
		for i, v := range m.Pix {
			s[i%3] += float64(v)
		}
		n := float64(m.W * m.H)
		out = append(out, s[0]/n, s[1]/n, s[2]/n)
	}
	return out, nil
}

func solidPNG(t testing.TB, w, h int, c color.NRGBA) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetNRGBA(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestLearnerServer: a LearnerServer ranks the scorer's scores of decoded
// images (one image or multipart, ?top), refuses learn and forget with 409
// staged_learner naming cl fit (whatever the token), feature vectors with
// 415, and images over --max-pixels (413, before the scorer runs) or
// undecodable (400); /v1/model and /v1/classes describe the learner. Every
// status is recorded for the OpenAPI check.
func TestLearnerServer(t *testing.T) {
	sc := &channelMeans{}
	s, err := NewLearner(Config{MaxPixels: 10_000, MaxImages: 4, MaxBatch: 4, QueueImages: 8}, sc,
		LearnerInfo{File: "l2p.safetensors", Method: "l2p", Weights: "vit.safetensors", WeightsSHA256: "abc", Preprocess: models.ForImageSize(32)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	do := func(method, path, ctype string, body []byte) reply {
		t.Helper()
		req, _ := http.NewRequest(method, hs.URL+path, bytes.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		route, _, _ := strings.Cut(path, "?")
		recordObserved(route, method, resp.StatusCode)
		return reply{resp.StatusCode, resp.Header, b}
	}
	var pr predictReply
	r := must(t, do("POST", "/v1/predict?top=2", "image/png", solidPNG(t, 8, 6, color.NRGBA{200, 10, 90, 255})), 200)
	if err := json.Unmarshal(r.body, &pr); err != nil || len(pr.Predictions) != 1 {
		t.Fatalf("%v %s", err, r.body)
	}
	if top := pr.Predictions[0].Top; len(top) != 2 || top[0] != (classScore{"red", 200}) || top[1] != (classScore{"blue", 90}) {
		t.Fatalf("top-2 %+v", top)
	}
	body, ct := multipartBody(t, nil, []part{
		{name: "g.png", data: solidPNG(t, 5, 5, color.NRGBA{1, 250, 3, 255})},
		{name: "b.png", data: solidPNG(t, 5, 5, color.NRGBA{1, 2, 240, 255})},
	})
	r = must(t, do("POST", "/v1/predict", ct, body), 200)
	pr = predictReply{}
	json.Unmarshal(r.body, &pr)
	if len(pr.Predictions) != 2 || pr.Predictions[0].Name != "g.png" || pr.Predictions[0].Top[0].Class != "green" ||
		pr.Predictions[1].Top[0].Class != "blue" || len(pr.Predictions[1].Top) != 3 {
		t.Fatalf("multipart predict %s", r.body)
	}
	for _, p := range []string{"/v1/learn", "/v1/forget"} {
		r := must(t, do("POST", p, "application/json", []byte(`{"samples": []}`)), 409)
		if r.errCode() != "staged_learner" || !strings.Contains(string(r.body), "cl fit --learner l2p.safetensors") {
			t.Fatalf("%s: %s", p, r.body)
		}
	}
	calls := sc.calls
	if r := must(t, do("POST", "/v1/predict", "application/json", []byte(`{"features": [[1, 2]]}`)), 415); !strings.Contains(string(r.body), "runs its own backbone on images") {
		t.Fatalf("features: %s", r.body)
	}
	must(t, do("POST", "/v1/predict", "image/png", solidPNG(t, 101, 100, color.NRGBA{1, 2, 3, 255})), 413)
	must(t, do("POST", "/v1/predict", "image/png", []byte("not an image")), 400)
	must(t, do("POST", "/v1/predict?top=0", "image/png", nil), 400)
	if sc.calls != calls {
		t.Fatal("the scorer ran for a refused request")
	}
	must(t, do("GET", "/v1/learn", "", nil), 405)
	var m map[string]any
	json.Unmarshal(must(t, do("GET", "/v1/model", "", nil), 200).body, &m)
	if m["method"] != "l2p" || m["learner"] != "l2p.safetensors" || m["backbone"] != "vit.safetensors" || m["inference_only"] != true || m["classes"] != 3.0 {
		t.Fatalf("/v1/model %v", m)
	}
	r = must(t, do("GET", "/v1/classes", "", nil), 200)
	if !strings.Contains(string(r.body), `"name":"blue"`) || !strings.Contains(string(r.body), `"name":"red"`) {
		t.Fatalf("/v1/classes %s", r.body)
	}
	must(t, do("GET", "/v1/samples", "", nil), 200)
	must(t, do("GET", "/readyz", "", nil), 200)
	must(t, do("GET", "/healthz", "", nil), 200)
}

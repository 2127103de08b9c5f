package serve

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/cl-dev/cl/internal/npy"
)

// cosine is SimpleCIL's score of x against a one-sample prototype p.
func cosine(x, p []float32) float64 {
	var xp, xx, pp float64
	for i := range x {
		xp += float64(x[i]) * float64(p[i])
		xx += float64(x[i]) * float64(x[i])
		pp += float64(p[i]) * float64(p[i])
	}
	return xp / math.Sqrt(xx) / math.Sqrt(pp)
}

// TestImagesEndToEnd teaches the six committed test images as six classes
// (one as a single image body, the rest in one multipart request), then
// predicts all six in one multipart request. With SimpleCIL and one sample
// per class, the score of image i for class j is the cosine of their
// features: checked against the features PyTorch computed from
// Pillow-preprocessed images (testdata/tinyvit/make_tinyvit.py), to 1e-4.
func TestImagesEndToEnd(t *testing.T) {
	ts := startServer(t, t.TempDir(), Config{}, newHead(t, "simplecil"))
	imgs := tinyImages(t)
	gold, shape, err := npy.ReadFloat32(filepath.Join(tinyDir, "features.npy"))
	if err != nil {
		t.Fatal(err)
	}
	d := shape[1]
	row := func(i int) []float32 { return gold[i*d : (i+1)*d] }

	r := must(t, ts.do("POST", "/v1/learn?id=s0&class=c0", "image/jpeg", imgs[0].data, testToken), 200)
	var lr learnReply
	r.json(t, &lr)
	if lr.Learned != 1 || lr.Seq != 1 || !lr.Visible || lr.ModelVersion != 1 {
		t.Fatalf("learn reply %+v", lr)
	}
	var meta []learnSample
	for i := 1; i < len(imgs); i++ {
		meta = append(meta, learnSample{ID: fmt.Sprintf("s%d", i), Class: fmt.Sprintf("c%d", i)})
	}
	mj, _ := json.Marshal(meta)
	body, ct := multipartBody(t, map[string]string{"samples": string(mj)}, imgs[1:])
	must(t, ts.do("POST", "/v1/learn", ct, body, testToken), 200)

	body, ct = multipartBody(t, nil, imgs)
	r = must(t, ts.do("POST", fmt.Sprintf("/v1/predict?top=%d", len(imgs)), ct, body, ""), 200)
	var pr predictReply
	r.json(t, &pr)
	if len(pr.Predictions) != len(imgs) || pr.ModelVersion != 2 {
		t.Fatalf("predict reply: %d predictions, version %d", len(pr.Predictions), pr.ModelVersion)
	}
	for i, p := range pr.Predictions {
		if p.Name != imgs[i].name || p.Top[0].Class != fmt.Sprintf("c%d", i) {
			t.Errorf("image %d (%s): name %q, top-1 %q", i, imgs[i].name, p.Name, p.Top[0].Class)
		}
		for k, cs := range p.Top {
			var j int
			fmt.Sscanf(cs.Class, "c%d", &j)
			want := cosine(row(i), row(j))
			if math.Abs(cs.Score-want) > 1e-4 {
				t.Errorf("image %d class %s: score %.6f, PyTorch features give %.6f", i, cs.Class, cs.Score, want)
			}
			if k > 0 && cs.Score > p.Top[k-1].Score {
				t.Errorf("image %d: scores not in descending order: %v", i, p.Top)
			}
		}
	}
	// One image as the body gives the same scores as in the multipart batch.
	r = must(t, ts.do("POST", "/v1/predict?top=2", "image/png", imgs[5].data, ""), 200)
	var one predictReply
	r.json(t, &one)
	if len(one.Predictions) != 1 || one.Predictions[0].Top[0] != pr.Predictions[5].Top[0] || len(one.Predictions[0].Top) != 2 {
		t.Errorf("single image: %+v, in batch: %+v", one.Predictions, pr.Predictions[5].Top[:2])
	}
}

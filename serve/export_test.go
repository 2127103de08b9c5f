package serve

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cl-dev/cl/heads"
)

// TestInferenceOnlyHead: a server started from a head exported by cl export
// (heads.Export) predicts exactly as one started from the full head file,
// says inference_only in /v1/model, refuses learn and forget with 409
// inference_only (nothing changes), and stays so after a restart from its
// own snapshot.
func TestInferenceOnlyHead(t *testing.T) {
	for _, tc := range []struct {
		method string
		opts   [][2]string
	}{
		{"simplecil", nil},
		{"ranpac", [][2]string{{"M", "64"}, {"lambda", "0.5"}}},
		{"lda", nil},
	} {
		t.Run(tc.method, func(t *testing.T) {
			w := newWorld(3, 32)
			var ss []learnSample
			for i := 0; i < 24; i++ {
				ss = append(ss, w.sample(i%4))
			}
			w.acked(1, ss)
			h, _, err := newHead(t, tc.method, tc.opts...)()
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			var x []float32
			var y []int
			for _, s := range w.ordered() {
				l := int(s.Class[len("class")] - '0')
				for len(names) <= l {
					names = append(names, "class"+string(rune('0'+len(names))))
				}
				x, y = append(x, s.Features...), append(y, l)
			}
			if err := h.Learn(x, y); err != nil {
				t.Fatal(err)
			}
			if err := h.EndStage(); err != nil {
				t.Fatal(err)
			}
			_, bbi := tinyBackbone(t)
			info := heads.Info{Classes: names, Model: bbi.Name, ModelSHA256: bbi.SHA256, Fingerprint: bbi.Fingerprint}
			dir := t.TempDir()
			full, exp := filepath.Join(dir, "full.safetensors"), filepath.Join(dir, "exp.safetensors")
			if err := heads.Save(full, h, info); err != nil {
				t.Fatal(err)
			}
			e, err := heads.Export(h)
			if err != nil {
				t.Fatal(err)
			}
			if err := heads.Save(exp, e, info); err != nil {
				t.Fatal(err)
			}
			load := func(p string) func() (heads.Head, heads.Info, error) {
				return func() (heads.Head, heads.Info, error) { return heads.Load(p) }
			}
			cfg := Config{ResolveDelay: 10 * time.Millisecond, ResolveMaxDelay: 50 * time.Millisecond, SnapshotEvery: 1 << 30}
			a := startServer(t, filepath.Join(dir, "a"), cfg, load(full))
			b := startServer(t, filepath.Join(dir, "b"), cfg, load(exp))
			req := predictRequest{Features: probes(w, 8), Top: 3}
			want := must(t, a.postJSON("/v1/predict", req), 200).body
			check := func(when string) {
				t.Helper()
				if got := must(t, b.postJSON("/v1/predict", req), 200).body; string(got) != string(want) {
					t.Fatalf("%s: exported head predicts\n%s\nfull head\n%s", when, got, want)
				}
				var m modelReply
				must(t, b.get("/v1/model"), 200).json(t, &m)
				if !m.InferenceOnly || m.Classes != 4 {
					t.Fatalf("%s: /v1/model %+v", when, m)
				}
			}
			check("start")
			for _, r := range []reply{
				b.postJSON("/v1/learn", learnRequest{Samples: []learnSample{w.sample(1)}}),
				b.postJSON("/v1/forget", forgetRecord{Classes: []string{"class1"}}),
				b.do("POST", "/v1/learn?id=x&class=class1", "image/png", tinyImages(t)[0].data, testToken),
			} {
				if r.code != 409 || r.errCode() != "inference_only" || !strings.Contains(string(r.body), "learn with the full head file") {
					t.Errorf("change to an exported head: %d %s", r.code, r.body)
				}
			}
			if r := b.do("POST", "/v1/forget", "application/json", []byte(`{"classes":["class1"]}`), ""); r.code != 401 {
				t.Errorf("forget without a token on an exported head: %d, want 401 first", r.code)
			}
			check("after refused changes")
			b.close()
			b.restart()
			check("after restart")
		})
	}
}

package learners

import (
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
)

// TestEASESetsSpeed times EASE's test-time passes on the real ViT-Ti/16
// (batch CL_PROMPTS_BATCH, default 16, CL_PROMPTS_THREADS threads) with K =
// 3 and 5 adapter sets (t+1 after stage t = 2 and 4): one pass per set
// against all K sets in one graph call (vit.BuildAdapterSets), the
// measurements alternated, medians of CL_PROMPTS_REPS after a warm-up
// round; it also checks the batched features against the per-set ones
// (within 1e-5). A measurement, run only when CL_PROMPTS_SPEED is set
// (docs/TRAINING.md, "Speed").
func TestEASESetsSpeed(t *testing.T) {
	if os.Getenv("CL_PROMPTS_SPEED") == "" {
		t.Skip("set CL_PROMPTS_SPEED=1 to time EASE's adapter passes (docs/TRAINING.md)")
	}
	needORT(t)
	w, err := vit.Load("../../shared/data/vit-tiny-augreg/model.safetensors", 0)
	if err != nil {
		t.Skip(err)
	}
	batch, _ := strconv.Atoi(envOr("CL_PROMPTS_BATCH", "16"))
	threads, _ := strconv.Atoi(envOr("CL_PROMPTS_THREADS", "2"))
	reps, _ := strconv.Atoi(envOr("CL_PROMPTS_REPS", "3"))
	env := Env{Weights: w, WeightsSHA256: "x", Session: ort.SessionOptions{Threads: threads}, Workers: 1, Seed: 1}
	e, err := NewEASE(env, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5; i++ { // trained-looking sets: non-zero up projections
		var a easeAdapter
		for _, s := range e.specs {
			a = append(a, pUniform(rng, len(e.adapter.Init(s, rng)), -0.05, 0.05))
		}
		e.Adapters = append(e.Adapters, a)
	}
	S := w.Image
	x := make([]float32, batch*3*S*S)
	for i := range x {
		x[i] = rng.Float32()
	}
	type run struct {
		name string
		f    func() ([][]float32, error)
	}
	var runs []run
	for _, k := range []int{3, 5} {
		stacked := e.stackSets(upTo(k - 1))
		runs = append(runs,
			run{"ease inference, " + strconv.Itoa(k) + " sets, one pass per set", func() ([][]float32, error) {
				var out [][]float32
				for i := 0; i < k; i++ {
					f, err := e.features(i, x, batch)
					if err != nil {
						return nil, err
					}
					out = append(out, f)
				}
				return out, nil
			}},
			run{"ease inference, " + strconv.Itoa(k) + " sets in one call", func() ([][]float32, error) {
				return e.setsFeatures(stacked, x, batch, k)
			}})
	}
	times := make([][]float64, len(runs))
	for r := 0; r <= reps; r++ { // round 0 warms up (session creation)
		var prev [][]float32
		for i, rn := range runs {
			t0 := time.Now()
			got, err := rn.f()
			if err != nil {
				t.Fatalf("%s: %v", rn.name, err)
			}
			if r > 0 {
				times[i] = append(times[i], time.Since(t0).Seconds())
			}
			if i%2 == 1 { // the batched call against the per-set passes before it
				for k := range got {
					if d := maxDiff32(got[k], prev[k]); d > 1e-5 {
						t.Fatalf("%s: set %d differs from its own pass by %.3g", rn.name, k, d)
					}
				}
			}
			prev = got
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	med := func(v []float64) float64 { s := append([]float64(nil), v...); sort.Float64s(s); return s[len(s)/2] }
	for i, rn := range runs {
		m := med(times[i])
		t.Logf("SPEED %-44s batch %d, %d threads: %.3f s, %.1f images/s (times %.3f)", rn.name, batch, threads, m, float64(batch)/m, times[i])
	}
	t.Logf("load average after: %s", strings.TrimSpace(string(load)))
}

package learners

import (
	"context"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
)

// TestPromptSpeed times one training step of each learner on the real
// ViT-Ti/16 (batch CL_PROMPTS_BATCH, default 16, CL_PROMPTS_THREADS
// threads) against the plain forward pass of the same batch, and each
// learner's inference against the plain forward (SimpleCIL's cost),
// alternating the measurements and reporting medians. A measurement, run
// only when CL_PROMPTS_SPEED is set (docs/PERFORMANCE.md).
func TestPromptSpeed(t *testing.T) {
	if os.Getenv("CL_PROMPTS_SPEED") == "" {
		t.Skip("set CL_PROMPTS_SPEED=1 to time the prompt learners (docs/PERFORMANCE.md)")
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
	rng := rand.New(rand.NewPCG(1, 2))
	S := w.Image
	x := make([]float32, batch*3*S*S)
	for i := range x {
		x[i] = rng.Float32()
	}
	labels := make([]int64, batch)
	for i := range labels {
		labels[i] = int64(2 + i%2)
	}
	C := 10
	mask := pClassMask(C, []int{2, 3})
	ctx := context.Background()
	_ = ctx

	l, _ := NewL2P(env, nil)
	l.init(C)
	d, _ := NewDualPrompt(env, nil)
	d.init(C)
	c, _ := NewCODAPrompt(env, map[string]string{"tasks": "5"})
	c.tasks = 5
	c.names = make([]string, C)
	c.allocate(C)
	GramSchmidt(c.Keys, 5, w.Width, 0, 20, c.rng)
	GramSchmidt(c.Attn, 5, w.Width, 0, 20, c.rng)
	GramSchmidt(c.Prompts, 5, 8*w.Width, 0, 20, c.rng)
	e, _ := NewEASE(env, nil)
	defer l.Close()
	defer d.Close()
	defer c.Close()
	defer e.Close()
	q, err := l.pe.queryOf(x, batch)
	if err != nil {
		t.Fatal(err)
	}
	lo, _ := l.newOptimizer()
	do, _ := d.newOptimizer()
	co, _ := c.newOptimizer(0)
	tr, _ := e.newTrainer(e.newAdapter(e.rng), pUniform(e.rng, 2*w.Width, -0.07, 0.07), 1, 2, 20)
	e.Adapters = []easeAdapter{e.newAdapter(e.rng)}
	elab := make([]int64, batch)
	for i := range elab {
		elab[i] = int64(i % 2)
	}
	S64 := int64(S)
	runs := []struct {
		name string
		f    func() error
	}{
		{"forward (plain ViT)", func() error { _, err := l.pe.queryOf(x, batch); return err }},
		{"l2p step", func() error { _, err := l.step(lo, x, q, labels, mask); return err }},
		{"l2p inference (prompted pass)", func() error {
			idx := l.selectRows(q, SelectPerSample)
			_, err := l.fwd.Run([]ort.Tensor{{Shape: []int64{int64(batch), 3, S64, S64}, F32: x}, {Shape: []int64{int64(batch), int64(l.tokens()), int64(w.Width)}, F32: l.compose(idx)}})
			return err
		}},
		{"dualprompt step", func() error { _, err := d.step(do, x, q, labels, mask, 0); return err }},
		{"dualprompt inference", func() error {
			sel := d.match(q, SelectPerSample)
			_, err := d.fwd.Run([]ort.Tensor{{Shape: []int64{int64(batch), 3, S64, S64}, F32: x}, {Shape: []int64{int64(batch), int64(len(d.layers)), 2, int64(d.opt.Length), int64(w.Width)}, F32: d.compose(sel)}})
			return err
		}},
		{"coda-prompt step", func() error { _, _, err := c.step(co, 0, x, q, labels, mask); return err }},
		{"coda-prompt inference", func() error {
			cw := c.weights(q, 20)
			_, err := c.fwd.Run([]ort.Tensor{{Shape: []int64{int64(batch), 3, S64, S64}, F32: x}, {Shape: []int64{int64(batch), 5, 2, 4, int64(w.Width)}, F32: c.compose(cw)}})
			return err
		}},
		{"ease step", func() error { _, err := e.step(tr, x, elab); return err }},
		{"ease inference, one adapter pass", func() error { _, err := e.features(0, x, batch); return err }},
	}
	times := make([][]float64, len(runs))
	for r := 0; r <= reps; r++ { // round 0 warms up (session creation)
		for i, run := range runs {
			t0 := time.Now()
			if err := run.f(); err != nil {
				t.Fatalf("%s: %v", run.name, err)
			}
			if r > 0 {
				times[i] = append(times[i], time.Since(t0).Seconds())
			}
		}
	}
	med := func(v []float64) float64 { s := append([]float64(nil), v...); sort.Float64s(s); return s[len(s)/2] }
	base := med(times[0])
	for i, run := range runs {
		m := med(times[i])
		t.Logf("SPEED %-36s batch %d, %d threads: %.3f s, %.1f images/s, %.2f× the plain forward", run.name, batch, threads, m, float64(batch)/m, m/base)
	}
}

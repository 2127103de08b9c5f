package learners

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cl-dev/cl/tune"
)

// tinyStages cuts patterns() into two stages of two classes (global labels
// = pattern classes).
func tinyStages(n int, seed uint64) []Stage {
	d := patterns(n, seed)
	names := d.Classes
	var out []Stage
	for t := 0; t < 2; t++ {
		var rows []int
		for i, y := range d.Labels {
			if y/2 == t {
				rows = append(rows, i)
			}
		}
		img := d.Subset(rows)
		out = append(out, Stage{Index: t, Classes: []int{2 * t, 2*t + 1}, Names: names, Images: img, Labels: img.Labels, IDs: img.IDs})
	}
	return out
}

type savable interface {
	Learner
	Close()
}

// TestPromptLearnersStages runs every learner of this issue over two stages
// of the tiny ViT from images: the frozen parts stay bit-identical across
// stages (CODA-Prompt's earlier components, EASE's earlier adapter set),
// Scores covers the classes learned, and a saved learner file loads back to
// the same scores; files of another method or other weights are refused.
func TestPromptLearnersStages(t *testing.T) {
	env := tinyEnv(t)
	ctx := context.Background()
	stages := tinyStages(6, 4)
	test := patterns(3, 9)
	ev := Eval{Images: test, N: test.Len()}
	cases := []struct {
		name string
		o    map[string]string
		load func(Env, string) (Learner, error)
	}{
		{"l2p", map[string]string{"pool": "4", "length": "2", "top-k": "2", "epochs": "1", "batch": "8"},
			func(e Env, p string) (Learner, error) { return LoadL2P(e, p) }},
		{"dualprompt", map[string]string{"g-layers": "0", "e-layers": "1,2", "pool": "2", "epochs": "1", "batch": "8"},
			func(e Env, p string) (Learner, error) { return LoadDualPrompt(e, p) }},
		{"coda-prompt", map[string]string{"layers": "0,1,2", "components": "8", "length": "4", "epochs": "2", "batch": "8"},
			func(e Env, p string) (Learner, error) { return LoadCODAPrompt(e, p) }},
		{"ease", map[string]string{"bottleneck": "8", "epochs": "1", "batch": "8"},
			func(e Env, p string) (Learner, error) { return LoadEASE(e, p) }},
	}
	dir := t.TempDir()
	var files []string
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec, err := Lookup(c.name)
			if err != nil {
				t.Fatal(err)
			}
			l, err := spec.New(env, c.o)
			if err != nil {
				t.Fatal(err)
			}
			defer l.(savable).Close()
			if err := l.Learn(ctx, stages[0]); err != nil {
				t.Fatal(err)
			}
			var frozen []float32
			switch x := l.(type) {
			case *CODAPrompt:
				_, f := x.span(0)
				n := f * len(x.opt.Layers) * x.opt.Length * x.pe.w.Width
				frozen = append(frozen, x.Prompts[:n]...)
				frozen = append(frozen, x.Keys[:n/x.opt.Length]...)
				frozen = append(frozen, x.Attn[:n/x.opt.Length]...)
			case *EASE:
				for _, a := range x.Adapters[0] {
					frozen = append(frozen, a...)
				}
			}
			// A stage that repeats a learned class is refused before training.
			rep := stages[1]
			rep.Classes = []int{1, 2}
			if err := l.Learn(ctx, rep); err == nil || !strings.Contains(err.Error(), "repeats class") {
				t.Fatalf("repeated class: %v", err)
			}
			if err := l.Learn(ctx, stages[1]); err != nil {
				t.Fatal(err)
			}
			var after []float32
			switch x := l.(type) {
			case *CODAPrompt:
				_, f := x.span(0)
				n := f * len(x.opt.Layers) * x.opt.Length * x.pe.w.Width
				after = append(after, x.Prompts[:n]...)
				after = append(after, x.Keys[:n/x.opt.Length]...)
				after = append(after, x.Attn[:n/x.opt.Length]...)
			case *EASE:
				for _, a := range x.Adapters[0] {
					after = append(after, a...)
				}
			}
			for i := range frozen {
				if math.Float32bits(frozen[i]) != math.Float32bits(after[i]) {
					t.Fatalf("frozen value %d changed in stage 2", i)
				}
			}
			sc, cols, err := l.Scores(ctx, ev)
			if err != nil {
				t.Fatal(err)
			}
			if len(cols) != 4 || len(sc) != 4*test.Len() {
				t.Fatalf("scores %d for columns %v", len(sc), cols)
			}
			path := filepath.Join(dir, c.name+".safetensors")
			if err := l.Save(path); err != nil {
				t.Fatal(err)
			}
			files = append(files, path)
			back, err := c.load(env, path)
			if err != nil {
				t.Fatal(err)
			}
			defer back.(savable).Close()
			sc2, cols2, err := back.Scores(ctx, Eval{Images: test, N: test.Len()})
			if err != nil {
				t.Fatal(err)
			}
			for i := range sc {
				if sc[i] != sc2[i] || (i < len(cols) && cols[i] != cols2[i]) {
					t.Fatalf("loaded learner scores %v, saved %v (row-major index %d)", sc2[i], sc[i], i)
				}
			}
			other := env
			other.WeightsSHA256 = "another"
			if _, err := c.load(other, path); err == nil || !strings.Contains(err.Error(), "SHA-256") {
				t.Fatalf("other weights: %v", err)
			}
		})
	}
	if len(files) == 4 {
		if _, err := LoadDualPrompt(env, files[0]); err == nil || !strings.Contains(err.Error(), `holds a "l2p" learner`) {
			t.Fatalf("l2p file loaded as dualprompt: %v", err)
		}
	}
}

// TestPromptPoolsTooSmall: DualPrompt's E-prompt pool and CODA-Prompt's
// components must cover the run's stages; refused before training.
func TestPromptPoolsTooSmall(t *testing.T) {
	env := tinyEnv(t)
	ctx := context.Background()
	st := tinyStages(2, 1)[0] // 4 classes in stages of 2: 2 stages
	d, err := NewDualPrompt(env, map[string]string{"g-layers": "0", "e-layers": "1", "pool": "1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Learn(ctx, st); err == nil || !strings.Contains(err.Error(), "pool holds 1") {
		t.Fatalf("dualprompt pool 1: %v", err)
	}
	c, err := NewCODAPrompt(env, map[string]string{"layers": "0", "components": "1", "length": "2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Learn(ctx, st); err == nil || !strings.Contains(err.Error(), "cannot be shared") {
		t.Fatalf("coda 1 component: %v", err)
	}
	var nilImages Stage = st
	nilImages.Images = nil
	l, _ := NewL2P(env, nil)
	if err := l.Learn(ctx, nilImages); err == nil || !strings.Contains(err.Error(), "learns from images") {
		t.Fatalf("no images: %v", err)
	}
	_ = tune.EpochOrder
}

// TestPromptLearnersResume: a learner saved after stage 1 and loaded again
// learns stage 2 to the same bits as one that never stopped (per-stage
// random streams, the whole state in the file).
func TestPromptLearnersResume(t *testing.T) {
	env := tinyEnv(t)
	ctx := context.Background()
	stages := tinyStages(4, 5)
	test := patterns(2, 7)
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		o    map[string]string
		load func(Env, string) (Learner, error)
	}{
		{"coda-prompt", map[string]string{"layers": "0,1", "components": "4", "length": "2", "epochs": "2", "batch": "8"},
			func(e Env, p string) (Learner, error) { return LoadCODAPrompt(e, p) }},
		{"ease", map[string]string{"bottleneck": "4", "epochs": "1", "batch": "8"},
			func(e Env, p string) (Learner, error) { return LoadEASE(e, p) }},
		{"l2p", map[string]string{"pool": "3", "length": "1", "top-k": "2", "epochs": "1", "batch": "8"},
			func(e Env, p string) (Learner, error) { return LoadL2P(e, p) }},
		{"dualprompt", map[string]string{"g-layers": "0", "e-layers": "1", "pool": "2", "e-length": "2", "g-length": "2", "epochs": "1", "batch": "8"},
			func(e Env, p string) (Learner, error) { return LoadDualPrompt(e, p) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec, _ := Lookup(c.name)
			a, err := spec.New(env, c.o)
			if err != nil {
				t.Fatal(err)
			}
			defer a.(savable).Close()
			if err := a.Learn(ctx, stages[0]); err != nil {
				t.Fatal(err)
			}
			p1 := filepath.Join(dir, c.name+"-1.safetensors")
			if err := a.Save(p1); err != nil {
				t.Fatal(err)
			}
			if err := a.Learn(ctx, stages[1]); err != nil {
				t.Fatal(err)
			}
			b, err := c.load(env, p1)
			if err != nil {
				t.Fatal(err)
			}
			defer b.(savable).Close()
			if err := b.Learn(ctx, stages[1]); err != nil {
				t.Fatal(err)
			}
			pa, pb := filepath.Join(dir, c.name+"-a.safetensors"), filepath.Join(dir, c.name+"-b.safetensors")
			if err := a.Save(pa); err != nil {
				t.Fatal(err)
			}
			if err := b.Save(pb); err != nil {
				t.Fatal(err)
			}
			ra, _ := os.ReadFile(pa)
			rb, _ := os.ReadFile(pb)
			if string(ra) != string(rb) {
				t.Fatalf("resumed learner file differs from the uninterrupted one")
			}
			sa, _, err := a.Scores(ctx, Eval{Images: test, N: test.Len()})
			if err != nil {
				t.Fatal(err)
			}
			sb, _, _ := b.Scores(ctx, Eval{Images: test, N: test.Len()})
			for i := range sa {
				if sa[i] != sb[i] {
					t.Fatalf("scores differ at %d", i)
				}
			}
		})
	}
}

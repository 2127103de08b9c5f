package learners

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cl-dev/cl/tune/grad"
)

// alignCase is DualPrompt or CODA-Prompt on the tiny ViT for the
// alignment tests.
type alignCase struct {
	name string
	o    map[string]string
	load func(Env, string) (Learner, error)
	// statFeatures are the features the statistics of the stage learned
	// k-th are recorded from.
	statFeatures func(l Learner, s Stage, k int) ([]float32, error)
	// frozen are the values that must not change after stage 1.
	frozen func(l Learner) []float32
}

func alignCases() []alignCase {
	ctx := context.Background()
	return []alignCase{
		{"dualprompt", map[string]string{"g-layers": "0", "e-layers": "1,2", "pool": "2", "epochs": "2", "batch": "8"},
			func(e Env, p string) (Learner, error) { return LoadDualPrompt(e, p) },
			func(l Learner, s Stage, k int) ([]float32, error) {
				return l.(*DualPrompt).statFeatures(ctx, s.Images, nil, 0, k)
			},
			func(l Learner) []float32 { // E-prompt 0 and its key
				d := l.(*DualPrompt)
				sz := len(d.opt.ELayers) * d.blk()
				return append(append([]float32(nil), d.EPrompts[:sz]...), d.Keys[:d.pe.w.Width]...)
			}},
		{"coda-prompt", map[string]string{"layers": "0,1,2", "components": "8", "length": "4", "epochs": "2", "batch": "8"},
			func(e Env, p string) (Learner, error) { return LoadCODAPrompt(e, p) },
			func(l Learner, s Stage, _ int) ([]float32, error) {
				return l.(*CODAPrompt).testFeatures(ctx, s.Images, nil, 0)
			},
			func(l Learner) []float32 { // task 0's components
				c := l.(*CODAPrompt)
				_, f := c.span(0)
				n := f * len(c.opt.Layers) * c.pe.w.Width
				return append(append(append([]float32(nil), c.Prompts[:n*c.opt.Length]...), c.Keys[:n]...), c.Attn[:n]...)
			}},
	}
}

func withOpts(base map[string]string, kv ...string) map[string]string {
	o := map[string]string{"align-samples": "32", "align-steps": "50"}
	for k, v := range base {
		o[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		o[kv[i]] = kv[i+1]
	}
	return o
}

func newLearner(t *testing.T, env Env, name string, o map[string]string) Learner {
	t.Helper()
	spec, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	l, err := spec.New(env, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.(savable).Close)
	return l
}

// sameBits reports whether a and b hold the same float32 bits.
func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// TestPromptAlignment: DualPrompt and CODA-Prompt over two stages of the
// tiny ViT with align=gaussian against align=none. Alignment changes head
// columns only: every other tensor is bit-identical to align=none's, and
// so are the columns of the classes not seen yet, while every seen column
// is re-fitted; a learner trained with align=none and then aligned by
// alignStage (the real-data measurement's way) ends bit-identical to one
// trained with align=gaussian, and the stage's columns it trained before
// the alignment are align=none's, so Learn is the training of align=none
// plus the alignment. The frozen parts (DualPrompt's E-prompt 0 and its
// key, CODA-Prompt's task-0 components) are bit-identical after stage 2.
// The statistics are those of the features the method records them from
// (DualPrompt: the stage's own E-prompt forced; CODA-Prompt: the
// components so far), Scores reads the aligned head, and the learner file
// saves and loads them: the loaded learner's scores are bit-identical; a
// file written before the option existed loads as align=none and scores
// as align=none's learner.
func TestPromptAlignment(t *testing.T) {
	env := tinyEnv(t)
	ctx := context.Background()
	stages := tinyStages(4, 5)
	test := patterns(2, 7)
	ev := Eval{Images: test, N: test.Len()}
	W := env.Weights.Width
	for _, c := range alignCases() {
		t.Run(c.name, func(t *testing.T) {
			a := newLearner(t, env, c.name, withOpts(c.o))
			n := newLearner(t, env, c.name, withOpts(c.o, "align", AlignNone))
			r := newLearner(t, env, c.name, withOpts(c.o))
			var frozen []float32
			for si, s := range stages {
				for _, l := range []Learner{a, n} {
					if err := l.Learn(ctx, s); err != nil {
						t.Fatal(err)
					}
				}
				ra := r.(headAligner)
				ra.setAlign(AlignNone)
				if err := r.Learn(ctx, s); err != nil {
					t.Fatal(err)
				}
				ra.setAlign(AlignGaussian)
				rb := ra.base()
				nb := n.(headAligner).base()
				// The stage's columns as training left them are align=none's
				// (the earlier ones are the aligned ones, which the masked
				// training does not read).
				for _, k := range s.Classes {
					C := rb.classes()
					same := rb.HeadB[k] == nb.HeadB[k]
					for i := 0; i < W; i++ {
						same = same && rb.HeadW[i*C+k] == nb.HeadW[i*C+k]
					}
					if !same {
						t.Fatalf("stage %d: column %d before alignment differs from align=none's", si+1, k)
					}
				}
				if err := ra.alignStage(ctx, s); err != nil {
					t.Fatal(err)
				}
				ab := a.(headAligner).base()
				for _, pair := range [][2][]float32{{ab.HeadW, rb.HeadW}, {ab.HeadB, rb.HeadB}, {ab.AlignMean, rb.AlignMean}, {ab.AlignCov, rb.AlignCov}} {
					if !sameBits(pair[0], pair[1]) {
						t.Fatalf("stage %d: Learn with align=gaussian differs from align=none's Learn followed by alignStage", si+1)
					}
				}
				// Every tensor but the head is align=none's.
				as, ns := slotsOf(a), slotsOf(n)
				for name, v := range as {
					if name == grad.HeadWeightName || name == grad.HeadBiasName || strings.HasPrefix(name, "align.") {
						continue
					}
					if !sameBits(v, ns[name]) {
						t.Fatalf("stage %d: %s differs with alignment", si+1, name)
					}
				}
				if _, ok := ns["align.mean"]; ok {
					t.Fatalf("align=none stores statistics")
				}
				C := ab.classes()
				seen := map[int]bool{}
				for _, k := range ab.seen {
					seen[k] = true
				}
				for k := 0; k < C; k++ {
					same := ab.HeadB[k] == nb.HeadB[k]
					for i := 0; i < W; i++ {
						same = same && ab.HeadW[i*C+k] == nb.HeadW[i*C+k]
					}
					if seen[k] && same {
						t.Fatalf("stage %d: column %d was not re-fitted", si+1, k)
					}
					if !seen[k] && !same {
						t.Fatalf("stage %d: column %d of a class not seen changed", si+1, k)
					}
				}
				// The statistics of this stage's classes are those of the
				// features the method records them from.
				f, err := c.statFeatures(a, s, si)
				if err != nil {
					t.Fatal(err)
				}
				for _, k := range s.Classes {
					m, S := gaussianStats(gatherRows(f, W, labelRows(s.Images.Labels, k)), W)
					for j := 0; j < W; j++ {
						if float32(m[j]) != ab.AlignMean[k*W+j] || float32(S.At(j, (j+1)%W)) != ab.AlignCov[(k*W+j)*W+(j+1)%W] {
							t.Fatalf("stage %d: the statistics of class %d are not those of its features", si+1, k)
						}
					}
				}
				if si == 0 {
					frozen = c.frozen(a)
				} else if !sameBits(frozen, c.frozen(a)) {
					t.Fatalf("the parts frozen after stage 1 changed in stage 2")
				}
			}
			// Scores read the aligned head on the test features.
			sc, cols, err := a.Scores(ctx, ev)
			if err != nil {
				t.Fatal(err)
			}
			ab := a.(headAligner).base()
			f, err := a.(headAligner).testFeatures(ctx, test, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			want := appendLinearScores(nil, f, W, ab.HeadW, ab.HeadB, ab.classes(), cols)
			for i := range sc {
				if sc[i] != want[i] {
					t.Fatalf("score %d = %v, aligned head on the features %v", i, sc[i], want[i])
				}
			}
			// Save and load: scores and statistics bit for bit.
			dir := t.TempDir()
			p := filepath.Join(dir, "a.safetensors")
			if err := a.Save(p); err != nil {
				t.Fatal(err)
			}
			b, err := c.load(env, p)
			if err != nil {
				t.Fatal(err)
			}
			defer b.(savable).Close()
			bb := b.(headAligner)
			if bb.alignOptions() != a.(headAligner).alignOptions() {
				t.Fatalf("loaded options %+v, saved %+v", bb.alignOptions(), a.(headAligner).alignOptions())
			}
			if !sameBits(bb.base().AlignMean, ab.AlignMean) || !sameBits(bb.base().AlignCov, ab.AlignCov) {
				t.Fatalf("loaded statistics differ")
			}
			sb, _, err := b.Scores(ctx, ev)
			if err != nil {
				t.Fatal(err)
			}
			for i := range sc {
				if math.Float64bits(sc[i]) != math.Float64bits(sb[i]) {
					t.Fatalf("loaded learner scores %v, saved %v (index %d)", sb[i], sc[i], i)
				}
			}
			// A file written before the option existed: no Align fields,
			// no statistics; it loads as align=none.
			pn := filepath.Join(dir, "n.safetensors")
			if err := n.Save(pn); err != nil {
				t.Fatal(err)
			}
			old := filepath.Join(dir, "old.safetensors")
			writeOlderFile(t, pn, old, func(_, opts map[string]any) {
				for k := range opts {
					if strings.HasPrefix(k, "Align") {
						delete(opts, k)
					}
				}
			})
			o, err := c.load(env, old)
			if err != nil {
				t.Fatal(err)
			}
			defer o.(savable).Close()
			if m := o.(headAligner).alignOptions().Align; m != AlignNone {
				t.Fatalf("an old file loads with align=%q", m)
			}
			so, _, err := o.Scores(ctx, ev)
			if err != nil {
				t.Fatal(err)
			}
			sn, _, _ := n.Scores(ctx, ev)
			for i := range so {
				if math.Float64bits(so[i]) != math.Float64bits(sn[i]) {
					t.Fatalf("old file's scores differ at %d", i)
				}
			}
		})
	}
}

// slotsOf returns a learner's file tensors by name.
func slotsOf(l Learner) map[string][]float32 {
	var slots []tensorSlot
	switch x := l.(type) {
	case *DualPrompt:
		slots = x.slots()
	case *CODAPrompt:
		slots = x.slots()
	case *L2P:
		slots = x.slots()
	}
	out := map[string][]float32{}
	for _, s := range slots {
		out[s.name] = *s.data
	}
	return out
}

// TestPromptAlignBadOptions: DualPrompt's and CODA-Prompt's alignment
// options are checked up front, as L2P's.
func TestPromptAlignBadOptions(t *testing.T) {
	env := tinyEnv(t)
	for _, name := range []string{"dualprompt", "coda-prompt"} {
		base := map[string]string{}
		if name == "coda-prompt" {
			base["layers"] = "0"
		}
		for _, c := range []struct {
			k, v, want string
		}{
			{"align", "slca", "one of none, gaussian"},
			{"align-shrink", "1.5", "in [0, 1]"},
			{"align-samples", "0", "align-samples"},
			{"align-lr", "-1", "align-lr"},
		} {
			spec, _ := Lookup(name)
			o := withOpts(base, c.k, c.v)
			if _, err := spec.New(env, o); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), name) {
				t.Errorf("%s %s=%s: error %v, want one naming the method and containing %q", name, c.k, c.v, err, c.want)
			}
		}
	}
}

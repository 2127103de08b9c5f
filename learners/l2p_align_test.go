package learners

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestL2PAlignment on the tiny ViT over two stages: align=gaussian changes
// the head only (prompts and keys bit-identical to align=none, since a
// stage's masked loss never reads an old column), records the statistics
// of exactly the classes seen (those of featuresOf, the features Scores
// reads), re-fits every seen column, and saves and loads the statistics;
// a file without the options (written before they existed) loads as
// align=none freeze=none.
func TestL2PAlignment(t *testing.T) {
	env := tinyEnv(t)
	ctx := context.Background()
	stages := tinyStages(4, 5)
	base := map[string]string{"pool": "3", "length": "1", "top-k": "2", "epochs": "1", "batch": "8", "align-samples": "32", "align-steps": "50"}
	with := func(align string) map[string]string {
		o := map[string]string{"align": align}
		for k, v := range base {
			o[k] = v
		}
		return o
	}
	a, err := NewL2P(env, with(AlignGaussian))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	n, err := NewL2P(env, with(AlignNone))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	W := env.Weights.Width
	for si, s := range stages {
		if err := a.Learn(ctx, s); err != nil {
			t.Fatal(err)
		}
		if err := n.Learn(ctx, s); err != nil {
			t.Fatal(err)
		}
		for name, pair := range map[string][2][]float32{"prompts": {a.Prompts, n.Prompts}, "keys": {a.Keys, n.Keys}} {
			for i := range pair[0] {
				if pair[0][i] != pair[1][i] {
					t.Fatalf("stage %d: %s differ with alignment at %d", si+1, name, i)
				}
			}
		}
		C := a.classes()
		for _, c := range a.seen {
			same := true
			for i := 0; i < W; i++ {
				same = same && a.HeadW[i*C+c] == n.HeadW[i*C+c]
			}
			if same {
				t.Fatalf("stage %d: column %d was not re-fitted", si+1, c)
			}
		}
		// The statistics of this stage's classes are those of the
		// features under the prompts as they are now.
		f, err := a.featuresOf(ctx, s.Images, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range s.Classes {
			m, S := gaussianStats(gatherRows(f, W, labelRows(s.Images.Labels, c)), W)
			for j := 0; j < W; j++ {
				if float32(m[j]) != a.AlignMean[c*W+j] || float32(S.At(j, (j+1)%W)) != a.AlignCov[(c*W+j)*W+(j+1)%W] {
					t.Fatalf("stage %d: the statistics of class %d are not those of its features", si+1, c)
				}
			}
		}
	}
	if n.AlignMean != nil {
		t.Fatalf("align=none recorded statistics")
	}
	// Scores read the aligned head.
	test := patterns(2, 7)
	sc, cols, err := a.Scores(ctx, Eval{Images: test, N: test.Len()})
	if err != nil {
		t.Fatal(err)
	}
	f, err := a.featuresOf(ctx, test, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := appendLinearScores(nil, f, W, a.HeadW, a.HeadB, a.classes(), cols)
	for i := range sc {
		if sc[i] != want[i] {
			t.Fatalf("score %d = %v, aligned head on the features %v", i, sc[i], want[i])
		}
	}
	// Save and load: statistics and options come back.
	dir := t.TempDir()
	p := filepath.Join(dir, "a.safetensors")
	if err := a.Save(p); err != nil {
		t.Fatal(err)
	}
	b, err := LoadL2P(env, p)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.opt.Align != AlignGaussian || len(b.AlignCov) != len(a.AlignCov) {
		t.Fatalf("loaded align=%q with %d covariance values, saved %q with %d", b.opt.Align, len(b.AlignCov), AlignGaussian, len(a.AlignCov))
	}
	for i := range a.AlignCov {
		if a.AlignCov[i] != b.AlignCov[i] {
			t.Fatalf("loaded covariance differs at %d", i)
		}
	}
	// A file written before the option existed: its state has no Align
	// fields and it has no statistics; it loads as align=none.
	pn := filepath.Join(dir, "n.safetensors")
	if err := n.Save(pn); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "old.safetensors")
	writeOlderFile(t, pn, old, func(st, opts map[string]any) {
		for k := range opts {
			if strings.HasPrefix(k, "Align") || k == "Freeze" {
				delete(opts, k)
			}
		}
		if _, ok := st["frozen"]; !ok {
			t.Fatalf("the file of a learner with freeze=used has no frozen rows")
		}
		delete(st, "frozen")
	})
	o, err := LoadL2P(env, old)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if o.opt.Align != AlignNone || o.AlignMean != nil || o.opt.Freeze != FreezeNone || o.frozen != nil {
		t.Fatalf("an old file loads with align=%q freeze=%q frozen rows %v", o.opt.Align, o.opt.Freeze, o.frozen)
	}
	so, _, err := o.Scores(ctx, Eval{Images: test, N: test.Len()})
	if err != nil {
		t.Fatal(err)
	}
	sn, _, _ := n.Scores(ctx, Eval{Images: test, N: test.Len()})
	for i := range so {
		if so[i] != sn[i] {
			t.Fatalf("old file's scores differ at %d", i)
		}
	}
}

// TestL2PAlignBadOptions: the alignment's options are checked up front.
func TestL2PAlignBadOptions(t *testing.T) {
	for _, c := range []struct {
		o    map[string]string
		want string
	}{
		{map[string]string{"align": "slca"}, "one of none, gaussian"},
		{map[string]string{"align-shrink": "1.5"}, "in [0, 1]"},
		{map[string]string{"align-samples": "0"}, "align-samples"},
		{map[string]string{"align-lr": "-1"}, "align-lr"},
	} {
		if _, err := parseL2P(c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one containing %q", c.o, err, c.want)
		}
	}
}

// TestL2PFreezeUsed on the tiny ViT: with freeze=used the pool rows that
// stage 1 selected (prompts and keys) are bit-identical after stage 2,
// the frozen rows are saved, and a learner loaded after stage 1 learns
// stage 2 to the same file as one that never stopped.
func TestL2PFreezeUsed(t *testing.T) {
	env := tinyEnv(t)
	ctx := context.Background()
	stages := tinyStages(4, 5)
	o := map[string]string{"pool": "4", "length": "1", "top-k": "2", "epochs": "1", "batch": "8", "freeze": FreezeUsed, "align-samples": "16", "align-steps": "20"}
	a, err := NewL2P(env, o)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Learn(ctx, stages[0]); err != nil {
		t.Fatal(err)
	}
	if len(a.frozen) == 0 {
		t.Fatalf("stage 1 froze no row")
	}
	dir := t.TempDir()
	p1 := filepath.Join(dir, "1.safetensors")
	if err := a.Save(p1); err != nil {
		t.Fatal(err)
	}
	W, L := env.Weights.Width, 1
	frozen1 := mustLoadFrozen(t, env, p1)
	if fmt.Sprint(frozen1) != fmt.Sprint(a.frozen) {
		t.Fatalf("file holds frozen rows %v, learner %v", frozen1, a.frozen)
	}
	p0, k0 := append([]float32(nil), a.Prompts...), append([]float32(nil), a.Keys...)
	if err := a.Learn(ctx, stages[1]); err != nil {
		t.Fatal(err)
	}
	for _, j := range []int{0, 1, 2, 3} {
		same := true
		for i := j * L * W; i < (j+1)*L*W; i++ {
			same = same && a.Prompts[i] == p0[i]
		}
		for i := j * W; i < (j+1)*W; i++ {
			same = same && a.Keys[i] == k0[i]
		}
		if wasFrozen := containsInt(frozen1, j); wasFrozen && !same {
			t.Fatalf("pool row %d, frozen after stage 1, changed in stage 2", j)
		} else if !wasFrozen && containsInt(a.frozen, j) && same {
			t.Fatalf("pool row %d, used in stage 2, did not change", j)
		}
	}
	b, err := LoadL2P(env, p1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Learn(ctx, stages[1]); err != nil {
		t.Fatal(err)
	}
	pa, pb := filepath.Join(dir, "a.safetensors"), filepath.Join(dir, "b.safetensors")
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
}

func mustLoadFrozen(t *testing.T, env Env, path string) []int {
	l, err := LoadL2P(env, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.frozen
}

func containsInt(v []int, x int) bool {
	for _, y := range v {
		if y == x {
			return true
		}
	}
	return false
}

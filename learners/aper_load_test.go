package learners

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cl-dev/cl/internal/safetensors"
)

// TestAdaptedSaveOpen: every adapted method (aper-adapter, aper-ssf,
// aper-vpt-deep, aper-vpt-shallow, ranpac-phase1) on the tiny ViT. A
// learner saved after stage 1 and opened again (the adapted backbone
// rebuilt from the weights and the stored parameters) learns stage 2 to
// the same scores, bit for bit, as the learner that never left memory; the
// file saved after stage 2 opens to bit-identical scores; ReadFileInfo
// reads its method, names, classes and stages; the stored parameters are
// tune.LoadResult's; a file of other weights is refused naming the file
// (Open and LoadAdapted); images learned before are refused by the ledger.
func TestAdaptedSaveOpen(t *testing.T) {
	env := tinyEnv(t)
	ctx := context.Background()
	stages := tinyStages(4, 2)
	test := patterns(2, 6)
	ev := Eval{Images: test, N: test.Len()}
	dir := t.TempDir()
	small := map[string]string{"epochs": "2", "batch": "8", "augment": "none"}
	for _, c := range []storedCase{
		{"aper-adapter", map[string]string{"epochs": "2", "batch": "8", "augment": "pilot"}},
		{"aper-ssf", small},
		{"aper-vpt-deep", small},
		{"aper-vpt-shallow", small},
		{"ranpac-phase1", map[string]string{"epochs": "2", "batch": "8", "augment": "none", "M": "64"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := learnedStored(t, env, c, stages[0])
			p1 := filepath.Join(dir, c.name+"-1.safetensors")
			if err := l.Save(p1); err != nil {
				t.Fatal(err)
			}
			if err := l.Learn(ctx, stages[1]); err != nil {
				t.Fatal(err)
			}
			want, wcols, err := l.Scores(ctx, ev)
			if err != nil {
				t.Fatal(err)
			}
			p2 := filepath.Join(dir, c.name+"-2.safetensors")
			if err := l.Save(p2); err != nil {
				t.Fatal(err)
			}

			// Stage 2 learned by the learner opened from stage 1's file.
			back, fi := openStored(t, env, p1, c.name)
			if fi.Method != c.name || fi.Stages != 1 || len(fi.Learned) != 2 || strings.Join(fi.Names, ",") != "h,v,d,c" {
				t.Fatalf("stage-1 file info %+v", fi)
			}
			if err := back.Learn(ctx, stages[1]); err != nil {
				t.Fatal(err)
			}
			sameScores(t, "learned after Open", back, ev, want, wcols)

			// The file after stage 2.
			fi, err = ReadFileInfo(p2)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Method != c.name || fi.WeightsSHA256 != env.WeightsSHA256 || fi.Stages != 2 || len(fi.Learned) != 4 {
				t.Fatalf("stage-2 file info %+v", fi)
			}
			two, _ := openStored(t, env, p2, c.name)
			sameScores(t, "opened", two, ev, want, wcols)
			Forget(two, test)
			if n := len(two.(*adapted).cache); n != 0 {
				t.Fatalf("%d data sets cached after Forget", n)
			}

			// The stored parameters are the trained ones, readable by tune.
			a := l.(*adapted)
			f, err := safetensors.ReadFile(p2)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range a.res.Specs {
				got := f.Tensors[s.Name].Float32s()
				wantP := a.res.Params[s.Name].Data
				if len(got) != len(wantP) {
					t.Fatalf("%s: %d values stored, %d trained", s.Name, len(got), len(wantP))
				}
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(wantP[i]) {
						t.Fatalf("%s[%d]: stored %v, trained %v", s.Name, i, got[i], wantP[i])
					}
				}
			}

			// Other weights.
			other := otherWeights(env)
			if _, _, err := Open(other, p2); !errors.Is(err, ErrOtherWeights) || !strings.Contains(err.Error(), p2) ||
				!strings.Contains(err.Error(), "adapted parameters") {
				t.Fatalf("Open with other weights: %v", err)
			}
			if _, err := LoadAdapted(other, p2); !errors.Is(err, ErrOtherWeights) || !strings.Contains(err.Error(), p2) {
				t.Fatalf("LoadAdapted with other weights: %v", err)
			}

			// Images learned before: the ledger refuses them.
			again := stages[0]
			again.Index = 2
			wantErr := fmt.Sprintf("stage 3: row 0 (sample %q) was already learned by the head", again.Images.IDs[0])
			if err := two.Learn(ctx, again); err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Fatalf("relearning stage 1's images: %v, want %q", err, wantErr)
			}
		})
	}
}

// TestAdaptedRefusals: stages out of order, and an adapted learner file
// that is not one or is inconsistent, are errors naming what is wrong.
func TestAdaptedRefusals(t *testing.T) {
	env := tinyEnv(t)
	ctx := context.Background()
	stages := tinyStages(2, 3)
	l := learnedStored(t, env, storedCase{"aper-ssf", map[string]string{"epochs": "1", "batch": "8", "augment": "none"}})
	if err := l.Learn(ctx, stages[1]); err == nil || !strings.Contains(err.Error(), "stage 2 given after 0 stages learned") {
		t.Fatalf("stage 2 first: %v", err)
	}
	if err := l.Save(filepath.Join(t.TempDir(), "x.safetensors")); err == nil || !strings.Contains(err.Error(), "nothing learned") {
		t.Fatalf("save before learning: %v", err)
	}
	if err := l.Learn(ctx, stages[0]); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "ssf.safetensors")
	if err := l.Save(path); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Without a stored parameter: LoadResult names it.
	var param string
	for n := range f.Tensors {
		if strings.HasPrefix(n, "ssf") {
			param = n
			break
		}
	}
	delete(f.Tensors, param)
	bad := filepath.Join(dir, "bad.safetensors")
	if err := f.WriteFile(bad); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(env, bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), param) {
		t.Fatalf("missing %s: %v", param, err)
	}
	// A ledger that disagrees with the head.
	f, _ = safetensors.ReadFile(path)
	f.Tensors["ledger.labels"] = safetensors.FromInt64s([]int64{1}, []int64{3})
	if err := f.WriteFile(bad); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(env, bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "ledger") {
		t.Fatalf("bad ledger: %v", err)
	}
	// No ledger at all.
	f, _ = safetensors.ReadFile(path)
	delete(f.Tensors, "ledger.labels")
	delete(f.Tensors, "ledger.sha256")
	delete(f.Metadata, "ledger_ids")
	if err := f.WriteFile(bad); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(env, bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "has no ledger") {
		t.Fatalf("no ledger: %v", err)
	}
}

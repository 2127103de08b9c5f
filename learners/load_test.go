package learners

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cl-dev/cl/internal/safetensors"
)

// TestOpenLearnerFiles: Open reads the method a learner file records and
// loads it with that method's LoadX (the loaded learner scores bit for bit
// as the saved one); ReadFileInfo gives its names, classes learned and
// stage count from the header; a file of other weights is refused with
// ErrOtherWeights naming the file, a head file and a non-learner file with
// what they are; Forget empties the caches Scores filled.
func TestOpenLearnerFiles(t *testing.T) {
	env := tinyEnv(t)
	ctx := context.Background()
	st := tinyStages(3, 2)[0]
	test := patterns(2, 6)
	ev := Eval{Images: test, N: test.Len()}
	dir := t.TempDir()
	for _, c := range []storedCase{
		{"l2p", map[string]string{"pool": "3", "length": "1", "top-k": "2", "epochs": "1", "batch": "8"}},
		{"dualprompt", map[string]string{"g-layers": "0", "e-layers": "1", "pool": "2", "e-length": "2", "g-length": "2", "epochs": "1", "batch": "8"}},
		{"coda-prompt", map[string]string{"layers": "0", "components": "4", "length": "2", "epochs": "1", "batch": "8"}},
		{"ease", map[string]string{"bottleneck": "4", "epochs": "1", "batch": "8"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := learnedStored(t, env, c, st)
			path := filepath.Join(dir, c.name+".safetensors")
			if err := l.Save(path); err != nil {
				t.Fatal(err)
			}
			want, wcols, err := l.Scores(ctx, ev)
			if err != nil {
				t.Fatal(err)
			}
			fi, err := ReadFileInfo(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Method != c.name || fi.WeightsSHA256 != env.WeightsSHA256 || fi.Stages != 1 ||
				strings.Join(fi.Names, ",") != "h,v,d,c" || len(fi.Learned) != 2 || fi.Learned[0] != 0 || fi.Learned[1] != 1 {
				t.Fatalf("file info %+v", fi)
			}
			back, fi2 := openStored(t, env, path, c.name)
			if fi2.Method != c.name {
				t.Fatalf("opened %s as %s", c.name, fi2.Method)
			}
			if len(wcols) != 2 || wcols[0] != 0 || wcols[1] != 1 {
				t.Fatalf("columns %v, want [0 1]", wcols)
			}
			sameScores(t, "opened", back, ev, want, wcols)
			Forget(back, test)
			switch x := back.(type) {
			case *EASE:
				if len(x.feats) != 0 || len(x.pe.queries) != 0 {
					t.Fatalf("ease caches %d data sets after Forget", len(x.feats))
				}
			case *L2P:
				if len(x.pe.queries) != 0 {
					t.Fatal("l2p caches queries after Forget")
				}
			}
			if _, _, err := Open(otherWeights(env), path); !errors.Is(err, ErrOtherWeights) || !strings.Contains(err.Error(), path) {
				t.Fatalf("other weights: %v", err)
			}
		})
	}

	head := filepath.Join(dir, "head.safetensors")
	h := safetensors.New()
	h.Metadata["format"], h.Metadata["method"] = "cl.head/1", "ranpac"
	if err := h.WriteFile(head); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(env, head); err == nil || !strings.Contains(err.Error(), head+" is a head file (ranpac)") {
		t.Fatalf("head file: %v", err)
	}
	junk := filepath.Join(dir, "junk.safetensors")
	os.WriteFile(junk, []byte("\xff\xff\xff\xff\xff\xff\xff\x7fnot a header"), 0o644)
	if _, err := ReadFileInfo(junk); err == nil || !strings.Contains(err.Error(), junk+" is not a cl learner file") {
		t.Fatalf("junk file: %v", err)
	}
	f := safetensors.New()
	f.Metadata["format"], f.Metadata["learner.method"], f.Metadata["learner.state"] = learnerFormat, "simplecil", "{}"
	odd := filepath.Join(dir, "odd.safetensors")
	f.WriteFile(odd)
	if _, err := ReadFileInfo(odd); err == nil || !strings.Contains(err.Error(), `method "simplecil", which this cl cannot load`) {
		t.Fatalf("unknown method: %v", err)
	}
}

// storedCase is a method that keeps a learner file and the options of a
// small run of it on the tiny ViT.
type storedCase struct {
	name string
	o    map[string]string
}

// learnedStored is a new c.name learner with options c.o (closed when the
// test ends) that has learned stages in order; c.name must be Stored.
func learnedStored(t *testing.T, env Env, c storedCase, stages ...Stage) Learner {
	t.Helper()
	if !Stored(c.name) {
		t.Fatalf("%s not Stored", c.name)
	}
	spec, _ := Lookup(c.name)
	l, err := spec.New(env, c.o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Close(l) })
	for _, s := range stages {
		if err := l.Learn(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// openStored opens the learner file path (closed when the test ends) and
// fails unless it holds a method learner.
func openStored(t *testing.T, env Env, path, method string) (Learner, FileInfo) {
	t.Helper()
	l, fi, err := Open(env, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Close(l) })
	if l.Method() != method {
		t.Fatalf("opened %s as %s", method, l.Method())
	}
	return l, fi
}

// otherWeights is env with another checkpoint's SHA-256.
func otherWeights(env Env) Env {
	env.WeightsSHA256 = "0123456789abcdef"
	return env
}

// sameScores fails unless l scores ev bit for bit as want (columns wcols).
func sameScores(t *testing.T, what string, l Learner, ev Eval, want []float64, wcols []int) {
	t.Helper()
	got, cols, err := l.Scores(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(cols) != len(wcols) {
		t.Fatalf("%s: %d scores of %v, want %d of %v", what, len(got), cols, len(want), wcols)
	}
	for i := range cols {
		if cols[i] != wcols[i] {
			t.Fatalf("%s: columns %v, want %v", what, cols, wcols)
		}
	}
	for i := range want {
		if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
			t.Fatalf("%s: score %d is %v, want %v", what, i, got[i], want[i])
		}
	}
}

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
	for _, c := range []struct {
		name string
		o    map[string]string
	}{
		{"l2p", map[string]string{"pool": "3", "length": "1", "top-k": "2", "epochs": "1", "batch": "8"}},
		{"dualprompt", map[string]string{"g-layers": "0", "e-layers": "1", "pool": "2", "e-length": "2", "g-length": "2", "epochs": "1", "batch": "8"}},
		{"coda-prompt", map[string]string{"layers": "0", "components": "4", "length": "2", "epochs": "1", "batch": "8"}},
		{"ease", map[string]string{"bottleneck": "4", "epochs": "1", "batch": "8"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !Stored(c.name) {
				t.Fatalf("%s not Stored", c.name)
			}
			spec, _ := Lookup(c.name)
			l, err := spec.New(env, c.o)
			if err != nil {
				t.Fatal(err)
			}
			defer Close(l)
			if err := l.Learn(ctx, st); err != nil {
				t.Fatal(err)
			}
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
			back, fi2, err := Open(env, path)
			if err != nil {
				t.Fatal(err)
			}
			defer Close(back)
			if back.Method() != c.name || fi2.Method != c.name {
				t.Fatalf("opened %s as %s", c.name, back.Method())
			}
			got, cols, err := back.Scores(ctx, ev)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
					t.Fatalf("score %d: opened %v, saved %v", i, got[i], want[i])
				}
			}
			if len(cols) != len(wcols) || cols[0] != 0 || cols[1] != 1 {
				t.Fatalf("columns %v, want %v", cols, wcols)
			}
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
			other := env
			other.WeightsSHA256 = "0123456789abcdef"
			if _, _, err := Open(other, path); !errors.Is(err, ErrOtherWeights) || !strings.Contains(err.Error(), path) {
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

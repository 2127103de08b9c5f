package learners

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cl-dev/cl/internal/safetensors"
	"github.com/cl-dev/cl/models/vit"
)

// TestLearnerFileRunMetadata: a learner file records the attention heads
// its ViT ran with and the training seed (ReadFileInfo reads them); Open
// and LoadX refuse weights read with other heads, naming --heads and the
// stored value; a file without the two keys (written before they existed)
// loads as before with any heads.
func TestLearnerFileRunMetadata(t *testing.T) {
	env := tinyEnv(t)
	env.Seed = 7
	ctx := context.Background()
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		o    map[string]string
		load func(Env, string) (Learner, error)
	}{
		{"l2p", map[string]string{"pool": "3", "length": "1", "top-k": "2", "epochs": "0"},
			func(e Env, p string) (Learner, error) { return LoadL2P(e, p) }},
		{"ease", map[string]string{"bottleneck": "4", "epochs": "0"},
			func(e Env, p string) (Learner, error) { return LoadEASE(e, p) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec, _ := Lookup(c.name)
			l, err := spec.New(env, c.o)
			if err != nil {
				t.Fatal(err)
			}
			defer Close(l)
			if err := l.Learn(ctx, tinyStages(2, 2)[0]); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, c.name+".safetensors")
			if err := l.Save(path); err != nil {
				t.Fatal(err)
			}
			fi, err := ReadFileInfo(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Heads != 3 || fi.TrainSeed != 7 || !fi.HasTrainSeed {
				t.Errorf("heads %d, train seed %d (recorded %v); want 3, 7", fi.Heads, fi.TrainSeed, fi.HasTrainSeed)
			}
			w6, err := vit.Load(tinyWeights, 6)
			if err != nil {
				t.Fatal(err)
			}
			other := env
			other.Weights = w6
			_, _, err = Open(other, path)
			if err == nil || !strings.Contains(err.Error(), "--heads 3") || !strings.Contains(err.Error(), path) {
				t.Errorf("Open with 6 heads: err = %v, want one naming --heads 3 and the file", err)
			}
			if _, err := c.load(other, path); err == nil || !strings.Contains(err.Error(), "--heads 3") {
				t.Errorf("Load with 6 heads: err = %v, want one naming --heads 3", err)
			}
			// Same heads, another seed: loads (scoring needs no seed).
			same := env
			same.Seed = 1
			back, _, err := Open(same, path)
			if err != nil {
				t.Fatal(err)
			}
			Close(back)

			// An older file: no heads, no seed recorded.
			f, err := safetensors.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			delete(f.Metadata, mdHeads)
			delete(f.Metadata, mdTrainSeed)
			old := filepath.Join(dir, c.name+"-old.safetensors")
			if err := f.WriteFile(old); err != nil {
				t.Fatal(err)
			}
			fi, err = ReadFileInfo(old)
			if err != nil || fi.Heads != 0 || fi.HasTrainSeed {
				t.Fatalf("old file: heads %d, seed recorded %v, err %v", fi.Heads, fi.HasTrainSeed, err)
			}
			back, _, err = Open(other, old)
			if err != nil {
				t.Fatalf("old file with 6 heads: %v (loads as before the record existed)", err)
			}
			Close(back)

			// A malformed record names the file and the key.
			f.Metadata[mdHeads] = "three"
			bad := filepath.Join(dir, c.name+"-bad.safetensors")
			if err := f.WriteFile(bad); err != nil {
				t.Fatal(err)
			}
			if _, err := ReadFileInfo(bad); err == nil || !strings.Contains(err.Error(), mdHeads) || !strings.Contains(err.Error(), bad) {
				t.Errorf("malformed heads: err = %v", err)
			}
		})
	}
}

package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cl-dev/cl/learners"
)

// TestLearnerFileHeadsAndSeed: a learner file records the --heads and
// --train-seed it was created with. A later fit with another --train-seed,
// or any command with another --heads, is refused naming the flag and the
// stored value (the file unchanged); without the flags the recorded values
// are used (the tiny ViT's width 48 has no default head count, so eval
// without --heads works only through the file).
func TestLearnerFileHeadsAndSeed(t *testing.T) {
	needORTLib(t)
	train := textureFolder(t, 2, 5)
	path := filepath.Join(t.TempDir(), "l2p.safetensors")
	common := []string{"--weights", tinyViTWeights, "--threads", "1", "--data", train, "--inc", "2"}
	if _, stderr, err := runCLErr(append([]string{"fit", "--method", "l2p", "--learner", path, "--heads", "3", "--train-seed", "5",
		"--set", "pool=2", "--set", "length=1", "--set", "top-k=1", "--set", "epochs=1"}, common...)...); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	fi, err := learners.ReadFileInfo(path)
	if err != nil || fi.Heads != 3 || fi.TrainSeed != 5 || !fi.HasTrainSeed {
		t.Fatalf("recorded heads %d, train seed %d (%v), err %v; want 3, 5", fi.Heads, fi.TrainSeed, fi.HasTrainSeed, err)
	}
	before, _ := os.ReadFile(path)
	for _, c := range []struct {
		args []string
		want string
	}{
		{append([]string{"fit", "--learner", path, "--heads", "3", "--train-seed", "6"}, common...), "trained with --train-seed 5"},
		{append([]string{"fit", "--learner", path, "--heads", "6"}, common...), "trained with --heads 3"},
		{[]string{"eval", "--learner", path, "--weights", tinyViTWeights, "--heads", "6", "--data", train}, "trained with --heads 3"},
		{[]string{"predict", "--learner", path, "--weights", tinyViTWeights, "--heads", "6", "--data", train}, "trained with --heads 3"},
	} {
		_, _, err := runCLErr(c.args...)
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("cl %s: err = %v, want a usage error with %q and the file", strings.Join(c.args[:4], " "), err, c.want)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("a refused fit changed the learner file")
	}
	// The recorded values when the flags are left out.
	if _, stderr, err := runCLErr(append([]string{"fit", "--learner", path}, common...)...); err != nil {
		t.Fatalf("second stage without --heads and --train-seed: %v\n%s", err, stderr)
	}
	if fi, err = learners.ReadFileInfo(path); err != nil || fi.Stages != 2 || fi.Heads != 3 || fi.TrainSeed != 5 {
		t.Fatalf("after stage 2: %d stages, heads %d, seed %d, err %v", fi.Stages, fi.Heads, fi.TrainSeed, err)
	}
	if _, stderr, err := runCLErr("eval", "--learner", path, "--weights", tinyViTWeights, "--threads", "1", "--data", train); err != nil {
		t.Fatalf("eval without --heads: %v\n%s", err, stderr)
	}
}

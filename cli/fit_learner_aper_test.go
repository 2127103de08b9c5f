package cli

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cl-dev/cl/learners"
)

// TestFitLearnerAdapted: `cl fit --learner --method aper-ssf` adapts SSF on
// the first stage and learns the prototype head, a second cl fit loads the
// file (the adapted backbone rebuilt from the weights and the stored
// parameters) and learns stage 2; the file then scores bit for bit as one
// aper-ssf learner taught the same two stages directly. cl eval's top-1 and
// cl predict's top-2 are those scores' ranking; cl serve --learner serves
// the same scores; the file used with other weights is refused naming it,
// by fit, eval and predict.
func TestFitLearnerAdapted(t *testing.T) {
	needORTLib(t)
	fx := newTwoStageFixture(t)
	train, test := fx.train, fx.test
	sets := []string{"epochs=2", "batch=8"} // augment: the default pilot preset, seeded by --train-seed
	dir := t.TempDir()
	path := filepath.Join(dir, "aper-ssf.safetensors")
	common := []string{"--weights", tinyViTWeights, "--heads", "3", "--threads", "1", "--data", train, "--inc", "2"}
	args := append([]string{"fit", "--method", "aper-ssf", "--learner", path}, common...)
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	out, stderr, err := runCLErr(args...)
	if err != nil {
		t.Fatalf("stage 1: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "created "+path+" (aper-ssf)") || !strings.Contains(stderr, "epoch 2/2") {
		t.Fatalf("stage 1: stdout %q\nstderr %q", out, stderr)
	}
	stage1, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p1 := filepath.Join(dir, "stage1.safetensors")
	os.WriteFile(p1, stage1, 0o644)
	out, stderr, err = runCLErr(append([]string{"fit", "--learner", path}, common...)...)
	if err != nil {
		t.Fatalf("stage 2: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "updated "+path) || !strings.Contains(out, "scores 4 classes of 4") || strings.Contains(stderr, "epoch") {
		t.Fatalf("stage 2 (learns the head only): stdout %q\nstderr %q", out, stderr)
	}

	// The same two stages taught directly: the file, cl eval and cl predict
	// against them.
	fx.checkLearnerFile(t, path, "aper-ssf", fx.taughtDirectly(t, "aper-ssf", sets))

	serveAdapted(t, path, test, fx.env)

	// Other weights: the same tensors with other bytes in the file.
	other := otherCheckpoint(t, dir)
	for _, a := range [][]string{
		append([]string{"fit", "--learner", p1, "--weights", other}, common[2:]...),
		{"eval", "--learner", path, "--weights", other, "--heads", "3", "--data", test},
		{"predict", "--learner", path, "--weights", other, "--heads", "3", "--data", test},
	} {
		_, _, err := runCLErr(a...)
		if err == nil || !strings.Contains(err.Error(), a[2]) || !strings.Contains(err.Error(), "other pre-trained weights") ||
			!strings.Contains(err.Error(), "adapted parameters") {
			t.Fatalf("cl %s with other weights: %v", a[0], err)
		}
	}
	if after, _ := os.ReadFile(p1); !bytes.Equal(after, stage1) {
		t.Fatal("a refused fit changed the learner file")
	}
}

// serveAdapted starts `cl serve --learner path` and checks that its top-1
// class and score of every image of the folder test are the opened
// learner's, bit for bit.
func serveAdapted(t *testing.T, path, test string, env learners.Env) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(test, "*", "*.png"))
	fi, want, cols := learnerScoresOf(t, env, path, files)
	rep := predictServed(t, startServeLearner(t, path), files, 1)
	C := len(cols)
	for i, p := range rep.Predictions {
		k := rankScores(want[i*C:(i+1)*C], C, 1)[0]
		if len(p.Top) != 1 || p.Top[0].Class != fi.Names[cols[k]] || math.Float64bits(p.Top[0].Score) != math.Float64bits(want[i*C+k]) {
			t.Fatalf("image %d: served %+v, the learner gives %s %v", i, p.Top, fi.Names[cols[k]], want[i*C+k])
		}
	}
}

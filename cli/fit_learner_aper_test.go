package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"math"
	"mime/multipart"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/internal/safetensors"
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
	ctx := context.Background()
	train := textureFolder(t, 6, 3)
	test := textureFolder(t, 3, 9)
	env := tinyLearnerEnv(t)
	stages, names := benchStages(t, train)
	testSet, err := loadBenchImages(ctx, "--test-data", test, 0)
	if err != nil {
		t.Fatal(err)
	}
	global := map[string]int{}
	for k, n := range names {
		global[n] = k
	}
	for i, y := range testSet.Labels {
		testSet.Labels[i] = global[testSet.Classes[y]]
	}
	testSet.Classes = names
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

	// The same two stages taught directly.
	spec, _ := learners.Lookup("aper-ssf")
	opts := map[string]string{}
	for _, s := range sets {
		k, v, _ := strings.Cut(s, "=")
		opts[k] = v
	}
	ref, err := spec.New(env, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer learners.Close(ref)
	for _, s := range stages {
		if err := ref.Learn(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	ev := learners.Eval{Images: testSet, N: testSet.Len()}
	want, cols, err := ref.Scores(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	l, fi, err := learners.Open(env, path)
	if err != nil {
		t.Fatal(err)
	}
	defer learners.Close(l)
	if fi.Method != "aper-ssf" || fi.Stages != 2 || len(fi.Learned) != 4 || strings.Join(fi.Names, ",") != strings.Join(names, ",") {
		t.Fatalf("file info %+v", fi)
	}
	got, gcols, err := l.Scores(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(gcols) != len(cols) {
		t.Fatalf("%d scores for %v, direct %d for %v", len(got), gcols, len(want), cols)
	}
	for i := range want {
		if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
			t.Fatalf("score %d: cl fit's learner %v, taught directly %v", i, got[i], want[i])
		}
	}

	// cl eval and cl predict rank those scores.
	C := len(cols)
	top := rankScores(want, C, 2)
	right := 0
	for i, y := range testSet.Labels {
		if cols[top[2*i]] == y {
			right++
		}
	}
	out, stderr, err = runCLErr("eval", "--learner", path, "--weights", tinyViTWeights, "--heads", "3", "--threads", "1", "--data", test, "--json")
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, stderr)
	}
	var rep EvalReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Method != "aper-ssf" || rep.Rows != testSet.Len() || math.Abs(rep.Top1-100*float64(right)/float64(testSet.Len())) > 1e-9 {
		t.Fatalf("eval %+v; want top-1 %v", rep, 100*float64(right)/float64(testSet.Len()))
	}
	out, stderr, err = runCLErr("predict", "--learner", path, "--weights", tinyViTWeights, "--heads", "3", "--threads", "1", "--data", test, "--top", "2")
	if err != nil {
		t.Fatalf("predict: %v\n%s", err, stderr)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) != testSet.Len()+1 {
		t.Fatalf("predict CSV: %v, %d rows", err, len(recs))
	}
	for i, r := range recs[1:] {
		if r[1] != testSet.IDs[i] || r[3] != names[cols[top[2*i]]] || r[4] != names[cols[top[2*i+1]]] {
			t.Fatalf("predict row %d: %v; want id %s, top %s %s", i, r, testSet.IDs[i], names[cols[top[2*i]]], names[cols[top[2*i+1]]])
		}
	}

	serveAdapted(t, path, test, env)

	// Other weights: the same tensors with other bytes in the file.
	f, err := safetensors.ReadFile(tinyViTWeights)
	if err != nil {
		t.Fatal(err)
	}
	f.Metadata["note"] = "another checkpoint"
	other := filepath.Join(dir, "other.safetensors")
	if err := f.WriteFile(other); err != nil {
		t.Fatal(err)
	}
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
	l, fi, err := learners.Open(env, path)
	if err != nil {
		t.Fatal(err)
	}
	defer learners.Close(l)
	src, err := data.OpenPaths(files)
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := loadAll(context.Background(), src)
	src.Close()
	if err != nil {
		t.Fatal(err)
	}
	want, cols, err := l.Scores(context.Background(), learners.Eval{Images: d, N: d.Len()})
	if err != nil {
		t.Fatal(err)
	}
	cmd := clProcess("serve", "--learner", path, "--weights", tinyViTWeights, "--heads", "3", "--threads", "1", "--listen", "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logb bytes.Buffer
	cmd.Stderr = &logb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening on ") {
		t.Fatalf("cl serve --learner did not start: %q %v\n%s", line, err, logb.String())
	}
	url := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, f := range files {
		w, _ := mw.CreateFormFile("image", filepath.Base(f))
		b, _ := os.ReadFile(f)
		w.Write(b)
	}
	mw.Close()
	resp, err := httpc.Post(url+"/v1/predict?top=1", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Predictions []struct {
			Top []struct {
				Class string
				Score float64
			}
		}
	}
	err = json.NewDecoder(resp.Body).Decode(&rep)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(rep.Predictions) != len(files) {
		t.Fatalf("serve predict: status %d, %v, %+v\n%s", resp.StatusCode, err, rep, logb.String())
	}
	C := len(cols)
	for i, p := range rep.Predictions {
		k := rankScores(want[i*C:(i+1)*C], C, 1)[0]
		if len(p.Top) != 1 || p.Top[0].Class != fi.Names[cols[k]] || math.Float64bits(p.Top[0].Score) != math.Float64bits(want[i*C+k]) {
			t.Fatalf("image %d: served %+v, the learner gives %s %v", i, p.Top, fi.Names[cols[k]], want[i*C+k])
		}
	}
}
